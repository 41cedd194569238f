/**
 * The node-count table reactors share (runtime/dispatch/shared-counts.ts): exact against a Map
 * under a random sequence (ids above 2^32 included, through several grows), and exact when
 * Workers update the same ids at once.
 */
import { expect, test } from "bun:test";
import { SharedCounts, createSharedCounts } from "../../runtime/dispatch/shared-counts.ts";

test("matches a Map of counts over a random sequence, through grows and deletions", () => {
  const sab = createSharedCounts();
  const t = new SharedCounts(sab);
  const ref = new Map<number, number>();
  const opens = new Map<number, number>();
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const before = sab.byteLength;
  for (let k = 0; k < 120_000; k++) {
    const ino = 2 + Math.floor(rnd() * 12_000) + (rnd() < 0.2 ? 2 ** 40 : 0);
    const r = rnd();
    if (r < 0.45) {
      t.lookup(ino);
      ref.set(ino, (ref.get(ino) ?? 0) + 1);
    } else if (r < 0.55) {
      t.open(ino);
      opens.set(ino, (opens.get(ino) ?? 0) + 1);
    } else if (r < 0.65) {
      const n = opens.get(ino) ?? 0;
      if (n === 0) continue;
      t.release(ino);
      if (n === 1) opens.delete(ino);
      else opens.set(ino, n - 1);
    } else {
      const n = ref.get(ino) ?? 0;
      if (n === 0) continue;
      const by = 1 + Math.floor(rnd() * n);
      expect(t.forget(ino, by)).toBe(by === n);
      if (by === n) ref.delete(ino);
      else ref.set(ino, n - by);
    }
  }
  expect(sab.byteLength).toBeGreaterThan(before); // it grew
  for (const [ino, n] of ref) expect(t.lookups(ino)).toBe(n);
  for (const [ino, n] of opens) expect(t.opens(ino)).toBe(n);
  expect(t.size).toBe(new Set([...ref.keys(), ...opens.keys()]).size);
  expect(t.lookups(3 + 2 ** 40 + 50_000)).toBe(0);
});

test("a forget of a node with no references reports nothing and leaves no entry", () => {
  const t = new SharedCounts(createSharedCounts());
  expect(t.forget(5, 1)).toBe(false);
  t.lookup(5);
  expect(t.forget(5, 3)).toBe(true);
  expect(t.forget(5, 1)).toBe(false);
  expect(t.size).toBe(0);
});

test("Workers updating the same ids at once leave exact counts", async () => {
  const sab = createSharedCounts();
  const ids = Array.from({ length: 6000 }, (_, i) => 2 + i * 7); // grows the table while they race
  const run = (keep: boolean) =>
    new Promise<{ gone: number }>((resolve, reject) => {
      const w = new Worker(new URL("../fixtures/shared-counts-worker.ts", import.meta.url).href);
      w.onmessage = (e) => {
        resolve(e.data);
        w.terminate();
      };
      w.onerror = (e) => reject(e);
      w.postMessage({ sab, ids, rounds: 20, keep });
    });
  const results = await Promise.all([run(true), run(true), run(false)]);
  const t = new SharedCounts(sab);
  for (const id of ids) {
    expect(t.lookups(id)).toBe(2);
    expect(t.opens(id)).toBe(2);
  }
  expect(t.size).toBe(ids.length);
  expect(results.length).toBe(3);
});
