/**
 * `furing/sys`: typed system calls for plugins that mirror a real filesystem (passthrough).
 *
 * Thin wrappers over libc (through bun:ffi) for the `*at` calls, `O_PATH` descriptors, xattrs,
 * file handles and the other calls node:fs does not offer. Every wrapper is synchronous, like the
 * system call it wraps, and throws a {@link FuseError} carrying the errno when the call fails, so an
 * op can let it propagate and the runtime answers the request with that errno.
 *
 * ```ts
 * import * as sys from "furing/sys";
 * const fd = sys.openat(dirfd, name, sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
 * const st = sys.fstat(fd);          // { dev, ino, mode, size, ... }
 * ```
 *
 * Conventions:
 * - Paths and names are *name strings* (see {@link nameFromBytes}): UTF-8 text, with each byte that
 *   is not valid UTF-8 escaped as U+DC80 + (byte - 0x80). They are encoded to their exact bytes into
 *   native scratch memory (no allocation); names that come back (getdents, listxattr) are decoded
 *   the same way, so a name read from a directory opens that very file whatever its bytes.
 *   A string containing NUL, or one that is not a name string (an unpaired surrogate that is not
 *   an escaped byte), fails with EINVAL; one of 4096 bytes or more with ENAMETOOLONG.
 * - Memory the kernel reads or writes (stat buffers, strings, handles) is native scratch memory
 *   allocated once (never a small JS TypedArray, which the GC may relocate). Results are decoded
 *   into plain JS values; byte results (xattr values, link targets) are fresh copies.
 * - 64-bit numbers (inode numbers, sizes, offsets, device ids) are JS numbers: exact below 2^53.
 * - Descriptors opened with `O_PATH` work as `dirfd` for every `*at` call, with `fstat`, `fstatat`
 *   + `AT_EMPTY_PATH`, `fchownat`/`utimensat`/`linkat` + `AT_EMPTY_PATH`, `fstatvfs`,
 *   `name_to_handle_at` + `AT_EMPTY_PATH`; for the calls that refuse them (`fchmod`, `fgetxattr`
 *   and friends, `ftruncate`, reading) use the path {@link procPath}(fd) with the path variants.
 * - Linux x86-64 / arm64 struct layouts and constants.
 */
import { dlopen, FFIType as T, type Pointer } from "bun:ffi";
import { lastErrno, mapAnonymous, strerror } from "./native.ts";
import { FuseError, errnoName } from "./errno.ts";
import { nameFromBytes, nameByteLength, writeName, nameStringError } from "./names.ts";

// The name codec, so a passthrough-like plugin has names and bytes in one place.
export { nameFromBytes, nameToBytes, nameByteLength, writeName, isNameString } from "./names.ts";

// ---- constants ---------------------------------------------------------------------------------

/** `dirfd` meaning "the current working directory". */
export const AT_FDCWD = -100;
/** Do not follow a symlink in the last path component. */
export const AT_SYMLINK_NOFOLLOW = 0x100;
/** unlinkat: remove a directory. */
export const AT_REMOVEDIR = 0x200;
/** linkat / name_to_handle_at: follow a symlink in the last component. */
export const AT_SYMLINK_FOLLOW = 0x400;
/** faccessat: check with the effective (fs) ids rather than the real ones. */
export const AT_EACCESS = 0x200;
/** An empty path means `dirfd` itself (which may be an `O_PATH` descriptor). */
export const AT_EMPTY_PATH = 0x1000;

// open(2) flags shared with the main API (furing), re-exported so `furing/sys` is self-contained
export { O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NONBLOCK, O_DIRECT, O_DIRECTORY, O_NOFOLLOW } from "./constants.ts";
export const O_NOCTTY = 0o400;
export const O_LARGEFILE = 0o100000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
/** A descriptor that only names a file (no I/O), usable as a `dirfd` and with `AT_EMPTY_PATH`. */
export const O_PATH = 0o10000000;
/** An unnamed regular file in the directory given as the path (with O_RDWR or O_WRONLY); linkat gives it a name. */
export const O_TMPFILE = 0o20000000 | 0o200000;

/** utimensat: set this time to the current time. */
export const UTIME_NOW = (1 << 30) - 1;
/** utimensat: leave this time unchanged. */
export const UTIME_OMIT = (1 << 30) - 2;

export { RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT } from "./types.ts";

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** d_type values of {@link getdents} entries. */
export const DT_UNKNOWN = 0, DT_FIFO = 1, DT_CHR = 2, DT_DIR = 4, DT_BLK = 6, DT_REG = 8, DT_LNK = 10, DT_SOCK = 12;

/** Largest file handle `name_to_handle_at` returns (MAX_HANDLE_SZ). */
export const MAX_HANDLE_SZ = 128;

const PATH_MAX = 4096;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;

// ---- libc --------------------------------------------------------------------------------------

const lib = dlopen("libc.so.6", {
  openat: { args: [T.i32, T.ptr, T.i32, T.u32], returns: T.i32 },
  close: { args: [T.i32], returns: T.i32 },
  dup: { args: [T.i32], returns: T.i32 },
  fstatat: { args: [T.i32, T.ptr, T.ptr, T.i32], returns: T.i32 },
  fstat: { args: [T.i32, T.ptr], returns: T.i32 },
  mkdirat: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
  mknodat: { args: [T.i32, T.ptr, T.u32, T.u64], returns: T.i32 },
  symlinkat: { args: [T.ptr, T.i32, T.ptr], returns: T.i32 },
  readlinkat: { args: [T.i32, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  unlinkat: { args: [T.i32, T.ptr, T.i32], returns: T.i32 },
  renameat2: { args: [T.i32, T.ptr, T.i32, T.ptr, T.u32], returns: T.i32 },
  linkat: { args: [T.i32, T.ptr, T.i32, T.ptr, T.i32], returns: T.i32 },
  fchmodat: { args: [T.i32, T.ptr, T.u32, T.i32], returns: T.i32 },
  fchmod: { args: [T.i32, T.u32], returns: T.i32 },
  fchownat: { args: [T.i32, T.ptr, T.u32, T.u32, T.i32], returns: T.i32 },
  faccessat: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
  utimensat: { args: [T.i32, T.ptr, T.ptr, T.i32], returns: T.i32 },
  truncate: { args: [T.ptr, T.i64], returns: T.i32 },
  ftruncate: { args: [T.i32, T.i64], returns: T.i32 },
  fallocate: { args: [T.i32, T.i32, T.i64, T.i64], returns: T.i32 },
  lseek: { args: [T.i32, T.i64, T.i32], returns: T.i64_fast },
  fsync: { args: [T.i32], returns: T.i32 },
  fdatasync: { args: [T.i32], returns: T.i32 },
  syncfs: { args: [T.i32], returns: T.i32 },
  copy_file_range: { args: [T.i32, T.ptr, T.i32, T.ptr, T.u64, T.u32], returns: T.i64_fast },
  getdents64: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  getxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  lgetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  fgetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  setxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  lsetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  fsetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
  listxattr: { args: [T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  llistxattr: { args: [T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  flistxattr: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  removexattr: { args: [T.ptr, T.ptr], returns: T.i32 },
  lremovexattr: { args: [T.ptr, T.ptr], returns: T.i32 },
  fremovexattr: { args: [T.i32, T.ptr], returns: T.i32 },
  fstatvfs: { args: [T.i32, T.ptr], returns: T.i32 },
  statvfs: { args: [T.ptr, T.ptr], returns: T.i32 },
  name_to_handle_at: { args: [T.i32, T.ptr, T.ptr, T.ptr, T.i32], returns: T.i32 },
  open_by_handle_at: { args: [T.i32, T.ptr, T.i32], returns: T.i32 },
  setfsuid: { args: [T.u32], returns: T.i32 },
  setfsgid: { args: [T.u32], returns: T.i32 },
  umask: { args: [T.u32], returns: T.u32 },
  clock_gettime: { args: [T.i32, T.ptr], returns: T.i32 },
});
const c = lib.symbols;

// ---- native scratch memory ---------------------------------------------------------------------

// One native region, carved at fixed offsets. Calls are synchronous and never re-entered, so one
// set of buffers is enough.
const OFF_STAT = 0; // struct stat, 144 bytes
const OFF_STATVFS = 256; // struct statvfs, 112 bytes
const OFF_TIMES = 384; // struct timespec[2], 32 bytes
const OFF_CLOCK = 416; // struct timespec, 16 bytes
const OFF_OFFS = 448; // loff_t[2] for copy_file_range
const OFF_MNTID = 480; // int mount_id
const OFF_HANDLE = 512; // struct file_handle (8 + MAX_HANDLE_SZ)
const OFF_XNAME = 768; // xattr name (≤ 255 bytes + NUL)
const OFF_PATH0 = 1024; // first path (PATH_MAX)
const OFF_PATH1 = OFF_PATH0 + PATH_MAX; // second path (PATH_MAX)
const OFF_DATA = OFF_PATH1 + PATH_MAX; // xattr values, link targets, getdents records (64 KiB)
const DATA_SIZE = XATTR_SIZE_MAX;
// Native memory (mmap, outside the JS heap): the GC never moves it, and it lives as long as the
// process. The plugin host binds `furing/sys` to this one module instance for every generation.
const region = mapAnonymous(OFF_DATA + DATA_SIZE, true, false);
if (region === null) throw new Error(`furing/sys: mmap of its scratch memory failed: ${strerror(lastErrno())}`);
const scratch = region.buffer;
const base = region.ptr;
const dv = new DataView(scratch);
const bytes = Buffer.from(scratch, 0, scratch.byteLength);

const P_STAT = (base + OFF_STAT) as Pointer;
const P_STATVFS = (base + OFF_STATVFS) as Pointer;
const P_TIMES = (base + OFF_TIMES) as Pointer;
const P_CLOCK = (base + OFF_CLOCK) as Pointer;
const P_OFFS = (base + OFF_OFFS) as Pointer;
const P_MNTID = (base + OFF_MNTID) as Pointer;
const P_HANDLE = (base + OFF_HANDLE) as Pointer;
const P_DATA = (base + OFF_DATA) as Pointer;

/** Encode `s` NUL-terminated at `off` (room `max` bytes including the NUL); returns its address. */
function put(s: string, off: number, max: number, tooLong: "ENAMETOOLONG" | "ERANGE"): Pointer {
  if (s.indexOf("\0") >= 0) throw new FuseError("EINVAL", `${JSON.stringify(s)} contains a NUL byte`);
  // short strings fit for sure (at most 3 bytes per UTF-16 unit); longer ones are measured
  const n = s.length * 3 < max ? writeName(s, bytes, off) : nameByteLength(s);
  if (n < 0) throw new FuseError("EINVAL", nameStringError(s));
  if (n >= max) throw new FuseError(tooLong, `${tooLong === "ERANGE" ? "name" : "path"} of ${n} bytes is too long`);
  if (s.length * 3 >= max) writeName(s, bytes, off, n);
  bytes[off + n] = 0;
  return (base + off) as Pointer;
}
const path0 = (s: string) => put(s, OFF_PATH0, PATH_MAX, "ENAMETOOLONG");
const path1 = (s: string) => put(s, OFF_PATH1, PATH_MAX, "ENAMETOOLONG");
const xname = (s: string) => put(s, OFF_XNAME, XATTR_NAME_MAX + 1, "ERANGE");

function u64(off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 4294967296;
}
function i64(off: number): number {
  return dv.getUint32(off, true) + dv.getInt32(off + 4, true) * 4294967296;
}
function setI64(off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setInt32(off + 4, Math.floor(v / 4294967296), true);
}

/** Throw the errno of the call that just failed, as a FuseError naming the call (and path). */
function fail(call: string, what?: string): never {
  const e = lastErrno();
  throw new FuseError(e, `${call}${what === undefined ? "" : ` ${JSON.stringify(what)}`}: ${strerror(e)} (${errnoName(e)})`);
}

// ---- descriptors ---------------------------------------------------------------------------------

/** `/proc/self/fd/<fd>`: a path to the file `fd` refers to (follow it: it is a "magic" link). */
export function procPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** openat(2): open `path` relative to `dirfd`; returns the new descriptor. */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  const fd = c.openat(dirfd, path0(path), flags, mode);
  if (fd < 0) fail("openat", path);
  return fd;
}

/** close(2). */
export function close(fd: number): void {
  if (c.close(fd) !== 0) fail("close");
}

/** dup(2): a new descriptor for the same open file (with FD_CLOEXEC clear). */
export function dup(fd: number): number {
  const r = c.dup(fd);
  if (r < 0) fail("dup");
  return r;
}

// ---- attributes ----------------------------------------------------------------------------------

/** struct stat, decoded. Times are seconds + nanoseconds since the epoch. */
export interface Stat {
  dev: number;
  ino: number;
  nlink: number;
  /** File type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Device number of a character or block device (glibc `makedev` encoding). */
  rdev: number;
  size: number;
  blksize: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/** A zeroed {@link Stat}, for reuse with the `into` argument of {@link fstat}/{@link fstatat}. */
export function newStat(): Stat {
  return { dev: 0, ino: 0, nlink: 0, mode: 0, uid: 0, gid: 0, rdev: 0, size: 0, blksize: 0, blocks: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
}

function decodeStat(into: Stat): Stat {
  const o = OFF_STAT;
  into.dev = u64(o);
  into.ino = u64(o + 8);
  into.nlink = u64(o + 16);
  into.mode = dv.getUint32(o + 24, true);
  into.uid = dv.getUint32(o + 28, true);
  into.gid = dv.getUint32(o + 32, true);
  into.rdev = u64(o + 40);
  into.size = i64(o + 48);
  into.blksize = i64(o + 56);
  into.blocks = i64(o + 64);
  into.atimeSec = i64(o + 72);
  into.atimeNsec = i64(o + 80);
  into.mtimeSec = i64(o + 88);
  into.mtimeNsec = i64(o + 96);
  into.ctimeSec = i64(o + 104);
  into.ctimeNsec = i64(o + 112);
  return into;
}

/**
 * fstatat(2). `flags`: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH. Pass `into` to fill an existing
 * object instead of allocating one (hot paths).
 */
export function fstatat(dirfd: number, path: string, flags: number, into?: Stat): Stat {
  if (c.fstatat(dirfd, path0(path), P_STAT, flags) !== 0) fail("fstatat", path);
  return decodeStat(into ?? newStat());
}

/** fstat(2) (works on `O_PATH` descriptors too). */
export function fstat(fd: number, into?: Stat): Stat {
  if (c.fstat(fd, P_STAT) !== 0) fail("fstat");
  return decodeStat(into ?? newStat());
}

/** Major number of a glibc-encoded device id. */
export function major(dev: number): number {
  const hi = Math.floor(dev / 4294967296) >>> 0, lo = dev >>> 0;
  return (((hi & 0xfffff000) >>> 0) | ((lo >>> 8) & 0xfff)) >>> 0;
}
/** Minor number of a glibc-encoded device id. */
export function minor(dev: number): number {
  const hi = Math.floor(dev / 4294967296) >>> 0, lo = dev >>> 0;
  return (((hi & 0xfff) << 20) | ((lo >>> 12) & 0xfff00) | (lo & 0xff)) >>> 0;
}
/** glibc `makedev(major, minor)`. */
export function makedev(maj: number, min: number): number {
  const lo = (((maj & 0xfff) << 8) | ((min & 0xfff00) << 12) | (min & 0xff)) >>> 0;
  const hi = ((maj & 0xfffff000) | ((min >>> 20) & 0xfff)) >>> 0;
  return hi * 4294967296 + lo;
}

/** fchmodat(2) (`flags` 0: glibc refuses AT_SYMLINK_NOFOLLOW for most filesystems). */
export function fchmodat(dirfd: number, path: string, mode: number, flags = 0): void {
  if (c.fchmodat(dirfd, path0(path), mode, flags) !== 0) fail("fchmodat", path);
}

/** fchmod(2). Fails with EBADF on `O_PATH` descriptors: use fchmodat(AT_FDCWD, procPath(fd), mode). */
export function fchmod(fd: number, mode: number): void {
  if (c.fchmod(fd, mode) !== 0) fail("fchmod");
}

/**
 * fchownat(2); -1 leaves an id unchanged. `fchownat(fd, "", uid, gid, AT_EMPTY_PATH |
 * AT_SYMLINK_NOFOLLOW)` changes an `O_PATH` descriptor's file (a symlink itself included).
 */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void {
  if (c.fchownat(dirfd, path0(path), uid >>> 0, gid >>> 0, flags) !== 0) fail("fchownat", path);
}

/** faccessat(2): `mode` R_OK|W_OK|X_OK or F_OK; `flags` AT_EACCESS, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH. */
export function faccessat(dirfd: number, path: string, mode: number, flags: number): void {
  if (c.faccessat(dirfd, path0(path), mode, flags) !== 0) fail("faccessat", path);
}

/** A time for {@link utimensat}: a timespec, "now" (UTIME_NOW), or "omit"/undefined (unchanged). */
export type TimeArg = { sec: number; nsec: number } | "now" | "omit" | undefined;

function putTime(off: number, t: TimeArg): void {
  if (t === undefined || t === "omit") {
    setI64(off, 0);
    setI64(off + 8, UTIME_OMIT);
  } else if (t === "now") {
    setI64(off, 0);
    setI64(off + 8, UTIME_NOW);
  } else {
    setI64(off, t.sec);
    setI64(off + 8, t.nsec);
  }
}

/**
 * utimensat(2): set access and modification times with nanosecond precision. With
 * `AT_EMPTY_PATH` and path "" it changes `dirfd`'s own file (`O_PATH` descriptors included).
 */
export function utimensat(dirfd: number, path: string, atime: TimeArg, mtime: TimeArg, flags: number): void {
  putTime(OFF_TIMES, atime);
  putTime(OFF_TIMES + 16, mtime);
  if (c.utimensat(dirfd, path0(path), P_TIMES, flags) !== 0) fail("utimensat", path);
}

/** truncate(2) by path (follows symlinks, so procPath(fd) works for `O_PATH` descriptors). */
export function truncate(path: string, size: number): void {
  if (c.truncate(path0(path), size) !== 0) fail("truncate", path);
}

/** ftruncate(2) (the descriptor must be open for writing). */
export function ftruncate(fd: number, size: number): void {
  if (c.ftruncate(fd, size) !== 0) fail("ftruncate");
}

// ---- names -----------------------------------------------------------------------------------------

/** mkdirat(2). The process umask applies (see {@link umask}). */
export function mkdirat(dirfd: number, name: string, mode: number): void {
  if (c.mkdirat(dirfd, path0(name), mode) !== 0) fail("mkdirat", name);
}

/** mknodat(2): regular files, fifos, sockets, devices (`dev` in glibc makedev encoding). */
export function mknodat(dirfd: number, name: string, mode: number, dev = 0): void {
  if (c.mknodat(dirfd, path0(name), mode, dev) !== 0) fail("mknodat", name);
}

/** symlinkat(2): create `name` in `dirfd` pointing at `target` (stored as is, never resolved). */
export function symlinkat(target: string, dirfd: number, name: string): void {
  if (c.symlinkat(path0(target), dirfd, path1(name)) !== 0) fail("symlinkat", name);
}

/**
 * readlinkat(2): the target's bytes (`nameFromBytes` makes them a name string).
 * `readlinkat(fd, "")` reads an `O_PATH` descriptor's link.
 */
export function readlinkat(dirfd: number, path: string): Buffer {
  const n = Number(c.readlinkat(dirfd, path0(path), P_DATA, DATA_SIZE));
  if (n < 0) fail("readlinkat", path);
  return Buffer.from(bytes.subarray(OFF_DATA, OFF_DATA + n));
}

/** unlinkat(2); `flags` AT_REMOVEDIR removes a directory. */
export function unlinkat(dirfd: number, name: string, flags: number): void {
  if (c.unlinkat(dirfd, path0(name), flags) !== 0) fail("unlinkat", name);
}

/** renameat2(2); `flags` RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (0: plain rename). */
export function renameat2(olddirfd: number, oldName: string, newdirfd: number, newName: string, flags: number): void {
  if (c.renameat2(olddirfd, path0(oldName), newdirfd, path1(newName), flags) !== 0) fail("renameat2", oldName);
}

/**
 * linkat(2). `linkat(fd, "", newdirfd, name, AT_EMPTY_PATH)` links an `O_PATH` descriptor's file
 * (needs CAP_DAC_READ_SEARCH, which root has); unprivileged, use
 * `linkat(AT_FDCWD, procPath(fd), newdirfd, name, AT_SYMLINK_FOLLOW)`.
 */
export function linkat(olddirfd: number, oldPath: string, newdirfd: number, newName: string, flags: number): void {
  if (c.linkat(olddirfd, path0(oldPath), newdirfd, path1(newName), flags) !== 0) fail("linkat", newName);
}

/** A directory entry from {@link getdents}. */
export interface Dirent {
  /** The entry's name as a name string: its exact bytes, escaped where they are not UTF-8. */
  name: string;
  /** Inode number (on the directory's filesystem; a mountpoint shows the covered directory's). */
  ino: number;
  /** Filesystem cookie of the next entry (for lseek; exact only below 2^53). */
  off: number;
  /** DT_* type, DT_UNKNOWN when the filesystem does not say. */
  type: number;
}

/**
 * getdents64(2): the next batch of entries of the open directory `fd` ([] at the end), "." and
 * ".." included. `max` bounds the bytes read per call (≤ 64 KiB).
 */
export function getdents(fd: number, max = 32768): Dirent[] {
  const n = Number(c.getdents64(fd, P_DATA, Math.min(max, DATA_SIZE)));
  if (n < 0) fail("getdents64");
  const out: Dirent[] = [];
  let o = OFF_DATA;
  const end = OFF_DATA + n;
  while (o < end) {
    const reclen = dv.getUint16(o + 16, true);
    const nameStart = o + 19;
    let nameEnd = bytes.indexOf(0, nameStart);
    if (nameEnd < 0 || nameEnd > o + reclen) nameEnd = o + reclen;
    out.push({ ino: u64(o), off: i64(o + 8), type: dv.getUint8(o + 18), name: nameFromBytes(bytes, nameStart, nameEnd) });
    o += reclen;
  }
  return out;
}

// ---- data ------------------------------------------------------------------------------------------

/** fallocate(2): `mode` FALLOC_FL_* (0 allocates and extends). */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  if (c.fallocate(fd, mode, offset, length) !== 0) fail("fallocate");
}

/** lseek(2); SEEK_DATA / SEEK_HOLE find data and holes (ENXIO past the end). */
export function lseek(fd: number, offset: number, whence: number): number {
  const r = Number(c.lseek(fd, offset, whence));
  if (r < 0) fail("lseek");
  return r;
}

/** fsync(2). */
export function fsync(fd: number): void {
  if (c.fsync(fd) !== 0) fail("fsync");
}

/** fdatasync(2). */
export function fdatasync(fd: number): void {
  if (c.fdatasync(fd) !== 0) fail("fdatasync");
}

/** syncfs(2): flush the filesystem `fd` is on. */
export function syncfs(fd: number): void {
  if (c.syncfs(fd) !== 0) fail("syncfs");
}

/**
 * copy_file_range(2) between explicit offsets (null: use and advance the descriptor's own
 * position). Returns the bytes copied (0 at end of input).
 */
export function copy_file_range(fdIn: number, offIn: number | null, fdOut: number, offOut: number | null, length: number, flags = 0): number {
  if (offIn !== null) setI64(OFF_OFFS, offIn);
  if (offOut !== null) setI64(OFF_OFFS + 8, offOut);
  const r = Number(c.copy_file_range(fdIn, offIn === null ? null : P_OFFS, fdOut, offOut === null ? null : (P_OFFS + 8) as Pointer, length, flags));
  if (r < 0) fail("copy_file_range");
  return r;
}

// ---- extended attributes ----------------------------------------------------------------------------

function value(n: number): Uint8Array {
  return new Uint8Array(scratch.slice(OFF_DATA, OFF_DATA + n));
}
function names(n: number): string[] {
  const out: string[] = [];
  let s = OFF_DATA;
  const end = OFF_DATA + n;
  for (let i = s; i < end; i++) {
    if (bytes[i] === 0) {
      if (i > s) out.push(nameFromBytes(bytes, s, i));
      s = i + 1;
    }
  }
  return out;
}
function putValue(v: Uint8Array): number {
  if (v.length > DATA_SIZE) throw new FuseError("E2BIG", `xattr value of ${v.length} bytes exceeds ${DATA_SIZE}`);
  bytes.set(v, OFF_DATA);
  return P_DATA;
}

/** getxattr(2) (follows symlinks: use it with procPath(fd)). Throws ENODATA when absent. */
export function getxattr(path: string, name: string): Uint8Array {
  const n = Number(c.getxattr(path0(path), xname(name), P_DATA, DATA_SIZE));
  if (n < 0) fail("getxattr", name);
  return value(n);
}
/** lgetxattr(2): a symlink's own attribute. */
export function lgetxattr(path: string, name: string): Uint8Array {
  const n = Number(c.lgetxattr(path0(path), xname(name), P_DATA, DATA_SIZE));
  if (n < 0) fail("lgetxattr", name);
  return value(n);
}
/** fgetxattr(2) (not on `O_PATH` descriptors). */
export function fgetxattr(fd: number, name: string): Uint8Array {
  const n = Number(c.fgetxattr(fd, xname(name), P_DATA, DATA_SIZE));
  if (n < 0) fail("fgetxattr", name);
  return value(n);
}

/** setxattr(2); `flags` XATTR_CREATE / XATTR_REPLACE. */
export function setxattr(path: string, name: string, v: Uint8Array, flags = 0): void {
  const p = path0(path), nm = xname(name);
  if (c.setxattr(p, nm, putValue(v), v.length, flags) !== 0) fail("setxattr", name);
}
/** lsetxattr(2). */
export function lsetxattr(path: string, name: string, v: Uint8Array, flags = 0): void {
  const p = path0(path), nm = xname(name);
  if (c.lsetxattr(p, nm, putValue(v), v.length, flags) !== 0) fail("lsetxattr", name);
}
/** fsetxattr(2) (not on `O_PATH` descriptors). */
export function fsetxattr(fd: number, name: string, v: Uint8Array, flags = 0): void {
  const nm = xname(name);
  if (c.fsetxattr(fd, nm, putValue(v), v.length, flags) !== 0) fail("fsetxattr", name);
}

/** listxattr(2): attribute names (name strings). */
export function listxattr(path: string): string[] {
  const n = Number(c.listxattr(path0(path), P_DATA, DATA_SIZE));
  if (n < 0) fail("listxattr", path);
  return names(n);
}
/** llistxattr(2). */
export function llistxattr(path: string): string[] {
  const n = Number(c.llistxattr(path0(path), P_DATA, DATA_SIZE));
  if (n < 0) fail("llistxattr", path);
  return names(n);
}
/** flistxattr(2) (not on `O_PATH` descriptors). */
export function flistxattr(fd: number): string[] {
  const n = Number(c.flistxattr(fd, P_DATA, DATA_SIZE));
  if (n < 0) fail("flistxattr");
  return names(n);
}

/** removexattr(2). */
export function removexattr(path: string, name: string): void {
  const p = path0(path);
  if (c.removexattr(p, xname(name)) !== 0) fail("removexattr", name);
}
/** lremovexattr(2). */
export function lremovexattr(path: string, name: string): void {
  const p = path0(path);
  if (c.lremovexattr(p, xname(name)) !== 0) fail("lremovexattr", name);
}
/** fremovexattr(2) (not on `O_PATH` descriptors). */
export function fremovexattr(fd: number, name: string): void {
  if (c.fremovexattr(fd, xname(name)) !== 0) fail("fremovexattr", name);
}

// ---- filesystems ------------------------------------------------------------------------------------

/** struct statvfs, decoded (block counts in units of `frsize`). */
export interface StatVfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

function decodeStatvfs(): StatVfs {
  const o = OFF_STATVFS;
  return {
    bsize: u64(o), frsize: u64(o + 8), blocks: u64(o + 16), bfree: u64(o + 24), bavail: u64(o + 32),
    files: u64(o + 40), ffree: u64(o + 48), favail: u64(o + 56), fsid: u64(o + 64), flag: u64(o + 72), namemax: u64(o + 80),
  };
}

/** fstatvfs(3) (works on `O_PATH` descriptors). */
export function fstatvfs(fd: number): StatVfs {
  if (c.fstatvfs(fd, P_STATVFS) !== 0) fail("fstatvfs");
  return decodeStatvfs();
}

/** statvfs(3). */
export function statvfs(path: string): StatVfs {
  if (c.statvfs(path0(path), P_STATVFS) !== 0) fail("statvfs", path);
  return decodeStatvfs();
}

/** A file handle from {@link name_to_handle_at}: opaque bytes plus the id of the mount it is on. */
export interface FileHandle {
  /** struct file_handle as bytes (header included): pass to {@link open_by_handle_at}. */
  handle: Uint8Array;
  /** The mount id (as in /proc/self/mountinfo) the file was found on. */
  mountId: number;
}

/**
 * name_to_handle_at(2): a persistent handle for a file, valid as long as the file exists (even
 * after renames). `flags`: AT_EMPTY_PATH, AT_SYMLINK_FOLLOW. EOPNOTSUPP if the filesystem
 * cannot export handles.
 */
export function name_to_handle_at(dirfd: number, path: string, flags: number): FileHandle {
  dv.setUint32(OFF_HANDLE, MAX_HANDLE_SZ, true);
  if (c.name_to_handle_at(dirfd, path0(path), P_HANDLE, P_MNTID, flags) !== 0) fail("name_to_handle_at", path);
  const len = 8 + dv.getUint32(OFF_HANDLE, true);
  return { handle: new Uint8Array(scratch.slice(OFF_HANDLE, OFF_HANDLE + len)), mountId: dv.getInt32(OFF_MNTID, true) };
}

/**
 * open_by_handle_at(2): open the file a handle names; `mountFd` is any descriptor on the same
 * mount. Needs CAP_DAC_READ_SEARCH (root). ESTALE when the file no longer exists.
 */
export function open_by_handle_at(mountFd: number, handle: Uint8Array, flags: number): number {
  if (handle.length < 8 || handle.length > 8 + MAX_HANDLE_SZ) throw new FuseError("EINVAL", "not a file handle");
  bytes.set(handle, OFF_HANDLE);
  const fd = c.open_by_handle_at(mountFd, P_HANDLE, flags);
  if (fd < 0) fail("open_by_handle_at");
  return fd;
}

// ---- credentials ------------------------------------------------------------------------------------

/**
 * setfsuid(2): the uid the *calling thread* uses for filesystem access checks and new files;
 * returns the previous one. A way to create files as a caller: `const old = setfsuid(req.uid);
 * try { ... } finally { setfsuid(old) }` (ops run on one thread and these calls are synchronous).
 * Note that a non-zero fsuid drops the capabilities that let root bypass permission checks.
 */
export function setfsuid(uid: number): number {
  return c.setfsuid(uid >>> 0);
}

/** setfsgid(2): as {@link setfsuid}, for the group. */
export function setfsgid(gid: number): number {
  return c.setfsgid(gid >>> 0);
}

// ---- clocks ------------------------------------------------------------------------------------------

/** Wall-clock time, as precise as the hardware allows. */
export const CLOCK_REALTIME = 0;
/**
 * Wall-clock time as of the last timer tick (a few ms coarse, very cheap): what the kernel stamps
 * file times with (current_time()) unless a finer stamp is needed to show a change.
 */
export const CLOCK_REALTIME_COARSE = 5;

/** clock_gettime(2) of `clock` into `into` (reused, no allocation); returns `into`. */
export function clockGettime<T extends { sec: number; nsec: number }>(clock: number, into: T): T {
  if (c.clock_gettime(clock, P_CLOCK) !== 0) fail("clock_gettime");
  into.sec = i64(OFF_CLOCK);
  into.nsec = dv.getUint32(OFF_CLOCK + 8, true);
  return into;
}

/** umask(2): set the process file-creation mask; returns the previous one. */
export function umask(mask: number): number {
  return c.umask(mask & 0o777);
}

// ---- page memory ---------------------------------------------------------------------------------
export { mapPages, discardPages, pagesAddress, viewPages } from "./pages.ts";
