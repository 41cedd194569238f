/**
 * libc through bun:ffi: the system calls the runtime makes directly. Pointers are JS numbers;
 * `errno()` reads the calling thread's errno right after a failed call.
 */
import { dlopen, FFIType as T, read as peek, type Pointer } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  open: { args: [T.cstring, T.i32, T.u32], returns: T.i32 },
  close: { args: [T.i32], returns: T.i32 },
  read: { args: [T.i32, T.ptr, T.u64_fast], returns: T.i64_fast },
  write: { args: [T.i32, T.ptr, T.u64_fast], returns: T.i64_fast },
  mount: { args: [T.cstring, T.cstring, T.cstring, T.u64_fast, T.cstring], returns: T.i32 },
  umount2: { args: [T.cstring, T.i32], returns: T.i32 },
  eventfd: { args: [T.u32, T.i32], returns: T.i32 },
  mmap: { args: [T.ptr, T.u64_fast, T.i32, T.i32, T.i32, T.i64_fast], returns: T.ptr },
  munmap: { args: [T.ptr, T.u64_fast], returns: T.i32 },
  madvise: { args: [T.ptr, T.u64_fast, T.i32], returns: T.i32 },
  __errno_location: { args: [], returns: T.ptr },
  strerror: { args: [T.i32], returns: T.cstring },
  sched_getcpu: { args: [], returns: T.i32 },
  sched_yield: { args: [], returns: T.i32 },
  sched_getaffinity: { args: [T.i32, T.u64_fast, T.ptr], returns: T.i32 },
  sched_setaffinity: { args: [T.i32, T.u64_fast, T.ptr], returns: T.i32 },
  sched_setscheduler: { args: [T.i32, T.i32, T.ptr], returns: T.i32 },
  sched_getscheduler: { args: [T.i32], returns: T.i32 },
  gettid: { args: [], returns: T.i32 },
  getrlimit: { args: [T.i32, T.ptr], returns: T.i32 },
  ioctl: { args: [T.i32, T.u64_fast, T.ptr], returns: T.i32 },
  fcntl: { args: [T.i32, T.i32, T.i64_fast], returns: T.i32 },
});

export const libc = lib.symbols;

const errnoPtr = lib.symbols.__errno_location() as Pointer;

/** errno of the JS thread (the reactor), valid right after a failed call. */
export function errno(): number {
  return peek.i32(errnoPtr, 0);
}

export function strerror(e: number): string {
  return String(lib.symbols.strerror(e));
}

/** Set O_NONBLOCK on a descriptor. */
export function setNonBlocking(fd: number): void {
  const F_GETFL = 3, F_SETFL = 4;
  const fl = lib.symbols.fcntl(fd, F_GETFL, 0);
  if (fl < 0 || lib.symbols.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) throw new SyscallError("fcntl", errno());
}

/** A failed system call as an Error with Node-style `code`/`errno` fields. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errnum: number, detail?: string) {
    super(`${syscall}${detail ? ` ${detail}` : ""}: ${strerror(errnum)}`);
    this.syscall = syscall;
    this.errno = errnum;
    this.code = errnoCode(errnum);
  }
}

import { errnoName } from "../api/errno.ts";
function errnoCode(e: number): string {
  return errnoName(e);
}

/** C string argument: bun:ffi's cstring args take a NUL-terminated buffer. */
export function cstr(s: string): Buffer {
  return Buffer.from(s + "\0");
}

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_RDONLY = 1;
export const MS_NOATIME = 1024;
export const MS_NODIRATIME = 2048;
export const MS_SYNCHRONOUS = 16;
export const MS_DIRSYNC = 128;
