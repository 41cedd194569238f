/**
 * The operations of the differential tester, as plain JSON values: the generator makes them, the
 * executor (a child process) performs them on one root, the shrinker removes them, and a
 * reproducer is a list of them. Paths are relative to the executor's root ("" is the root);
 * open files live in numbered slots, so the same op names the same file on both roots.
 */
import { nameByteLength } from "../api/names.ts";

/** Who performs an op: [euid, egid] (root when absent). */
export type As = [number, number];

/** A time argument of utimensat: a timespec, or UTIME_NOW / UTIME_OMIT. */
export type TimeArg = [number, number] | "now" | "omit";

/** Where an xattr call applies: a path (following symlinks unless `nf`), or an open slot. */
export interface XTarget {
  p?: string;
  /** lgetxattr & co: the symlink itself. */
  nf?: boolean;
  s?: number;
}

export type Op = (
  | { k: "open"; p: string; fl: number; m: number; s: number }
  | { k: "tmpfile"; p: string; fl: number; m: number; s: number }
  | { k: "close"; s: number }
  | { k: "write"; s: number; len: number; seed: number }
  /** `fill`: every byte is this value instead of the pattern of `seed` (the concurrent writers' shared files). */
  | { k: "pwrite"; s: number; off: number; len: number; seed: number; fill?: number }
  | { k: "read"; s: number; len: number }
  | { k: "pread"; s: number; off: number; len: number }
  | { k: "lseek"; s: number; off: number; wh: number }
  | { k: "truncate"; p: string; size: number }
  | { k: "ftruncate"; s: number; size: number }
  | { k: "fallocate"; s: number; mode: number; off: number; len: number }
  | { k: "cfr"; si: number; oi: number | null; so: number; oo: number | null; len: number }
  | { k: "fsync"; s: number }
  | { k: "mkdir"; p: string; m: number }
  | { k: "rmdir"; p: string }
  | { k: "unlink"; p: string }
  | { k: "rename"; p: string; q: string; fl: number }
  | { k: "link"; p: string; q: string; follow?: boolean }
  | { k: "linkfd"; s: number; q: string }
  | { k: "symlink"; t: string; p: string }
  | { k: "readlink"; p: string }
  | { k: "chmod"; p: string; m: number }
  | { k: "fchmod"; s: number; m: number }
  | { k: "chown"; p: string; u: number; g: number; nf?: boolean }
  | { k: "fchown"; s: number; u: number; g: number }
  | { k: "utimens"; p: string; a: TimeArg; mt: TimeArg; nf?: boolean }
  | { k: "futimens"; s: number; a: TimeArg; mt: TimeArg }
  | { k: "mknod"; p: string; m: number; dev: number }
  | { k: "stat"; p: string; nf?: boolean }
  | { k: "fstat"; s: number }
  | { k: "access"; p: string; mode: number }
  | { k: "readdir"; p: string }
  | ({ k: "setxattr"; n: string; len: number; seed: number; fl: number } & XTarget)
  | ({ k: "getxattr"; n: string; size: number } & XTarget)
  | ({ k: "listxattr"; size: number } & XTarget)
  | ({ k: "removexattr"; n: string } & XTarget)
  | { k: "statfs" }
  /** A checkpoint: the whole tree (and the open slots) is compared. */
  | { k: "check" }
) & { as?: As };

export type OpKind = Op["k"];

/** An executor's answer to one op: a value or an errno name. */
export type Result = { v?: unknown; e?: string };

// Linux constants the generator and executor share (x86-64 / arm64).
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000,
  O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_DIRECTORY = 0o200000, O_NOFOLLOW = 0o400000, O_NOATIME = 0o1000000,
  O_CLOEXEC = 0o2000000, O_DIRECT = 0o40000, O_PATH = 0o10000000, O_TMPFILE = 0o20000000 | O_DIRECTORY;
export const S_IFMT = 0o170000, S_IFSOCK = 0o140000, S_IFLNK = 0o120000, S_IFREG = 0o100000, S_IFBLK = 0o60000,
  S_IFDIR = 0o40000, S_IFCHR = 0o20000, S_IFIFO = 0o10000;
export const SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;
export const FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2, FALLOC_FL_ZERO_RANGE = 0x10;
export const RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
export const XATTR_CREATE = 1, XATTR_REPLACE = 2;

const OPEN_FLAGS: Array<[number, string]> = [
  [O_CREAT, "O_CREAT"], [O_EXCL, "O_EXCL"], [O_TRUNC, "O_TRUNC"], [O_APPEND, "O_APPEND"], [O_NONBLOCK, "O_NONBLOCK"],
  [O_DIRECTORY, "O_DIRECTORY"], [O_NOFOLLOW, "O_NOFOLLOW"], [O_NOATIME, "O_NOATIME"], [0o20000000, "__O_TMPFILE"],
];

export function openFlags(fl: number): string {
  const acc = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][fl & 3] as string;
  const rest = OPEN_FLAGS.filter(([b]) => (fl & b) === b && !(b === O_DIRECTORY && (fl & 0o20000000) !== 0)).map(([, n]) => n);
  return [acc, ...rest].join("|");
}

function fileType(m: number): string {
  switch (m & S_IFMT) {
    case S_IFIFO: return "S_IFIFO|";
    case S_IFCHR: return "S_IFCHR|";
    case S_IFBLK: return "S_IFBLK|";
    case S_IFSOCK: return "S_IFSOCK|";
    case S_IFREG: return "S_IFREG|";
    case S_IFDIR: return "S_IFDIR|";
    case 0: return "";
    default: return `0${(m & S_IFMT).toString(8)}|`;
  }
}

const oct = (m: number) => "0" + (m & 0o7777).toString(8);
const q = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 20)}…(${nameByteLength(s)} bytes)…${s.slice(-8)}` : s);
const t = (x: TimeArg) => (x === "now" ? "UTIME_NOW" : x === "omit" ? "UTIME_OMIT" : `{${x[0]},${x[1]}}`);
const xt = (o: XTarget) => (o.s !== undefined ? `fd${o.s}` : `${o.nf ? "(nofollow) " : ""}${q(o.p ?? "")}`);
const whence = ["SEEK_SET", "SEEK_CUR", "SEEK_END", "SEEK_DATA", "SEEK_HOLE"];
const fallocModes: Record<number, string> = {
  0: "0", 1: "KEEP_SIZE", 2: "PUNCH_HOLE", 3: "PUNCH_HOLE|KEEP_SIZE", 0x10: "ZERO_RANGE", 0x11: "ZERO_RANGE|KEEP_SIZE",
};

/** One op as a readable line, C-like. */
export function describe(op: Op): string {
  const s = describeOp(op);
  return op.as ? `[as ${op.as[0]}:${op.as[1]}] ${s}` : s;
}

function describeOp(op: Op): string {
  switch (op.k) {
    case "open": return `fd${op.s} = open(${q(op.p)}, ${openFlags(op.fl)}, ${oct(op.m)})`;
    case "tmpfile": return `fd${op.s} = open(${q(op.p)}, O_TMPFILE|${openFlags(op.fl & ~O_TMPFILE)}, ${oct(op.m)})`;
    case "close": return `close(fd${op.s})`;
    case "write": return `write(fd${op.s}, <${op.len} bytes #${op.seed}>)`;
    case "pwrite": return `pwrite(fd${op.s}, <${op.len} bytes ${op.fill !== undefined ? `of ${op.fill}` : `#${op.seed}`}>, ${op.off})`;
    case "read": return `read(fd${op.s}, ${op.len})`;
    case "pread": return `pread(fd${op.s}, ${op.len}, ${op.off})`;
    case "lseek": return `lseek(fd${op.s}, ${op.off}, ${whence[op.wh] ?? op.wh})`;
    case "truncate": return `truncate(${q(op.p)}, ${op.size})`;
    case "ftruncate": return `ftruncate(fd${op.s}, ${op.size})`;
    case "fallocate": return `fallocate(fd${op.s}, ${fallocModes[op.mode] ?? op.mode}, ${op.off}, ${op.len})`;
    case "cfr": return `copy_file_range(fd${op.si}, ${op.oi === null ? "NULL" : `&${op.oi}`}, fd${op.so}, ${op.oo === null ? "NULL" : `&${op.oo}`}, ${op.len}, 0)`;
    case "fsync": return `fsync(fd${op.s})`;
    case "mkdir": return `mkdir(${q(op.p)}, ${oct(op.m)})`;
    case "rmdir": return `rmdir(${q(op.p)})`;
    case "unlink": return `unlink(${q(op.p)})`;
    case "rename": return `renameat2(${q(op.p)}, ${q(op.q)}, ${["0", "RENAME_NOREPLACE", "RENAME_EXCHANGE", "NOREPLACE|EXCHANGE"][op.fl] ?? op.fl})`;
    case "link": return `linkat(${q(op.p)}, ${q(op.q)}, ${op.follow ? "AT_SYMLINK_FOLLOW" : "0"})`;
    case "linkfd": return `linkat(AT_FDCWD, "/proc/self/fd/<fd${op.s}>", ${q(op.q)}, AT_SYMLINK_FOLLOW)`;
    case "symlink": return `symlink(${q(op.t)}, ${q(op.p)})`;
    case "readlink": return `readlink(${q(op.p)})`;
    case "chmod": return `chmod(${q(op.p)}, ${oct(op.m)})`;
    case "fchmod": return `fchmod(fd${op.s}, ${oct(op.m)})`;
    case "chown": return `${op.nf ? "lchown" : "chown"}(${q(op.p)}, ${op.u}, ${op.g})`;
    case "fchown": return `fchown(fd${op.s}, ${op.u}, ${op.g})`;
    case "utimens": return `utimensat(${q(op.p)}, [${t(op.a)}, ${t(op.mt)}], ${op.nf ? "AT_SYMLINK_NOFOLLOW" : "0"})`;
    case "futimens": return `futimens(fd${op.s}, [${t(op.a)}, ${t(op.mt)}])`;
    case "mknod": return `mknod(${q(op.p)}, ${fileType(op.m)}${oct(op.m)}, ${op.dev})`;
    case "stat": return `${op.nf ? "lstat" : "stat"}(${q(op.p)})`;
    case "fstat": return `fstat(fd${op.s})`;
    case "access": return `access(${q(op.p)}, ${op.mode})`;
    case "readdir": return `readdir(${q(op.p)})`;
    case "setxattr": return `setxattr(${xt(op)}, ${q(op.n)}, <${op.len} bytes #${op.seed}>, ${["0", "XATTR_CREATE", "XATTR_REPLACE", "CREATE|REPLACE"][op.fl] ?? op.fl})`;
    case "getxattr": return `getxattr(${xt(op)}, ${q(op.n)}, size ${op.size})`;
    case "listxattr": return `listxattr(${xt(op)}, size ${op.size})`;
    case "removexattr": return `removexattr(${xt(op)}, ${q(op.n)})`;
    case "statfs": return "statvfs(root)";
    case "check": return "-- checkpoint: compare the whole tree --";
  }
}

/** Slots at and above this are not part of snapshots (the concurrent writers' shared files). */
export const PRIVATE_SLOTS = 16;

/** Ops that take an open slot, and which slot fields they read. */
export function slotsUsed(op: Op): number[] {
  switch (op.k) {
    case "cfr": return [op.si, op.so];
    case "open": case "tmpfile": return [];
    default: return "s" in op && typeof op.s === "number" ? [op.s] : [];
  }
}
