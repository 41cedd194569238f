/**
 * Encoding and decoding of FUSE structs on DataViews. Knows nothing of plugins or transports.
 * u64 fields are read and written as two u32 halves into JS numbers (exact below 2^53), so the
 * hot path makes no BigInt; `unique` and `commit_id` are never converted at all (they are copied
 * or left in place).
 */
import {
  ENTRY_OUT_SIZE, ATTR_OUT_SIZE, DIRENT_SIZE, DIRENTPLUS_SIZE, STATFS_OUT_SIZE, INIT_OUT_SIZE,
  WRITE_OUT_SIZE, GETXATTR_OUT_SIZE, LSEEK_OUT_SIZE, LK_OUT_SIZE, COPY_FILE_RANGE_OUT_SIZE, OUT_HEADER_SIZE,
  NOTIFY_INVAL_INODE_OUT_SIZE, NOTIFY_INVAL_ENTRY_OUT_SIZE, NOTIFY_DELETE_OUT_SIZE, NOTIFY_STORE_OUT_SIZE,
  NOTIFY_RETRIEVE_OUT_SIZE, FUSE_EXPIRE_ONLY,
  FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NONSEEKABLE, FOPEN_CACHE_DIR, FOPEN_NOFLUSH,
  FOPEN_PARALLEL_DIRECT_WRITES, FOPEN_PASSTHROUGH,
} from "./abi.ts";
import type { Attr, Entry, FileLock, OpenReply, StatFs } from "../api/types.ts";
import { nameByteLength, writeName, nameStringError } from "../api/names.ts";

const TWO32 = 4294967296;

export function getU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * TWO32;
}

/** Signed 64-bit read (offsets such as lseek's can be negative). */
export function getI64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getInt32(off + 4, true) * TWO32;
}

export function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32) >>> 0, true);
}

/** File offsets for locks: the kernel rejects values above OFFSET_MAX (2^63 - 1). */
export function setOffset(dv: DataView, off: number, v: number): void {
  if (v >= 9223372036854775807) {
    dv.setUint32(off, 0xffffffff, true);
    dv.setUint32(off + 4, 0x7fffffff, true);
  } else setU64(dv, off, v);
}

/** Signed 64-bit write. */
export function setI64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setInt32(off + 4, Math.floor(v / TWO32), true);
}

/** A reply the plugin produced that cannot be encoded: answered EIO and logged. */
export class ReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReplyError";
  }
}

/** A non-negative finite number, or a ReplyError naming `field`. */
export function num(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ReplyError(`${field} must be a non-negative number (got ${String(v)})`);
  return v;
}

function optNum(v: unknown, field: string, dflt: number): number {
  return v === undefined ? dflt : num(v, field);
}

/** The seven file types the kernel accepts (fuse_invalid_attr). */
const VALID_TYPES = new Set([0o140000, 0o120000, 0o100000, 0o060000, 0o040000, 0o020000, 0o010000]);

/** struct fuse_attr (88 bytes). */
export function encodeAttr(dv: DataView, off: number, a: Attr): void {
  if (typeof a !== "object" || a === null) throw new ReplyError(`expected attributes, got ${a === null ? "null" : typeof a}`);
  const size = num(a.size, "size");
  setU64(dv, off, num(a.ino, "ino"));
  setU64(dv, off + 8, size);
  setU64(dv, off + 16, optNum(a.blocks, "blocks", Math.ceil(size / 512)));
  setI64(dv, off + 24, a.atimeSec);
  setI64(dv, off + 32, a.mtimeSec);
  setI64(dv, off + 40, a.ctimeSec);
  dv.setUint32(off + 48, a.atimeNsec, true);
  dv.setUint32(off + 52, a.mtimeNsec, true);
  dv.setUint32(off + 56, a.ctimeNsec, true);
  const mode = num(a.mode, "mode");
  if (!VALID_TYPES.has(mode & 0o170000)) throw new ReplyError(`mode ${mode.toString(8)} has no valid file type (S_IFREG, S_IFDIR, ...)`);
  dv.setUint32(off + 60, mode, true);
  dv.setUint32(off + 64, num(a.nlink, "nlink"), true);
  dv.setUint32(off + 68, num(a.uid, "uid"), true);
  dv.setUint32(off + 72, num(a.gid, "gid"), true);
  dv.setUint32(off + 76, a.rdev ?? 0, true);
  dv.setUint32(off + 80, a.blksize ?? 0, true);
  dv.setUint32(off + 84, 0, true);
}

/** How long the kernel may cache an entry or attributes: seconds as (u64 sec, u32 nsec). */
function encodeValidity(dv: DataView, secOff: number, nsecOff: number, seconds: number): void {
  if (typeof seconds !== "number" || !(seconds >= 0) || seconds > 1e15) throw new ReplyError(`cache timeout must be a number of seconds ≥ 0 (got ${String(seconds)})`);
  const s = Math.floor(seconds);
  setU64(dv, secOff, s);
  dv.setUint32(nsecOff, Math.round((seconds - s) * 1e9), true);
}

/** struct fuse_attr_out (104 bytes). */
export function encodeAttrOut(dv: DataView, off: number, a: Attr & { attrTimeout?: number }, attrTimeout: number): number {
  if (typeof a !== "object" || a === null) throw new ReplyError(`expected attributes, got ${a === null ? "null" : typeof a}`);
  encodeValidity(dv, off, off + 8, a.attrTimeout ?? attrTimeout);
  dv.setUint32(off + 12, 0, true);
  encodeAttr(dv, off + 16, a);
  return ATTR_OUT_SIZE;
}

/** struct fuse_entry_out (128 bytes). */
export function encodeEntry(dv: DataView, off: number, e: Entry, entryTimeout: number, attrTimeout: number): number {
  if (typeof e !== "object" || e === null) throw new ReplyError(`expected an entry, got ${e === null ? "null" : typeof e}`);
  setU64(dv, off, num(e.ino, "ino"));
  setU64(dv, off + 8, e.generation ?? 0);
  encodeValidity(dv, off + 16, off + 32, e.entryTimeout ?? entryTimeout);
  encodeValidity(dv, off + 24, off + 36, e.attrTimeout ?? attrTimeout);
  encodeAttr(dv, off + 40, e);
  return ENTRY_OUT_SIZE;
}

/** A negative entry (node id 0) cached for `timeout` seconds. */
export function encodeNegativeEntry(dv: DataView, off: number, timeout: number): number {
  new Uint8Array(dv.buffer, dv.byteOffset + off, ENTRY_OUT_SIZE).fill(0);
  encodeValidity(dv, off + 16, off + 32, timeout);
  return ENTRY_OUT_SIZE;
}

/** FOPEN_* bits of an open reply, plus mount-wide defaults. */
export function openFlags(r: OpenReply | void | undefined, defaults: number): number {
  let f = defaults;
  if (r === undefined || r === null) return f;
  if (r.directIo) f |= FOPEN_DIRECT_IO;
  if (r.keepCache) f |= FOPEN_KEEP_CACHE;
  if (r.nonseekable) f |= FOPEN_NONSEEKABLE;
  if (r.cacheDir) f |= FOPEN_CACHE_DIR;
  if (r.noflush) f |= FOPEN_NOFLUSH;
  if (r.parallelDirectWrites) f |= FOPEN_PARALLEL_DIRECT_WRITES;
  return f;
}

/** struct fuse_open_out (16 bytes). */
export function encodeOpenOut(dv: DataView, off: number, r: OpenReply | void | undefined, defaults: number, backingId = 0): number {
  if (r !== undefined && r !== null && typeof r !== "object") throw new ReplyError(`open must return an object or nothing (got ${typeof r})`);
  setU64(dv, off, r?.fh === undefined ? 0 : num(r.fh, "fh"));
  dv.setUint32(off + 8, openFlags(r, defaults) | (backingId > 0 ? FOPEN_PASSTHROUGH : 0), true);
  dv.setInt32(off + 12, backingId, true);
  return 16;
}

/** struct fuse_kstatfs (80 bytes). */
export function encodeStatfs(dv: DataView, off: number, s: StatFs): number {
  if (typeof s !== "object" || s === null) throw new ReplyError("statfs must return an object");
  setU64(dv, off, num(s.blocks, "blocks"));
  setU64(dv, off + 8, num(s.bfree, "bfree"));
  setU64(dv, off + 16, num(s.bavail, "bavail"));
  setU64(dv, off + 24, num(s.files, "files"));
  setU64(dv, off + 32, num(s.ffree, "ffree"));
  const bsize = num(s.bsize, "bsize");
  dv.setUint32(off + 40, bsize, true);
  dv.setUint32(off + 44, num(s.namelen, "namelen"), true);
  dv.setUint32(off + 48, optNum(s.frsize, "frsize", bsize), true);
  new Uint8Array(dv.buffer, dv.byteOffset + off + 52, 28).fill(0);
  return STATFS_OUT_SIZE;
}

const align8 = (n: number) => (n + 7) & ~7;

/** Bytes of a directory entry name (a name string, escaped bytes included: api/names.ts). */
function direntNameLength(name: string): number {
  const n = nameByteLength(name);
  if (n < 0) throw new ReplyError(`directory entry name ${nameStringError(name)}`);
  return n;
}

/**
 * Append one struct fuse_dirent at `off` (the name's exact bytes); returns the new offset, or -1
 * when the record does not fit before `end`.
 */
export function encodeDirent(dv: DataView, buf: Buffer, off: number, end: number, name: string, ino: number, mode: number, nextOffset: number): number {
  const nameLen = direntNameLength(name);
  const rec = align8(DIRENT_SIZE + nameLen);
  if (off + rec > end) return -1;
  setU64(dv, off, ino);
  setU64(dv, off + 8, nextOffset);
  dv.setUint32(off + 16, nameLen, true);
  dv.setUint32(off + 20, (mode & 0o170000) >>> 12, true);
  writeName(name, buf, off + DIRENT_SIZE, nameLen);
  buf.fill(0, off + DIRENT_SIZE + nameLen, off + rec);
  return off + rec;
}

/** Append one struct fuse_direntplus; `entry` null = name only (node id 0). */
export function encodeDirentPlus(dv: DataView, buf: Buffer, off: number, end: number, name: string, entry: Entry | null, nextOffset: number, entryTimeout: number, attrTimeout: number): number {
  const nameLen = direntNameLength(name);
  const rec = align8(DIRENTPLUS_SIZE + nameLen);
  if (off + rec > end) return -1;
  let ino = 0, mode = 0;
  if (entry === null) {
    buf.fill(0, off, off + ENTRY_OUT_SIZE);
  } else {
    encodeEntry(dv, off, entry, entryTimeout, attrTimeout);
    ino = entry.ino;
    mode = entry.mode;
  }
  const d = off + ENTRY_OUT_SIZE;
  setU64(dv, d, ino);
  setU64(dv, d + 8, nextOffset);
  dv.setUint32(d + 16, nameLen, true);
  dv.setUint32(d + 20, (mode & 0o170000) >>> 12, true);
  writeName(name, buf, d + DIRENT_SIZE, nameLen);
  buf.fill(0, d + DIRENT_SIZE + nameLen, off + rec);
  return off + rec;
}

/** A directory entry name the kernel will accept: non-empty, ≤ 1024 bytes, no '/' or NUL. */
export function validateDirentName(name: string): void {
  if (typeof name !== "string" || name.length === 0) throw new ReplyError("directory entry name must be a non-empty string");
  if (name.includes("/") || name.includes("\0")) throw new ReplyError(`directory entry name ${JSON.stringify(name)} contains '/' or NUL`);
}

/** struct fuse_init_in. */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  /** Offered capabilities as a 64-bit set: bit n set ⇔ (n < 32 ? flags : flags2) bit. */
  flags: number;
  flags2: number;
}

export function decodeInitIn(dv: DataView, off: number): InitIn {
  return {
    major: dv.getUint32(off, true),
    minor: dv.getUint32(off + 4, true),
    maxReadahead: dv.getUint32(off + 8, true),
    flags: dv.getUint32(off + 12, true),
    flags2: dv.getUint32(off + 16, true),
  };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  flags2: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  maxStackDepth: number;
  requestTimeout: number;
}

/** struct fuse_init_out (64 bytes). */
export function encodeInitOut(dv: DataView, off: number, o: InitOut): number {
  new Uint8Array(dv.buffer, dv.byteOffset + off, 64).fill(0);
  dv.setUint32(off, o.major, true);
  dv.setUint32(off + 4, o.minor, true);
  dv.setUint32(off + 8, o.maxReadahead, true);
  dv.setUint32(off + 12, o.flags >>> 0, true);
  dv.setUint16(off + 16, o.maxBackground, true);
  dv.setUint16(off + 18, o.congestionThreshold, true);
  dv.setUint32(off + 20, o.maxWrite, true);
  dv.setUint32(off + 24, o.timeGran, true);
  dv.setUint16(off + 28, o.maxPages, true);
  dv.setUint32(off + 32, o.flags2 >>> 0, true);
  dv.setUint32(off + 36, o.maxStackDepth, true);
  dv.setUint16(off + 40, o.requestTimeout, true);
  return INIT_OUT_SIZE;
}

/** struct fuse_write_out (WRITE, COPY_FILE_RANGE): a byte count `n`, 0..`max`; `op` names the op in the error. */
export function encodeWriteOut(dv: DataView, off: number, n: unknown, max: number, op: string): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > max) throw new ReplyError(`${op} must return a byte count 0..${max} (got ${String(n)})`);
  dv.setUint32(off, n, true);
  dv.setUint32(off + 4, 0, true);
  return WRITE_OUT_SIZE;
}

/** struct fuse_getxattr_out (GETXATTR/LISTXATTR asked with size 0): the value's or list's length. */
export function encodeXattrSize(dv: DataView, off: number, size: number): number {
  dv.setUint32(off, size, true);
  dv.setUint32(off + 4, 0, true);
  return GETXATTR_OUT_SIZE;
}

/** struct fuse_lseek_out: the offset SEEK_DATA/SEEK_HOLE found. */
export function encodeLseekOut(dv: DataView, off: number, offset: unknown): number {
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) throw new ReplyError(`lseek must return an offset (got ${String(offset)})`);
  setU64(dv, off, offset);
  return LSEEK_OUT_SIZE;
}

/** struct fuse_copy_file_range_out (COPY_FILE_RANGE_64): a 64-bit byte count. */
export function encodeCopyOut64(dv: DataView, off: number, n: unknown): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw new ReplyError(`copyFileRange must return a byte count (got ${String(n)})`);
  setU64(dv, off, n);
  return COPY_FILE_RANGE_OUT_SIZE;
}

/** struct fuse_lk_out: the conflicting lock GETLK found (F_UNLCK type: none). */
export function encodeLkOut(dv: DataView, off: number, l: FileLock): number {
  if (typeof l !== "object" || l === null) throw new ReplyError("getlk must return a lock");
  setOffset(dv, off, num(l.start, "start"));
  setOffset(dv, off + 8, num(l.end, "end"));
  dv.setUint32(off + 16, l.type, true);
  dv.setUint32(off + 20, l.pid, true);
  return LK_OUT_SIZE;
}

// Decoders of the reply structs, for the -d trace (off the hot path: they allocate). Each reads
// the layout its encoder above writes.

/** (u64 sec @secOff, u32 nsec @nsecOff) as seconds. */
function decodeValidity(dv: DataView, secOff: number, nsecOff: number): number {
  return getU64(dv, secOff) + dv.getUint32(nsecOff, true) / 1e9;
}

/** struct fuse_attr. */
export function decodeAttr(dv: DataView, off: number): Required<Attr> {
  return {
    ino: getU64(dv, off), size: getU64(dv, off + 8), blocks: getU64(dv, off + 16),
    atimeSec: getI64(dv, off + 24), mtimeSec: getI64(dv, off + 32), ctimeSec: getI64(dv, off + 40),
    atimeNsec: dv.getUint32(off + 48, true), mtimeNsec: dv.getUint32(off + 52, true), ctimeNsec: dv.getUint32(off + 56, true),
    mode: dv.getUint32(off + 60, true), nlink: dv.getUint32(off + 64, true), uid: dv.getUint32(off + 68, true),
    gid: dv.getUint32(off + 72, true), rdev: dv.getUint32(off + 76, true), blksize: dv.getUint32(off + 80, true),
  };
}

/** struct fuse_attr_out: the attributes and how long they may be cached (seconds). */
export function decodeAttrOut(dv: DataView, off: number): { attrValid: number; attr: Required<Attr> } {
  return { attrValid: decodeValidity(dv, off, off + 8), attr: decodeAttr(dv, off + 16) };
}

/** struct fuse_entry_out (nodeid 0: a negative entry, cached `entryValid` seconds). */
export interface EntryOut {
  nodeid: number;
  generation: number;
  entryValid: number;
  attrValid: number;
  attr: Required<Attr>;
}

export function decodeEntryOut(dv: DataView, off: number): EntryOut {
  return {
    nodeid: getU64(dv, off), generation: getU64(dv, off + 8),
    entryValid: decodeValidity(dv, off + 16, off + 32), attrValid: decodeValidity(dv, off + 24, off + 36),
    attr: decodeAttr(dv, off + 40),
  };
}

/** struct fuse_open_out. */
export function decodeOpenOut(dv: DataView, off: number): { fh: number; openFlags: number; backingId: number } {
  return { fh: getU64(dv, off), openFlags: dv.getUint32(off + 8, true), backingId: dv.getInt32(off + 12, true) };
}

/** struct fuse_kstatfs. */
export function decodeStatfs(dv: DataView, off: number): Required<StatFs> {
  return {
    blocks: getU64(dv, off), bfree: getU64(dv, off + 8), bavail: getU64(dv, off + 16), files: getU64(dv, off + 24),
    ffree: getU64(dv, off + 32), bsize: dv.getUint32(off + 40, true), namelen: dv.getUint32(off + 44, true),
    frsize: dv.getUint32(off + 48, true),
  };
}

/** struct fuse_write_out's size (WRITE, COPY_FILE_RANGE). */
export function decodeWriteOut(dv: DataView, off: number): number {
  return dv.getUint32(off, true);
}

/** struct fuse_getxattr_out's size (GETXATTR/LISTXATTR asked with size 0). */
export function decodeXattrSize(dv: DataView, off: number): number {
  return dv.getUint32(off, true);
}

/** struct fuse_lseek_out's offset. */
export function decodeLseekOut(dv: DataView, off: number): number {
  return getU64(dv, off);
}

/** struct fuse_copy_file_range_out's bytes_copied (COPY_FILE_RANGE_64). */
export function decodeCopyOut64(dv: DataView, off: number): number {
  return getU64(dv, off);
}

/** struct fuse_lk_out. */
export function decodeLkOut(dv: DataView, off: number): FileLock {
  return { start: getU64(dv, off), end: getU64(dv, off + 8), type: dv.getUint32(off + 16, true), pid: dv.getUint32(off + 20, true) };
}

/** Bytes of the fuse_dirent (or, `plus`, fuse_direntplus) record at `off`, its name and padding included. */
export function direntRecordSize(dv: DataView, off: number, plus: boolean): number {
  const d = plus ? off + ENTRY_OUT_SIZE : off;
  return align8((plus ? DIRENTPLUS_SIZE : DIRENT_SIZE) + dv.getUint32(d + 16, true));
}

/** Test a capability bit (0..63) in a (flags, flags2) pair. */
export function hasCap(flags: number, flags2: number, bit: number): boolean {
  return bit < 32 ? ((flags >>> bit) & 1) === 1 : ((flags2 >>> (bit - 32)) & 1) === 1;
}


// Notifications (server → kernel). Each message is a fuse_out_header with unique 0 and the notify
// code in `error`, then its struct; encoders write at `off` (the struct, after the header) and
// return the bytes written there. Names and sizes are checked by the caller (runtime/notify/).

/** struct fuse_out_header of a notification: len@0, error@4 = notify code, unique@8 = 0. */
export function encodeNotifyHeader(dv: DataView, off: number, code: number, len: number): number {
  dv.setUint32(off, len, true);
  dv.setInt32(off + 4, code, true);
  dv.setUint32(off + 8, 0, true);
  dv.setUint32(off + 12, 0, true);
  return OUT_HEADER_SIZE;
}

/** struct fuse_notify_inval_inode_out: ino@0, off@8 (i64, < 0: attributes only), len@16 (i64, ≤ 0: to the end). */
export function encodeInvalInodeOut(dv: DataView, off: number, ino: number, offset: number, length: number): number {
  setU64(dv, off, ino);
  setI64(dv, off + 8, offset);
  setI64(dv, off + 16, length);
  return NOTIFY_INVAL_INODE_OUT_SIZE;
}

/** A name of `nameLen` bytes and its NUL at `off`; returns the bytes written. */
function encodeNotifyName(buf: Uint8Array, off: number, name: string, nameLen: number): number {
  writeName(name, buf, off, nameLen);
  buf[off + nameLen] = 0;
  return nameLen + 1;
}

/** struct fuse_notify_inval_entry_out (parent@0, namelen@8, flags@12), then the name and a NUL. */
export function encodeInvalEntryOut(dv: DataView, buf: Uint8Array, off: number, parent: number, name: string, nameLen: number, expireOnly: boolean): number {
  setU64(dv, off, parent);
  dv.setUint32(off + 8, nameLen, true);
  dv.setUint32(off + 12, expireOnly ? FUSE_EXPIRE_ONLY : 0, true);
  return NOTIFY_INVAL_ENTRY_OUT_SIZE + encodeNotifyName(buf, off + NOTIFY_INVAL_ENTRY_OUT_SIZE, name, nameLen);
}

/** struct fuse_notify_delete_out (parent@0, child@8, namelen@16, padding@20), then the name and a NUL. */
export function encodeDeleteOut(dv: DataView, buf: Uint8Array, off: number, parent: number, child: number, name: string, nameLen: number): number {
  setU64(dv, off, parent);
  setU64(dv, off + 8, child);
  dv.setUint32(off + 16, nameLen, true);
  dv.setUint32(off + 20, 0, true);
  return NOTIFY_DELETE_OUT_SIZE + encodeNotifyName(buf, off + NOTIFY_DELETE_OUT_SIZE, name, nameLen);
}

/** struct fuse_notify_store_out (nodeid@0, offset@8, size@16, padding@20), then the data. */
export function encodeStoreOut(dv: DataView, buf: Uint8Array, off: number, ino: number, offset: number, data: Uint8Array): number {
  setU64(dv, off, ino);
  setU64(dv, off + 8, offset);
  dv.setUint32(off + 16, data.length, true);
  dv.setUint32(off + 20, 0, true);
  buf.set(data, off + NOTIFY_STORE_OUT_SIZE);
  return NOTIFY_STORE_OUT_SIZE + data.length;
}

/**
 * struct fuse_notify_retrieve_out: notify_unique@0 (as two u32 halves: it comes back as the
 * NOTIFY_REPLY's unique), nodeid@8, offset@16, size@24, padding@28.
 */
export function encodeRetrieveOut(dv: DataView, off: number, uniqueLo: number, uniqueHi: number, ino: number, offset: number, size: number): number {
  dv.setUint32(off, uniqueLo, true);
  dv.setUint32(off + 4, uniqueHi, true);
  setU64(dv, off + 8, ino);
  setU64(dv, off + 16, offset);
  dv.setUint32(off + 24, size, true);
  dv.setUint32(off + 28, 0, true);
  return NOTIFY_RETRIEVE_OUT_SIZE;
}
