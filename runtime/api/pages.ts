/**
 * Page memory for plugins that keep file data themselves (memfs): anonymous mmap'd memory outside
 * the JS heap. The garbage collector never moves or frees it, and reusing it costs no page fault:
 * on these VMs a first touch of fresh anonymous memory runs at 0.5-2.5 GB/s (the kernel zeroes
 * every page, and the host backs it), a rewrite of touched memory at ~8 GB/s.
 * Exported through `furing/sys`.
 */
import type { Pointer } from "bun:ffi";
import { libc, errno, SyscallError } from "../ffi/libc.ts";
import { allocNative, nativeInfo, registerNative, PAGE_SIZE } from "../ffi/memory.ts";

const MADV_DONTNEED = 4;

/**
 * Map `bytes` (rounded up to pages) of zeroed anonymous memory and return a view of it. The memory
 * is never unmapped (a view over unmapped memory would crash the process): keep it and reuse it.
 * `hugepages` aligns it to 2 MiB and asks for transparent huge pages (fewer, cheaper first touches).
 */
export function mapPages(bytes: number, opts: { hugepages?: boolean } = {}): Uint8Array {
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`mapPages: bad size ${bytes}`);
  const r = allocNative(bytes, false, opts.hugepages === true);
  registerNative(r.buffer, r.ptr);
  return new Uint8Array(r.buffer);
}

/**
 * Give the pages under `view[offset, offset+length)` back to the kernel (MADV_DONTNEED): they read
 * as zeros afterwards and cost no memory until written again. The range must be page-aligned and
 * inside memory from {@link mapPages}.
 */
export function discardPages(view: Uint8Array, offset = 0, length = view.length - offset): void {
  const info = nativeInfo(view.buffer as ArrayBuffer);
  if (info === undefined) throw new TypeError("discardPages: not memory from mapPages");
  const start = info.ptr + view.byteOffset + offset;
  if (start % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || offset < 0 || offset + length > view.length) {
    throw new RangeError(`discardPages: range ${offset}+${length} is not page-aligned inside the view`);
  }
  if (length === 0) return;
  if (libc.madvise(start as unknown as Pointer, length, MADV_DONTNEED) !== 0) throw new SyscallError("madvise", errno());
}
