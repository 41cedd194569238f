/**
 * Every memfs op runs under the namespace lock (state.ts): one Mutex for the tree, the names
 * and the data, held for the whole op, so each op is atomic to every other op on every reactor
 * (rename across directories, link counts, unlink while open, lookup counts for forget).
 * Ops are synchronous and never await with the lock held.
 */
import type { Filesystem, Mutex } from "furing";

type Op = (...args: unknown[]) => unknown;

/** One wrapper per op, made once: fixed arity (the widest op, copyFileRange, takes 9), so a call allocates nothing. */
function locked(m: Mutex, op: Op): Op {
  return function (this: unknown, a, b, c, d, e, f, g, h, i) {
    m.lock();
    try {
      return op.call(this, a, b, c, d, e, f, g, h, i);
    } finally {
      m.unlock();
    }
  } as Op;
}

/** `fs` with each of its ops taking `m` for its whole run. */
export function lockOps<F extends Filesystem>(m: Mutex, fs: F): F {
  const out = { ...fs } as Record<string, unknown>;
  for (const [k, v] of Object.entries(fs)) if (typeof v === "function") out[k] = locked(m, v as Op);
  return out as F;
}
