/**
 * File data: each regular file's bytes live in chunks keyed by index (offset / CHUNK), in a
 * table per file in the shared heap (`node.chunks`: a NumberMap from chunk index to a block of
 * page memory, 0 while the file has none). A missing chunk is a hole and costs nothing; a file
 * of one byte at 9 GiB holds one small chunk.
 *
 * A chunk's block holds the pages [0, length) of [index*CHUNK, index*CHUNK + CHUNK), where length
 * is a multiple of PAGE up to CHUNK: it grows as writes reach further into it. A per-page map
 * says which of its pages hold data, as tmpfs's page cache would: the pages a write, fallocate
 * or copy touched, less those a punch covered whole or a truncate cut. Only mapped pages count
 * (st_blocks, statfs, the size limit) and only they are data for SEEK_DATA/SEEK_HOLE, so all of
 * these are exact at PAGE, the block size memfs reports, like tmpfs. Unmapped pages below the
 * block's length are zeros the block still holds: a chunk may hold up to 15 pages more memory
 * than it is charged for (a write to its last page only, or a punch in its middle); a block is
 * trimmed to its last mapped page and freed with its last one. A table value is
 * map × 2^37 + the block's handle (see pool.ts) × 32 + its page count (1..16).
 *
 * Pages fallocate added are held (st_blocks, statfs) but are not data until written (or
 * fallocated again): tmpfs leaves them !uptodate, and SEEK_DATA/SEEK_HOLE skip them as holes. Their map is kept in the
 * same table under key UNWRITTEN + index (absent: none), so iterations skip keys from UNWRITTEN.
 *
 * Invariants: bytes at or past `node.size` and in unmapped pages are zero; every chunk in a
 * table maps at least one page, its last page among them; `node.blocks * 512` is the node's
 * mapped pages (plus a page for long symlinks, see ops/names.ts); `state.usedBytes` is the sum over
 * all nodes. Every allocation is checked against `state.maxBytes` before anything is changed,
 * so ENOSPC never damages data already written.
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

/** A table value's page map (bit k: page k holds data), block handle and length in bytes. */
const MAP_UNIT = 2 ** 37;
const FULL_MAP = (1 << (CHUNK / PAGE)) - 1;
function mapOf(v: number): number {
  return Math.floor(v / MAP_UNIT);
}
function handleOf(v: number): number {
  return Math.floor((v % MAP_UNIT) / 32);
}
function lengthOf(v: number): number {
  return (v % 32) * PAGE;
}
/** Table keys from here on are unwritten-page maps, not chunks (chunk indexes stay below 2^37). */
const UNWRITTEN = 2 ** 40;
function unwrittenOf(state: MemfsState, node: Node, idx: number): number {
  return state.numbers.at(node.chunks).get(UNWRITTEN + idx) ?? 0;
}
function setUnwritten(state: MemfsState, node: Node, idx: number, u: number): void {
  const t = table(state, node);
  if (u !== 0) t.set(UNWRITTEN + idx, u);
  else if (t.has(UNWRITTEN + idx)) t.delete(UNWRITTEN + idx);
}
/** The pages of chunk `idx` (value `v`) that hold data: mapped and written. */
function dataOf(state: MemfsState, node: Node, idx: number, v: number): number {
  const m = mapOf(v);
  return m === 0 ? 0 : m & ~unwrittenOf(state, node, idx);
}
function valueOf(map: number, handle: number, pages: number): number {
  return map * MAP_UNIT + handle * 32 + pages;
}
/** Pages in a map. */
function pagesIn(map: number): number {
  let n = 0;
  for (let m = map; m !== 0; m &= m - 1) n++;
  return n;
}
/** The map of the pages [a, b) of a chunk touches (chunk-relative bytes, a < b). */
function touched(a: number, b: number): number {
  const first = Math.floor(a / PAGE);
  const end = Math.ceil(b / PAGE);
  return ((1 << end) - 1) & ~((1 << first) - 1);
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
 * Chunk `idx` with its block grown to at least `len` bytes (a page multiple) and the pages of
 * `map` mapped: its table value. `written`: a write (the pages become data), else fallocate (new
 * pages stay unwritten). Accounts the newly mapped pages (the caller checked the space). A grown
 * chunk moves to a bigger block (the old one goes back to the pool).
 */
function ensureChunk(state: MemfsState, node: Node, idx: number, len: number, map: number, written: boolean): number {
  if (node.chunks === 0) node.chunks = state.numbers.create();
  const old = chunkAt(state, node, idx);
  const have = old < 0 ? 0 : lengthOf(old);
  const oldMap = old < 0 ? 0 : mapOf(old);
  const newMap = oldMap | map;
  const u = old < 0 ? 0 : unwrittenOf(state, node, idx);
  // fallocate finding a held, unwritten page clears it and marks it uptodate (shmem_get_folio's
  // SGP_FALLOC path); only the pages it adds stay unwritten
  const nu = written ? u & ~map : (u & ~map) | (map & ~oldMap);
  if (nu !== u) setUnwritten(state, node, idx, nu);
  if (have >= len && newMap === oldMap) return old;
  let h = old < 0 ? -1 : handleOf(old);
  if (have < len) {
    const pool = state.pool;
    const c = pool.takePages(len / PAGE);
    if (old >= 0) {
      const src = pool.offset(h);
      copy(pool.view(h), src, src + have, pool.view(c), pool.offset(c));
      pool.givePages(h, have / PAGE);
    }
    h = c;
  }
  const v = valueOf(newMap, h, (have > len ? have : len) / PAGE);
  table(state, node).set(idx, v);
  account(state, node, (pagesIn(newMap) - pagesIn(oldMap)) * PAGE);
  return v;
}

/** Pages of `map` chunk `idx` does not map yet (the bytes a write or fallocate would charge). */
function unmapped(state: MemfsState, node: Node, idx: number, map: number): number {
  const v = chunkAt(state, node, idx);
  return pagesIn(v < 0 ? map : map & ~mapOf(v));
}

/**
 * Chunk `idx` (value `v`) after pages were unmapped (their bytes zeroed) to `map`: freed if
 * nothing is left, else its block trimmed to its last mapped page. Accounts the unmapped pages.
 */
function unmapPages(state: MemfsState, node: Node, idx: number, v: number, map: number): void {
  account(state, node, (pagesIn(map) - pagesIn(mapOf(v))) * PAGE);
  const u = unwrittenOf(state, node, idx);
  if ((u & ~map) !== 0) setUnwritten(state, node, idx, u & map);
  if (map === 0) {
    table(state, node).delete(idx);
    state.pool.givePages(handleOf(v), lengthOf(v) / PAGE);
    return;
  }
  const keep = (32 - Math.clz32(map)) * PAGE;
  if (keep < lengthOf(v)) trimChunk(state, node, idx, v, keep);
  table(state, node).set(idx, valueOf(map, handleOf(chunkAt(state, node, idx)), Math.min(keep, lengthOf(v)) / PAGE));
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
    const v = chunkAt(state, node, idx);
    const map = v < 0 ? 0 : mapOf(v);
    // page by page, like a write on tmpfs: it stops at the first page it cannot allocate
    for (let p = Math.floor((pos - base) / PAGE); base + p * PAGE < spanEnd; p++) {
      if ((map & (1 << p)) !== 0) continue;
      if (free < PAGE) {
        const cut = base + p * PAGE;
        return cut > pos ? cut : pos;
      }
      free -= PAGE;
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
    const h = handleOf(ensureChunk(state, node, idx, roundPage(spanEnd - base), touched(pos - base, spanEnd - base), true));
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
    if (t.keyAt(c) >= UNWRITTEN) continue;
    const v = t.valueAt(c);
    freed += pagesIn(mapOf(v)) * PAGE;
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
 * more than 0): it moves to a smaller block, its map cut to match (the caller accounts).
 */
function trimChunk(state: MemfsState, node: Node, idx: number, v: number, keep: number): void {
  const pool = state.pool;
  const oh = handleOf(v);
  const c = pool.takePages(keep / PAGE);
  const src = pool.offset(oh);
  copy(pool.view(oh), src, src + keep, pool.view(c), pool.offset(c));
  pool.givePages(oh, lengthOf(v) / PAGE);
  table(state, node).set(idx, valueOf(mapOf(v) & ((1 << (keep / PAGE)) - 1), c, keep / PAGE));
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
      if (i >= first && i <= last && i < UNWRITTEN) out.push(i);
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
  for (let c = t.next(0); c >= 0; c = t.next(c)) {
    const k = t.keyAt(c);
    if (k > last && (k < UNWRITTEN || k - UNWRITTEN > last)) gone.push(k);
  }
  for (const idx of gone) {
    const v = t.get(idx) as number;
    if (idx >= UNWRITTEN) {
      t.delete(idx);
      continue;
    }
    freed += pagesIn(mapOf(v)) * PAGE;
    t.delete(idx);
    state.pool.givePages(handleOf(v), lengthOf(v) / PAGE);
  }
  if (freed !== 0) account(state, node, -freed);
  const v = chunkAt(state, node, last);
  if (v >= 0) {
    const base = last * CHUNK;
    const keepPages = roundPage(size - base) / PAGE;
    if (size - base < lengthOf(v)) zeroIn(state, v, size - base, lengthOf(v));
    const map = mapOf(v) & ((1 << keepPages) - 1);
    if (map !== mapOf(v)) unmapPages(state, node, last, v, map);
  }
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
    const a = offset > base ? offset - base : 0;
    need += unmapped(state, node, idx, touched(a, (end < base + CHUNK ? end : base + CHUNK) - base)) * PAGE;
    if (need > free) throw ENOSPC;
  }
  for (let idx = first; idx <= last; idx++) {
    const base = idx * CHUNK;
    const a = offset > base ? offset - base : 0;
    const b = (end < base + CHUNK ? end : base + CHUNK) - base;
    ensureChunk(state, node, idx, roundPage(b), touched(a, b), false);
  }
}

/**
 * Punch a hole in [offset, end): the range reads as zeros afterwards; the pages it covers whole
 * are unmapped (partial pages at its ends are zeroed and stay, as shmem_truncate_range does), and
 * chunks left without data are freed. Size is unchanged.
 */
export function punch(state: MemfsState, node: Node, offset: number, end: number): void {
  if (node.chunks === 0 || end <= offset) return;
  const idxs = chunkIndexes(state, node, Math.floor(offset / CHUNK), Math.floor((end - 1) / CHUNK));
  for (let k = 0; k < idxs.length; k++) {
    const idx = idxs[k] as number;
    const v = chunkAt(state, node, idx);
    const base = idx * CHUNK;
    const len = lengthOf(v);
    const a = offset > base ? offset - base : 0;
    const b = end < base + len ? end - base : len;
    if (a >= b) continue;
    zeroIn(state, v, a, b);
    const first = Math.ceil(a / PAGE);
    const stop = Math.floor((end < base + CHUNK ? end - base : CHUNK) / PAGE);
    if (first >= stop) continue;
    const map = mapOf(v) & ~(((1 << stop) - 1) & ~((1 << first) - 1));
    if (map !== mapOf(v)) unmapPages(state, node, idx, v, map);
  }
  dropEmptyTable(state, node);
}

/** The first page >= `p` in `map` (16 if none). */
function nextMapped(map: number, p: number): number {
  const m = map & ~((1 << p) - 1) & FULL_MAP;
  return m === 0 ? 16 : 31 - Math.clz32(m & -m);
}
/** The first page >= `p` not in `map` (16 if none). */
function nextUnmapped(map: number, p: number): number {
  return nextMapped(~map & FULL_MAP, p);
}

/**
 * SEEK_DATA: the first offset >= `offset` inside allocated data, or -1 (ENXIO) if there is none
 * before the end of the file. The caller handles offset >= size.
 */
export function seekData(node: Node, offset: number): number {
  const state = node.s;
  if (node.chunks === 0) return -1;
  const idx = Math.floor(offset / CHUNK);
  const last = Math.floor((node.size - 1) / CHUNK);
  const idxs = chunkIndexes(state, node, idx, last);
  for (let k = 0; k < idxs.length; k++) {
    const i = idxs[k] as number;
    const d = dataOf(state, node, i, chunkAt(state, node, i));
    const p = i === idx ? Math.floor((offset - idx * CHUNK) / PAGE) : 0;
    const q = nextMapped(d, p);
    if (q === 16) continue;
    const at = q === p && i === idx ? offset : i * CHUNK + q * PAGE;
    return at < node.size ? at : -1;
  }
  return -1;
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
    if (v < 0) return pos;
    const p = Math.floor((pos - base) / PAGE);
    const q = nextUnmapped(dataOf(state, node, idx, v), p);
    if (q === p) return pos;
    pos = base + q * PAGE;
  }
  return pos < size ? pos : size;
}

/** Holds a source chunk while it is copied into the same file (whose blocks may move); made on first use. */
let bounce: Uint8Array | null = null;
/** Zeros written for the source's holes; made on first use. */
let zeros: Uint8Array | null = null;

/**
 * copy_file_range: copy up to `len` bytes from `src` at `offIn` to `dst` at `offOut`, stopping at
 * the source's end. As on tmpfs (which has no copy_file_range and falls back to splice: a read
 * and a write), the source's holes are written as zeros, so the copy is all data. Returns the
 * count (short when the size limit is reached; 0 with len > 0 and data left means no space).
 * Ranges in one file must not overlap.
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
    // the chunk's block (unmapped pages in it are zeros), then zeros past its end
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
    if (span > have) {
      zeros ??= new Uint8Array(CHUNK);
      const w = writeData(state, dst, offOut + done, zeros, 0, span - have);
      done += w;
      if (w < span - have) break;
    }
  }
  return done;
}
