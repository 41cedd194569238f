/**
 * File data: each regular file's bytes live in chunks keyed by index (offset / CHUNK) in a Map
 * on the node (`node.chunks`, null while the file has none). A missing chunk is a hole and
 * costs nothing; a file of one byte at 9 GiB holds one small chunk.
 *
 * A chunk is a Uint8Array covering [index*CHUNK, index*CHUNK + length), where length is a
 * multiple of PAGE up to CHUNK: it grows (exactly, page by page) as writes reach further into
 * it. Small files therefore cost whole pages like tmpfs, not whole chunks, and st_blocks and
 * statfs match tmpfs except for holes inside a chunk (the pages before a write in a fresh chunk
 * are allocated too) and punched pages in the middle of a chunk (zeroed, not freed).
 *
 * Invariants: bytes at or past `node.size` are zero; `node.blocks * 512` is the sum of the
 * node's chunk lengths (plus a page for long symlinks, see ops.ts); `state.usedBytes` is the
 * sum over all nodes. Every allocation is checked against `state.maxBytes` before anything is
 * changed, so ENOSPC never damages data already written.
 */
import { Buffer } from "node:buffer";
import type { Node } from "./nodes.ts";
import type { MemfsState } from "./state.ts";
import { ENOSPC } from "./errors.ts";
import { ChunkPool } from "./pool.ts";

export const PAGE = 4096;
export const CHUNK = 65536;
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

/** The state's chunk pool (made on first use: a state handed over by older code has none). */
function poolOf(state: MemfsState): ChunkPool {
  return state.pool ?? (state.pool = new ChunkPool());
}

/** A chunk leaves its file: full chunks go back to the pool. */
export function releaseChunk(state: MemfsState, c: Uint8Array): void {
  if (c.length === CHUNK) poolOf(state).give(c);
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

/** Chunk `idx` of `chunks`, grown to at least `len` bytes (a page multiple). Accounts growth. */
function ensureChunk(state: MemfsState, node: Node, chunks: Map<number, Uint8Array>, idx: number, len: number): Uint8Array {
  const old = chunks.get(idx);
  if (old !== undefined && old.length >= len) return old;
  const c = len === CHUNK ? poolOf(state).take() : new Uint8Array(len);
  if (old !== undefined) c.set(old);
  chunks.set(idx, c);
  account(state, node, len - (old === undefined ? 0 : old.length));
  return c;
}

/**
 * Read up to `size` bytes at `offset` into `dest` (holes and the gap past a chunk's end read as
 * zeros). Returns the count, short at end of file. Allocates nothing.
 */
export function readData(node: Node, offset: number, size: number, dest: Uint8Array): number {
  const fileSize = node.size;
  if (offset >= fileSize || size <= 0) return 0;
  const end = offset + size < fileSize ? offset + size : fileSize;
  const n = end - offset;
  const chunks = node.chunks;
  if (chunks === null) {
    dest.fill(0, 0, n);
    return n;
  }
  let pos = offset;
  let out = 0;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const inOff = pos - idx * CHUNK;
    let span = CHUNK - inOff;
    if (span > end - pos) span = end - pos;
    const c = chunks.get(idx);
    let got = 0;
    if (c !== undefined && c.length > inOff) {
      got = c.length - inOff;
      if (got > span) got = span;
      copy(c, inOff, inOff + got, dest, out);
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
  const chunks = node.chunks;
  let pos = offset;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const spanEnd = end < base + CHUNK ? end : base + CHUNK;
    const need = roundPage(spanEnd - base);
    const c = chunks === null ? undefined : chunks.get(idx);
    const have = c === undefined ? 0 : c.length;
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
 * offset + len against MAX_FILE_SIZE.
 */
export function writeData(state: MemfsState, node: Node, offset: number, src: Uint8Array, srcStart: number, len: number): number {
  if (len <= 0) return 0;
  const end = fitEnd(state, node, offset, offset + len);
  if (end <= offset) return 0;
  let chunks = node.chunks;
  if (chunks === null) chunks = node.chunks = new Map();
  let pos = offset;
  let s = srcStart;
  while (pos < end) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const spanEnd = end < base + CHUNK ? end : base + CHUNK;
    const c = ensureChunk(state, node, chunks, idx, roundPage(spanEnd - base));
    const n = spanEnd - pos;
    copy(src, s, s + n, c, pos - base);
    pos = spanEnd;
    s += n;
  }
  if (end > node.size) node.size = end;
  return end - offset;
}

/** Drop all of a node's data. */
export function freeData(state: MemfsState, node: Node): void {
  const chunks = node.chunks;
  if (chunks === null) return;
  let freed = 0;
  for (const c of chunks.values()) {
    freed += c.length;
    releaseChunk(state, c);
  }
  node.chunks = null;
  account(state, node, -freed);
}

/**
 * Set the file size (truncate or extend). Extending allocates nothing (the new range is a
 * hole); shrinking (or keeping the size) frees the chunks past the end, trims the last chunk to whole pages and zeroes
 * its tail, so a later extension reads zeros.
 */
export function setSize(state: MemfsState, node: Node, size: number): void {
  const old = node.size;
  node.size = size;
  // like shmem_setattr: a truncate to the current size still frees what KEEP_SIZE allocated past it
  if (size > old) return;
  const chunks = node.chunks;
  if (chunks === null) return;
  if (size === 0) {
    freeData(state, node);
    return;
  }
  const last = Math.floor((size - 1) / CHUNK);
  let freed = 0;
  for (const idx of chunks.keys()) {
    if (idx > last) {
      const gone = chunks.get(idx) as Uint8Array;
      freed += gone.length;
      chunks.delete(idx);
      releaseChunk(state, gone);
    }
  }
  const c = chunks.get(last);
  if (c !== undefined) {
    const base = last * CHUNK;
    const keep = roundPage(size - base);
    let kept = c;
    if (c.length > keep) {
      kept = c.slice(0, keep);
      chunks.set(last, kept);
      freed += c.length - keep;
      releaseChunk(state, c);
    }
    if (size - base < kept.length) kept.fill(0, size - base);
  }
  if (freed !== 0) account(state, node, -freed);
  if (chunks.size === 0) node.chunks = null;
}

/** Chunk indexes of `chunks` in [first, last], cheaply: by range or by the map's keys. */
function chunkIndexes(chunks: Map<number, Uint8Array>, first: number, last: number): number[] {
  const out: number[] = [];
  if (last - first <= chunks.size * 4) {
    for (let i = first; i <= last; i++) if (chunks.has(i)) out.push(i);
  } else {
    for (const i of chunks.keys()) if (i >= first && i <= last) out.push(i);
    out.sort((a, b) => a - b);
  }
  return out;
}

/**
 * fallocate without PUNCH_HOLE: make sure [offset, end) is backed by memory, all or nothing
 * (ENOSPC before any change). Pages are zero-filled and count as used. Does not change the size.
 */
export function allocate(state: MemfsState, node: Node, offset: number, end: number): void {
  if (end - offset > state.maxBytes) throw ENOSPC;
  const first = Math.floor(offset / CHUNK);
  const last = Math.floor((end - 1) / CHUNK);
  const chunks = node.chunks;
  const free = freeBytes(state);
  let need = 0;
  for (let idx = first; idx <= last; idx++) {
    const base = idx * CHUNK;
    const want = roundPage((end < base + CHUNK ? end : base + CHUNK) - base);
    const c = chunks === null ? undefined : chunks.get(idx);
    const have = c === undefined ? 0 : c.length;
    if (want > have) need += want - have;
    if (need > free) throw ENOSPC;
  }
  if (need === 0) return;
  const map = chunks === null ? (node.chunks = new Map()) : chunks;
  for (let idx = first; idx <= last; idx++) {
    const base = idx * CHUNK;
    ensureChunk(state, node, map, idx, roundPage((end < base + CHUNK ? end : base + CHUNK) - base));
  }
}

/**
 * Punch a hole in [offset, end): the range reads as zeros afterwards; chunks it covers are
 * freed, chunks whose allocated tail it covers are trimmed to whole pages. Size is unchanged.
 */
export function punch(state: MemfsState, node: Node, offset: number, end: number): void {
  const chunks = node.chunks;
  if (chunks === null || end <= offset) return;
  const idxs = chunkIndexes(chunks, Math.floor(offset / CHUNK), Math.floor((end - 1) / CHUNK));
  let freed = 0;
  for (let k = 0; k < idxs.length; k++) {
    const idx = idxs[k] as number;
    const c = chunks.get(idx) as Uint8Array;
    const base = idx * CHUNK;
    const len = c.length;
    const a = offset > base ? offset - base : 0;
    const b = end < base + len ? end - base : len;
    if (a >= b) continue;
    if (a === 0 && b === len) {
      chunks.delete(idx);
      freed += len;
      releaseChunk(state, c);
    } else if (b === len && roundPage(a) < len) {
      const kept = c.slice(0, roundPage(a));
      kept.fill(0, a);
      chunks.set(idx, kept);
      freed += len - kept.length;
      releaseChunk(state, c);
    } else {
      c.fill(0, a, b);
    }
  }
  if (freed !== 0) account(state, node, -freed);
  if (chunks.size === 0) node.chunks = null;
}

/**
 * SEEK_DATA: the first offset >= `offset` inside allocated data, or -1 (ENXIO) if there is none
 * before the end of the file. The caller handles offset >= size.
 */
export function seekData(node: Node, offset: number): number {
  const chunks = node.chunks;
  if (chunks === null) return -1;
  const idx = Math.floor(offset / CHUNK);
  const c = chunks.get(idx);
  if (c !== undefined && offset - idx * CHUNK < c.length) return offset;
  const last = Math.floor((node.size - 1) / CHUNK);
  let best = -1;
  if (last - idx <= chunks.size * 4) {
    for (let i = idx + 1; i <= last; i++) {
      const x = chunks.get(i);
      if (x !== undefined && x.length > 0) {
        best = i;
        break;
      }
    }
  } else {
    for (const [i, x] of chunks) if (i > idx && i <= last && x.length > 0 && (best < 0 || i < best)) best = i;
  }
  return best < 0 ? -1 : best * CHUNK;
}

/** SEEK_HOLE: the first offset >= `offset` in a hole, or the file size (the implicit hole at EOF). */
export function seekHole(node: Node, offset: number): number {
  const size = node.size;
  const chunks = node.chunks;
  if (chunks === null) return offset;
  let pos = offset;
  while (pos < size) {
    const idx = Math.floor(pos / CHUNK);
    const base = idx * CHUNK;
    const c = chunks.get(idx);
    if (c === undefined || pos - base >= c.length) return pos;
    pos = base + c.length;
    if (c.length < CHUNK) break;
  }
  return pos < size ? pos : size;
}

/**
 * copy_file_range: copy up to `len` bytes from `src` at `offIn` to `dst` at `offOut`, stopping at
 * the source's end. Holes stay holes. Returns the count (short when the size limit is reached;
 * 0 with len > 0 and data left means no space). Ranges in one file must not overlap.
 */
export function copyRange(state: MemfsState, src: Node, offIn: number, dst: Node, offOut: number, len: number): number {
  const srcSize = src.size;
  if (offIn >= srcSize) return 0;
  if (len > srcSize - offIn) len = srcSize - offIn;
  let done = 0;
  while (done < len) {
    const pos = offIn + done;
    const idx = Math.floor(pos / CHUNK);
    const inOff = pos - idx * CHUNK;
    let span = CHUNK - inOff;
    if (span > len - done) span = len - done;
    const chunks = src.chunks;
    const c = chunks === null ? undefined : chunks.get(idx);
    let have = c === undefined ? 0 : c.length - inOff;
    if (have < 0) have = 0;
    if (have > span) have = span;
    if (have > 0) {
      const w = writeData(state, dst, offOut + done, c as Uint8Array, inOff, have);
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
