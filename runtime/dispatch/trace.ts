/**
 * The -d trace's words: request arguments and decoded replies (attributes, entries, open replies,
 * write counts, statfs, xattr sizes). Only called when tracing, so it may allocate; the hot path
 * never reaches it with -d off. Modes and open flags are always octal.
 */
import type { SetAttr, Timespec } from "../api/types.ts";
import {
  Op, ENTRY_OUT_SIZE, DIRENT_SIZE, DIRENTPLUS_SIZE, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NONSEEKABLE,
  FOPEN_CACHE_DIR, FOPEN_STREAM, FOPEN_NOFLUSH, FOPEN_PARALLEL_DIRECT_WRITES, FOPEN_PASSTHROUGH,
} from "../kernel/abi.ts";
import { getU64, getI64 } from "../kernel/codec.ts";

/** A mode or flag word in octal, C-style ("0100644"). */
export const oct = (n: number): string => (n === 0 ? "0" : "0" + (n >>> 0).toString(8));

const time = (t: Timespec | "now"): string => (t === "now" ? "now" : `${t.sec}.${String(t.nsec).padStart(9, "0")}`);

/** SETATTR's changes, e.g. `mode=0644 size=0 mtime=now`. */
export function describeSetAttr(ch: SetAttr): string {
  const out: string[] = [];
  if (ch.mode !== undefined) out.push(`mode=${oct(ch.mode)}`);
  if (ch.uid !== undefined) out.push(`uid=${ch.uid}`);
  if (ch.gid !== undefined) out.push(`gid=${ch.gid}`);
  if (ch.size !== undefined) out.push(`size=${ch.size}`);
  if (ch.atime !== undefined) out.push(`atime=${time(ch.atime)}`);
  if (ch.mtime !== undefined) out.push(`mtime=${time(ch.mtime)}`);
  if (ch.ctime !== undefined) out.push(`ctime=${time(ch.ctime)}`);
  if (ch.fh !== undefined) out.push(`fh=${ch.fh}`);
  if (ch.killSuidgid) out.push("kill_suidgid");
  return out.length === 0 ? "(no change)" : out.join(" ");
}

/** Seconds as (u64 sec @secOff, u32 nsec @nsecOff): "1s", "0.5s". */
function secs(dv: DataView, secOff: number, nsecOff: number): string {
  return `${getU64(dv, secOff) + dv.getUint32(nsecOff, true) / 1e9}s`;
}

/** struct fuse_attr at `off`. */
function attr(dv: DataView, off: number, withIno: boolean): string {
  const mode = dv.getUint32(off + 60, true);
  const rdev = dv.getUint32(off + 76, true);
  return `${withIno ? `ino=${getU64(dv, off)} ` : ""}mode=${oct(mode)} nlink=${dv.getUint32(off + 64, true)} uid=${dv.getUint32(off + 68, true)} gid=${dv.getUint32(off + 72, true)} size=${getU64(dv, off + 8)}${rdev !== 0 ? ` rdev=${rdev}` : ""} mtime=${getI64(dv, off + 32)}.${String(dv.getUint32(off + 52, true)).padStart(9, "0")}`;
}

/** struct fuse_entry_out at `off`. */
function entry(dv: DataView, off: number): string {
  const ino = getU64(dv, off);
  if (ino === 0) return `negative entry, cached ${secs(dv, off + 16, off + 32)}`;
  return `ino=${ino} generation=${getU64(dv, off + 8)} entry_valid=${secs(dv, off + 16, off + 32)} attr_valid=${secs(dv, off + 24, off + 36)} ${attr(dv, off + 40, false)}`;
}

const FOPEN_NAMES: [number, string][] = [
  [FOPEN_DIRECT_IO, "direct_io"], [FOPEN_KEEP_CACHE, "keep_cache"], [FOPEN_NONSEEKABLE, "nonseekable"],
  [FOPEN_CACHE_DIR, "cache_dir"], [FOPEN_STREAM, "stream"], [FOPEN_NOFLUSH, "noflush"],
  [FOPEN_PARALLEL_DIRECT_WRITES, "parallel_direct_writes"], [FOPEN_PASSTHROUGH, "passthrough"],
];

/** struct fuse_open_out at `off`. */
function open(dv: DataView, off: number): string {
  const flags = dv.getUint32(off + 8, true);
  const names = FOPEN_NAMES.filter(([b]) => (flags & b) !== 0).map(([, n]) => n);
  const backing = dv.getInt32(off + 12, true);
  return `fh=${getU64(dv, off)} open_flags=${names.length === 0 ? "0" : names.join("|")}${backing > 0 ? ` backing_id=${backing}` : ""}`;
}

/** Records in a READDIR / READDIRPLUS reply of `len` bytes. */
function dirents(dv: DataView, off: number, len: number, plus: boolean): number {
  const head = plus ? DIRENTPLUS_SIZE : DIRENT_SIZE;
  let n = 0;
  for (let o = 0; o + head <= len; n++) o += (head + dv.getUint32(off + o + head - DIRENT_SIZE + 16, true) + 7) & ~7;
  return n;
}

/**
 * A successful reply of `len` bytes at `dv[off]` for `opcode`, decoded ("" when the byte count says
 * it all). `asked`: the size the request asked for (getxattr/listxattr: 0 asks for the length).
 */
export function describeReply(opcode: number, dv: DataView, off: number, len: number, asked: number): string {
  switch (opcode) {
    case Op.LOOKUP: case Op.MKNOD: case Op.MKDIR: case Op.SYMLINK: case Op.LINK:
      return entry(dv, off);
    case Op.GETATTR: case Op.SETATTR:
      return `attr_valid=${secs(dv, off, off + 8)} ${attr(dv, off + 16, true)}`;
    case Op.OPEN: case Op.OPENDIR:
      return open(dv, off);
    case Op.CREATE: case Op.TMPFILE:
      return `${entry(dv, off)} ${open(dv, off + ENTRY_OUT_SIZE)}`;
    case Op.WRITE: case Op.COPY_FILE_RANGE:
      return `count=${dv.getUint32(off, true)}`;
    case Op.COPY_FILE_RANGE_64:
      return `count=${getU64(dv, off)}`;
    case Op.STATFS:
      return `blocks=${getU64(dv, off)} bfree=${getU64(dv, off + 8)} bavail=${getU64(dv, off + 16)} files=${getU64(dv, off + 24)} ffree=${getU64(dv, off + 32)} bsize=${dv.getUint32(off + 40, true)} namelen=${dv.getUint32(off + 44, true)} frsize=${dv.getUint32(off + 48, true)}`;
    case Op.GETXATTR: case Op.LISTXATTR:
      return asked === 0 ? `size=${dv.getUint32(off, true)}` : "";
    case Op.LSEEK:
      return `offset=${getU64(dv, off)}`;
    case Op.GETLK:
      return `type=${dv.getUint32(off + 16, true)} start=${getU64(dv, off)} end=${getU64(dv, off + 8)} pid=${dv.getUint32(off + 20, true)}`;
    case Op.READLINK:
      return `target=${JSON.stringify(Buffer.from(dv.buffer, dv.byteOffset + off, len).toString("utf8"))}`;
    case Op.READDIR: case Op.READDIRPLUS:
      return `entries=${dirents(dv, off, len, opcode === Op.READDIRPLUS)}`;
    default:
      return "";
  }
}
