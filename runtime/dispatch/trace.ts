/**
 * The -d trace's words: request arguments and decoded replies (attributes, entries, open replies,
 * write counts, statfs, xattr sizes) through the codec's decoders. Only called when tracing, so it may allocate; the hot path
 * never reaches it with -d off. Modes and open flags are always octal.
 */
import type { Attr, SetAttr, Timespec } from "../api/types.ts";
import {
  Op, ENTRY_OUT_SIZE, DIRENT_SIZE, DIRENTPLUS_SIZE, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NONSEEKABLE,
  FOPEN_CACHE_DIR, FOPEN_STREAM, FOPEN_NOFLUSH, FOPEN_PARALLEL_DIRECT_WRITES, FOPEN_PASSTHROUGH,
} from "../kernel/abi.ts";
import {
  decodeAttrOut, decodeEntryOut, decodeOpenOut, decodeStatfs, decodeWriteOut, decodeXattrSize, decodeLseekOut,
  decodeCopyOut64, decodeLkOut, direntRecordSize,
} from "../kernel/codec.ts";

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

const secs = (n: number): string => `${n}s`;

/** struct fuse_attr. */
function attr(a: Required<Attr>, withIno: boolean): string {
  return `${withIno ? `ino=${a.ino} ` : ""}mode=${oct(a.mode)} nlink=${a.nlink} uid=${a.uid} gid=${a.gid} size=${a.size}${a.rdev !== 0 ? ` rdev=${a.rdev}` : ""} mtime=${a.mtimeSec}.${String(a.mtimeNsec).padStart(9, "0")}`;
}

/** struct fuse_entry_out at `off`. */
function entry(dv: DataView, off: number): string {
  const e = decodeEntryOut(dv, off);
  if (e.nodeid === 0) return `negative entry, cached ${secs(e.entryValid)}`;
  return `ino=${e.nodeid} generation=${e.generation} entry_valid=${secs(e.entryValid)} attr_valid=${secs(e.attrValid)} ${attr(e.attr, false)}`;
}

const FOPEN_NAMES: [number, string][] = [
  [FOPEN_DIRECT_IO, "direct_io"], [FOPEN_KEEP_CACHE, "keep_cache"], [FOPEN_NONSEEKABLE, "nonseekable"],
  [FOPEN_CACHE_DIR, "cache_dir"], [FOPEN_STREAM, "stream"], [FOPEN_NOFLUSH, "noflush"],
  [FOPEN_PARALLEL_DIRECT_WRITES, "parallel_direct_writes"], [FOPEN_PASSTHROUGH, "passthrough"],
];

/** struct fuse_open_out at `off`. */
function open(dv: DataView, off: number): string {
  const o = decodeOpenOut(dv, off);
  const names = FOPEN_NAMES.filter(([b]) => (o.openFlags & b) !== 0).map(([, n]) => n);
  return `fh=${o.fh} open_flags=${names.length === 0 ? "0" : names.join("|")}${o.backingId > 0 ? ` backing_id=${o.backingId}` : ""}`;
}

/** Records in a READDIR / READDIRPLUS reply of `len` bytes. */
function dirents(dv: DataView, off: number, len: number, plus: boolean): number {
  const head = plus ? DIRENTPLUS_SIZE : DIRENT_SIZE;
  let n = 0;
  for (let o = 0; o + head <= len; n++) o += direntRecordSize(dv, off + o, plus);
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
    case Op.GETATTR: case Op.SETATTR: {
      const a = decodeAttrOut(dv, off);
      return `attr_valid=${secs(a.attrValid)} ${attr(a.attr, true)}`;
    }
    case Op.OPEN: case Op.OPENDIR:
      return open(dv, off);
    case Op.CREATE: case Op.TMPFILE:
      return `${entry(dv, off)} ${open(dv, off + ENTRY_OUT_SIZE)}`;
    case Op.WRITE: case Op.COPY_FILE_RANGE:
      return `count=${decodeWriteOut(dv, off)}`;
    case Op.COPY_FILE_RANGE_64:
      return `count=${decodeCopyOut64(dv, off)}`;
    case Op.STATFS: {
      const s = decodeStatfs(dv, off);
      return `blocks=${s.blocks} bfree=${s.bfree} bavail=${s.bavail} files=${s.files} ffree=${s.ffree} bsize=${s.bsize} namelen=${s.namelen} frsize=${s.frsize}`;
    }
    case Op.GETXATTR: case Op.LISTXATTR:
      return asked === 0 ? `size=${decodeXattrSize(dv, off)}` : "";
    case Op.LSEEK:
      return `offset=${decodeLseekOut(dv, off)}`;
    case Op.GETLK: {
      const l = decodeLkOut(dv, off);
      return `type=${l.type} start=${l.start} end=${l.end} pid=${l.pid}`;
    }
    case Op.READLINK:
      return `target=${JSON.stringify(Buffer.from(dv.buffer, dv.byteOffset + off, len).toString("utf8"))}`;
    case Op.READDIR: case Op.READDIRPLUS:
      return `entries=${dirents(dv, off, len, opcode === Op.READDIRPLUS)}`;
    default:
      return "";
  }
}
