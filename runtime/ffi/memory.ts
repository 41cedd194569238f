/**
 * Native memory for everything the kernel keeps an address of (ring structures, request headers
 * and payloads, iovecs). It comes from mmap, outside the JS heap, so the garbage collector never
 * moves it (bun-runtime-notes: small TypedArrays relocate), and it is never unmapped while the
 * process lives (a view over unmapped memory would crash without an exception), except through
 * `freeNative` by an owner that handed no view of it out.
 */
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { libc, errno, SyscallError } from "./libc.ts";
import { pagesPointer } from "../api/native.ts";

const PROT_READ = 1, PROT_WRITE = 2;
const MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_POPULATE = 0x8000;
export const PAGE_SIZE = 4096;

export interface NativeRegion {
  /** Address of the first byte. */
  readonly ptr: number;
  readonly size: number;
  /** Zero-copy ArrayBuffer over the region. */
  readonly buffer: ArrayBuffer;
}

const live = new Set<NativeRegion>(); // strong references until freeNative
/** The mapping behind each region (hugepage regions start inside a larger mapping). */
const mappings = new WeakMap<NativeRegion, { base: number; len: number }>();

const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 << 20;

/**
 * Map `size` bytes (rounded up to pages) of zeroed anonymous memory, pre-faulted unless
 * `populate` is false. `hugepages`: 2 MiB-aligned, with transparent huge pages asked for.
 */
export function allocNative(size: number, populate = true, hugepages = false): NativeRegion {
  const len = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
  const mapLen = hugepages ? len + HUGE_PAGE : len;
  const p = libc.mmap(null, mapLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
  if (p === null || Number(p) === -1) throw new SyscallError("mmap", errno(), `(${mapLen} bytes)`);
  let ptr = Number(p);
  if (hugepages) {
    ptr = Math.ceil(ptr / HUGE_PAGE) * HUGE_PAGE;
    libc.madvise(ptr as unknown as Pointer, len, MADV_HUGEPAGE); // advice only: a failure costs nothing
  }
  const region = { ptr, size: len, buffer: toArrayBuffer(ptr as Pointer, 0, len) };
  live.add(region);
  mappings.set(region, { base: Number(p), len: mapLen });
  return region;
}

/**
 * Unmap a region from `allocNative`. Only for an owner that kept every view of it to itself and
 * dropped them: the region's ArrayBuffer is detached first, so a view that survived by mistake
 * reads as empty instead of touching unmapped memory.
 */
export function freeNative(region: NativeRegion): void {
  const m = mappings.get(region);
  if (m === undefined || !live.delete(region)) throw new Error("freeNative: not a live region from allocNative");
  mappings.delete(region);
  region.buffer.transfer(0);
  if (libc.munmap(m.base as unknown as Pointer, m.len) !== 0) throw new SyscallError("munmap", errno(), `(${m.len} bytes)`);
}

/** Where an ArrayBuffer over native memory lives, and its fixed-buffer index (-1: none). */
export interface NativeInfo {
  ptr: number;
  fixedIndex: number;
  /** A region registered as a fixed buffer only once file I/O first uses it (registering pins every page). */
  lazy?: LazyFixed;
}

/** Registers its region on the first call; then always the same answer. */
export interface LazyFixed {
  /** The fixed-buffer index, or -1: not registered (plain READ/WRITE then). */
  index(): number;
}
const nativeBuffers = new WeakMap<ArrayBuffer, NativeInfo>();

/** Record that `buffer` views native memory at `ptr` (so I/O can address it directly). */
export function registerNative(buffer: ArrayBuffer, ptr: number, fixedIndex = -1, lazy?: LazyFixed): void {
  nativeBuffers.set(buffer, lazy === undefined ? { ptr, fixedIndex } : { ptr, fixedIndex, lazy });
}

/** The fixed-buffer index for I/O on `info`'s memory (registering a lazy region now), or -1. */
export function fixedIndexOf(info: NativeInfo): number {
  return info.fixedIndex >= 0 ? info.fixedIndex : info.lazy !== undefined ? info.lazy.index() : -1;
}

export function nativeInfo(buffer: ArrayBuffer): NativeInfo | undefined {
  const info = nativeBuffers.get(buffer);
  if (info !== undefined) return info;
  // page memory a plugin mapped through furing/sys (the public API keeps its own record)
  const ptr = pagesPointer(buffer);
  if (ptr === undefined) return undefined;
  const found = { ptr, fixedIndex: -1 };
  nativeBuffers.set(buffer, found);
  return found;
}

/**
 * An ArrayBuffer of its own over `len` bytes at `ptr` (inside a region that stays mapped), so it
 * can be detached independently of its neighbours.
 */
export function nativeBuffer(ptr: number, len: number, fixedIndex = -1, lazy?: LazyFixed): ArrayBuffer {
  const b = toArrayBuffer(ptr as Pointer, 0, len);
  registerNative(b, ptr, fixedIndex, lazy);
  return b;
}

/** A bump allocator carving aligned pieces out of one native region. */
export class Arena {
  readonly region: NativeRegion;
  private used = 0;
  /** `populate` false: pages are faulted in when first touched (request payloads), not at map time. */
  constructor(size: number, populate = true) {
    this.region = allocNative(size, populate);
  }
  /** Returns the byte offset of a fresh piece inside `region`. */
  take(size: number, align = 64): number {
    const off = Math.ceil(this.used / align) * align;
    if (off + size > this.region.size) throw new Error(`arena exhausted (${off + size} > ${this.region.size})`);
    this.used = off + size;
    return off;
  }
}
