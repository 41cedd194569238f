/**
 * Page memory for plugins that keep file data themselves (memfs): anonymous mmap'd memory outside
 * the JS heap. The garbage collector never moves or frees it, and reusing it costs no page fault:
 * on these VMs a first touch of fresh anonymous memory runs at 0.5-2.5 GB/s (the kernel zeroes
 * every page, and the host backs it), a rewrite of touched memory at ~8 GB/s.
 * Exported through `furing/sys`.
 */
import type { Pointer } from "bun:ffi";
import { libc, errno, SyscallError } from "../ffi/libc.ts";
import { nativeBuffer, nativeInfo, PAGE_SIZE } from "../ffi/memory.ts";

const PROT_READ = 1, PROT_WRITE = 2;
const MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
const MADV_DONTNEED = 4, MADV_HUGEPAGE = 14;
const HUGE = 2 << 20;

/**
 * Map `bytes` (rounded up to pages) of zeroed anonymous memory and return a view of it. The memory
 * is never unmapped (a view over unmapped memory would crash the process): keep it and reuse it.
 * `hugepages` aligns it to 2 MiB and asks for transparent huge pages (fewer, cheaper first touches).
 */
export function mapPages(bytes: number, opts: { hugepages?: boolean } = {}): Uint8Array {
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`mapPages: bad size ${bytes}`);
  const len = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
  const huge = opts.hugepages === true;
  const mapLen = huge ? len + HUGE : len;
  const p = libc.mmap(null, mapLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p === null || Number(p) === -1) throw new SyscallError("mmap", errno(), `(${mapLen} bytes)`);
  let addr = Number(p);
  if (huge) {
    addr = Math.ceil(addr / HUGE) * HUGE;
    libc.madvise(addr as unknown as Pointer, len, MADV_HUGEPAGE); // advice only: ignore failure
  }
  return new Uint8Array(nativeBuffer(addr, len));
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
