/**
 * The few system calls the executor needs that `furing/sys` does not offer (yet): read/write at
 * the descriptor's position and at an offset into one reusable buffer, and the xattr calls with
 * the caller's buffer size (size 0 asks for the length, a short buffer gives ERANGE; a value over
 * 64 KiB reaches the kernel's E2BIG instead of being refused in user space).
 *
 * Every call is synchronous and throws `{ code: "ENOENT", errno: 2 }`-style errors. Used only in
 * the executor child process, never on a test runner's thread.
 */
import { dlopen, FFIType as T, ptr, read as peek, type Pointer } from "bun:ffi";
import { errnoName } from "../api/errno.ts";
import { nameByteLength, writeName } from "../api/names.ts";

const lib = dlopen("libc.so.6", {
  read: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  write: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  pread64: { args: [T.i32, T.ptr, T.u64, T.i64], returns: T.i64_fast },
  pwrite64: { args: [T.i32, T.ptr, T.u64, T.i64], returns: T.i64_fast },
  getxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  lgetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  fgetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  listxattr: { args: [T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  llistxattr: { args: [T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  flistxattr: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  setxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  lsetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  fsetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  posix_fadvise: { args: [T.i32, T.i64, T.i64, T.i32], returns: T.i32 },
  __errno_location: { args: [], returns: T.ptr },
});
const c = lib.symbols;
const errnoPtr = c.__errno_location() as Pointer;

export class SysError extends Error {
  constructor(readonly errno: number, readonly code = errnoName(errno)) {
    super(code);
  }
}

function fail(): never {
  throw new SysError(peek.i32(errnoPtr, 0));
}

/** Largest single I/O. */
export const IO_MAX = 1 << 20;
const STR = 8192; // two NUL-terminated strings of up to 4095 bytes
// Large ArrayBuffers live outside the GC heap and never move (see reference/bun-runtime-notes.md).
const scratch = new ArrayBuffer(IO_MAX + 2 * STR);
const base = Number(ptr(scratch));
const bytes = Buffer.from(scratch);
/** The I/O area: write data here before `write`, read results from here after `read`. */
export const io = new Uint8Array(scratch, 0, IO_MAX);
const P_IO = base as Pointer;

/** A name string (names that are not UTF-8 escaped, runtime/api/names.ts) as its exact bytes. */
function str(s: string, slot: 0 | 1): Pointer {
  const off = IO_MAX + slot * STR;
  const len = nameByteLength(s);
  if (len < 0) throw new Error(`not a name string: ${JSON.stringify(s)}`);
  if (len >= STR - 1) throw new SysError(36); // ENAMETOOLONG
  const n = writeName(s, bytes, off, len);
  bytes[off + n] = 0;
  return (base + off) as Pointer;
}

function count(n: number): number {
  if (n < 0) fail();
  return n;
}

export function read(fd: number, len: number): number {
  return count(Number(c.read(fd, P_IO, Math.min(len, IO_MAX))));
}
export function write(fd: number, len: number): number {
  return count(Number(c.write(fd, P_IO, Math.min(len, IO_MAX))));
}
export function pread(fd: number, len: number, off: number): number {
  return count(Number(c.pread64(fd, P_IO, Math.min(len, IO_MAX), off)));
}
export function pwrite(fd: number, len: number, off: number): number {
  return count(Number(c.pwrite64(fd, P_IO, Math.min(len, IO_MAX), off)));
}

const POSIX_FADV_RANDOM = 1;

/**
 * No readahead on `fd`: reads fetch exactly what they return, so no READ request of a FUSE mount
 * is still on its way (and stamping atime) after the call returned. Best effort.
 */
export function noReadahead(fd: number): void {
  c.posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
}

export interface XattrTarget {
  path?: string;
  nofollow?: boolean;
  fd?: number;
}

/** getxattr with a buffer of `size` bytes (0: ask for the length). Returns the length; the value is in `io`. */
export function getxattr(t: XattrTarget, name: string, size: number): number {
  const n = str(name, 1);
  size = Math.min(size, IO_MAX);
  if (t.fd !== undefined) return count(Number(c.fgetxattr(t.fd, n, P_IO, size)));
  const p = str(t.path ?? "", 0);
  return count(Number((t.nofollow ? c.lgetxattr : c.getxattr)(p, n, P_IO, size)));
}

/** listxattr with a buffer of `size` bytes; returns the length, the names are in `io`. */
export function listxattr(t: XattrTarget, size: number): number {
  size = Math.min(size, IO_MAX);
  if (t.fd !== undefined) return count(Number(c.flistxattr(t.fd, P_IO, size)));
  const p = str(t.path ?? "", 0);
  return count(Number((t.nofollow ? c.llistxattr : c.listxattr)(p, P_IO, size)));
}

/** setxattr with the first `len` bytes of `io` as the value. */
export function setxattr(t: XattrTarget, name: string, len: number, flags: number): void {
  const n = str(name, 1);
  len = Math.min(len, IO_MAX);
  let r: number;
  if (t.fd !== undefined) r = c.fsetxattr(t.fd, n, P_IO, len, flags);
  else r = (t.nofollow ? c.lsetxattr : c.setxattr)(str(t.path ?? "", 0), n, P_IO, len, flags);
  if (r !== 0) fail();
}
