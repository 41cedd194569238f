/**
 * The executor: a child process that performs differential-test ops on one root.
 *
 *   bun runtime/check/executor.ts          (from source)
 *   furing __check-executor                (inside the binary)
 *
 * Reads requests as JSON lines on stdin and answers each with one JSON line on stdout:
 *   {"i":1,"c":"root","path":"/tmp/x/run1"}      set (and create) the root ops are relative to
 *   {"i":2,"c":"op","op":{"k":"mkdir",...}}     perform one op → {"i":2,"r":{"v":...}|{"e":"ENOENT"}}
 *   {"i":3,"c":"snap"}                           the whole tree, the open slots and statfs
 *   {"i":4,"c":"zeros","s":0,"from":0,"to":9}    are these bytes of slot 0's file all zero? (no atime change)
 *   {"i":5,"c":"reset"}                          close every slot
 *   {"i":6,"c":"wipe","path":"/tmp/x/run1"}      remove a directory tree
 * Syscalls on a FUSE mount are made here, never in the test runner: a blocking FFI call on a
 * hung mount cannot be interrupted, but this process can be killed.
 */
import * as sys from "../api/sys.ts";
import { rmSync } from "node:fs";
import * as ffi from "./ffi.ts";
import {
  O_NOATIME,
  O_NONBLOCK,
  O_CLOEXEC,
  O_DIRECT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_RDONLY,
  O_TMPFILE,
  PRIVATE_SLOTS,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_HOLE,
  SEEK_SET,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  type Op,
  type Result,
  type TimeArg,
  type XTarget,
} from "./ops.ts";
import { pattern } from "./rng.ts";

const AT_FDCWD = sys.AT_FDCWD;
const PAGE = 4096;

/** A file's attributes as the executor reports them (all of struct stat but st_dev). */
export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  /** [sec, nsec] */
  atime: [number, number];
  mtime: [number, number];
  ctime: [number, number];
}

/** One node of a snapshot. */
export interface SnapEntry {
  /** Path relative to the root ("" is the root); for a slot, "fd<N>". */
  p: string;
  st: Attr;
  /** Symlink target. */
  t?: string;
  /** xattrs in listing order: [name, value hash], or an errno name when listing failed. */
  x?: Array<[string, string]> | string;
  /** Regular files: content hash (nonzero pages only, so holes and written zeros agree). */
  h?: string;
  /** Regular files with few nonzero pages: [page index, page hash] (for messages). */
  pages?: Array<[number, string]>;
  /** Regular files: no hole before EOF (SEEK_HOLE(0) == size). */
  dense?: boolean;
  /** Open regular files: the descriptor's file position. */
  pos?: number;
}

export interface Snapshot {
  entries: SnapEntry[];
  slots: SnapEntry[];
  statfs: Record<string, number> | string;
}

let root = "/nonexistent";
const slots: Array<number | undefined> = [];

const abs = (p: string) => (p === "" ? root : `${root}/${p}`);

function attr(st: sys.Stat): Attr {
  return {
    ino: st.ino,
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    rdev: st.rdev,
    size: st.size,
    blocks: st.blocks,
    atime: [st.atimeSec, st.atimeNsec],
    mtime: [st.mtimeSec, st.mtimeNsec],
    ctime: [st.ctimeSec, st.ctimeNsec],
  };
}

function hash(data: Uint8Array): string {
  return Bun.hash(data).toString(36);
}

function slot(s: number): number {
  const fd = slots[s];
  if (fd === undefined) throw new ffi.SysError(9); // EBADF: the same on both roots
  return fd;
}

function time(t: TimeArg): sys.TimeArg {
  return t === "now" || t === "omit" ? t : { sec: t[0], nsec: t[1] };
}

function xtarget(o: XTarget): ffi.XattrTarget {
  return o.s !== undefined ? { fd: slot(o.s) } : { path: abs(o.p ?? ""), nofollow: o.nf === true };
}

function splitNames(n: number): string[] {
  const out: string[] = [];
  let s = 0;
  for (let i = 0; i < n; i++) {
    if (ffi.io[i] === 0) {
      out.push(sys.nameFromBytes(ffi.io, s, i));
      s = i + 1;
    }
  }
  if (s < n) out.push(sys.nameFromBytes(ffi.io, s, n) + "<no NUL>");
  return out;
}

function readdir(path: string): Array<[string, number]> {
  const fd = sys.openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
  try {
    const out: Array<[string, number]> = [];
    for (;;) {
      const batch = sys.getdents(fd);
      if (batch.length === 0) return out;
      for (const d of batch) out.push([d.name, d.type]);
    }
  } finally {
    sys.close(fd);
  }
}

function perform(op: Op): unknown {
  switch (op.k) {
    case "open":
    case "tmpfile": {
      if (slots[op.s] !== undefined) throw new ffi.SysError(24); // EMFILE: the generator never does this
      const fl = (op.k === "tmpfile" ? op.fl | O_TMPFILE : op.fl) | O_NONBLOCK | O_CLOEXEC;
      const fd = sys.openat(AT_FDCWD, abs(op.p), fl, op.m);
      slots[op.s] = fd;
      ffi.noReadahead(fd);
      return undefined;
    }
    case "close": {
      const fd = slot(op.s);
      slots[op.s] = undefined;
      sys.close(fd);
      return undefined;
    }
    case "write":
      pattern(op.seed, op.len, ffi.io);
      return ffi.write(slot(op.s), op.len);
    case "pwrite":
      if (op.fill !== undefined) ffi.io.fill(op.fill, 0, Math.min(op.len, ffi.IO_MAX));
      else pattern(op.seed, op.len, ffi.io);
      return ffi.pwrite(slot(op.s), op.len, op.off);
    case "read": {
      const n = ffi.read(slot(op.s), op.len);
      return [n, hash(ffi.io.subarray(0, n))];
    }
    case "pread": {
      const n = ffi.pread(slot(op.s), op.len, op.off);
      return [n, hash(ffi.io.subarray(0, n))];
    }
    case "lseek": {
      const fd = slot(op.s);
      if (op.wh !== SEEK_DATA && op.wh !== SEEK_HOLE) return sys.lseek(fd, op.off, op.wh);
      // SEEK_DATA/SEEK_HOLE answers may legitimately differ (allocation granularity): report the
      // answer but leave the position as it was, so later reads and writes stay comparable.
      const pos = sys.lseek(fd, 0, SEEK_CUR);
      try {
        return sys.lseek(fd, op.off, op.wh);
      } finally {
        sys.lseek(fd, pos, SEEK_SET);
      }
    }
    case "truncate":
      return sys.truncate(abs(op.p), op.size);
    case "ftruncate":
      return sys.ftruncate(slot(op.s), op.size);
    case "fallocate":
      return sys.fallocate(slot(op.s), op.mode, op.off, op.len);
    case "cfr":
      return sys.copy_file_range(slot(op.si), op.oi, slot(op.so), op.oo, op.len, 0);
    case "fsync":
      return sys.fsync(slot(op.s));
    case "mkdir":
      return sys.mkdirat(AT_FDCWD, abs(op.p), op.m);
    case "rmdir":
      return sys.unlinkat(AT_FDCWD, abs(op.p), sys.AT_REMOVEDIR);
    case "unlink":
      return sys.unlinkat(AT_FDCWD, abs(op.p), 0);
    case "rename":
      return sys.renameat2(AT_FDCWD, abs(op.p), AT_FDCWD, abs(op.q), op.fl);
    case "link":
      return sys.linkat(AT_FDCWD, abs(op.p), AT_FDCWD, abs(op.q), op.follow ? sys.AT_SYMLINK_FOLLOW : 0);
    case "linkfd":
      return sys.linkat(AT_FDCWD, `/proc/self/fd/${slot(op.s)}`, AT_FDCWD, abs(op.q), sys.AT_SYMLINK_FOLLOW);
    case "symlink":
      return sys.symlinkat(op.t, AT_FDCWD, abs(op.p));
    case "readlink":
      return sys.nameFromBytes(sys.readlinkat(AT_FDCWD, abs(op.p)));
    case "chmod":
      return sys.fchmodat(AT_FDCWD, abs(op.p), op.m, 0);
    case "fchmod":
      return sys.fchmod(slot(op.s), op.m);
    case "chown":
      return sys.fchownat(AT_FDCWD, abs(op.p), op.u, op.g, op.nf ? sys.AT_SYMLINK_NOFOLLOW : 0);
    case "fchown":
      return sys.fchownat(slot(op.s), "", op.u, op.g, sys.AT_EMPTY_PATH);
    case "utimens":
      return sys.utimensat(AT_FDCWD, abs(op.p), time(op.a), time(op.mt), op.nf ? sys.AT_SYMLINK_NOFOLLOW : 0);
    case "futimens":
      return sys.utimensat(slot(op.s), "", time(op.a), time(op.mt), sys.AT_EMPTY_PATH);
    case "mknod":
      return sys.mknodat(AT_FDCWD, abs(op.p), op.m, op.dev);
    case "stat":
      return attr(sys.fstatat(AT_FDCWD, abs(op.p), op.nf ? sys.AT_SYMLINK_NOFOLLOW : 0));
    case "fstat":
      return attr(sys.fstat(slot(op.s)));
    case "access":
      return sys.faccessat(AT_FDCWD, abs(op.p), op.mode, sys.AT_EACCESS);
    case "readdir":
      return readdir(abs(op.p));
    case "setxattr": {
      const t = xtarget(op);
      pattern(op.seed, op.len, ffi.io);
      return ffi.setxattr(t, op.n, op.len, op.fl);
    }
    case "getxattr": {
      const n = ffi.getxattr(xtarget(op), op.n, op.size);
      return op.size === 0 ? n : [n, hash(ffi.io.subarray(0, n))];
    }
    case "listxattr": {
      const n = ffi.listxattr(xtarget(op), op.size);
      return op.size === 0 ? n : splitNames(n);
    }
    case "removexattr": {
      if (op.s !== undefined) return sys.fremovexattr(slot(op.s), op.n);
      return (op.nf ? sys.lremovexattr : sys.removexattr)(abs(op.p ?? ""), op.n);
    }
    case "statfs":
      return statfs();
    case "check":
      throw new Error("a checkpoint is not an op");
  }
}

function statfs(): Record<string, number> {
  const s = sys.statvfs(root);
  return { bsize: s.bsize, frsize: s.frsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.favail, namemax: s.namemax };
}

function errName(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string") return code;
  throw e;
}

function run(op: Op): Result {
  const as = op.as;
  if (as) {
    process.setegid!(as[1]);
    process.seteuid!(as[0]);
  }
  try {
    const v = perform(op);
    return v === undefined ? {} : { v };
  } catch (e) {
    return { e: errName(e) };
  } finally {
    if (as) {
      process.seteuid!(0);
      process.setegid!(0);
    }
  }
}

// ---- snapshots --------------------------------------------------------------------------------

const ZERO = new Uint8Array(PAGE);
/** Files up to this size are read whole; larger ones by their data extents (SEEK_DATA/SEEK_HOLE). */
const READ_WHOLE = 8 << 20;
/** Never read more than this of one file (a filesystem reporting absurd data extents). */
const READ_CAP = 512 << 20;

/** Hash of the nonzero pages of `fd`'s content in [0, size), and their map when short. */
function content(fd: number, size: number): { h: string; pages?: Array<[number, string]> } {
  const hasher = new Bun.CryptoHasher("sha1");
  const pages: Array<[number, string]> = [];
  let nonzero = 0;
  let total = 0;
  const idxBuf = new ArrayBuffer(8);
  const idx = new DataView(idxBuf);
  const scan = (from: number, to: number) => {
    // from is page aligned
    for (let pos = from; pos < to; ) {
      const want = Math.min(ffi.IO_MAX, to - pos);
      const n = ffi.pread(fd, want, pos);
      if (n === 0) break;
      total += n;
      for (let o = 0; o < n; o += PAGE) {
        const page = ffi.io.subarray(o, Math.min(o + PAGE, n));
        if (Buffer.compare(page, ZERO.subarray(0, page.length)) === 0) continue;
        const index = (pos + o) / PAGE;
        idx.setFloat64(0, index);
        hasher.update(new Uint8Array(idxBuf));
        hasher.update(page);
        nonzero++;
        if (pages.length <= 256) pages.push([index, hash(page)]);
      }
      pos += n;
      if (total > READ_CAP) throw new Error(`more than ${READ_CAP} bytes of data`);
    }
  };
  if (size <= READ_WHOLE) scan(0, size);
  else {
    let pos = 0;
    while (pos < size) {
      let d: number;
      try {
        d = sys.lseek(fd, pos, SEEK_DATA);
      } catch (e) {
        if (errName(e) === "ENXIO") break;
        throw e;
      }
      const h = Math.min(sys.lseek(fd, d, SEEK_HOLE), size);
      const start = Math.floor(d / PAGE) * PAGE;
      scan(start, h);
      pos = Math.max(h, start + PAGE);
    }
  }
  return { h: `${nonzero}:${hasher.digest("hex").slice(0, 16)}`, pages: pages.length <= 256 ? pages : undefined };
}

function xattrs(path: string): Array<[string, string]> | string {
  try {
    const names = sys.llistxattr(path);
    return names.map((n) => {
      try {
        return [n, hash(sys.lgetxattr(path, n))];
      } catch (e) {
        return [n, errName(e)];
      }
    });
  } catch (e) {
    return errName(e);
  }
}

function describeFile(p: string, path: string, st: sys.Stat, e: SnapEntry): void {
  if ((st.mode & S_IFMT) !== S_IFREG) return;
  // O_NOATIME: the snapshot observes and changes nothing (each side reads only its own data
  // extents of a sparse file, so reads would stamp atime on one side only). O_DIRECT: no
  // readahead, whose READ requests could reach a FUSE daemon after the snapshot moved on.
  const fl = O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC | (p.startsWith("fd") ? 0 : O_NOFOLLOW);
  for (const direct of [O_DIRECT, 0]) {
    let fd: number;
    try {
      fd = sys.openat(AT_FDCWD, path, fl | direct);
    } catch (err) {
      if (direct !== 0) continue;
      throw err;
    }
    try {
      Object.assign(e, content(fd, st.size));
      e.dense = st.size === 0 || sys.lseek(fd, 0, SEEK_HOLE) >= st.size;
      return;
    } catch (err) {
      // a disk filesystem (passthrough's native reference) wants O_DIRECT reads aligned: read
      // it through the page cache instead (no daemon there whose readahead could come late)
      if (direct === 0 || errName(err) !== "EINVAL") throw err;
    } finally {
      sys.close(fd);
    }
  }
}

function snapshot(): Snapshot {
  const entries: SnapEntry[] = [];
  const walk = (p: string) => {
    const path = abs(p);
    const st = sys.fstatat(AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW);
    const e: SnapEntry = { p, st: attr(st) };
    entries.push(e);
    const type = st.mode & S_IFMT;
    if (type === S_IFLNK) e.t = sys.nameFromBytes(sys.readlinkat(AT_FDCWD, path));
    e.x = xattrs(path);
    describeFile(p, path, st, e);
    if (type === S_IFDIR) for (const [name] of readdir(path)) if (name !== "." && name !== "..") walk(p === "" ? name : `${p}/${name}`);
  };
  walk("");
  const open: SnapEntry[] = [];
  slots.forEach((fd, s) => {
    if (fd === undefined || s >= PRIVATE_SLOTS) return;
    const st = sys.fstat(fd);
    const e: SnapEntry = { p: `fd${s}`, st: attr(st) };
    if ((st.mode & S_IFMT) === S_IFREG) e.pos = sys.lseek(fd, 0, SEEK_CUR);
    describeFile(e.p, `/proc/self/fd/${fd}`, st, e);
    open.push(e);
  });
  let fs: Snapshot["statfs"];
  try {
    fs = statfs();
  } catch (e) {
    fs = errName(e);
  }
  return { entries, slots: open, statfs: fs };
}

/**
 * Are bytes [from, to) of the file all zero (to -1: up to EOF)? Reads through a new descriptor
 * with O_NOATIME, so asking changes nothing the comparison looks at. Also gives the size.
 */
function zeros(path: string, from: number, to: number): { zero: boolean; size: number } {
  const fd = sys.openat(AT_FDCWD, path, O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
  try {
    const size = sys.fstat(fd).size;
    return { zero: zeroRange(fd, from, to < 0 ? size : Math.min(to, size)), size };
  } finally {
    sys.close(fd);
  }
}

function zeroRange(fd: number, from: number, to: number): boolean {
  let pos = from;
  while (pos < to) {
    let d: number;
    try {
      d = sys.lseek(fd, pos, SEEK_DATA);
    } catch (e) {
      if (errName(e) === "ENXIO") return true;
      throw e;
    }
    if (d >= to) return true;
    const h = Math.min(sys.lseek(fd, d, SEEK_HOLE), to);
    for (let p = d; p < h; ) {
      const n = ffi.pread(fd, Math.min(ffi.IO_MAX, h - p), p);
      if (n === 0) return true;
      for (let i = 0; i < n; i++) if (ffi.io[i] !== 0) return false;
      p += n;
    }
    pos = h;
  }
  return true;
}

// ---- the request loop ---------------------------------------------------------------------------

type Request =
  | { i: number; c: "root"; path: string }
  | { i: number; c: "op"; op: Op }
  | { i: number; c: "snap" }
  | { i: number; c: "zeros"; s?: number; p?: string; from: number; to: number }
  | { i: number; c: "reset" }
  | { i: number; c: "wipe"; path: string }
  | { i: number; c: "read"; path: string };

function handle(req: Request): unknown {
  switch (req.c) {
    case "root":
      try {
        sys.mkdirat(AT_FDCWD, req.path, 0o755);
      } catch (e) {
        if (errName(e) !== "EEXIST") throw e;
      }
      sys.fchmodat(AT_FDCWD, req.path, 0o777, 0); // everyone may create in it (ops run as several users)
      root = req.path;
      return { ok: true };
    case "op":
      return { r: run(req.op) };
    case "snap":
      return { snap: snapshot() };
    case "zeros":
      return zeros(req.s !== undefined ? `/proc/self/fd/${slot(req.s)}` : abs(req.p ?? ""), req.from, req.to);
    case "reset":
      slots.forEach((fd, s) => {
        if (fd !== undefined) {
          try {
            sys.close(fd);
          } catch {}
        }
        slots[s] = undefined;
      });
      return { ok: true };
    case "wipe":
      rmSync(req.path, { recursive: true, force: true });
      return { ok: true };
    case "read": {
      // a whole (small) file, base64
      const fd = sys.openat(AT_FDCWD, req.path, O_RDONLY | O_CLOEXEC);
      try {
        const size = sys.fstat(fd).size;
        if (size > 64 << 20) throw new Error(`${req.path}: ${size} bytes is too big to read whole`);
        const out = Buffer.alloc(size);
        for (let pos = 0; pos < size; ) {
          const n = ffi.pread(fd, size - pos, pos);
          if (n === 0) break;
          out.set(ffi.io.subarray(0, n), pos);
          pos += n;
        }
        return { size, data: out.toString("base64") };
      } finally {
        sys.close(fd);
      }
    }
  }
}

/** Serves requests from stdin until it closes (the executor process's main). */
export async function serveExecutor(): Promise<void> {
  process.setgroups?.([]);
  sys.umask(0o022);
  const decoder = new TextDecoder();
  let buf = "";
  const out = (s: string) => process.stdout.write(s);
  for await (const chunk of Bun.stdin.stream()) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    let replies = "";
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === "") continue;
      let req: Request;
      try {
        req = JSON.parse(line);
      } catch {
        replies += JSON.stringify({ i: -1, error: `bad request: ${line.slice(0, 200)}` }) + "\n";
        continue;
      }
      try {
        replies += JSON.stringify({ i: req.i, ...(handle(req) as object) }) + "\n";
      } catch (e) {
        replies += JSON.stringify({ i: req.i, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }) + "\n";
      }
    }
    if (replies) out(replies);
  }
}

if (import.meta.main) await serveExecutor();
