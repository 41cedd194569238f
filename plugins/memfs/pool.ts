/**
 * File data lives in page memory outside the JS heap (furing/sys mapPages), which every thread
 * of the process can address: memfs keeps its blocks' places in shared memory and each thread
 * makes its own view of each slab once (viewPages).
 *
 * A block is named by a handle: slab index × SLAB_PAGES + first page. Full chunks (CHUNK bytes)
 * come from slabs with transparent huge pages requested; shorter blocks (1..15 pages: small
 * files are charged page by page, like tmpfs) from slabs without, so that one touched page does
 * not fault in 2 MiB. Freed blocks are reused: reusing page memory costs no page fault, while
 * fresh memory made sequential writes fault on every page (the kernel zeroes each one), which
 * took most of the daemon's time in a write loop (ARCHITECTURE.md, "File data in memfs"). Up to
 * MAX_DIRTY freed chunks (and MAX_SMALL_IDLE bytes of short blocks) are kept as they are and
 * zeroed when reused; past that, freed pages go back to the kernel (MADV_DONTNEED), so the
 * daemon's memory follows the data it holds. Blocks are never merged or split once carved.
 *
 * The lists live in the meta region (see state.ts, M_POOL) and are used under the state's lock.
 */
import { mapPages, pagesAddress, viewPages, discardPages } from "furing/sys";
import type { MemfsState } from "./state.ts";
import { CHUNK, M_POOL, PAGE } from "./layout.ts";

export { CHUNK, PAGE } from "./layout.ts";
export const CHUNK_PAGES = CHUNK / PAGE;
const SLAB = 32 << 20;
export const SLAB_PAGES = SLAB / PAGE;
const MAX_DIRTY = 1024; // 64 MiB of freed chunks kept ready
const MAX_SMALL_IDLE = 64 << 20;

// meta Float64 slots
const P_SLABS = M_POOL, P_NSLABS = M_POOL + 1, P_SLABCAP = M_POOL + 2;
const P_MAPPED = M_POOL + 3, P_DISCARDED = M_POOL + 4;
/** The slab short blocks are carved from (index + 1; 0: none yet) and pages carved so far. */
const P_SMALL_SLAB = M_POOL + 5, P_SMALL_USED = M_POOL + 6, P_SMALL_IDLE = M_POOL + 7;
/** Stacks of handles: (heap pointer, length, capacity) each. */
const S_DIRTY = M_POOL + 8, S_CLEAN = M_POOL + 11;
/** Short blocks of k pages (k = 1..15): handle × 2 + 1 when dirty. */
const S_SMALL = M_POOL + 14;
export const POOL_SLOTS = 14 + 3 * (CHUNK_PAGES - 1);

export class ChunkPool {
  /** This thread's view of each slab (by index), made on first use. */
  private readonly views: Uint8Array[] = [];
  constructor(private readonly s: MemfsState) {}

  /** Bytes mapped so far. */
  get mapped(): number {
    return this.s.meta[P_MAPPED] as number;
  }
  /** Blocks whose pages went back to the kernel. */
  get discarded(): number {
    return this.s.meta[P_DISCARDED] as number;
  }
  /** Free full chunks held (for status and memory figures). */
  get idle(): number {
    return (this.s.meta[S_DIRTY + 1] as number) + (this.s.meta[S_CLEAN + 1] as number);
  }

  /** The view of the slab holding block `handle`; the block starts at {@link offset}. */
  view(handle: number): Uint8Array {
    const i = Math.floor(handle / SLAB_PAGES);
    let v = this.views[i];
    if (v === undefined) {
      const h = this.s.heap;
      v = this.views[i] = viewPages(h.f64[((this.s.meta[P_SLABS] as number) >>> 3) + i] as number, SLAB);
    }
    return v;
  }
  offset(handle: number): number {
    return (handle % SLAB_PAGES) * PAGE;
  }

  /** A zeroed full chunk. */
  take(): number {
    const m = this.s.meta;
    let c = this.pop(S_DIRTY);
    if (c >= 0) {
      const off = this.offset(c);
      this.view(c).fill(0, off, off + CHUNK);
      return c;
    }
    c = this.pop(S_CLEAN);
    if (c >= 0) return c;
    const slab = this.newSlab(true);
    for (let p = SLAB_PAGES - CHUNK_PAGES; p > 0; p -= CHUNK_PAGES) this.push(S_CLEAN, slab * SLAB_PAGES + p);
    m[P_MAPPED] = (m[P_MAPPED] as number) + SLAB;
    return slab * SLAB_PAGES;
  }

  /** Take back a full chunk. */
  give(c: number): void {
    if ((this.s.meta[S_DIRTY + 1] as number) < MAX_DIRTY) {
      this.push(S_DIRTY, c);
      return;
    }
    discardPages(this.view(c), this.offset(c), CHUNK);
    this.push(S_CLEAN, c);
    this.s.meta[P_DISCARDED] = (this.s.meta[P_DISCARDED] as number) + 1;
  }

  /** A zeroed block of `pages` pages (1..CHUNK_PAGES); full chunks come from {@link take}. */
  takePages(pages: number): number {
    if (pages === CHUNK_PAGES) return this.take();
    const m = this.s.meta;
    const st = S_SMALL + 3 * (pages - 1);
    const b = this.pop(st);
    if (b >= 0) {
      const c = Math.floor(b / 2);
      if (b % 2 === 1) {
        const off = this.offset(c);
        this.view(c).fill(0, off, off + pages * PAGE);
        m[P_SMALL_IDLE] = (m[P_SMALL_IDLE] as number) - pages * PAGE;
      }
      return c;
    }
    let slab = (m[P_SMALL_SLAB] as number) - 1;
    let used = m[P_SMALL_USED] as number;
    if (slab < 0 || used + pages > SLAB_PAGES) {
      slab = this.newSlab(false);
      m[P_MAPPED] = (m[P_MAPPED] as number) + SLAB;
      m[P_SMALL_SLAB] = slab + 1;
      used = 0;
    }
    m[P_SMALL_USED] = used + pages;
    return slab * SLAB_PAGES + used;
  }

  /** Take back a block of `pages` pages. */
  givePages(c: number, pages: number): void {
    if (pages === CHUNK_PAGES) {
      this.give(c);
      return;
    }
    const m = this.s.meta;
    const st = S_SMALL + 3 * (pages - 1);
    if ((m[P_SMALL_IDLE] as number) + pages * PAGE <= MAX_SMALL_IDLE) {
      m[P_SMALL_IDLE] = (m[P_SMALL_IDLE] as number) + pages * PAGE;
      this.push(st, c * 2 + 1);
      return;
    }
    discardPages(this.view(c), this.offset(c), pages * PAGE);
    m[P_DISCARDED] = (m[P_DISCARDED] as number) + 1;
    this.push(st, c * 2);
  }

  private newSlab(huge: boolean): number {
    const m = this.s.meta;
    const h = this.s.heap;
    const v = mapPages(SLAB, { hugepages: huge });
    const n = m[P_NSLABS] as number;
    let table = m[P_SLABS] as number;
    const cap = m[P_SLABCAP] as number;
    if (n === cap) {
      const bigger = h.alloc((cap === 0 ? 16 : cap * 2) * 8);
      if (table !== 0) {
        h.u8.copyWithin(bigger, table, table + n * 8);
        h.free(table);
      }
      table = bigger;
      m[P_SLABS] = table;
      m[P_SLABCAP] = cap === 0 ? 16 : cap * 2;
    }
    h.f64[(table >>> 3) + n] = pagesAddress(v);
    m[P_NSLABS] = n + 1;
    this.views[n] = v;
    return n;
  }

  private push(st: number, value: number): void {
    const m = this.s.meta;
    const h = this.s.heap;
    let arr = m[st] as number;
    const len = m[st + 1] as number;
    const cap = m[st + 2] as number;
    if (len === cap) {
      const next = cap === 0 ? 64 : cap * 2;
      const bigger = h.alloc(next * 8);
      if (arr !== 0) {
        h.u8.copyWithin(bigger, arr, arr + len * 8);
        h.free(arr);
      }
      arr = bigger;
      m[st] = arr;
      m[st + 2] = next;
    }
    h.f64[(arr >>> 3) + len] = value;
    m[st + 1] = len + 1;
  }

  private pop(st: number): number {
    const m = this.s.meta;
    const len = m[st + 1] as number;
    if (len === 0) return -1;
    m[st + 1] = len - 1;
    return this.s.heap.f64[((m[st] as number) >>> 3) + len - 1] as number;
  }
}
