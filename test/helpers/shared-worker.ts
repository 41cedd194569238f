/**
 * Worker side of test/unit/shared.test.ts's stress tests: attaches the regions it is posted and
 * hammers them, then posts "done" (or the error).
 */
import { AtomicCounter, Mutex, NumberMap, SharedHeap, StringMap } from "../../runtime/api/shared.ts";

export interface StressJob {
  kind: "counter" | "mutex" | "heap";
  /** Lock and counter words. */
  words: SharedArrayBuffer;
  heap?: SharedArrayBuffer;
  /** StringMap and NumberMap offsets in the heap (heap job). */
  smap?: number;
  nmap?: number;
  id: number;
  iterations: number;
}

/** Run one job on this thread (exported so the main thread can take part too). */
export function runJob(job: StressJob): void {
  const words = new Int32Array(job.words);
  if (job.kind === "counter") {
    const c = new AtomicCounter(words, 1);
    for (let i = 0; i < job.iterations; i++) c.add(1);
    return;
  }
  const m = new Mutex(words, 0);
  if (job.kind === "mutex") {
    // two plain words updated with a read, a pause and a write: lost updates without the lock
    for (let i = 0; i < job.iterations; i++) {
      m.lock();
      const a = words[2] as number;
      const b = words[3] as number;
      if (a !== b) {
        m.unlock();
        throw new Error(`torn state ${a} != ${b}`);
      }
      words[2] = a + 1;
      words[3] = b + 1;
      m.unlock();
    }
    return;
  }
  const heap = new SharedHeap(job.heap as SharedArrayBuffer);
  const smap = new StringMap(heap);
  const nmap = new NumberMap(heap);
  // Each worker adds its own keys with a block holding (id, i, pattern), deletes every third
  // one again (freeing the block), and checks what it reads back.
  for (let i = 0; i < job.iterations; i++) {
    const size = 8 + ((i * 37 + job.id * 11) % 300);
    const p = heap.alloc(size); // the heap locks itself
    heap.u32[p >>> 2] = job.id;
    heap.u32[(p >>> 2) + 1] = i;
    heap.u8.fill((job.id * 31 + i) & 0xff, p + 8, p + size);
    m.lock();
    smap.at(job.smap as number).set(`w${job.id}\ud800-${i}`, p);
    nmap.at(job.nmap as number).set(job.id * 1e9 + i, p);
    m.unlock();
    if (i % 3 === 2) {
      const k = i - 1;
      m.lock();
      const q = smap.at(job.smap as number).get(`w${job.id}\ud800-${k}`);
      const q2 = nmap.at(job.nmap as number).get(job.id * 1e9 + k);
      if (q === undefined || q !== q2) {
        m.unlock();
        throw new Error(`worker ${job.id}: key ${k} lost (${q}, ${q2})`);
      }
      smap.delete(`w${job.id}\ud800-${k}`);
      nmap.delete(job.id * 1e9 + k);
      m.unlock();
      if (heap.u32[q >>> 2] !== job.id || heap.u32[(q >>> 2) + 1] !== k) throw new Error(`worker ${job.id}: block of key ${k} overwritten`);
      heap.free(q);
    }
  }
}

declare const self: Worker;
if (typeof self !== "undefined" && typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" && !Bun.isMainThread) {
  self.onmessage = (e: MessageEvent<StressJob>) => {
    try {
      runJob(e.data);
      self.postMessage("done");
    } catch (err) {
      self.postMessage(`error: ${(err as Error).message}`);
    }
  };
}
