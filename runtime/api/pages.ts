/**
 * Page memory for plugins that keep file data themselves (memfs): anonymous mmap'd memory outside
 * the JS heap. The garbage collector never moves or frees it, and reusing it costs no page fault:
 * a first touch of fresh anonymous memory is several times slower than a rewrite of touched
 * memory (the kernel zeroes every page, and the host backs it; figures: ARCHITECTURE.md, "File
 * data in memfs").
 * Exported through `furing/sys`.
 */
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { FuseError } from "./errno.ts";
import { lastErrno, madvise, mapAnonymous, pagesPointer, recordPages, strerror, PAGE_SIZE } from "./native.ts";

const MADV_DONTNEED = 4;

/**
 * Map `bytes` (rounded up to pages) of zeroed anonymous memory and return a view of it. The memory
 * is never unmapped (a view over unmapped memory would crash the process): keep it and reuse it.
 * `hugepages` aligns it to 2 MiB and asks for transparent huge pages (fewer, cheaper first touches).
 */
export function mapPages(bytes: number, opts: { hugepages?: boolean } = {}): Uint8Array {
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`mapPages: bad size ${bytes}`);
  const r = mapAnonymous(bytes, false, opts.hugepages === true);
  if (r === null) throw failed("mmap", `(${bytes} bytes)`);
  recordPages(r.buffer, r.ptr);
  return new Uint8Array(r.buffer);
}

/**
 * Give the pages under `view[offset, offset+length)` back to the kernel (MADV_DONTNEED): they read
 * as zeros afterwards and cost no memory until written again. The range must be page-aligned and
 * inside memory from {@link mapPages}.
 */
export function discardPages(view: Uint8Array, offset = 0, length = view.length - offset): void {
  const ptr = pagesPointer(view.buffer as ArrayBuffer);
  if (ptr === undefined) throw new TypeError("discardPages: not memory from mapPages");
  const start = ptr + view.byteOffset + offset;
  if (start % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || offset < 0 || offset + length > view.length) {
    throw new RangeError(`discardPages: range ${offset}+${length} is not page-aligned inside the view`);
  }
  if (length === 0) return;
  if (madvise(start, length, MADV_DONTNEED) !== 0) throw failed("madvise");
}

/**
 * The address of the first byte of `view`, which must be memory from {@link mapPages}: a number
 * that means the same memory on every thread of the process (keep it in shared memory, e.g. a
 * `ctx.shared` table, and make a view of it on another Worker with {@link viewPages}).
 */
export function pagesAddress(view: Uint8Array): number {
  const ptr = pagesPointer(view.buffer as ArrayBuffer);
  if (ptr === undefined) throw new TypeError("pagesAddress: not memory from mapPages");
  return ptr + view.byteOffset;
}

/**
 * A view of `bytes` at `address`, an address {@link pagesAddress} gave for memory that
 * {@link mapPages} mapped in this process (on any thread: mappings are process-wide and never
 * unmapped). Make one per region and thread and keep it: each call makes a new view. The address
 * cannot be checked here (another thread's mappings are not known to this one), and a wrong one
 * crashes the process when the view is touched.
 */
export function viewPages(address: number, bytes: number): Uint8Array {
  if (!Number.isSafeInteger(address) || address <= 0 || address % PAGE_SIZE !== 0) throw new RangeError(`viewPages: bad address ${address} (a page-aligned address from pagesAddress)`);
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`viewPages: bad size ${bytes}`);
  const b = toArrayBuffer(address as Pointer, 0, bytes);
  recordPages(b, address);
  return new Uint8Array(b);
}

/** The call that just failed, as an error carrying its errno (code "ENOMEM", ...). */
function failed(call: string, what = ""): FuseError {
  const e = lastErrno();
  return new FuseError(e, `${call}${what === "" ? "" : " " + what}: ${strerror(e)}`);
}
