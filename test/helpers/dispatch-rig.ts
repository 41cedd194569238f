/**
 * The dispatcher tests' rig (test/unit/dispatcher-*.test.ts): a Dispatcher over a FakeTransport
 * and one request slot, opcodes and errnos written out from the reference (§1.5), the op header
 * builders (§1.6) and the reply parsers they share.
 */
import { expect } from "bun:test";
import { Dispatcher, type DispatchConfig } from "../../runtime/dispatch/dispatcher.ts";
import type { Attr, Filesystem } from "../../runtime/api/types.ts";
import { S_IFREG } from "../../runtime/api/constants.ts";
import type { RequestSlot } from "../../runtime/transport/slot.ts";
import { FakeTransport, makeSlot, writeRequest, struct, u64, type Layout, type RequestSpec, type Reply } from "./fake-transport.ts";

// §1.5
export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, GETLK: 31, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, BATCH_FORGET: 42, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
} as const;

export const EIO = 5, ENOENT = 2, EACCES = 13, ENOSYS = 38, ERANGE = 34, EINTR = 4, ENODATA = 61;
export const GiB = 2 ** 30;

export const baseCfg = (): DispatchConfig => ({
  entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, denyOthers: -1, log: () => {},
});

export function rig(layout: Layout, fs: Filesystem, cfg: Partial<DispatchConfig> = {}) {
  const t = new FakeTransport(layout === "classic" ? "classic" : "io_uring");
  const logs: string[] = [];
  const d = new Dispatcher({ ...baseCfg(), log: (l) => logs.push(l), ...cfg }, fs);
  const slot = makeSlot(t, layout);
  /** Write `spec` into `s` and dispatch it; returns where the args start in `s.data`. */
  const send = (spec: RequestSpec, s: RequestSlot = slot): number => {
    const base = writeRequest(s, spec);
    d.dispatch(s);
    return base;
  };
  return { t, d, logs, slot, send };
}

/** Where the reply payload starts in `slot.data` for a layout. */
export const replyOff = (layout: Layout) => (layout === "classic" ? 16 : 0);

export function attr(ino: number, over: Partial<Attr> = {}): Attr {
  return {
    ino, mode: S_IFREG | 0o644, nlink: 1, uid: 1000, gid: 1000, size: 9 * GiB,
    atimeSec: 1_700_000_000, atimeNsec: 1, mtimeSec: 1_700_000_000, mtimeNsec: 2, ctimeSec: 1_700_000_000, ctimeNsec: 3,
    ...over,
  };
}

/** Flush pending promise callbacks. */
export const tick = () => new Promise<void>((r) => setTimeout(r, 0));

// ---- op header builders (§1.6) ---------------------------------------------------------

export const getattrIn = (fh?: number) => struct(16, (d) => {
  if (fh !== undefined) {
    d.setUint32(0, 1, true); // FUSE_GETATTR_FH
    d.setBigUint64(8, BigInt(fh), true);
  }
});
export const openIn = (flags: number) => struct(8, (d) => d.setUint32(0, flags, true));
export const releaseIn = (fh: number, flags = 0) => struct(24, (d) => {
  d.setBigUint64(0, BigInt(fh), true);
  d.setUint32(8, flags, true);
});
export const getxattrIn = (size: number) => struct(8, (d) => d.setUint32(0, size, true));
export const setxattrIn = (ext: boolean, size: number, flags: number) => struct(ext ? 16 : 8, (d) => {
  d.setUint32(0, size, true);
  d.setUint32(4, flags, true);
});
export const renameIn = (newdir: number) => struct(8, (d) => d.setBigUint64(0, BigInt(newdir), true));
export const rename2In = (newdir: number, flags: number) => struct(16, (d) => {
  d.setBigUint64(0, BigInt(newdir), true);
  d.setUint32(8, flags, true);
});
export const forgetIn = (nlookup: number) => struct(8, (d) => d.setBigUint64(0, BigInt(nlookup), true));
export const batchForgetIn = (count: number) => struct(8, (d) => d.setUint32(0, count, true));
export const forgetOne = (nodeid: number, nlookup: number) => struct(16, (d) => {
  d.setBigUint64(0, BigInt(nodeid), true);
  d.setBigUint64(8, BigInt(nlookup), true);
});
export const interruptIn = (unique: bigint) => struct(8, (d) => d.setBigUint64(0, unique, true));

// ---- reply parsers ---------------------------------------------------------------------

export interface Dirent { ino: number; off: number; type: number; name: string; rec: number }
export function parseDirent(r: Reply, o: number): Dirent {
  const namelen = r.dv.getUint32(o + 16, true);
  const name = Buffer.from(r.bytes.buffer, r.bytes.byteOffset + o + 24, namelen).toString("utf8");
  const rec = Math.ceil((24 + namelen) / 8) * 8;
  expect(r.bytes.subarray(o + 24 + namelen, o + rec).every((b) => b === 0)).toBe(true);
  return { ino: u64(r.dv, o), off: u64(r.dv, o + 8), type: r.dv.getUint32(o + 20, true), name, rec };
}
export function parseDirents(r: Reply): Dirent[] {
  const out: Dirent[] = [];
  for (let o = 0; o < r.len; ) {
    const d = parseDirent(r, o);
    out.push(d);
    o += d.rec;
  }
  return out;
}
