/**
 * Node counts every reactor shares (a plugin with `concurrency: "shared"` served by Workers): per
 * node id, the kernel's lookups and open handles, summed over all dispatchers, in one table in a
 * SharedArrayBuffer. Each dispatcher's own KernelNodes/OpenHandles see only the part it serves (a
 * lookup on a Worker, its FORGET on the main thread), so only this table knows when a node's
 * count reaches 0 (`forgotten`) or whether it is open (`ctx.isOpen`).
 *
 * An open-addressing table (linear probing, backward-shift deletion) under one lock (a Mutex): each
 * operation is a probe or two, so the lock is held for well under a microsecond. Keys are node
 * ids as two u32 halves (0 is never a node id, so 0/0 marks an empty entry). The buffer is
 * growable; it doubles, rehashed under the lock, when three quarters full. Nothing allocates
 * except a grow.
 */
import { Mutex } from "../api/shared.ts";

/** Int32 header: lock, capacity (entries, a power of two), entries in use. */
const LOCK = 0, CAP = 1, USED = 2, HEADER = 4;
/** Int32s per entry: id low, id high, lookups, opens. */
const W = 4;
const FIRST_CAP = 1 << 12;
/** Room for 2^26 entries (1 GiB of address space, committed only as the table grows). */
const MAX_CAP = 1 << 26;
const bytesFor = (cap: number) => (HEADER + cap * W) * 4;

/** The buffer of a new, empty table (the main thread creates it; Workers get it by message). */
export function createSharedCounts(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(bytesFor(FIRST_CAP), { maxByteLength: bytesFor(MAX_CAP) });
  new Int32Array(sab)[CAP] = FIRST_CAP;
  return sab;
}

export class SharedCounts {
  /** Length-tracking view: follows grows made by any thread. */
  private readonly a: Int32Array;
  /**
   * The table's lock (word LOCK): spins, then sleeps; an unlock wakes a sleeper only when one
   * marked itself (it was notifying on every unlock: a call into the runtime per reply).
   */
  private readonly mutex: Mutex;

  constructor(private readonly sab: SharedArrayBuffer) {
    this.a = new Int32Array(sab);
    this.mutex = new Mutex(this.a, LOCK);
  }

  /** One more kernel reference to `ino` (an entry reply about to be sent). */
  lookup(ino: number): void {
    this.lock();
    this.a[this.slot(ino, true) + 2]! += 1;
    this.unlock();
  }

  /** The kernel dropped `n` references to `ino`: true when that left none (it forgot the node). */
  forget(ino: number, n: number): boolean {
    this.lock();
    const e = this.slot(ino, false);
    let gone = false;
    if (e >= 0) {
      const left = this.a[e + 2]! - n;
      gone = left <= 0 && this.a[e + 2]! > 0;
      this.a[e + 2] = left < 0 ? 0 : left;
      this.dropIfEmpty(e);
    }
    this.unlock();
    return gone;
  }

  /** A handle on `ino` (an open/opendir/create/tmpfile reply about to be sent). */
  open(ino: number): void {
    this.lock();
    this.a[this.slot(ino, true) + 3]! += 1;
    this.unlock();
  }

  /** A RELEASE/RELEASEDIR of a handle on `ino`. */
  release(ino: number): void {
    this.lock();
    const e = this.slot(ino, false);
    if (e >= 0) {
      if (this.a[e + 3]! > 0) this.a[e + 3]! -= 1;
      this.dropIfEmpty(e);
    }
    this.unlock();
  }

  lookups(ino: number): number {
    return this.read(ino, 2);
  }

  opens(ino: number): number {
    return this.read(ino, 3);
  }

  /** Node ids the kernel holds over every reactor (lookups > 0): status, and what a reload invalidates. */
  heldIds(): number[] {
    const out: number[] = [];
    this.lock();
    const a = this.a, cap = a[CAP]!;
    for (let i = 0; i < cap; i++) {
      const e = HEADER + i * W;
      if (a[e + 2]! > 0) out.push((a[e]! >>> 0) + (a[e + 1]! >>> 0) * 4294967296);
    }
    this.unlock();
    return out;
  }

  /** Nodes with a count (for tests and status). */
  get size(): number {
    return Atomics.load(this.a, USED);
  }

  private read(ino: number, field: number): number {
    this.lock();
    const e = this.slot(ino, false);
    const v = e < 0 ? 0 : this.a[e + field]!;
    this.unlock();
    return v;
  }

  private lock(): void {
    this.mutex.lock();
  }

  private unlock(): void {
    this.mutex.unlock();
  }

  /** Index (in `a`) of `ino`'s entry; `create`: add it if missing, else -1. Lock held. */
  private slot(ino: number, create: boolean): number {
    const lo = ino >>> 0, hi = (ino / 4294967296) >>> 0;
    let cap = this.a[CAP]!;
    if (create && (this.a[USED]! + 1) * 4 > cap * 3) cap = this.grow(cap);
    const mask = cap - 1;
    for (let i = hash(lo, hi) & mask; ; i = (i + 1) & mask) {
      const e = HEADER + i * W;
      const klo = this.a[e]!, khi = this.a[e + 1]!;
      if ((klo | khi) === 0) {
        if (!create) return -1;
        this.a[e] = lo;
        this.a[e + 1] = hi;
        this.a[e + 2] = 0;
        this.a[e + 3] = 0;
        this.a[USED]! += 1;
        return e;
      }
      if (klo === (lo | 0) && khi === (hi | 0)) return e;
    }
  }

  /** Remove the entry at `e` if both its counts are 0 (backward-shift deletion). Lock held. */
  private dropIfEmpty(e: number): void {
    if (this.a[e + 2] !== 0 || this.a[e + 3] !== 0) return;
    const a = this.a, mask = a[CAP]! - 1;
    let hole = (e - HEADER) / W;
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const f = HEADER + j * W;
      if ((a[f]! | a[f + 1]!) === 0) break;
      const home = hash(a[f]! >>> 0, a[f + 1]! >>> 0) & mask;
      // move j into the hole unless its home lies cyclically in (hole, j]
      if (hole <= j ? home > hole && home <= j : home > hole || home <= j) continue;
      a.copyWithin(HEADER + hole * W, f, f + W);
      hole = j;
    }
    a.fill(0, HEADER + hole * W, HEADER + hole * W + W);
    a[USED]! -= 1;
  }

  /** Double the table and rehash every entry. Lock held. */
  private grow(cap: number): number {
    if (cap >= MAX_CAP) throw new Error(`furing: the shared node table is full (${cap} nodes held by the kernel)`);
    const old = this.a.slice(HEADER, HEADER + cap * W);
    const next = cap * 2;
    this.sab.grow(bytesFor(next));
    this.a.fill(0, HEADER, HEADER + next * W);
    this.a[CAP] = next;
    this.a[USED] = 0;
    for (let i = 0; i < old.length; i += W) {
      if ((old[i]! | old[i + 1]!) === 0) continue;
      const e = this.slot((old[i]! >>> 0) + (old[i + 1]! >>> 0) * 4294967296, true);
      this.a[e + 2] = old[i + 2]!;
      this.a[e + 3] = old[i + 3]!;
    }
    return next;
  }
}

function hash(lo: number, hi: number): number {
  return (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) ^ (lo >>> 15)) >>> 0;
}
