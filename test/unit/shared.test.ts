/**
 * furing's shared-memory helpers (runtime/api/shared.ts): the Mutex, the counter, the heap and
 * the hash tables, alone and under Workers that hammer the same regions at once.
 */
import { describe, expect, test } from "bun:test";
import { AtomicCounter, Mutex, NumberMap, SharedHeap, StringMap, readUnits, writeUnits } from "furing";
import { runJob, type StressJob } from "../helpers/shared-worker.ts";

function workers(n: number, job: (id: number) => StressJob): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, (_, id) =>
      new Promise<string>((resolve) => {
        const w = new Worker(new URL("../helpers/shared-worker.ts", import.meta.url).href);
        w.onmessage = (e) => {
          resolve(e.data as string);
          w.terminate();
        };
        w.onerror = (e) => {
          resolve(`error: ${e.message}`);
          w.terminate();
        };
        w.postMessage(job(id));
      }),
    ),
  );
}

describe("Mutex", () => {
  test("lock, tryLock, unlock", () => {
    const w = new Int32Array(new SharedArrayBuffer(8));
    const m = new Mutex(w, 1);
    expect(m.held).toBe(false);
    m.lock();
    expect(m.held).toBe(true);
    expect(m.tryLock()).toBe(false);
    m.unlock();
    expect(m.tryLock()).toBe(true);
    m.unlock();
    expect(w[1]).toBe(0);
    expect(() => m.unlock()).toThrow("not held");
    expect(w[1]).toBe(0);
  });

  test("bad arguments are named", () => {
    expect(() => new Mutex(new Int32Array(4), 0)).toThrow("SharedArrayBuffer");
    expect(() => new Mutex(new Int32Array(new SharedArrayBuffer(8)), 2)).toThrow("outside the view");
  });

  test("4 Workers and the main thread: no lost or torn update", async () => {
    const words = new SharedArrayBuffer(16);
    const n = 20_000;
    const done = workers(4, (id) => ({ kind: "mutex", words, id, iterations: n }));
    runJob({ kind: "mutex", words, id: 99, iterations: n });
    expect(await done).toEqual(["done", "done", "done", "done"]);
    const w = new Int32Array(words);
    expect([w[2], w[3], w[0]]).toEqual([5 * n, 5 * n, 0]);
  });
});

describe("AtomicCounter", () => {
  test("add, sub, compareExchange, wrap", () => {
    const c = new AtomicCounter(new Int32Array(new SharedArrayBuffer(8)), 0);
    expect(c.add()).toBe(0);
    expect(c.add(5)).toBe(1);
    expect(c.sub(2)).toBe(6);
    expect(c.value).toBe(4);
    expect(c.compareExchange(3, 9)).toBe(4);
    expect(c.compareExchange(4, 9)).toBe(4);
    expect(c.value).toBe(9);
    c.value = 2 ** 32 - 1;
    c.add();
    expect(c.value).toBe(0);
  });

  test("4 Workers × 100k adds are exact", async () => {
    const words = new SharedArrayBuffer(16);
    expect(await workers(4, (id) => ({ kind: "counter", words, id, iterations: 100_000 }))).toEqual(["done", "done", "done", "done"]);
    expect(new AtomicCounter(new Int32Array(words), 1).value).toBe(400_000);
  });
});

describe("SharedHeap", () => {
  test("blocks are aligned, disjoint, reused by class after free", () => {
    const h = SharedHeap.format(new SharedArrayBuffer(1 << 16));
    const a = h.alloc(1);
    const b = h.alloc(20);
    const c = h.alloc(100);
    for (const p of [a, b, c]) expect(p % 8).toBe(0);
    expect(b).toBeGreaterThanOrEqual(a + 1);
    expect(c).toBeGreaterThanOrEqual(b + 20);
    expect(h.sizeOf(b)).toBe(20);
    expect(h.capacityOf(b)).toBeGreaterThanOrEqual(20);
    const used = h.used;
    h.free(b);
    expect(h.used).toBeLessThan(used);
    expect(h.alloc(17)).toBe(b); // same class: the freed block comes back
    expect(() => h.free(b + 8)).toThrow("not an allocated block");
    expect(() => h.free(a)).not.toThrow();
    expect(() => h.free(a)).toThrow("not an allocated block");
  });

  test("grows a growable region; other views see the growth; out of memory is an error", () => {
    const r = new SharedArrayBuffer(4096, { maxByteLength: 1 << 20 });
    const h = SharedHeap.format(r);
    const other = new SharedHeap(r);
    const p = h.alloc(100_000);
    expect(r.byteLength).toBeGreaterThanOrEqual(p + 100_000);
    h.u8.fill(7, p, p + 100_000);
    expect(other.u8[p + 99_999]).toBe(7);
    expect(() => h.alloc(2 << 20)).toThrow("out of memory");
    expect(() => new SharedHeap(new SharedArrayBuffer(4096))).toThrow("not a formatted heap");
    expect(() => SharedHeap.format(r)).toThrow("already holds data");
  });

  test("calloc zeroes a reused block", () => {
    const h = SharedHeap.format(new SharedArrayBuffer(1 << 16));
    const p = h.alloc(64);
    h.u8.fill(0xff, p, p + 64);
    h.free(p);
    const q = h.calloc(64);
    expect(q).toBe(p);
    expect(h.u8.subarray(q, q + 64).every((x) => x === 0)).toBe(true);
  });
});

describe("StringMap and NumberMap", () => {
  test("agree with a Map under random sets and deletes (growing and shrinking)", () => {
    const h = SharedHeap.format(new SharedArrayBuffer(1 << 16, { maxByteLength: 64 << 20 }));
    const sm = new StringMap(h);
    const nm = new NumberMap(h);
    const sp = sm.create();
    const np = nm.create();
    const ref = new Map<string, number>();
    const nref = new Map<number, number>();
    let x = 12345;
    const rnd = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    const base = h.used;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20_000; i++) {
        const k = rnd(5000);
        const key = k % 7 === 0 ? `\udc00${k}` : `name-${k}`;
        const nk = k * 4294967296 + k; // beyond 32 bits
        if (rnd(3) === 0) {
          expect(sm.at(sp).delete(key)).toBe(ref.delete(key));
          expect(nm.at(np).delete(nk)).toBe(nref.delete(nk));
        } else {
          sm.at(sp).set(key, i);
          ref.set(key, i);
          nm.at(np).set(nk, -i);
          nref.set(nk, -i);
        }
      }
      expect(sm.at(sp).size).toBe(ref.size);
      expect(nm.at(np).size).toBe(nref.size);
      for (const [k, v] of ref) expect(sm.get(k)).toBe(v);
      for (const [k, v] of nref) expect(nm.get(k)).toBe(v);
      const seen = new Map<string, number>();
      for (let c = sm.next(0); c >= 0; c = sm.next(c)) seen.set(sm.keyAt(c), sm.valueAt(c));
      expect(seen).toEqual(ref);
      const nseen = new Map<number, number>();
      for (let c = nm.next(0); c >= 0; c = nm.next(c)) nseen.set(nm.keyAt(c), nm.valueAt(c));
      expect(nseen).toEqual(nref);
      // empty it: the tables shrink back
      for (const k of [...ref.keys()]) sm.delete(k);
      for (const k of [...nref.keys()]) nm.delete(k);
      ref.clear();
      nref.clear();
      expect(sm.size + nm.size).toBe(0);
      expect(sm.get("name-1")).toBeUndefined();
    }
    sm.destroy();
    nm.destroy();
    expect(h.used).toBeLessThan(base); // the two table headers and slot arrays went back too
  });

  test("keys round-trip exactly: lone surrogates, NUL, long strings", () => {
    const h = SharedHeap.format(new SharedArrayBuffer(1 << 20));
    const sm = new StringMap(h);
    sm.at(sm.create());
    const keys = ["", "\0", "\ud800", "a\udfffb", "é", "x".repeat(5000), "\ud83d\ude00"];
    keys.forEach((k, i) => sm.set(k, i));
    const got: string[] = [];
    for (let c = sm.next(0); c >= 0; c = sm.next(c)) got[sm.valueAt(c)] = sm.keyAt(c);
    expect(got).toEqual(keys);
    expect(sm.get("\udfff")).toBeUndefined();
    const p = h.alloc(20);
    writeUnits(h.u16, p, "a\ud800c");
    expect(readUnits(h.u16, p, 3)).toBe("a\ud800c");
  });

  test("4 Workers and the main thread share one heap and two tables under a Mutex: contents exact", async () => {
    const words = new SharedArrayBuffer(16);
    const region = new SharedArrayBuffer(1 << 16, { maxByteLength: 256 << 20 });
    const h = SharedHeap.format(region);
    const sm = new StringMap(h);
    const nm = new NumberMap(h);
    const smap = sm.create();
    const nmap = nm.create();
    const n = 6000;
    const done = workers(4, (id) => ({ kind: "heap", words, heap: region, smap, nmap, id, iterations: n }));
    runJob({ kind: "heap", words, heap: region, smap, nmap, id: 4, iterations: n });
    expect(await done).toEqual(["done", "done", "done", "done"]);
    sm.at(smap);
    nm.at(nmap);
    let count = 0;
    for (let id = 0; id <= 4; id++) {
      for (let i = 0; i < n; i++) {
        const p = sm.get(`w${id}\ud800-${i}`);
        const deleted = i % 3 === 1 && i + 1 < n;
        if (deleted) {
          expect(p).toBeUndefined();
          continue;
        }
        count++;
        expect(p).toBeDefined();
        expect(nm.get(id * 1e9 + i)).toBe(p as number);
        const q = p as number;
        expect([h.u32[q >>> 2], h.u32[(q >>> 2) + 1]]).toEqual([id, i]);
        const size = 8 + ((i * 37 + id * 11) % 300);
        const fill = (id * 31 + i) & 0xff;
        expect(h.u8.subarray(q + 8, q + size).every((b) => b === fill)).toBe(true);
      }
    }
    expect(sm.size).toBe(count);
    expect(nm.size).toBe(count);
  });
});

test("every size gets a block that holds it", () => {
  const h = SharedHeap.format(new SharedArrayBuffer(1 << 16, { maxByteLength: 64 << 20 }));
  for (let n = 0; n < 5000; n += 1) {
    const p = h.alloc(n);
    expect(h.capacityOf(p)).toBeGreaterThanOrEqual(n);
    expect(h.capacityOf(p)).toBeLessThanOrEqual(Math.max(8, 1.5 * (n + 8)));
    h.free(p);
  }
});
