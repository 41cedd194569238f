/**
 * The few libc calls `furing/sys` makes for itself, through bun:ffi: anonymous mappings, madvise,
 * errno. The public API imports nothing of the runtime, so a plugin (or its unit test) can use
 * `furing/sys` with no runtime loaded. The runtime learns which buffers are page memory from
 * {@link pagesPointer} (its file I/O addresses them directly), never the other way round.
 */
import { dlopen, FFIType as T, read as peek, toArrayBuffer, type Pointer } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  mmap: { args: [T.ptr, T.u64_fast, T.i32, T.i32, T.i32, T.i64_fast], returns: T.ptr },
  madvise: { args: [T.ptr, T.u64_fast, T.i32], returns: T.i32 },
  __errno_location: { args: [], returns: T.ptr },
  strerror: { args: [T.i32], returns: T.cstring },
});

export const PAGE_SIZE = 4096;
const PROT_READ = 1, PROT_WRITE = 2;
const MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_POPULATE = 0x8000;
const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 << 20;

/** errno's address on this thread (a module instance per thread: Workers load their own). */
const errnoPtr = lib.symbols.__errno_location() as Pointer;

/** errno of this thread, valid right after a failed call. */
export function lastErrno(): number {
  return peek.i32(errnoPtr, 0);
}

export function strerror(e: number): string {
  return String(lib.symbols.strerror(e));
}

/** madvise(2); returns 0 or -1 (errno set). */
export function madvise(ptr: number, length: number, advice: number): number {
  return lib.symbols.madvise(ptr as unknown as Pointer, length, advice);
}

/**
 * Map `bytes` (rounded up to pages) of zeroed anonymous memory, never unmapped; pre-faulted when
 * `populate`; `hugepages`: 2 MiB-aligned, with transparent huge pages asked for. Null if mmap
 * failed (errno set).
 */
export function mapAnonymous(bytes: number, populate: boolean, hugepages: boolean): { ptr: number; buffer: ArrayBuffer } | null {
  const len = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
  const mapLen = hugepages ? len + HUGE_PAGE : len;
  const p = lib.symbols.mmap(null, mapLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
  if (p === null || Number(p) === -1) return null;
  let ptr = Number(p);
  if (hugepages) {
    ptr = Math.ceil(ptr / HUGE_PAGE) * HUGE_PAGE;
    madvise(ptr, len, MADV_HUGEPAGE); // advice only: a failure costs nothing
  }
  return { ptr, buffer: toArrayBuffer(ptr as Pointer, 0, len) };
}

const pageBuffers = new WeakMap<ArrayBuffer, number>();

/** Record that `buffer` views page memory at `ptr` (mapPages, viewPages). */
export function recordPages(buffer: ArrayBuffer, ptr: number): void {
  pageBuffers.set(buffer, ptr);
}

/** The address of page memory `buffer` views, or undefined when it is not page memory. */
export function pagesPointer(buffer: ArrayBuffer): number | undefined {
  return pageBuffers.get(buffer);
}
