/**
 * Shared-memory helpers for plugins served from every queue (`concurrency: "shared"`): state
 * that every reactor Worker sees lives in `ctx.shared` regions (SharedArrayBuffers), and these
 * are the pieces to build it from. Plain JS over SharedArrayBuffer and Atomics: nothing here
 * knows about the runtime, and everything works the same with one thread.
 *
 * - {@link Mutex}: a futex-style lock in one 32-bit word (spins briefly, then sleeps).
 * - {@link AtomicCounter}: a 32-bit counter in one word.
 * - {@link SharedHeap}: a memory allocator over a (growable) region: size classes with free
 *   lists; "pointers" are byte offsets into the region, 0 is null.
 * - {@link NumberMap} and {@link StringMap}: hash tables that live in a SharedHeap, keyed by
 *   numbers or by strings (stored as UTF-16 code units, so every JS string round-trips exactly,
 *   lone surrogates included), with number values.
 *
 * Only the Mutex, the counter and the heap's own allocation are safe to call concurrently. The
 * maps, and whatever a plugin keeps in the heap, must be used under a Mutex the plugin holds.
 * Never hold a Mutex across an `await`: another op on the same thread would wait on it forever.
 */

// ---------------------------------------------------------------------------------------------
// Mutex

/** Spins before sleeping: most critical sections are shorter than a futex sleep and wake-up. */
const SPIN = 64;

/**
 * A mutual-exclusion lock in one Int32 word of shared memory (0 free, 1 held, 2 held with
 * sleepers), after Drepper's "Futexes are tricky". Not reentrant; works on the main thread too.
 * A word is free when zero, so a zero-filled region starts with every lock free.
 */
export class Mutex {
  constructor(
    /** A view of a SharedArrayBuffer. */
    readonly words: Int32Array,
    /** Index of the lock word in `words`. */
    readonly index: number,
  ) {
    if (!(words.buffer instanceof SharedArrayBuffer)) throw new TypeError("Mutex: the words must be a view of a SharedArrayBuffer");
    if (!Number.isInteger(index) || index < 0 || index >= words.length) throw new RangeError(`Mutex: index ${index} is outside the view (${words.length} words)`);
  }

  /** Take the lock if it is free; never waits. */
  tryLock(): boolean {
    return Atomics.compareExchange(this.words, this.index, 0, 1) === 0;
  }

  /** Take the lock, sleeping (Atomics.wait) while another thread holds it. */
  lock(): void {
    const w = this.words;
    const i = this.index;
    let c = Atomics.compareExchange(w, i, 0, 1);
    if (c === 0) return;
    for (let s = 0; s < SPIN; s++) {
      if (Atomics.load(w, i) === 0) {
        c = Atomics.compareExchange(w, i, 0, 1);
        if (c === 0) return;
      }
    }
    // Mark "held with sleepers" and sleep until the word changes; whoever wakes takes it as 2
    // (it cannot know whether others still sleep).
    if (c !== 2) c = Atomics.exchange(w, i, 2);
    while (c !== 0) {
      Atomics.wait(w, i, 2);
      c = Atomics.exchange(w, i, 2);
    }
  }

  /** Release the lock (held by this thread), waking one sleeper if any. */
  unlock(): void {
    const w = this.words;
    const i = this.index;
    const prev = Atomics.sub(w, i, 1);
    if (prev === 1) return;
    if (prev !== 2) {
      Atomics.add(w, i, 1);
      throw new Error("Mutex.unlock: the lock is not held");
    }
    Atomics.store(w, i, 0);
    Atomics.notify(w, i, 1);
  }

  /** Is the lock held by anyone (a snapshot, for assertions)? */
  get held(): boolean {
    return Atomics.load(this.words, this.index) !== 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Counter

/** A 32-bit unsigned counter in one word of shared memory; wraps at 2^32. */
export class AtomicCounter {
  private readonly w: Uint32Array;
  constructor(words: Int32Array | Uint32Array, readonly index: number) {
    if (!(words.buffer instanceof SharedArrayBuffer)) throw new TypeError("AtomicCounter: the words must be a view of a SharedArrayBuffer");
    this.w = new Uint32Array(words.buffer, words.byteOffset, words.length);
  }
  /** Add `n` (default 1); returns the value before. */
  add(n = 1): number {
    return Atomics.add(this.w, this.index, n);
  }
  /** Subtract `n` (default 1); returns the value before. */
  sub(n = 1): number {
    return Atomics.sub(this.w, this.index, n);
  }
  get value(): number {
    return Atomics.load(this.w, this.index);
  }
  set value(v: number) {
    Atomics.store(this.w, this.index, v);
  }
  /** Set to `next` if it is `expected`; returns the value found. */
  compareExchange(expected: number, next: number): number {
    return Atomics.compareExchange(this.w, this.index, expected, next);
  }
}

// ---------------------------------------------------------------------------------------------
// Heap

const HEAP_MAGIC = 0x50454846; // "FHEP"
/** Header words: lock, magic, top, allocated bytes, free-list heads. */
const H_LOCK = 0, H_MAGIC = 1, H_TOP = 2, H_USED = 3, H_LISTS = 4;
/** Block sizes (header included): 16, 24, 32, 48, 64, 96, ... up to 4 GiB. */
const CLASS_SIZES: number[] = [];
for (let k = 4; k < 32; k++) CLASS_SIZES.push(2 ** k, 3 * 2 ** (k - 1));
CLASS_SIZES.push(2 ** 32);
const HEADER_BYTES = Math.ceil(((H_LISTS + CLASS_SIZES.length) * 4) / 16) * 16;
/** Bytes before each block's payload: its class and the size asked for. */
const BLOCK_HEAD = 8;
const ALLOCATED = 0x80000000;

/** Size class index for a block of `bytes` (header included). */
function classOf(bytes: number): number {
  if (bytes <= 16) return 0;
  // 2^k at index 2(k-4), 1.5*2^k at 2(k-4)+1
  const k = 31 - Math.clz32(bytes - 1); // 2^k < bytes <= 2^(k+1)
  return bytes <= 3 * 2 ** (k - 1) ? 2 * (k - 4) + 1 : 2 * (k + 1 - 4);
}

/**
 * A memory allocator over one SharedArrayBuffer region, the same on every thread that attaches
 * it. `alloc` returns a byte offset into the region (8-aligned, never 0), valid on every thread
 * until `free`. Blocks come in size classes (powers of two and 1.5× them, a block header of 8
 * bytes included); freed blocks go to their class's free list for reuse and are never merged.
 * A growable region is grown (doubling, up to its maxByteLength) when the top is reached.
 *
 * The views (`u8`, `u16`, `i32`, `u32`, `f64`) track a growable region's length, so an offset
 * allocated by another thread is always addressable. Allocation takes the heap's own lock; the
 * contents of blocks are the caller's to lock.
 */
export class SharedHeap {
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  private readonly lockWord: Mutex;

  /** Lay out an empty heap in a zero-filled region (once, by the thread that created it). */
  static format(region: SharedArrayBuffer): SharedHeap {
    if (region.byteLength < HEADER_BYTES) {
      if (!region.growable || region.maxByteLength < HEADER_BYTES * 2) throw new RangeError(`SharedHeap: the region is too small (${region.byteLength} bytes; the header needs ${HEADER_BYTES})`);
      region.grow(Math.min(region.maxByteLength, 65536));
    }
    const w = new Int32Array(region, 0, H_LISTS);
    if (Atomics.load(w, H_MAGIC) !== 0) throw new Error("SharedHeap.format: the region already holds data");
    Atomics.store(w, H_TOP, HEADER_BYTES);
    Atomics.store(w, H_MAGIC, HEAP_MAGIC);
    return new SharedHeap(region);
  }

  /**
   * Format `region` if it is blank, else attach it: for a plugin's `setup`, where the main thread
   * (which runs first, alone) creates the region and every later run finds it formatted.
   */
  static open(region: SharedArrayBuffer): SharedHeap {
    const blank = region.byteLength < 8 || Atomics.load(new Int32Array(region, 0, 2), H_MAGIC) === 0;
    return blank ? SharedHeap.format(region) : new SharedHeap(region);
  }

  /** Attach a region formatted by {@link SharedHeap.format} (on any thread). */
  constructor(readonly region: SharedArrayBuffer) {
    if (region.byteLength < HEADER_BYTES || new Int32Array(region, 0, 2)[H_MAGIC] !== HEAP_MAGIC) {
      throw new Error("SharedHeap: the region is not a formatted heap (call SharedHeap.format once where it is created)");
    }
    this.u8 = new Uint8Array(region);
    this.u16 = new Uint16Array(region);
    this.i32 = new Int32Array(region);
    this.u32 = new Uint32Array(region);
    this.f64 = new Float64Array(region);
    this.lockWord = new Mutex(this.i32, H_LOCK);
  }

  /** A block of at least `bytes` bytes (contents undefined: zero them if needed); its offset. */
  alloc(bytes: number): number {
    if (!(bytes >= 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`SharedHeap.alloc: bad size ${bytes}`);
    const cls = classOf(bytes + BLOCK_HEAD);
    if (cls >= CLASS_SIZES.length) throw new RangeError(`SharedHeap.alloc: ${bytes} bytes is more than a region holds`);
    const size = CLASS_SIZES[cls] as number;
    const u32 = this.u32;
    this.lockWord.lock();
    try {
      let block = u32[H_LISTS + cls] as number;
      if (block !== 0) {
        u32[H_LISTS + cls] = u32[(block + BLOCK_HEAD) >>> 2] as number;
      } else {
        block = u32[H_TOP] as number;
        const end = block + size;
        if (end > this.region.byteLength) this.growTo(end, bytes);
        u32[H_TOP] = end;
      }
      u32[block >>> 2] = cls | ALLOCATED;
      u32[(block >>> 2) + 1] = bytes;
      u32[H_USED] = (u32[H_USED] as number) + size;
      return block + BLOCK_HEAD;
    } finally {
      this.lockWord.unlock();
    }
  }

  /** An allocated block whose bytes are all zero. */
  calloc(bytes: number): number {
    const p = this.alloc(bytes);
    this.u8.fill(0, p, p + bytes);
    return p;
  }

  /** Give back a block from {@link alloc}. Freeing 0 does nothing. */
  free(ptr: number): void {
    if (ptr === 0) return;
    const block = ptr - BLOCK_HEAD;
    const u32 = this.u32;
    this.lockWord.lock();
    try {
      const head = u32[block >>> 2] as number;
      if (ptr % 8 !== 0 || block < HEADER_BYTES || block >= (u32[H_TOP] as number) || (head & ALLOCATED) === 0) {
        throw new Error(`SharedHeap.free: ${ptr} is not an allocated block`);
      }
      const cls = head & ~ALLOCATED;
      u32[block >>> 2] = cls;
      u32[ptr >>> 2] = u32[H_LISTS + cls] as number;
      u32[H_LISTS + cls] = block;
      u32[H_USED] = (u32[H_USED] as number) - (CLASS_SIZES[cls] as number);
    } finally {
      this.lockWord.unlock();
    }
  }

  /** The size asked for when `ptr` was allocated. */
  sizeOf(ptr: number): number {
    return this.u32[(ptr >>> 2) - 1] as number;
  }

  /** Bytes the block at `ptr` can hold (its class size less the header). */
  capacityOf(ptr: number): number {
    return (CLASS_SIZES[(this.u32[(ptr >>> 2) - 2] as number) & ~ALLOCATED] as number) - BLOCK_HEAD;
  }

  /** Bytes in allocated blocks (headers and class rounding included). */
  get used(): number {
    return Atomics.load(this.u32, H_USED);
  }

  /** Bytes of the region handed out so far (allocated or on free lists, plus the header). */
  get top(): number {
    return Atomics.load(this.u32, H_TOP);
  }

  private growTo(end: number, asked: number): void {
    const r = this.region;
    if (!r.growable || end > r.maxByteLength) throw new RangeError(`SharedHeap: out of memory (${asked} bytes asked, region ${r.byteLength} of at most ${r.growable ? r.maxByteLength : r.byteLength} bytes)`);
    let next = r.byteLength * 2;
    if (next < end) next = end;
    next = Math.ceil(next / 65536) * 65536;
    if (next > r.maxByteLength) next = r.maxByteLength;
    r.grow(next);
  }
}

// ---------------------------------------------------------------------------------------------
// Hash tables

/** Table header (in the heap): capacity, count, slots pointer. Slots: see each map. */
const T_CAP = 0, T_COUNT = 1, T_SLOTS = 2;
const T_HEAD = 16;
const MIN_CAP = 8;

/**
 * Open addressing with linear probing and backward-shift deletion (no tombstones), grown ×2
 * past 3/4 full and shrunk /4 below 1/8. A table is a small header block in the heap whose
 * offset is the table's identity (store it in other shared structures); one map object can
 * serve many tables through {@link at}. Not locked: hold the plugin's Mutex.
 */
abstract class HeapTable {
  protected ptr = 0;
  constructor(readonly heap: SharedHeap) {}

  /** Create an empty table in the heap; returns its offset. */
  create(): number {
    const h = this.heap;
    const p = h.alloc(T_HEAD);
    const slots = h.calloc(MIN_CAP * this.slotBytes());
    h.u32[(p >>> 2) + T_CAP] = MIN_CAP;
    h.u32[(p >>> 2) + T_COUNT] = 0;
    h.u32[(p >>> 2) + T_SLOTS] = slots;
    return p;
  }

  /** Work on the table at `ptr` (from {@link create}); returns this. */
  at(ptr: number): this {
    this.ptr = ptr;
    return this;
  }

  /** Entries in the current table. */
  get size(): number {
    return this.heap.u32[(this.ptr >>> 2) + T_COUNT] as number;
  }

  /** Free the current table and whatever its keys hold. */
  destroy(): void {
    const h = this.heap;
    const p = this.ptr >>> 2;
    const cap = h.u32[p + T_CAP] as number;
    const slots = h.u32[p + T_SLOTS] as number;
    for (let i = 0; i < cap; i++) if (this.used(slots, i)) this.dropKey(slots, i);
    h.free(slots);
    h.free(this.ptr);
    this.ptr = 0;
  }

  /**
   * Iterate: start with cursor 0; each call returns the next cursor (pass it back) or -1 at the
   * end; read the entry with {@link valueAt} (and the key accessors of the subclass). Do not
   * change the table while iterating.
   */
  next(cursor: number): number {
    const h = this.heap;
    const p = this.ptr >>> 2;
    const cap = h.u32[p + T_CAP] as number;
    const slots = h.u32[p + T_SLOTS] as number;
    for (let i = cursor; i < cap; i++) if (this.used(slots, i)) return i + 1;
    return -1;
  }

  /** Value of the entry a cursor from {@link next} stands after. */
  valueAt(cursor: number): number {
    return this.heap.f64[(this.slotAddr(this.slots(), cursor - 1) >>> 3) + 1] as number;
  }

  protected slots(): number {
    return this.heap.u32[(this.ptr >>> 2) + T_SLOTS] as number;
  }
  protected cap(): number {
    return this.heap.u32[(this.ptr >>> 2) + T_CAP] as number;
  }
  protected slotAddr(slots: number, i: number): number {
    return slots + i * this.slotBytes();
  }

  protected abstract slotBytes(): number;
  /** Does slot `i` hold an entry? */
  protected abstract used(slots: number, i: number): boolean;
  protected abstract hashAt(slots: number, i: number): number;
  protected abstract dropKey(slots: number, i: number): void;

  /** Remove the entry at slot `i`, shifting later probes back. */
  protected removeAt(i: number): void {
    const h = this.heap;
    const sb = this.slotBytes();
    const slots = this.slots();
    const cap = this.cap();
    const mask = cap - 1;
    this.dropKey(slots, i);
    let hole = i;
    let j = (i + 1) & mask;
    while (this.used(slots, j)) {
      const home = this.hashAt(slots, j) & mask;
      // move j into the hole when its home is not in (hole, j] cyclically
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        h.u8.copyWithin(slots + hole * sb, slots + j * sb, slots + (j + 1) * sb);
        hole = j;
      }
      j = (j + 1) & mask;
    }
    h.u8.fill(0, slots + hole * sb, slots + (hole + 1) * sb);
    const p = this.ptr >>> 2;
    const count = (h.u32[p + T_COUNT] as number) - 1;
    h.u32[p + T_COUNT] = count;
    if (cap > MIN_CAP && count < cap >>> 3) this.resize(cap >>> 2 < MIN_CAP ? MIN_CAP : cap >>> 2);
  }

  /** Count one more entry; grows first when needed. Returns whether the table was rehashed. */
  protected reserve(): boolean {
    const h = this.heap;
    const p = this.ptr >>> 2;
    const cap = h.u32[p + T_CAP] as number;
    const count = h.u32[p + T_COUNT] as number;
    if ((count + 1) * 4 > cap * 3) {
      this.resize(cap * 2);
      return true;
    }
    return false;
  }

  private resize(newCap: number): void {
    const h = this.heap;
    const sb = this.slotBytes();
    const p = this.ptr >>> 2;
    const oldCap = h.u32[p + T_CAP] as number;
    const old = h.u32[p + T_SLOTS] as number;
    const slots = h.calloc(newCap * sb);
    const mask = newCap - 1;
    for (let i = 0; i < oldCap; i++) {
      if (!this.used(old, i)) continue;
      let j = this.hashAt(old, i) & mask;
      while (this.used(slots, j)) j = (j + 1) & mask;
      h.u8.copyWithin(slots + j * sb, old + i * sb, old + (i + 1) * sb);
    }
    h.u32[p + T_CAP] = newCap;
    h.u32[p + T_SLOTS] = slots;
    h.free(old);
  }
}

/** Hash of a number key (any finite double; -0 and 0 are the same key). */
function hashNumber(k: number): number {
  // integers (node ids, offsets) are the common case: mix their low and high halves
  const lo = k >>> 0;
  const hi = (k / 4294967296) >>> 0;
  let x = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return ((x ^ (x >>> 16)) | 1) >>> 0; // never 0: 0 marks a free slot
}

/** Slot: hash (u32), pad, key (f64), value (f64). */
const N_SLOT = 24;

/**
 * A hash table in a {@link SharedHeap} from numbers (integers or doubles, not NaN) to numbers.
 * `get` answers `undefined` for a missing key.
 */
export class NumberMap extends HeapTable {
  protected slotBytes(): number {
    return N_SLOT;
  }
  protected used(slots: number, i: number): boolean {
    return this.heap.u32[(slots + i * N_SLOT) >>> 2] !== 0;
  }
  protected hashAt(slots: number, i: number): number {
    return this.heap.u32[(slots + i * N_SLOT) >>> 2] as number;
  }
  protected dropKey(): void {}

  private find(key: number): number {
    const h = this.heap;
    const slots = this.slots();
    const mask = this.cap() - 1;
    const hash = hashNumber(key);
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const a = slots + i * N_SLOT;
      const sh = h.u32[a >>> 2] as number;
      if (sh === 0) return -1 - i;
      if (sh === hash && h.f64[(a >>> 3) + 1] === key) return i;
    }
  }

  get(key: number): number | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.heap.f64[((this.slots() + i * N_SLOT) >>> 3) + 2];
  }

  has(key: number): boolean {
    return this.find(key) >= 0;
  }

  set(key: number, value: number): void {
    if (key !== key) throw new RangeError("NumberMap: NaN is not a key");
    let i = this.find(key);
    if (i < 0) {
      if (this.reserve()) i = this.find(key);
      const h = this.heap;
      const a = this.slots() + (-1 - i) * N_SLOT;
      h.u32[a >>> 2] = hashNumber(key);
      h.f64[(a >>> 3) + 1] = key === 0 ? 0 : key;
      h.f64[(a >>> 3) + 2] = value;
      h.u32[(this.ptr >>> 2) + T_COUNT] = (h.u32[(this.ptr >>> 2) + T_COUNT] as number) + 1;
      return;
    }
    this.heap.f64[((this.slots() + i * N_SLOT) >>> 3) + 2] = value;
  }

  /** Remove `key`; returns whether it was there. */
  delete(key: number): boolean {
    const i = this.find(key);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Key of the entry a cursor from {@link next} stands after. */
  keyAt(cursor: number): number {
    return this.heap.f64[((this.slots() + (cursor - 1) * N_SLOT) >>> 3) + 1] as number;
  }

  override valueAt(cursor: number): number {
    return this.heap.f64[((this.slots() + (cursor - 1) * N_SLOT) >>> 3) + 2] as number;
  }
}

/** FNV-1a over UTF-16 code units, never 0. */
export function hashString(s: string): number {
  let x = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 0x01000193);
  return (x | 1) >>> 0;
}

/** Slot: hash (u32), key length in code units (u32), value (f64), key block (u32), pad. */
const S_SLOT = 24;

/**
 * A hash table in a {@link SharedHeap} from strings to numbers. Keys are stored as UTF-16 code
 * units in heap blocks of their own, so any JS string (lone surrogates, NULs) round-trips
 * exactly; {@link keyAt} rebuilds one (that allocates a string).
 */
export class StringMap extends HeapTable {
  protected slotBytes(): number {
    return S_SLOT;
  }
  protected used(slots: number, i: number): boolean {
    return this.heap.u32[(slots + i * S_SLOT) >>> 2] !== 0;
  }
  protected hashAt(slots: number, i: number): number {
    return this.heap.u32[(slots + i * S_SLOT) >>> 2] as number;
  }
  protected dropKey(slots: number, i: number): void {
    this.heap.free(this.heap.u32[((slots + i * S_SLOT) >>> 2) + 4] as number);
  }

  private find(key: string, hash: number): number {
    const h = this.heap;
    const slots = this.slots();
    const mask = this.cap() - 1;
    const len = key.length;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const w = (slots + i * S_SLOT) >>> 2;
      const sh = h.u32[w] as number;
      if (sh === 0) return -1 - i;
      if (sh === hash && h.u32[w + 1] === len && equalUnits(h.u16, h.u32[w + 4] as number, key)) return i;
    }
  }

  get(key: string): number | undefined {
    const i = this.find(key, hashString(key));
    return i < 0 ? undefined : this.heap.f64[((this.slots() + i * S_SLOT) >>> 3) + 1];
  }

  has(key: string): boolean {
    return this.find(key, hashString(key)) >= 0;
  }

  set(key: string, value: number): void {
    const hash = hashString(key);
    let i = this.find(key, hash);
    const h = this.heap;
    if (i < 0) {
      const kp = h.alloc(key.length * 2);
      const u16 = h.u16;
      for (let k = 0, o = kp >>> 1; k < key.length; k++) u16[o + k] = key.charCodeAt(k);
      if (this.reserve()) i = this.find(key, hash);
      const a = this.slots() + (-1 - i) * S_SLOT;
      h.u32[a >>> 2] = hash;
      h.u32[(a >>> 2) + 1] = key.length;
      h.f64[(a >>> 3) + 1] = value;
      h.u32[(a >>> 2) + 4] = kp;
      h.u32[(this.ptr >>> 2) + T_COUNT] = (h.u32[(this.ptr >>> 2) + T_COUNT] as number) + 1;
      return;
    }
    h.f64[((this.slots() + i * S_SLOT) >>> 3) + 1] = value;
  }

  delete(key: string): boolean {
    const i = this.find(key, hashString(key));
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Key of the entry a cursor from {@link next} stands after (a new string). */
  keyAt(cursor: number): string {
    const h = this.heap;
    const w = (this.slots() + (cursor - 1) * S_SLOT) >>> 2;
    return readUnits(h.u16, h.u32[w + 4] as number, h.u32[w + 1] as number);
  }
}

/** Does the UTF-16 text at byte offset `ptr` equal `s` (whose length the caller checked)? */
export function equalUnits(u16: Uint16Array, ptr: number, s: string): boolean {
  const o = ptr >>> 1;
  for (let k = 0; k < s.length; k++) if (u16[o + k] !== s.charCodeAt(k)) return false;
  return true;
}

/** Store `s` as UTF-16 code units at byte offset `ptr` (2 × s.length bytes). */
export function writeUnits(u16: Uint16Array, ptr: number, s: string): void {
  const o = ptr >>> 1;
  for (let k = 0; k < s.length; k++) u16[o + k] = s.charCodeAt(k);
}

/** The string of `len` UTF-16 code units at byte offset `ptr` (one view and the string are allocated). */
export function readUnits(u16: Uint16Array, ptr: number, len: number): string {
  const o = ptr >>> 1;
  if (len <= 4096) return String.fromCharCode.apply(null, u16.subarray(o, o + len) as unknown as number[]);
  let s = "";
  for (let k = 0; k < len; k += 4096) s += String.fromCharCode.apply(null, u16.subarray(o + k, o + Math.min(len, k + 4096)) as unknown as number[]);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Ops under a lock

type AnyOp = (...args: unknown[]) => unknown;

/** One wrapper per op, made once: fixed arity (the widest op, copyFileRange, takes 9), so a call allocates nothing. */
function lockedOp(m: Mutex, op: AnyOp): AnyOp {
  return function (this: unknown, a, b, c, d, e, f, g, h, i) {
    m.lock();
    try {
      return op.call(this, a, b, c, d, e, f, g, h, i);
    } finally {
      m.unlock();
    }
  } as AnyOp;
}

/**
 * A copy of `ops` (a filesystem object) in which every function holds `m` while it runs: each
 * op is atomic to every other op on every thread. An async op holds it only until it returns its
 * promise (up to its first `await`): whatever it does after that must not touch shared state, or
 * take the lock again itself. Other properties are copied as they are.
 */
export function lockOps<F extends object>(m: Mutex, ops: F): F {
  const out = { ...ops } as Record<string, unknown>;
  for (const [k, v] of Object.entries(ops)) if (typeof v === "function") out[k] = lockedOp(m, v as AnyOp);
  return out as F;
}
