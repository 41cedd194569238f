/**
 * One handler per FUSE opcode: decode the request's arguments, call the plugin op, and choose the
 * encoder for its result. A handler returns the op's value (or Promise), or NOSYS when the plugin
 * lacks the op and FUSE has no sensible default (libfuse's low-level defaults are kept: open,
 * opendir, release, releasedir and statfs succeed without an op).
 */
import type { Filesystem, SetAttr, Timespec, FileLock, Entry, OpenReply } from "../api/types.ts";
import {
  Op, IN_HEADER_SIZE, FUSE_KERNEL_MINOR_VERSION, FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE, FATTR_ATIME,
  FATTR_MTIME, FATTR_FH, FATTR_ATIME_NOW, FATTR_MTIME_NOW, FATTR_CTIME, FATTR_KILL_SUIDGID, FATTR_CHANGES,
  FUSE_WRITE_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID,
  FUSE_GETATTR_FH, FUSE_FSYNC_FDATASYNC, FUSE_LK_FLOCK, ENTRY_OUT_SIZE, OPEN_OUT_SIZE,
} from "../kernel/abi.ts";
import { inSize } from "../kernel/opcodes.ts";
import {
  getU64, getI64, encodeAttrOut, encodeEntry, encodeOpenOut, encodeStatfs, encodeWriteOut, encodeXattrSize,
  encodeLseekOut, encodeCopyOut64, encodeLkOut, ReplyError,
} from "../kernel/codec.ts";
import { nameFromBytes, nameByteLength, writeName, nameStringError } from "../api/names.ts";
import type { Call, Encoder } from "./call.ts";
import { oct, describeSetAttr } from "./trace.ts";

/**
 * How an error log shows a stack. The plugin host maps plugin frames through the generations'
 * source maps and folds furing's own; it is handed in so the dispatcher knows nothing of the host.
 */
export interface StackFormat {
  /** The whole stack, for a plugin's throw. */
  fold(stack: string): string;
  /** Only the frames in plugin code ("" if none), for a reply that failed validation. */
  pluginFrames(stack: string | undefined): string;
}

/** Stacks as thrown (no plugin host: tests, tools). */
export const RAW_STACKS: StackFormat = { fold: (stack) => stack, pluginFrames: () => "" };

/** Mount-wide reply parameters the handlers need. */
export interface OpConfig {
  entryTimeout: number;
  attrTimeout: number;
  /** FOPEN_* bits added to every open/create reply (direct_io, kernel_cache). */
  openDefaults: number;
  /** FUSE_SETXATTR_EXT negotiated: setxattr's header is 16 bytes, else 8. */
  setxattrExt: boolean;
  /** Negotiated protocol minor (input sizes of older minors; default 45). */
  minor?: number;
  /**
   * FUSE_HANDLE_KILLPRIV_V2 negotiated (the plugin declared `killPrivileges`): a SETATTR that asks
   * for no change is the kernel's way of saying "remove privileges" and reaches the plugin as
   * `killSuidgid`.
   */
  killPriv?: boolean;
  /** -d: fill Call.trace with the arguments that matter. */
  trace: boolean;
  /** How error logs show stacks (unset: {@link RAW_STACKS}). */
  stacks?: StackFormat;
  /**
   * Told of every FORGET so the runtime knows which nodes the kernel still holds; true when the
   * kernel holds `ino` no more (then the plugin's `forgotten` runs).
   */
  onForget?: (ino: number, nlookup: number) => boolean;
  /** Told of every RELEASE/RELEASEDIR (the node's open-handle count). */
  onRelease?: (ino: number) => void;
  /** Data for a RETRIEVE notification (NOTIFY_REPLY): unique halves and the retrieved bytes. */
  onNotifyReply?: (uniqueLo: number, uniqueHi: number, data: Uint8Array) => void;
  /** Kernel passthrough, when negotiated: registers backing files for open replies. */
  backing?: { open(fd: number, fh: number, nodeid: number): number; release(fh: number): void } | null;
  log?: (line: string) => void;
}

export const NOSYS = Symbol("ENOSYS");
export const NO_REPLY = Symbol("no reply");

export type Handler = (c: Call, cfg: OpConfig) => unknown;

// ---- argument access -------------------------------------------------------------------

/** Offset of the first argument after the op header (in `slot.data`). */
function argBase(c: Call, cfg: OpConfig): number {
  const s = c.slot;
  return s.ringLayout ? 0 : IN_HEADER_SIZE + inSize(c.opcode, cfg.minor ?? FUSE_KERNEL_MINOR_VERSION, cfg.setxattrExt);
}

/** End of the request's arguments (in `slot.data`). */
function argEnd(c: Call): number {
  const s = c.slot;
  return (s.ringLayout ? 0 : IN_HEADER_SIZE) + s.payloadLen;
}

/** NUL-terminated name argument at `off`, byte-exact (api/names.ts). */
function str(c: Call, off: number): string {
  const s = c.slot;
  const end = s.dataBytes.indexOf(0, off);
  if (end < 0 || end >= argEnd(c)) throw new ReplyError(`${c.op}: malformed request (unterminated name)`);
  return nameFromBytes(s.dataText, off, end);
}

/** Where the argument after the name at `off` starts: past its NUL (`str` checked that it has one). */
function afterName(c: Call, off: number): number {
  return c.slot.dataBytes.indexOf(0, off) + 1;
}

const u32 = (c: Call, rel: number) => c.slot.hdr.getUint32(c.slot.opInOff + rel, true);
const u64 = (c: Call, rel: number) => getU64(c.slot.hdr, c.slot.opInOff + rel);
const i64 = (c: Call, rel: number) => getI64(c.slot.hdr, c.slot.opInOff + rel);

// ---- encoders --------------------------------------------------------------------------


const encNone: Encoder = () => 0;
const encEntry: Encoder = (c, e: Entry) => encodeEntry(c.slot.data, c.slot.replyOff, e, c.cfg.entryTimeout, c.cfg.attrTimeout);
const encAttr: Encoder = (c, a) => encodeAttrOut(c.slot.data, c.slot.replyOff, a, c.cfg.attrTimeout);
/** Backing id for an open reply that asks for kernel passthrough (0 = none). */
function backingId(c: Call, r: OpenReply | void | null | undefined, nodeid: number): number {
  if (r === undefined || r === null || typeof r !== "object" || r.backingFd === undefined) return 0;
  const b = c.cfg.backing;
  if (b === undefined || b === null) return 0;
  if (!Number.isInteger(r.backingFd) || r.backingFd < 0) throw new ReplyError(`backingFd must be a file descriptor (got ${String(r.backingFd)})`);
  return b.open(r.backingFd, r.fh ?? 0, nodeid);
}
const encOpen: Encoder = (c, r: OpenReply | void) => encodeOpenOut(c.slot.data, c.slot.replyOff, r, c.cfg.openDefaults, backingId(c, r, c.nodeid));
const encStatfs: Encoder = (c, s) => encodeStatfs(c.slot.data, c.slot.replyOff, s ?? DEFAULT_STATFS);
const encCreate: Encoder = (c, r: { entry: Entry } & OpenReply) => {
  if (typeof r !== "object" || r === null || typeof r.entry !== "object") throw new ReplyError(`${c.op} must return { entry, fh?, ... }`);
  encodeEntry(c.slot.data, c.slot.replyOff, r.entry, c.cfg.entryTimeout, c.cfg.attrTimeout);
  encodeOpenOut(c.slot.data, c.slot.replyOff + ENTRY_OUT_SIZE, r, c.cfg.openDefaults, backingId(c, r, r.entry.ino));
  return ENTRY_OUT_SIZE + OPEN_OUT_SIZE;
};
const encWrite: Encoder = (c, n) => encodeWriteOut(c.slot.data, c.slot.replyOff, n, c.limit, c.op);
/** COPY_FILE_RANGE answers fuse_write_out too, whose count is a u32. */
const encCopy32: Encoder = (c, n) => encodeWriteOut(c.slot.data, c.slot.replyOff, n, 0xffffffff, c.op);
const encCopy64: Encoder = (c, n) => encodeCopyOut64(c.slot.data, c.slot.replyOff, n);

/**
 * Bytes (string or Uint8Array) copied into the reply, at most `max` of them. `name`: the string
 * is a name string (link targets, xattrs: escaped bytes become those bytes), else UTF-8 text.
 */
function putBytes(c: Call, v: unknown, max: number, name = false): number {
  const s = c.slot;
  if (typeof v === "string") {
    const n = name ? nameByteLength(v) : Buffer.byteLength(v);
    if (n < 0) throw new ReplyError(`${c.op}: ${nameStringError(v)}`);
    if (n > max) return -n;
    if (name) writeName(v, s.dataText, s.replyOff, n);
    else s.dataText.write(v, s.replyOff, n, "utf8");
    return n;
  }
  if (v instanceof Uint8Array) {
    if (v.length > max) return -v.length;
    // a view of the reply area itself (zero-copy readers) needs no copy
    if (!(v.buffer === s.dataBytes.buffer && v.byteOffset === s.dataBytes.byteOffset + s.replyOff)) s.dataBytes.set(v, s.replyOff);
    return v.length;
  }
  throw new ReplyError(`${c.op} must return a string or Uint8Array (got ${typeof v})`);
}

const encRead: Encoder = (c, v) => {
  if (typeof v === "number") {
    if (!Number.isInteger(v) || v < 0 || v > c.limit) throw new ReplyError(`read must return a byte count 0..${c.limit} (got ${v})`);
    return v;
  }
  const n = putBytes(c, v, c.limit);
  if (n < 0) throw new ReplyError(`read returned ${-n} bytes, more than the ${c.limit} asked`);
  return n;
};
const encReadlink: Encoder = (c, v) => {
  const n = putBytes(c, v, Math.min(c.slot.replyCap, 4096), true);
  if (n < 0) throw new ReplyError(`readlink target of ${-n} bytes exceeds PATH_MAX`);
  return n;
};

/** getxattr/listxattr: size 0 asks for the length; too small a buffer is ERANGE. */
function xattrReply(c: Call, v: unknown): number {
  const s = c.slot;
  const len = typeof v === "string" ? nameByteLength(v) : v instanceof Uint8Array ? v.length : -2;
  if (len === -2) throw new ReplyError(`${c.op} must return a string or Uint8Array`);
  if (len < 0) throw new ReplyError(`${c.op}: ${nameStringError(v as string)}`);
  if (c.limit === 0) return encodeXattrSize(s.data, s.replyOff, len);
  if (len > c.limit) throw ERANGE;
  return putBytes(c, v, c.limit, true);
}
const ERANGE = Object.freeze({ errno: 34 });
const encGetxattr: Encoder = xattrReply;
const encListxattr: Encoder = (c, names) => {
  if (!Array.isArray(names)) throw new ReplyError("listxattr must return an array of names");
  let joined = "";
  for (const n of names) {
    if (typeof n !== "string" || n.length === 0 || n.includes("\0")) throw new ReplyError("listxattr names must be non-empty strings without NUL");
    joined += n + "\0";
  }
  return xattrReply(c, joined);
};
const encLseek: Encoder = (c, off) => encodeLseekOut(c.slot.data, c.slot.replyOff, off);
const encLk: Encoder = (c, l: FileLock) => encodeLkOut(c.slot.data, c.slot.replyOff, l);

const DEFAULT_STATFS = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 512, namelen: 255 };

// ---- handlers --------------------------------------------------------------------------

const handlers: (Handler | undefined)[] = [];
/** Register the handler of opcode `op`. */
const handle = (op: number, fn: Handler) => (handlers[op] = fn);

function ts(sec: number, nsec: number): Timespec {
  return { sec, nsec };
}

handle(Op.LOOKUP, (c, cfg) => {
  const f = c.fs.lookup;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = JSON.stringify(name);
  c.enc = encEntry;
  return f.call(c.fs, c, c.nodeid, name);
});
/** FORGET is never answered: a plugin's forget that throws or rejects is only logged. */
function forget(c: Call, cfg: OpConfig, ino: number, n: number): void {
  const gone = cfg.onForget?.(ino, n) === true;
  const f = c.fs.forget;
  if (f !== undefined) guarded(cfg, "forget", ino, () => f.call(c.fs, ino, n));
  if (gone) forgotten(c.fs, cfg, ino);
}

/** The kernel holds `ino` no more: the plugin's `forgotten` (after its `forget`), errors logged. */
export function forgotten(fs: Filesystem, cfg: OpConfig, ino: number): void {
  const f = fs.forgotten;
  if (f !== undefined) guarded(cfg, "forgotten", ino, () => f.call(fs, ino));
}

/** Run a plugin op nobody awaits (forget, forgotten, compensations): a throw or rejection is only logged. */
export function guarded(cfg: OpConfig, op: string, ino: number, run: () => unknown): void {
  try {
    const r = run();
    if (r instanceof Promise) r.catch((e) => cfg.log?.(`furing: ${op} (node ${ino}) failed: ${e instanceof Error ? (cfg.stacks ?? RAW_STACKS).fold(e.stack ?? e.message) : String(e)}`));
  } catch (e) {
    cfg.log?.(`furing: ${op} (node ${ino}) threw: ${e instanceof Error ? (cfg.stacks ?? RAW_STACKS).fold(e.stack ?? e.message) : String(e)}`);
  }
}
handle(Op.FORGET, (c, cfg) => {
  if (cfg.trace) c.trace = `nlookup=${u64(c, 0)}`;
  forget(c, cfg, c.nodeid, u64(c, 0));
  return NO_REPLY;
});
handle(Op.BATCH_FORGET, (c, cfg) => {
  const count = u32(c, 0);
  const d = c.slot.data;
  let o = argBase(c, cfg);
  const end = argEnd(c);
  if (cfg.trace) {
    const first: string[] = [];
    for (let i = 0, p = o; i < count && i < 8 && p + 16 <= end; i++, p += 16) first.push(`${getU64(d, p)}:${getU64(d, p + 8)}`);
    c.trace = `count=${count} [ino:nlookup ${first.join(" ")}${count > 8 ? " ..." : ""}]`;
  }
  for (let i = 0; i < count && o + 16 <= end; i++, o += 16) {
    forget(c, cfg, getU64(d, o), getU64(d, o + 8));
  }
  return NO_REPLY;
});
handle(Op.GETATTR, (c) => {
  const f = c.fs.getattr;
  if (f === undefined) return NOSYS;
  c.enc = encAttr;
  return f.call(c.fs, c, c.nodeid, (u32(c, 0) & FUSE_GETATTR_FH) !== 0 ? u64(c, 8) : undefined);
});
handle(Op.SETATTR, (c, cfg) => {
  const f = c.fs.setattr;
  if (f === undefined) return NOSYS;
  const valid = u32(c, 0);
  const ch: SetAttr = {};
  if (valid & FATTR_MODE) ch.mode = u32(c, 68);
  if (valid & FATTR_UID) ch.uid = u32(c, 76);
  if (valid & FATTR_GID) ch.gid = u32(c, 80);
  if (valid & FATTR_SIZE) ch.size = u64(c, 16);
  if (valid & FATTR_ATIME_NOW) ch.atime = "now";
  else if (valid & FATTR_ATIME) ch.atime = ts(i64(c, 32), u32(c, 56));
  if (valid & FATTR_MTIME_NOW) ch.mtime = "now";
  else if (valid & FATTR_MTIME) ch.mtime = ts(i64(c, 40), u32(c, 60));
  if (valid & FATTR_CTIME) ch.ctime = ts(i64(c, 48), u32(c, 64));
  if (valid & FATTR_FH) ch.fh = u64(c, 8);
  // With HANDLE_KILLPRIV_V2 the kernel strips its own ATTR_KILL_SUID/SGID (file_remove_privs() for
  // fallocate, copy_file_range, the first write; chown(f, -1, -1)) and what is left is a SETATTR
  // with nothing to change (fuse_setattr): the filesystem is to kill privileges itself.
  if ((valid & FATTR_KILL_SUIDGID) !== 0 || (cfg.killPriv === true && (valid & FATTR_CHANGES) === 0)) ch.killSuidgid = true;
  if (cfg.trace) c.trace = describeSetAttr(ch);
  c.enc = encAttr;
  return f.call(c.fs, c, c.nodeid, ch);
});
handle(Op.READLINK, (c) => {
  const f = c.fs.readlink;
  if (f === undefined) return NOSYS;
  c.enc = encReadlink;
  return f.call(c.fs, c, c.nodeid);
});
handle(Op.SYMLINK, (c, cfg) => {
  const f = c.fs.symlink;
  if (f === undefined) return NOSYS;
  const nameOff = argBase(c, cfg);
  const name = str(c, nameOff);
  const target = str(c, afterName(c, nameOff));
  if (cfg.trace) c.trace = `${JSON.stringify(name)} -> ${JSON.stringify(target)}`;
  c.enc = encEntry;
  return f.call(c.fs, c, c.nodeid, name, target);
});
handle(Op.MKNOD, (c, cfg) => {
  const f = c.fs.mknod;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  const mode = u32(c, 0);
  if (cfg.trace) c.trace = `${JSON.stringify(name)} mode=${oct(mode)}`;
  c.enc = encEntry;
  return f.call(c.fs, c, c.nodeid, name, mode, u32(c, 4), u32(c, 8));
});
handle(Op.MKDIR, (c, cfg) => {
  const f = c.fs.mkdir;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  const mode = u32(c, 0);
  if (cfg.trace) c.trace = `${JSON.stringify(name)} mode=${oct(mode)}`;
  c.enc = encEntry;
  return f.call(c.fs, c, c.nodeid, name, mode, u32(c, 4));
});
handle(Op.UNLINK, (c, cfg) => {
  const f = c.fs.unlink;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = JSON.stringify(name);
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, name);
});
handle(Op.RMDIR, (c, cfg) => {
  const f = c.fs.rmdir;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = JSON.stringify(name);
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, name);
});
function rename(c: Call, cfg: OpConfig, flags: number): unknown {
  const f = c.fs.rename;
  if (f === undefined) return NOSYS;
  const newParent = u64(c, 0);
  const nameOff = argBase(c, cfg);
  const name = str(c, nameOff);
  const newName = str(c, afterName(c, nameOff));
  if (cfg.trace) c.trace = `${JSON.stringify(name)} -> ${newParent}/${JSON.stringify(newName)} flags=${flags}`;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, name, newParent, newName, flags);
}
handle(Op.RENAME, (c, cfg) => rename(c, cfg, 0));
handle(Op.RENAME2, (c, cfg) => rename(c, cfg, u32(c, 8)));
handle(Op.LINK, (c, cfg) => {
  const f = c.fs.link;
  if (f === undefined) return NOSYS;
  const oldNode = u64(c, 0);
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = `node ${oldNode} as ${JSON.stringify(name)}`;
  c.enc = encEntry;
  return f.call(c.fs, c, oldNode, c.nodeid, name);
});
handle(Op.OPEN, (c, cfg) => {
  const flags = u32(c, 0);
  const kill = (u32(c, 4) & FUSE_OPEN_KILL_SUIDGID) !== 0;
  if (cfg.trace) c.trace = `flags=${oct(flags)}${kill ? " kill_suidgid" : ""}`;
  c.openFlags = flags;
  c.enc = encOpen;
  const f = c.fs.open;
  return f === undefined ? undefined : f.call(c.fs, c, c.nodeid, flags, kill);
});
handle(Op.READ, (c, cfg) => {
  const f = c.fs.read;
  if (f === undefined) return NOSYS;
  const fh = u64(c, 0), offset = u64(c, 8);
  const size = Math.min(u32(c, 16), c.slot.replyCap);
  if (cfg.trace) c.trace = `fh=${fh} off=${offset} size=${size}`;
  c.limit = size;
  c.enc = encRead;
  return f.call(c.fs, c, c.nodeid, fh, offset, size, c.slot.replyBytes(size));
});
handle(Op.WRITE, (c, cfg) => {
  const f = c.fs.write;
  if (f === undefined) return NOSYS;
  const fh = u64(c, 0), offset = u64(c, 8), size = u32(c, 16);
  const kill = (u32(c, 20) & FUSE_WRITE_KILL_SUIDGID) !== 0;
  const base = argBase(c, cfg);
  if (base + size > argEnd(c)) throw new ReplyError(`write: request carries fewer than ${size} bytes`);
  if (cfg.trace) c.trace = `fh=${fh} off=${offset} size=${size}${kill ? " kill_suidgid" : ""}`;
  c.limit = size;
  c.enc = encWrite;
  return f.call(c.fs, c, c.nodeid, fh, offset, c.slot.requestBytes(base, size), u32(c, 32), kill);
});
handle(Op.STATFS, (c) => {
  c.enc = encStatfs;
  const f = c.fs.statfs;
  return f === undefined ? DEFAULT_STATFS : f.call(c.fs, c, c.nodeid);
});
handle(Op.RELEASE, (c, cfg) => {
  c.enc = encNone;
  cfg.onRelease?.(c.nodeid);
  cfg.backing?.release(u64(c, 0));
  return c.fs.release?.(c, c.nodeid, u64(c, 0), u32(c, 8));
});
handle(Op.FSYNC, (c) => {
  const f = c.fs.fsync;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), (u32(c, 8) & FUSE_FSYNC_FDATASYNC) !== 0);
});
handle(Op.SETXATTR, (c, cfg) => {
  const f = c.fs.setxattr;
  if (f === undefined) return NOSYS;
  const size = u32(c, 0), flags = u32(c, 4);
  const nameOff = argBase(c, cfg);
  const name = str(c, nameOff);
  const valueOff = afterName(c, nameOff);
  if (valueOff + size > argEnd(c)) throw new ReplyError("setxattr: request carries fewer value bytes than announced");
  if (cfg.trace) c.trace = `${JSON.stringify(name)} size=${size} flags=${flags}`;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, name, c.slot.requestBytes(valueOff, size), flags);
});
handle(Op.GETXATTR, (c, cfg) => {
  const f = c.fs.getxattr;
  if (f === undefined) return NOSYS;
  c.limit = Math.min(u32(c, 0), c.slot.replyCap);
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = `${JSON.stringify(name)} size=${c.limit}`;
  c.enc = encGetxattr;
  return f.call(c.fs, c, c.nodeid, name);
});
handle(Op.LISTXATTR, (c) => {
  const f = c.fs.listxattr;
  if (f === undefined) return NOSYS;
  c.limit = Math.min(u32(c, 0), c.slot.replyCap);
  c.enc = encListxattr;
  return f.call(c.fs, c, c.nodeid);
});
handle(Op.REMOVEXATTR, (c, cfg) => {
  const f = c.fs.removexattr;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  if (cfg.trace) c.trace = JSON.stringify(name);
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, name);
});
handle(Op.FLUSH, (c) => {
  const f = c.fs.flush;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), u64(c, 16));
});
handle(Op.OPENDIR, (c) => {
  c.enc = encOpen;
  const f = c.fs.opendir;
  return f === undefined ? undefined : f.call(c.fs, c, c.nodeid, u32(c, 0));
});
handle(Op.READDIR, (c, cfg) => {
  const f = c.fs.readdir;
  if (f === undefined) return NOSYS;
  const fh = u64(c, 0), offset = u64(c, 8);
  if (cfg.trace) c.trace = `fh=${fh} off=${offset} size=${u32(c, 16)}`;
  c.dirList.start(u32(c, 16));
  c.enc = encDirList;
  return f.call(c.fs, c, c.nodeid, fh, offset, c.dirList);
});
const encDirList: Encoder = (c) => c.dirList.length;
handle(Op.READDIRPLUS, (c, cfg) => {
  const f = c.fs.readdirplus;
  if (f === undefined) return NOSYS;
  const fh = u64(c, 0), offset = u64(c, 8);
  if (cfg.trace) c.trace = `fh=${fh} off=${offset} size=${u32(c, 16)}`;
  c.dirListPlus.start(u32(c, 16), cfg.entryTimeout, cfg.attrTimeout);
  c.enc = encDirListPlus;
  return f.call(c.fs, c, c.nodeid, fh, offset, c.dirListPlus);
});
const encDirListPlus: Encoder = (c) => c.dirListPlus.length;
handle(Op.RELEASEDIR, (c, cfg) => {
  c.enc = encNone;
  cfg.onRelease?.(c.nodeid);
  return c.fs.releasedir?.(c, c.nodeid, u64(c, 0));
});
handle(Op.FSYNCDIR, (c) => {
  const f = c.fs.fsyncdir;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), (u32(c, 8) & FUSE_FSYNC_FDATASYNC) !== 0);
});
function lockArg(c: Call): FileLock {
  return { start: u64(c, 16), end: u64(c, 24), type: u32(c, 32), pid: u32(c, 36) };
}
handle(Op.GETLK, (c) => {
  const f = c.fs.getlk;
  if (f === undefined) return NOSYS;
  c.enc = encLk;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), u64(c, 8), lockArg(c));
});
function setlk(c: Call, sleep: boolean): unknown {
  const f = c.fs.setlk;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), u64(c, 8), lockArg(c), sleep, (u32(c, 40) & FUSE_LK_FLOCK) !== 0);
}
handle(Op.SETLK, (c) => setlk(c, false));
handle(Op.SETLKW, (c) => setlk(c, true));
handle(Op.ACCESS, (c) => {
  const f = c.fs.access;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u32(c, 0));
});
handle(Op.CREATE, (c, cfg) => {
  const f = c.fs.create;
  if (f === undefined) return NOSYS;
  const name = str(c, argBase(c, cfg));
  const flags = u32(c, 0), mode = u32(c, 4);
  const kill = (u32(c, 12) & FUSE_OPEN_KILL_SUIDGID) !== 0;
  if (cfg.trace) c.trace = `${JSON.stringify(name)} mode=${oct(mode)} flags=${oct(flags)}${kill ? " kill_suidgid" : ""}`;
  c.openFlags = flags;
  c.enc = encCreate;
  return f.call(c.fs, c, c.nodeid, name, mode, flags, u32(c, 8), kill);
});
// TMPFILE carries CREATE's arguments; its name is the kernel's placeholder ("/"), not a name.
handle(Op.TMPFILE, (c) => {
  const f = c.fs.tmpfile;
  if (f === undefined) return NOSYS;
  const flags = u32(c, 0), mode = u32(c, 4);
  if (c.cfg.trace) c.trace = `mode=${oct(mode)} flags=${oct(flags)}`;
  c.openFlags = flags;
  c.enc = encCreate;
  return f.call(c.fs, c, c.nodeid, mode, flags, u32(c, 8));
});
handle(Op.DESTROY, (c, cfg) => {
  c.enc = encNone;
  // once per generation: unmount destroys the generations again and gets the same promise
  return c.gen?.destroy(cfg.log ?? (() => {}));
});
handle(Op.FALLOCATE, (c) => {
  const f = c.fs.fallocate;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), u64(c, 8), u64(c, 16), u32(c, 24));
});
handle(Op.LSEEK, (c) => {
  const f = c.fs.lseek;
  if (f === undefined) return NOSYS;
  c.enc = encLseek;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), i64(c, 8), u32(c, 16));
});
function copyFileRange(c: Call, enc: Encoder): unknown {
  const f = c.fs.copyFileRange;
  if (f === undefined) return NOSYS;
  c.enc = enc;
  return f.call(c.fs, c, c.nodeid, u64(c, 0), u64(c, 8), u64(c, 16), u64(c, 24), u64(c, 32), u64(c, 40), u64(c, 48));
}
handle(Op.COPY_FILE_RANGE, (c) => copyFileRange(c, encCopy32));
handle(Op.COPY_FILE_RANGE_64, (c) => copyFileRange(c, encCopy64));
handle(Op.SYNCFS, (c) => {
  const f = c.fs.syncfs;
  if (f === undefined) return NOSYS;
  c.enc = encNone;
  return f.call(c.fs, c, c.nodeid);
});
handle(Op.NOTIFY_REPLY, (c, cfg) => {
  // fuse_notify_retrieve_in (40 bytes: size @16), then the data
  const base = argBase(c, cfg);
  const size = Math.min(c.slot.data.getUint32(base + 16, true), Math.max(0, argEnd(c) - base - 40));
  cfg.onNotifyReply?.(c.uniqueLo, c.uniqueHi, c.slot.dataBytes.subarray(base + 40, base + 40 + size));
  return NO_REPLY;
});

/** Decode and start `c`'s request; returns the op's result, NOSYS or NO_REPLY. */
export function runHandler(c: Call, cfg: OpConfig): unknown {
  c.cfg = cfg;
  const fn = handlers[c.opcode];
  return fn === undefined ? NOSYS : fn(c, cfg);
}

