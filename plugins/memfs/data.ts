/**
 * File data: each regular file's bytes live in chunks keyed by index (offset / CHUNK), in a
 * table per file in the shared heap (`node.chunks`: a NumberMap from chunk index to a block of
 * page memory, 0 while the file has none). A missing chunk is a hole and costs nothing; a file
 * of one byte at 9 GiB holds one small chunk.
 *
 * A chunk covers [index*CHUNK, index*CHUNK + length), where length is a multiple of PAGE up to
 * CHUNK: it grows (exactly, page by page) as writes reach further into it. Small files therefore
 * cost whole pages like tmpfs, not whole chunks, and st_blocks and statfs match tmpfs except for
 * holes inside a chunk (the pages before a write in a fresh chunk are allocated too) and punched
 * pages in the middle of a chunk (zeroed, not freed). A table value is the block's handle (see
 * pool.ts) × 32 + its page count (1..16); the bits above 2^37 × handle are free for a per-page
 * map later.
 *
 * Invariants: bytes at or past `node.size` are zero; `node.blocks * 512` is the sum of the
 * node's chunk lengths (plus a page for long symlinks, see ops.ts); `state.usedBytes` is the
 * sum over all nodes. Every allocation is checked against `state.maxBytes` before anything is
 * changed, so ENOSPC never damages data already written.
 */
import { Buffer } from "node:buffer";
import type { NumberMap } from "furing";
import type { Node } from "./nodes.ts";
import type { MemfsState } from "./state.ts";
import { ENOSPC } from "./errors.ts";
import { CHUNK, PAGE } from "./layout.ts";

export { CHUNK, PAGE } from "./layout.ts";
/** Largest file size/offset memfs accepts (offsets are JS numbers). */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

type CopyFn = (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;

/**
 * `copy(src, srcStart, srcEnd, dst, dstStart)` without allocating: Buffer#copy accepts any
 * Uint8Array as `this` (where it does not, fall back to subarray + set, which makes a view).
 */
const bufferCopy = Buffer.prototype.copy as unknown as CopyFn;
const copy: (src: Uint8Array, srcStart: number, srcEnd: number, dst: Uint8Array, dstStart: number) => void = (() => {
  try {
    const a = new Uint8Array([1, 2, 3, 4]);
    const b = new Uint8Array(4);
    if (bufferCopy.call(a, b, 1, 1, 3) === 2 && b[1] === 2 && b[2] === 3 && b[3] === 0) {
      return (src: Uint8Array, srcStart: number, srcEnd: number, dst: Uint8Array, dstStart: number) => {
        bufferCopy.call(src, dst, dstStart, srcStart, srcEnd);
      };
    }
  } catch {}
  return (src: Uint8Array, srcStart: number, srcEnd: number, dst: Uint8Array, dstStart: number) => {
    dst.set(src.subarray(srcStart, srcEnd), dstStart);
  };
})();

/** Round a chunk-relative length (0..CHUNK) up to whole pages. */
function roundPage(n: number): number {
  return (n + (PAGE - 1)) & ~(PAGE - 1);
}

/** A table value's block handle and length in bytes. */
function handleOf(v: number): number {
  return Math.floor(v / 32);
}
function lengthOf(v: number): number {
  return (v % 32) * PAGE;
}

/** The node's chunk table (the state's NumberMap pointed at it); the node must have one. */
function table(state: MemfsState, node: Node): NumberMap {
  return state.numbers.at(node.chunks);
}

/** Chunk `idx`'s table value, or -1. */
function chunkAt(state: MemfsState, node: Node, idx: number): number {
  if (node.chunks === 0) return -1;
  const v = state.numbers.at(node.chunks).get(idx);
  return v === undefined ? -1 : v;
}

function account(state: MemfsState, node: Node, delta: number): void {
  state.usedBytes += delta;
  node.blocks += delta / 512;
}

/** Bytes still allocatable under the size limit. */
export function freeBytes(state: MemfsState): number {
  return state.maxBytes - state.usedBytes;
}

/** Charge one page outside the chunk store (long symlink targets). ENOSPC if full. */
export function chargePage(state: MemfsState, node: Node): void {
  if (freeBytes(state) < PAGE) throw ENOSPC;
  account(state, node, PAGE);
}

/**
 * Chunk `idx`, grown to at least `len` bytes (a page multiple): its table value. Accounts
 * growth. A grown chunk moves to a bigger block (the old one goes back to the pool).
 */
function ensureChunk(state: MemfsState, node: Node, idx: number, len: number): number {
  if (node.chunks === 0) node.chunks = state.numbers.create();
  const old = chunkAt(state, node, idx);
  const have = old < 0 ? 0 : lengthOf(old);
  if (have >= len) return old;
  const pool = state.pool;
  const c = pool.takePages(len / PAGE);
  if (old >= 0) {
    const oh = handleOf(old);
    const src = pool.offset(oh);
    copy(pool.view(oh), src, src + have, pool.view(c), pool.offset(c));
    pool.givePages(oh, have / PAGE);
  }
  const v = c * 32 + len / PAGE;
  table(state, node).set(idx, v);
  account(state, node, len - have);
  return v;
}

/**
 * Read up to `size` bytes at `offset` into `dest` (holes and the gap past a chunk's end read as
 * zeros). Returns the count, short at end of file. Allocates nothing.
 */
export function readData(node: Node, offset: number, size: number, dest: Uint8Array): number {
  const state = node.s;
  const fileSize = node.size;
  if (offset >= fileSize || size <= 0) return 0;
  const end = offset + size < fileSize ? offset + size : fileSize;
  const n = end - offset;
  if (node.chunks === 0) {
    dest.fill(0, 0, n);
    return n;
  }
  const pool = state.pool;
  let pos = offset;
  let out = 0;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const inOff = pos - idx * CHUNK;
    let span = CHUNK - inOff;
    if (span > end - pos) span = end - pos;
    const v = chunkAt(state, node, idx);
    let got = 0;
    if (v >= 0 && lengthOf(v) > inOff) {
      got = lengthOf(v) - inOff;
      if (got > span) got = span;
      const h = handleOf(v);
      const at = pool.offset(h) + inOff;
      copy(pool.view(h), at, at + got, dest, out);
    }
    if (got < span) dest.fill(0, out + got, out + span);
    pos += span;
    out += span;
  }
  return n;
}

/**
 * How far [offset, end) can be written within the size limit: `end`, or a page boundary short
 * of it, or `offset` when not even one page fits. Changes nothing.
 */
function fitEnd(state: MemfsState, node: Node, offset: number, end: number): number {
  let free = freeBytes(state);
  let pos = offset;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const spanEnd = end < base + CHUNK ? end : base + CHUNK;
    const need = roundPage(spanEnd - base);
    const v = chunkAt(state, node, idx);
    const have = v < 0 ? 0 : lengthOf(v);
    if (need > have) {
      if (need - have > free) {
        const cut = base + have + Math.floor(free / PAGE) * PAGE;
        return cut > pos ? cut : pos;
      }
      free -= need - have;
    }
    pos = spanEnd;
  }
  return end;
}

/**
 * Write `len` bytes of `src` from `srcStart` at `offset`, extending the file if needed. When the
 * size limit is reached part way, writes what fits (whole pages) and returns the shorter count,
 * like tmpfs; returns 0 when nothing fits (the caller answers ENOSPC). The caller checks
 * offset + len against MAX_FILE_SIZE. `src` must not be the file's own memory.
 */
export function writeData(state: MemfsState, node: Node, offset: number, src: Uint8Array, srcStart: number, len: number): number {
  if (len <= 0) return 0;
  const end = fitEnd(state, node, offset, offset + len);
  if (end <= offset) return 0;
  const pool = state.pool;
  let pos = offset;
  let s = srcStart;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const spanEnd = end < base + CHUNK ? end : base + CHUNK;
    const h = handleOf(ensureChunk(state, node, idx, roundPage(spanEnd - base)));
    const n = spanEnd - pos;
    copy(src, s, s + n, pool.view(h), pool.offset(h) + pos - base);
    pos = spanEnd;
    s += n;
  }
  if (end > node.size) node.size = end;
  return end - offset;
}

/** Drop all of a node's data (and its chunk table). */
export function freeData(state: MemfsState, node: Node): void {
  if (node.chunks === 0) return;
  const t = table(state, node);
  let freed = 0;
  for (let c = t.next(0); c >= 0; c = t.next(c)) {
    const v = t.valueAt(c);
    freed += lengthOf(v);
    state.pool.givePages(handleOf(v), lengthOf(v) / PAGE);
  }
  t.destroy();
  node.chunks = 0;
  account(state, node, -freed);
}

/** Drop the table when it holds no chunk. */
function dropEmptyTable(state: MemfsState, node: Node): void {
  const t = table(state, node);
  if (t.size === 0) {
    t.destroy();
    node.chunks = 0;
  }
}

/**
 * Cut chunk `idx` (value `v`) down to `keep` bytes (a page multiple, less than its length,
 * more than 0): it moves to a smaller block. Returns the bytes freed.
 */
function trimChunk(state: MemfsState, node: Node, idx: number, v: number, keep: number): number {
  const pool = state.pool;
  const oh = handleOf(v);
  const c = pool.takePages(keep / PAGE);
  const src = pool.offset(oh);
  copy(pool.view(oh), src, src + keep, pool.view(c), pool.offset(c));
  pool.givePages(oh, lengthOf(v) / PAGE);
  table(state, node).set(idx, c * 32 + keep / PAGE);
  return lengthOf(v) - keep;
}

/** Zero [a, b) of chunk value `v` (chunk-relative). */
function zeroIn(state: MemfsState, v: number, a: number, b: number): void {
  const h = handleOf(v);
  const off = state.pool.offset(h);
  state.pool.view(h).fill(0, off + a, off + b);
}

/** The chunk indexes in [first, last] of the node's table, ascending (a new array). */
function chunkIndexes(state: MemfsState, node: Node, first: number, last: number): number[] {
  const out: number[] = [];
  if (node.chunks === 0) return out;
  const t = table(state, node);
  if (last - first <= t.size * 4) {
    for (let i = first; i <= last; i++) if (t.has(i)) out.push(i);
  } else {
    for (let c = t.next(0); c >= 0; c = t.next(c)) {
      const i = t.keyAt(c);
      if (i >= first && i <= last) out.push(i);
    }
    out.sort((a, b) => a - b);
  }
  return out;
}

/**
 * Set the file size (truncate or extend). Extending allocates nothing (the new range is a
 * hole); shrinking (or keeping the size) frees the chunks past the end, trims the last chunk to
 * whole pages and zeroes its tail, so a later extension reads zeros.
 */
export function setSize(state: MemfsState, node: Node, size: number): void {
  const old = node.size;
  node.size = size;
  // like shmem_setattr: a truncate to the current size still frees what KEEP_SIZE allocated past it
  if (size > old) return;
  if (node.chunks === 0) return;
  if (size === 0) {
    freeData(state, node);
    return;
  }
  const last = Math.floor((size - 1) / CHUNK);
  let freed = 0;
  const t = table(state, node);
  const gone: number[] = [];
  for (let c = t.next(0); c >= 0; c = t.next(c)) if (t.keyAt(c) > last) gone.push(t.keyAt(c));
  for (const idx of gone) {
    const v = t.get(idx) as number;
    freed += lengthOf(v);
    t.delete(idx);
    state.pool.givePages(handleOf(v), lengthOf(v) / PAGE);
  }
  const v = chunkAt(state, node, last);
  if (v >= 0) {
    const base = last * CHUNK;
    const keep = roundPage(size - base);
    let kept = v;
    if (lengthOf(v) > keep) {
      freed += trimChunk(state, node, last, v, keep);
      kept = chunkAt(state, node, last);
    }
    if (size - base < lengthOf(kept)) zeroIn(state, kept, size - base, lengthOf(kept));
  }
  if (freed !== 0) account(state, node, -freed);
  dropEmptyTable(state, node);
}

/**
 * fallocate without PUNCH_HOLE: make sure [offset, end) is backed by memory, all or nothing
 * (ENOSPC before any change). Pages are zero-filled and count as used. Does not change the size.
 */
export function allocate(state: MemfsState, node: Node, offset: number, end: number): void {
  if (end - offset > state.maxBytes) throw ENOSPC;
  const first = Math.floor(offset / CHUNK);
  const last = Math.floor((end - 1) / CHUNK);
  const free = freeBytes(state);
  let need = 0;
  for (let idx = first; idx <= last; idx++) {
    const base = idx * CHUNK;
    const want = roundPage((end < base + CHUNK ? end : base + CHUNK) - base);
    const v = chunkAt(state, node, idx);
    const have = v < 0 ? 0 : lengthOf(v);
    if (want > have) need += want - have;
    if (need > free) throw ENOSPC;
  }
  if (need === 0) return;
  for (let idx = first; idx <= last; idx++) {
    const base = idx * CHUNK;
    ensureChunk(state, node, idx, roundPage((end < base + CHUNK ? end : base + CHUNK) - base));
  }
}

/**
 * Punch a hole in [offset, end): the range reads as zeros afterwards; chunks it covers are
 * freed, chunks whose allocated tail it covers are trimmed to whole pages. Size is unchanged.
 */
export function punch(state: MemfsState, node: Node, offset: number, end: number): void {
  if (node.chunks === 0 || end <= offset) return;
  const idxs = chunkIndexes(state, node, Math.floor(offset / CHUNK), Math.floor((end - 1) / CHUNK));
  let freed = 0;
  for (let k = 0; k < idxs.length; k++) {
    const idx = idxs[k] as number;
    const v = chunkAt(state, node, idx);
    const base = idx * CHUNK;
    const len = lengthOf(v);
    const a = offset > base ? offset - base : 0;
    const b = end < base + len ? end - base : len;
    if (a >= b) continue;
    if (a === 0 && b === len) {
      table(state, node).delete(idx);
      freed += len;
      state.pool.givePages(handleOf(v), len / PAGE);
    } else if (b === len && roundPage(a) < len) {
      freed += trimChunk(state, node, idx, v, roundPage(a));
      const kept = chunkAt(state, node, idx);
      zeroIn(state, kept, a, lengthOf(kept));
    } else {
      zeroIn(state, v, a, b);
    }
  }
  if (freed !== 0) account(state, node, -freed);
  dropEmptyTable(state, node);
}

/**
 * SEEK_DATA: the first offset >= `offset` inside allocated data, or -1 (ENXIO) if there is none
 * before the end of the file. The caller handles offset >= size.
 */
export function seekData(node: Node, offset: number): number {
  const state = node.s;
  if (node.chunks === 0) return -1;
  const idx = Math.floor(offset / CHUNK);
  const v = chunkAt(state, node, idx);
  if (v >= 0 && offset - idx * CHUNK < lengthOf(v)) return offset;
  const last = Math.floor((node.size - 1) / CHUNK);
  const t = table(state, node);
  let best = -1;
  if (last - idx <= t.size * 4) {
    for (let i = idx + 1; i <= last; i++) {
      if (t.has(i)) {
        best = i;
        break;
      }
    }
  } else {
    for (let c = t.next(0); c >= 0; c = t.next(c)) {
      const i = t.keyAt(c);
      if (i > idx && i <= last && (best < 0 || i < best)) best = i;
    }
  }
  return best < 0 ? -1 : best * CHUNK;
}

/** SEEK_HOLE: the first offset >= `offset` in a hole, or the file size (the implicit hole at EOF). */
export function seekHole(node: Node, offset: number): number {
  const state = node.s;
  const size = node.size;
  if (node.chunks === 0) return offset;
  let pos = offset;
  while (pos < size) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const v = chunkAt(state, node, idx);
    if (v < 0 || pos - base >= lengthOf(v)) return pos;
    pos = base + lengthOf(v);
    if (lengthOf(v) < CHUNK) break;
  }
  return pos < size ? pos : size;
}

/** Holds a source chunk while it is copied into the same file (whose blocks may move); made on first use. */
let bounce: Uint8Array | null = null;

/**
 * copy_file_range: copy up to `len` bytes from `src` at `offIn` to `dst` at `offOut`, stopping at
 * the source's end. Holes stay holes. Returns the count (short when the size limit is reached;
 * 0 with len > 0 and data left means no space). Ranges in one file must not overlap.
 */
export function copyRange(state: MemfsState, src: Node, offIn: number, dst: Node, offOut: number, len: number): number {
  const srcSize = src.size;
  if (offIn >= srcSize) return 0;
  if (len > srcSize - offIn) len = srcSize - offIn;
  const pool = state.pool;
  let done = 0;
  while (done < len) {
    const pos = offIn + done;
    const idx = Math.floor(pos / CHUNK);
    const inOff = pos - idx * CHUNK;
    let span = CHUNK - inOff;
    if (span > len - done) span = len - done;
    const v = chunkAt(state, src, idx);
    let have = v < 0 ? 0 : lengthOf(v) - inOff;
    if (have < 0) have = 0;
    if (have > span) have = span;
    if (have > 0) {
      const h = handleOf(v);
      const at = pool.offset(h) + inOff;
      let w: number;
      if (src === dst) {
        // writing may move this very chunk to another block and hand the old one back
        bounce ??= new Uint8Array(CHUNK);
        copy(pool.view(h), at, at + have, bounce, 0);
        w = writeData(state, dst, offOut + done, bounce, 0, have);
      } else w = writeData(state, dst, offOut + done, pool.view(h), at, have);
      done += w;
      if (w < have) break;
    }
    const zeros = span - have;
    if (zeros > 0) {
      const a = offOut + done;
      punch(state, dst, a, a + zeros);
      if (a + zeros > dst.size) dst.size = a + zeros;
      done += zeros;
    }
  }
  return done;
}
