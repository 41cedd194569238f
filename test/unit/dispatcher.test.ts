/**
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies. Offsets and opcodes are the reference's
 * (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher, Generation, type DispatchConfig } from "../../runtime/dispatch/dispatcher.ts";
import type { Filesystem, Entry, Attr, Request, DirList, DirListPlus, SetAttr } from "../../runtime/api/types.ts";
import { FuseError } from "../../runtime/api/errno.ts";
import { S_IFDIR, S_IFREG, S_IFLNK } from "../../runtime/api/constants.ts";
import type { RequestSlot } from "../../runtime/transport/slot.ts";
import {
  FakeTransport, LAYOUTS, makeSlot, writeRequest, cat, cstr, struct, rwIn, u64,
  type Layout, type RequestSpec, type Reply,
} from "../helpers/fake-transport.ts";

// §1.5
const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, GETLK: 31, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, BATCH_FORGET: 42, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
} as const;

const EIO = 5, ENOENT = 2, EACCES = 13, ENOSYS = 38, ERANGE = 34, EINTR = 4, ENODATA = 61;
const GiB = 2 ** 30;

const baseCfg = (): DispatchConfig => ({
  entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, denyOthers: -1, log: () => {},
});

function rig(layout: Layout, fs: Filesystem, cfg: Partial<DispatchConfig> = {}) {
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
const replyOff = (layout: Layout) => (layout === "classic" ? 16 : 0);

function attr(ino: number, over: Partial<Attr> = {}): Attr {
  return {
    ino, mode: S_IFREG | 0o644, nlink: 1, uid: 1000, gid: 1000, size: 9 * GiB,
    atimeSec: 1_700_000_000, atimeNsec: 1, mtimeSec: 1_700_000_000, mtimeNsec: 2, ctimeSec: 1_700_000_000, ctimeNsec: 3,
    ...over,
  };
}

/** Flush pending promise callbacks. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

// ---- op header builders (§1.6) ---------------------------------------------------------

const getattrIn = (fh?: number) => struct(16, (d) => {
  if (fh !== undefined) {
    d.setUint32(0, 1, true); // FUSE_GETATTR_FH
    d.setBigUint64(8, BigInt(fh), true);
  }
});
const openIn = (flags: number) => struct(8, (d) => d.setUint32(0, flags, true));
const releaseIn = (fh: number, flags = 0) => struct(24, (d) => {
  d.setBigUint64(0, BigInt(fh), true);
  d.setUint32(8, flags, true);
});
const getxattrIn = (size: number) => struct(8, (d) => d.setUint32(0, size, true));
const setxattrIn = (ext: boolean, size: number, flags: number) => struct(ext ? 16 : 8, (d) => {
  d.setUint32(0, size, true);
  d.setUint32(4, flags, true);
});
const renameIn = (newdir: number) => struct(8, (d) => d.setBigUint64(0, BigInt(newdir), true));
const rename2In = (newdir: number, flags: number) => struct(16, (d) => {
  d.setBigUint64(0, BigInt(newdir), true);
  d.setUint32(8, flags, true);
});
const forgetIn = (nlookup: number) => struct(8, (d) => d.setBigUint64(0, BigInt(nlookup), true));
const batchForgetIn = (count: number) => struct(8, (d) => d.setUint32(0, count, true));
const forgetOne = (nodeid: number, nlookup: number) => struct(16, (d) => {
  d.setBigUint64(0, BigInt(nodeid), true);
  d.setBigUint64(8, BigInt(nlookup), true);
});
const interruptIn = (unique: bigint) => struct(8, (d) => d.setBigUint64(0, unique, true));

// ---- reply parsers ---------------------------------------------------------------------

interface Dirent { ino: number; off: number; type: number; name: string; rec: number }
function parseDirent(r: Reply, o: number): Dirent {
  const namelen = r.dv.getUint32(o + 16, true);
  const name = Buffer.from(r.bytes.buffer, r.bytes.byteOffset + o + 24, namelen).toString("utf8");
  const rec = Math.ceil((24 + namelen) / 8) * 8;
  expect(r.bytes.subarray(o + 24 + namelen, o + rec).every((b) => b === 0)).toBe(true);
  return { ino: u64(r.dv, o), off: u64(r.dv, o + 8), type: r.dv.getUint32(o + 20, true), name, rec };
}
function parseDirents(r: Reply): Dirent[] {
  const out: Dirent[] = [];
  for (let o = 0; o < r.len; ) {
    const d = parseDirent(r, o);
    out.push(d);
    o += d.rec;
  }
  return out;
}

// =========================================================================================

describe.each(LAYOUTS)("%s layout", (layout) => {
  describe("LOOKUP", () => {
    test("decodes the parent and name, passes the caller, replies a 128-byte fuse_entry_out", () => {
      let seen: { req: Request; parent: number; name: string } | null = null;
      const { t, send } = rig(layout, {
        lookup(req, parent, name) {
          seen = { req: { op: req.op, uid: req.uid, gid: req.gid, pid: req.pid } as Request, parent, name };
          return { ...attr(0x1_0000_0042), generation: 9 };
        },
      });
      send({ opcode: OP.LOOKUP, unique: 0x7_0000_0010n, nodeid: 0x2_0000_0001, uid: 501, gid: 20, pid: 777, args: cstr("hello.txt") });
      expect(seen!).toEqual({ req: { op: "lookup", uid: 501, gid: 20, pid: 777 } as Request, parent: 0x2_0000_0001, name: "hello.txt" });
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(128);
      expect(u64(r.dv, 0)).toBe(0x1_0000_0042); // nodeid
      expect(u64(r.dv, 8)).toBe(9); // generation
      expect(u64(r.dv, 16)).toBe(1); // entry_valid
      expect(u64(r.dv, 24)).toBe(1); // attr_valid
      expect(u64(r.dv, 40)).toBe(0x1_0000_0042); // attr.ino
      expect(u64(r.dv, 48)).toBe(9 * GiB); // attr.size
      expect(r.dv.getUint32(40 + 60, true)).toBe(S_IFREG | 0o644);
      if (layout === "classic") {
        // the out-header is written over the in-header: unique must still sit at 8
        expect(new DataView(r.hdrHead.buffer).getBigUint64(8, true)).toBe(0x7_0000_0010n);
      }
    });

    test("decodes UTF-8 names", () => {
      const names: string[] = [];
      const { t, send } = rig(layout, { lookup: (_r, _p, n) => (names.push(n), attr(2)) });
      send({ opcode: OP.LOOKUP, args: cstr("ünïcødé ✓.txt") });
      expect(names).toEqual(["ünïcødé ✓.txt"]);
      expect(t.only().error).toBe(0);
    });

    test("a name without its NUL inside the request is EIO, and the op is not called", () => {
      let called = false;
      const { t, send } = rig(layout, { lookup: () => ((called = true), attr(2)) });
      send({ opcode: OP.LOOKUP, args: cat("abc") }); // the zero byte after it is outside the request
      expect(called).toBe(false);
      expect(t.only().error).toBe(-EIO);
    });

    test("uses entry_timeout / attr_timeout from the config, split into sec + nsec", () => {
      const { t, send } = rig(layout, { lookup: () => attr(3) }, { entryTimeout: 2.25, attrTimeout: 0.5 });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      const r = t.only();
      expect(u64(r.dv, 16)).toBe(2);
      expect(r.dv.getUint32(32, true)).toBe(250_000_000);
      expect(u64(r.dv, 24)).toBe(0);
      expect(r.dv.getUint32(36, true)).toBe(500_000_000);
    });
  });

  describe("missing ops and defaults", () => {
    test.each([
      ["lookup", { opcode: OP.LOOKUP, args: cstr("x") }],
      ["getattr", { opcode: OP.GETATTR, opHeader: getattrIn() }],
      ["read", { opcode: OP.READ, opHeader: rwIn(0, 0, 10) }],
      ["write", { opcode: OP.WRITE, opHeader: rwIn(0, 0, 1), args: cat("a") }],
      ["getxattr", { opcode: OP.GETXATTR, opHeader: getxattrIn(0), args: cstr("user.x") }],
      ["readdir", { opcode: OP.READDIR, opHeader: rwIn(0, 0, 4096) }],
      ["unlink", { opcode: OP.UNLINK, args: cstr("x") }],
      ["flush", { opcode: OP.FLUSH, opHeader: releaseIn(1) }],
      ["access", { opcode: OP.ACCESS, opHeader: struct(8) }],
      ["unknown opcode 99", { opcode: 99 }],
      ["INIT after init", { opcode: OP.INIT, opHeader: struct(64) }],
    ] as [string, RequestSpec][])("%s without an op answers -ENOSYS", (_n, spec) => {
      const { t, send } = rig(layout, {});
      send(spec);
      const r = t.only();
      expect(r.error).toBe(-ENOSYS);
      expect(r.len).toBe(0);
    });

    test("open and opendir without ops reply fh 0 with the mount's FOPEN defaults", () => {
      const { t, send } = rig(layout, {}, { openDefaults: 1 << 1 }); // FOPEN_KEEP_CACHE
      send({ opcode: OP.OPEN, opHeader: openIn(2) });
      send({ opcode: OP.OPENDIR, opHeader: openIn(0o200000) });
      expect(t.replies.length).toBe(2);
      for (const r of t.replies) {
        expect(r.error).toBe(0);
        expect(r.len).toBe(16);
        expect(u64(r.dv, 0)).toBe(0);
        expect(r.dv.getUint32(8, true)).toBe(2);
        expect(r.dv.getInt32(12, true)).toBe(0);
      }
    });

    test("release and releasedir without ops succeed with an empty reply", () => {
      const { t, send } = rig(layout, {});
      send({ opcode: OP.RELEASE, opHeader: releaseIn(5) });
      send({ opcode: OP.RELEASEDIR, opHeader: releaseIn(6) });
      expect(t.replies.map((r) => [r.error, r.len])).toEqual([[0, 0], [0, 0]]);
    });

    test("statfs without an op replies an 80-byte zero statfs with bsize 512, namelen 255", () => {
      const { t, send } = rig(layout, {});
      send({ opcode: OP.STATFS });
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(80);
      for (const o of [0, 8, 16, 24, 32]) expect(u64(r.dv, o)).toBe(0);
      expect(r.dv.getUint32(40, true)).toBe(512);
      expect(r.dv.getUint32(44, true)).toBe(255);
      expect(r.dv.getUint32(48, true)).toBe(512);
    });

    test("open with an op: flags decoded, fh and FOPEN bits encoded, defaults OR-ed in", () => {
      const flags: number[] = [];
      const { t, send } = rig(layout, { open: (_r, _i, f) => (flags.push(f), { fh: 2 ** 40 + 3, keepCache: true }) }, { openDefaults: 1 });
      send({ opcode: OP.OPEN, nodeid: 9, opHeader: openIn(0o1002) });
      expect(flags).toEqual([0o1002]);
      const r = t.only();
      expect(r.len).toBe(16);
      expect(u64(r.dv, 0)).toBe(2 ** 40 + 3);
      expect(r.dv.getUint32(8, true)).toBe(0b11);
    });

    test("statfs with an op encodes its result", () => {
      const { t, send } = rig(layout, { statfs: () => ({ blocks: 5 * 2 ** 32, bfree: 7, bavail: 6, files: 100, ffree: 50, bsize: 4096, namelen: 1024 }) });
      send({ opcode: OP.STATFS });
      const r = t.only();
      expect(u64(r.dv, 0)).toBe(5 * 2 ** 32);
      expect(r.dv.getUint32(40, true)).toBe(4096);
      expect(r.dv.getUint32(44, true)).toBe(1024);
    });
  });

  describe("error mapping", () => {
    const throwers: [string, () => unknown, number][] = [
      ["FuseError('ENOENT')", () => new FuseError("ENOENT"), ENOENT],
      ["FuseError(28)", () => new FuseError(28), 28],
      ["{ code: 'EACCES' }", () => ({ code: "EACCES" }), EACCES],
      ["Node-style { errno: -13 }", () => ({ errno: -13, code: "UNKNOWN_CODE" }), EACCES],
      ["a Node fs error", () => Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT", errno: -2 }), ENOENT],
      ["the number 5", () => 5, EIO],
      ["the number 61", () => 61, ENODATA],
    ];

    test.each(throwers)("a thrown %s answers its errno", (_n, make, errno) => {
      const { t, send, logs } = rig(layout, { getattr: () => { throw make(); } });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() });
      expect(t.only().error).toBe(-errno);
      expect(t.only().len).toBe(0);
      expect(logs).toEqual([]);
    });

    test.each(throwers)("a rejected promise with %s answers its errno", async (_n, make, errno) => {
      const { t, send } = rig(layout, { getattr: async () => { throw make(); } });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() });
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-errno);
    });

    test("a thrown plain Error answers EIO and logs the op, the node and the stack", () => {
      const err = new Error("kaboom in plugin");
      const { t, send, logs } = rig(layout, { getattr: () => { throw err; } });
      send({ opcode: OP.GETATTR, nodeid: 4321, opHeader: getattrIn() });
      expect(t.only().error).toBe(-EIO);
      expect(logs.length).toBe(1);
      expect(logs[0]).toContain("getattr");
      expect(logs[0]).toContain("4321");
      expect(logs[0]).toContain(err.stack!);
      expect(logs[0]).toContain("kaboom in plugin");
      expect(logs[0]).toContain("EIO");
    });

    test("a rejected plain Error answers EIO and logs it", async () => {
      const { t, send, logs } = rig(layout, { lookup: async () => { throw new TypeError("oops"); } });
      send({ opcode: OP.LOOKUP, args: cstr("f") });
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-EIO);
      expect(logs.length).toBe(1);
      expect(logs[0]).toContain("lookup");
      expect(logs[0]).toContain("TypeError: oops");
    });

    test.each([
      ["a string", "ENOENT"],
      ["a number out of range", 600],
      ["zero", 0],
      ["an unknown code", { code: "EWHATEVER" }],
      ["null", null],
    ])("throwing %s answers EIO and logs", (_n, v) => {
      const { t, send, logs } = rig(layout, { getattr: () => { throw v; } });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() });
      expect(t.only().error).toBe(-EIO);
      expect(logs.length).toBe(1);
      expect(logs[0]).toContain("getattr");
    });
  });

  describe("invalid replies become EIO, never a malformed reply", () => {
    const cases: [string, Filesystem, RequestSpec][] = [
      ["getattr returning undefined", { getattr: () => undefined as never }, { opcode: OP.GETATTR, opHeader: getattrIn() }],
      ["getattr returning a mode without type", { getattr: () => attr(1, { mode: 0o644 }) }, { opcode: OP.GETATTR, opHeader: getattrIn() }],
      ["lookup returning an entry without mode", { lookup: () => ({ ...attr(2), mode: undefined }) as never }, { opcode: OP.LOOKUP, args: cstr("x") }],
      ["lookup returning a negative size", { lookup: () => attr(2, { size: -1 }) }, { opcode: OP.LOOKUP, args: cstr("x") }],
      ["lookup resolving to null", { lookup: async () => null as never }, { opcode: OP.LOOKUP, args: cstr("x") }],
      ["read returning more bytes than asked", { read: () => new Uint8Array(11) }, { opcode: OP.READ, opHeader: rwIn(1, 0, 10) }],
      ["read returning a longer string than asked", { read: () => "x".repeat(11) as never }, { opcode: OP.READ, opHeader: rwIn(1, 0, 10) }],
      ["read returning a count larger than asked", { read: () => 11 }, { opcode: OP.READ, opHeader: rwIn(1, 0, 10) }],
      ["read returning a negative count", { read: () => -1 }, { opcode: OP.READ, opHeader: rwIn(1, 0, 10) }],
      ["read returning an object", { read: () => ({}) as never }, { opcode: OP.READ, opHeader: rwIn(1, 0, 10) }],
      ["write returning more than the data", { write: (_r, _i, _f, _o, d) => d.length + 1 }, { opcode: OP.WRITE, opHeader: rwIn(1, 0, 4), args: cat("abcd") }],
      ["write returning a fraction", { write: () => 1.5 }, { opcode: OP.WRITE, opHeader: rwIn(1, 0, 4), args: cat("abcd") }],
      ["write returning a string", { write: () => "4" as never }, { opcode: OP.WRITE, opHeader: rwIn(1, 0, 4), args: cat("abcd") }],
      ["write returning nothing", { write: async () => undefined as never }, { opcode: OP.WRITE, opHeader: rwIn(1, 0, 4), args: cat("abcd") }],
      ["open returning a number", { open: () => 7 as never }, { opcode: OP.OPEN, opHeader: openIn(0) }],
      ["statfs returning a negative count", { statfs: () => ({ blocks: -1, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255 }) }, { opcode: OP.STATFS }],
      ["listxattr returning a string", { listxattr: () => "a" as never }, { opcode: OP.LISTXATTR, opHeader: getxattrIn(100) }],
      ["listxattr returning an empty name", { listxattr: () => ["user.a", ""] }, { opcode: OP.LISTXATTR, opHeader: getxattrIn(100) }],
      ["getxattr returning a number", { getxattr: () => 5 as never }, { opcode: OP.GETXATTR, opHeader: getxattrIn(100), args: cstr("user.a") }],
      ["readlink returning more than PATH_MAX", { readlink: () => "a".repeat(4097) }, { opcode: OP.READLINK }],
      ["readdir adding a name with '/'", { readdir: (_r, _i, _f, _o, out) => void out.add("a/b", 2, S_IFREG, 1) }, { opcode: OP.READDIR, opHeader: rwIn(1, 0, 4096) }],
      ["readdir adding an empty name", { readdir: (_r, _i, _f, _o, out) => void out.add("", 2, S_IFREG, 1) }, { opcode: OP.READDIR, opHeader: rwIn(1, 0, 4096) }],
      ["create returning an entry without the entry", { create: () => ({ fh: 1 }) as never }, { opcode: OP.CREATE, opHeader: struct(16), args: cstr("n") }],
    ];

    test.each(cases)("%s", async (_n, fs, spec) => {
      const { t, send, logs } = rig(layout, fs);
      send(spec);
      await t.waitAnswers(1);
      const r = t.only();
      expect(r.error).toBe(-EIO);
      expect(r.len).toBe(0);
      expect(logs.length).toBe(1);
      expect(logs[0]).toContain("EIO");
    });

    test("a ReplyError is logged as an invalid reply naming the op", () => {
      const { t, send, logs } = rig(layout, { getattr: () => undefined as never });
      send({ opcode: OP.GETATTR, nodeid: 31, opHeader: getattrIn() });
      expect(t.only().error).toBe(-EIO);
      expect(logs[0]).toContain("getattr");
      expect(logs[0]).toContain("node 31");
    });
  });

  describe("async ops", () => {
    test("the reply is sent only after the promise settles", async () => {
      const p = Promise.withResolvers<Entry>();
      const { t, d, send } = rig(layout, { lookup: () => p.promise });
      send({ opcode: OP.LOOKUP, args: cstr("slow") });
      await tick();
      expect(t.answered).toBe(0);
      expect(d.inflight).toBe(1);
      p.resolve(attr(77));
      await t.waitAnswers(1);
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(128);
      expect(u64(r.dv, 0)).toBe(77);
      expect(d.inflight).toBe(0);
    });

    test("a rejected promise is answered after it settles", async () => {
      const p = Promise.withResolvers<Entry>();
      const { t, send } = rig(layout, { lookup: () => p.promise });
      send({ opcode: OP.LOOKUP, args: cstr("slow") });
      await tick();
      expect(t.answered).toBe(0);
      p.reject(new FuseError("EACCES"));
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-EACCES);
    });

    test("independent slots complete out of order, each with its own reply", async () => {
      const waits = new Map<string, PromiseWithResolvers<Entry>>();
      const t = new FakeTransport();
      const d = new Dispatcher(baseCfg(), {
        lookup: (_r, _p, name) => {
          const w = Promise.withResolvers<Entry>();
          waits.set(name, w);
          return w.promise;
        },
      });
      const s1 = makeSlot(t, layout, 4096, 0), s2 = makeSlot(t, layout, 4096, 1);
      writeRequest(s1, { opcode: OP.LOOKUP, unique: 10n, args: cstr("one") });
      d.dispatch(s1);
      writeRequest(s2, { opcode: OP.LOOKUP, unique: 12n, args: cstr("two") });
      d.dispatch(s2);
      expect(d.inflight).toBe(2);
      waits.get("two")!.resolve(attr(2));
      await t.waitAnswers(1);
      waits.get("one")!.resolve(attr(1));
      await t.waitAnswers(2);
      expect(t.replies.map((r) => [r.slot.index, u64(r.dv, 0)])).toEqual([[1, 2], [0, 1]]);
    });
  });

  describe("READ", () => {
    test("dest is exactly `size` bytes at the reply payload offset; zero-copy count reply", () => {
      let dest: Uint8Array | null = null;
      let args: number[] = [];
      const { t, slot, send } = rig(layout, {
        read(_r, ino, fh, offset, size, d) {
          dest = d;
          args = [ino, fh, offset, size];
          for (let i = 0; i < 5; i++) d[i] = 0x61 + i;
          return 5;
        },
      });
      send({ opcode: OP.READ, nodeid: 12, opHeader: rwIn(2 ** 33 + 1, 9 * GiB + 7, 100) });
      expect(args).toEqual([12, 2 ** 33 + 1, 9 * GiB + 7, 100]);
      expect(dest!.length).toBe(100);
      expect(dest!.buffer).toBe(slot.data.buffer);
      expect(dest!.byteOffset).toBe(slot.data.byteOffset + replyOff(layout));
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(5);
      expect(Buffer.from(r.bytes).toString()).toBe("abcde");
    });

    test("a returned Uint8Array is copied into the reply", () => {
      const data = new Uint8Array([1, 2, 3, 0, 255, 7]);
      const { t, send } = rig(layout, { read: () => data });
      send({ opcode: OP.READ, opHeader: rwIn(1, 0, 4096) });
      const r = t.only();
      expect(r.len).toBe(6);
      expect([...r.bytes]).toEqual([1, 2, 3, 0, 255, 7]);
    });

    test("a subarray of dest is sent without copying; a string is encoded as UTF-8", () => {
      const { t, send } = rig(layout, {
        read: (_r, _i, fh, _o, _s, d) => {
          if (fh === 1) {
            d.set([9, 8, 7]);
            return d.subarray(0, 3);
          }
          return "héllo" as never;
        },
      });
      send({ opcode: OP.READ, opHeader: rwIn(1, 0, 64) });
      send({ opcode: OP.READ, opHeader: rwIn(2, 0, 64) });
      expect([...t.replies[0]!.bytes]).toEqual([9, 8, 7]);
      expect(Buffer.from(t.replies[1]!.bytes).toString()).toBe("héllo");
      expect(t.replies[1]!.len).toBe(6);
    });

    test("a returned array of exactly `size` bytes is accepted; an async read works", async () => {
      const { t, send } = rig(layout, { read: async (_r, _i, _f, _o, size) => new Uint8Array(size).fill(0x5a) });
      send({ opcode: OP.READ, opHeader: rwIn(1, 0, 32) });
      await t.waitAnswers(1);
      const r = t.only();
      expect(r.len).toBe(32);
      expect(r.bytes.every((b) => b === 0x5a)).toBe(true);
    });

    test("size is clamped to the slot's reply capacity", () => {
      let got = -1;
      const { t, slot, send } = rig(layout, { read: (_r, _i, _f, _o, size, d) => ((got = size), d.length) });
      send({ opcode: OP.READ, opHeader: rwIn(1, 0, 1 << 20) });
      expect(got).toBe(slot.replyCap);
      expect(t.only().len).toBe(slot.replyCap);
    });
  });

  describe("WRITE", () => {
    test("data is a view of exactly `size` bytes at the right place; fh, offset, flags decoded", () => {
      let seen: { ino: number; fh: number; offset: number; data: Uint8Array; copy: number[]; flags: number } | null = null;
      const payload = new Uint8Array([0, 1, 2, 3, 250, 251, 252]);
      const { t, slot, send } = rig(layout, {
        write(_r, ino, fh, offset, data, flags) {
          seen = { ino, fh, offset, data, copy: [...data], flags };
          return data.length;
        },
      });
      const base = send({ opcode: OP.WRITE, nodeid: 44, opHeader: rwIn(3, 2 ** 33 + 5, payload.length, 0o2001), args: payload });
      expect(base).toBe(layout === "classic" ? 80 : 0); // 40-byte in-header + 40-byte fuse_write_in
      expect(seen!.ino).toBe(44);
      expect(seen!.fh).toBe(3);
      expect(seen!.offset).toBe(2 ** 33 + 5);
      expect(seen!.flags).toBe(0o2001);
      expect(seen!.data.length).toBe(payload.length);
      expect(seen!.data.buffer).toBe(slot.data.buffer);
      expect(seen!.data.byteOffset).toBe(slot.data.byteOffset + base);
      expect(seen!.copy).toEqual([...payload]);
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(8);
      expect(r.dv.getUint32(0, true)).toBe(payload.length);
      expect(r.dv.getUint32(4, true)).toBe(0);
    });

    test("a short write count is passed through", async () => {
      const { t, send } = rig(layout, { write: async () => 2 });
      send({ opcode: OP.WRITE, opHeader: rwIn(1, 0, 4), args: cat("abcd") });
      await t.waitAnswers(1);
      expect(t.only().dv.getUint32(0, true)).toBe(2);
    });

    test("a request carrying fewer bytes than its size is EIO, without calling write", () => {
      let called = false;
      const { t, send } = rig(layout, { write: () => ((called = true), 0) });
      send({ opcode: OP.WRITE, opHeader: rwIn(1, 0, 10), args: cat("abcd") });
      expect(called).toBe(false);
      expect(t.only().error).toBe(-EIO);
    });

    test("a zero-length write gets an empty view", () => {
      let len = -1;
      const { t, send } = rig(layout, { write: (_r, _i, _f, _o, d) => ((len = d.length), 0) });
      send({ opcode: OP.WRITE, opHeader: rwIn(1, 0, 0) });
      expect(len).toBe(0);
      expect(t.only().dv.getUint32(0, true)).toBe(0);
    });
  });

  describe("READDIR / READDIRPLUS", () => {
    test("readdir records are correct and the sink stops when the size is reached", () => {
      const results: boolean[] = [];
      let args: number[] = [];
      const { t, send } = rig(layout, {
        readdir(_r, ino, fh, offset, out: DirList) {
          args = [ino, fh, offset];
          const entries: [string, number, number][] = [["a", 10, S_IFREG], ["bb", 2 ** 40, S_IFDIR], ["ccc", 12, S_IFLNK], ["d", 13, S_IFREG]];
          for (const [i, [name, ino2, mode]] of entries.entries()) {
            const ok = out.add(name, ino2, mode | 0o644, offset + i + 1);
            results.push(ok);
            if (!ok) break;
          }
        },
      });
      // 80 bytes: two 32-byte records fit, the third (needs 96) does not
      send({ opcode: OP.READDIR, nodeid: 1, opHeader: rwIn(6, 2 ** 32, 80) });
      expect(args).toEqual([1, 6, 2 ** 32]);
      expect(results).toEqual([true, true, false]);
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(64);
      expect(parseDirents(r).map(({ rec: _, ...d }) => d)).toEqual([
        { ino: 10, off: 2 ** 32 + 1, type: 8, name: "a" },
        { ino: 2 ** 40, off: 2 ** 32 + 2, type: 4, name: "bb" },
      ]);
    });

    test("readdir: an empty listing replies 0 bytes (end of directory)", () => {
      const { t, send } = rig(layout, { readdir: () => {} });
      send({ opcode: OP.READDIR, opHeader: rwIn(1, 99, 4096) });
      expect(t.only().error).toBe(0);
      expect(t.only().len).toBe(0);
    });

    test("readdir never writes past the slot's reply capacity", () => {
      let added = 0;
      const { t, slot, send } = rig(layout, {
        readdir(_r, _i, _f, _o, out) {
          for (let i = 0; i < 10_000 && out.add(`e${String(i).padStart(5, "0")}`, i + 2, S_IFREG, i + 1); i++) added++;
        },
      });
      send({ opcode: OP.READDIR, opHeader: rwIn(1, 0, 1 << 20) });
      const rec = 32; // align8(24 + 6)
      expect(added).toBe(Math.floor(slot.replyCap / rec));
      expect(t.only().len).toBe(added * rec);
      const ds = parseDirents(t.only());
      expect(ds.length).toBe(added);
      expect(ds.at(-1)!.name).toBe(`e${String(added - 1).padStart(5, "0")}`);
    });

    test("an async readdir adds entries after awaiting", async () => {
      const { t, send } = rig(layout, {
        async readdir(_r, _i, _f, _o, out) {
          await tick();
          out.add(".", 1, S_IFDIR, 1);
          out.add("..", 1, S_IFDIR, 2);
        },
      });
      send({ opcode: OP.READDIR, opHeader: rwIn(1, 0, 4096) });
      await t.waitAnswers(1);
      expect(parseDirents(t.only()).map((d) => [d.name, d.type, d.off])).toEqual([[".", 4, 1], ["..", 4, 2]]);
    });

    test("readdirplus records: entry_out + dirent (name @152), stops when full", () => {
      const results: boolean[] = [];
      const { t, send } = rig(
        layout,
        {
          readdirplus(_r, _i, _f, _o, out: DirListPlus) {
            for (const [i, e] of [attr(20, { mode: S_IFDIR | 0o755 }), null, attr(22)].entries()) {
              const ok = out.add(`n${i}`, e, i + 1);
              results.push(ok);
              if (!ok) break;
            }
          },
        },
        { entryTimeout: 3, attrTimeout: 0.5 },
      );
      // each record is align8(152 + 2) = 160 bytes; 330 fits two
      send({ opcode: OP.READDIRPLUS, opHeader: rwIn(1, 0, 330) });
      expect(results).toEqual([true, true, false]);
      const r = t.only();
      expect(r.len).toBe(320);
      // first: a real entry
      expect(u64(r.dv, 0)).toBe(20);
      expect(u64(r.dv, 16)).toBe(3);
      expect(u64(r.dv, 24)).toBe(0);
      expect(r.dv.getUint32(36, true)).toBe(500_000_000);
      expect(u64(r.dv, 40)).toBe(20);
      expect(u64(r.dv, 128)).toBe(20);
      expect(u64(r.dv, 136)).toBe(1);
      expect(r.dv.getUint32(144, true)).toBe(2);
      expect(r.dv.getUint32(148, true)).toBe(4);
      expect(Buffer.from(r.bytes.subarray(152, 154)).toString()).toBe("n0");
      expect(r.bytes.subarray(154, 160).every((b) => b === 0)).toBe(true);
      // second: name only
      expect(r.bytes.subarray(160, 160 + 128).every((b) => b === 0)).toBe(true);
      expect(u64(r.dv, 160 + 128)).toBe(0);
      expect(u64(r.dv, 160 + 136)).toBe(2);
      expect(Buffer.from(r.bytes.subarray(160 + 152, 160 + 154)).toString()).toBe("n1");
    });

    test("readdirplus with an invalid entry answers EIO", () => {
      const { t, send } = rig(layout, { readdirplus: (_r, _i, _f, _o, out) => void out.add("x", attr(5, { mode: 0o600 }), 1) });
      send({ opcode: OP.READDIRPLUS, opHeader: rwIn(1, 0, 4096) });
      expect(t.only().error).toBe(-EIO);
    });
  });

  describe("xattrs", () => {
    test("GETXATTR size 0 returns an 8-byte fuse_getxattr_out with the length", () => {
      const names: string[] = [];
      const { t, send } = rig(layout, { getxattr: (_r, _i, n) => (names.push(n), "välue") });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(0), args: cstr("user.comment") });
      expect(names).toEqual(["user.comment"]);
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(8);
      expect(r.dv.getUint32(0, true)).toBe(6); // UTF-8 bytes
      expect(r.dv.getUint32(4, true)).toBe(0);
    });

    test("GETXATTR with a too-small size answers -ERANGE", () => {
      const { t, send } = rig(layout, { getxattr: () => new Uint8Array(10) });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(9), args: cstr("user.x") });
      expect(t.only().error).toBe(-ERANGE);
    });

    test("GETXATTR with room returns the value bytes", async () => {
      const { t, send } = rig(layout, { getxattr: async () => new Uint8Array([0, 1, 0, 255]) });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(4), args: cstr("trusted.bin") });
      await t.waitAnswers(1);
      const r = t.only();
      expect(r.len).toBe(4);
      expect([...r.bytes]).toEqual([0, 1, 0, 255]);
    });

    test("GETXATTR of an absent attribute answers ENODATA", () => {
      const { t, send } = rig(layout, { getxattr: () => { throw new FuseError("ENODATA"); } });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(0), args: cstr("user.none") });
      expect(t.only().error).toBe(-ENODATA);
    });

    test("LISTXATTR joins names with NULs (probe, full, too small)", () => {
      const names = ["user.a", "user.bb", "security.selinux"];
      const joined = names.map((n) => n + "\0").join("");
      const { t, send } = rig(layout, { listxattr: () => names });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(0) });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(1000) });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(joined.length - 1) });
      const [probe, full, small] = t.replies;
      expect(probe!.len).toBe(8);
      expect(probe!.dv.getUint32(0, true)).toBe(joined.length);
      expect(full!.len).toBe(joined.length);
      expect(Buffer.from(full!.bytes).toString("latin1")).toBe(joined);
      expect(small!.error).toBe(-ERANGE);
    });

    test("LISTXATTR of no names is empty", () => {
      const { t, send } = rig(layout, { listxattr: () => [] });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(0) });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(100) });
      expect(t.replies[0]!.dv.getUint32(0, true)).toBe(0);
      expect(t.replies[1]!.error).toBe(0);
      expect(t.replies[1]!.len).toBe(0);
    });

    describe.each([true, false])("SETXATTR with setxattrExt=%p", (ext) => {
      test("decodes name, value bytes and flags", () => {
        let seen: { name: string; value: number[]; flags: number; view: Uint8Array } | null = null;
        const value = new Uint8Array([1, 0, 2, 255, 0]);
        const { t, slot, send } = rig(layout, {
          setxattr(_r, _i, name, v, flags) {
            seen = { name, value: [...v], flags, view: v };
          },
        }, { setxattrExt: ext });
        const base = send({ opcode: OP.SETXATTR, opHeader: setxattrIn(ext, value.length, 2), args: cat(cstr("user.key"), value) });
        expect(base).toBe(layout === "classic" ? 40 + (ext ? 16 : 8) : 0);
        expect(seen!.name).toBe("user.key");
        expect(seen!.value).toEqual([1, 0, 2, 255, 0]);
        expect(seen!.flags).toBe(2);
        expect(seen!.view.length).toBe(5);
        expect(seen!.view.byteOffset).toBe(slot.data.byteOffset + base + "user.key".length + 1);
        expect(t.only().error).toBe(0);
        expect(t.only().len).toBe(0);
      });

      test("an empty value is an empty view", () => {
        let len = -1;
        const { t, send } = rig(layout, { setxattr: (_r, _i, _n, v) => void (len = v.length) }, { setxattrExt: ext });
        send({ opcode: OP.SETXATTR, opHeader: setxattrIn(ext, 0, 0), args: cstr("user.empty") });
        expect(len).toBe(0);
        expect(t.only().error).toBe(0);
      });

      test("a value shorter than announced is EIO without calling setxattr", () => {
        let called = false;
        const { t, send } = rig(layout, { setxattr: () => void (called = true) }, { setxattrExt: ext });
        send({ opcode: OP.SETXATTR, opHeader: setxattrIn(ext, 50, 0), args: cat(cstr("user.k"), "abc") });
        expect(called).toBe(false);
        expect(t.only().error).toBe(-EIO);
      });
    });

    test("REMOVEXATTR decodes the name", () => {
      const names: string[] = [];
      const { t, send } = rig(layout, { removexattr: (_r, _i, n) => void names.push(n) });
      send({ opcode: OP.REMOVEXATTR, args: cstr("user.gone") });
      expect(names).toEqual(["user.gone"]);
      expect(t.only().len).toBe(0);
    });
  });

  describe("namespace ops", () => {
    test("RENAME decodes old parent, both names, newdir, flags 0", () => {
      const calls: unknown[][] = [];
      const { t, send } = rig(layout, { rename: (_r, ...a) => void calls.push(a) });
      send({ opcode: OP.RENAME, nodeid: 5, opHeader: renameIn(2 ** 35 + 1), args: cat(cstr("old name"), cstr("nëw")) });
      expect(calls).toEqual([[5, "old name", 2 ** 35 + 1, "nëw", 0]]);
      expect(t.only().error).toBe(0);
      expect(t.only().len).toBe(0);
    });

    test.each([1, 2, 4])("RENAME2 decodes both names, newdir and flags %d", (flags) => {
      const calls: unknown[][] = [];
      const { t, send } = rig(layout, { rename: (_r, ...a) => void calls.push(a) });
      send({ opcode: OP.RENAME2, nodeid: 6, opHeader: rename2In(7, flags), args: cat(cstr("a"), cstr("b")) });
      expect(calls).toEqual([[6, "a", 7, "b", flags]]);
      expect(t.only().error).toBe(0);
    });

    test("RENAME with a missing second name is EIO", () => {
      const { t, send } = rig(layout, { rename: () => {} });
      send({ opcode: OP.RENAME, opHeader: renameIn(1), args: cat(cstr("a"), "b") });
      expect(t.only().error).toBe(-EIO);
    });

    test("MKDIR, MKNOD, SYMLINK, LINK, UNLINK, RMDIR decode their arguments", () => {
      const calls: unknown[][] = [];
      const fs: Filesystem = {
        mkdir: (_r, ...a) => (calls.push(["mkdir", ...a]), attr(30, { mode: S_IFDIR | 0o755 })),
        mknod: (_r, ...a) => (calls.push(["mknod", ...a]), attr(31)),
        symlink: (_r, ...a) => (calls.push(["symlink", ...a]), attr(32, { mode: S_IFLNK | 0o777 })),
        link: (_r, ...a) => (calls.push(["link", ...a]), attr(33)),
        unlink: (_r, ...a) => void calls.push(["unlink", ...a]),
        rmdir: (_r, ...a) => void calls.push(["rmdir", ...a]),
      };
      const { t, send } = rig(layout, fs);
      send({ opcode: OP.MKDIR, nodeid: 1, opHeader: struct(8, (d) => { d.setUint32(0, 0o755, true); d.setUint32(4, 0o022, true); }), args: cstr("dir") });
      send({ opcode: OP.MKNOD, nodeid: 1, opHeader: struct(16, (d) => { d.setUint32(0, S_IFREG | 0o600, true); d.setUint32(4, 0x0801, true); d.setUint32(8, 0o077, true); }), args: cstr("node") });
      send({ opcode: OP.SYMLINK, nodeid: 2, args: cat(cstr("ln"), cstr("../target/path")) });
      send({ opcode: OP.LINK, nodeid: 3, opHeader: struct(8, (d) => d.setBigUint64(0, 2n ** 34n, true)), args: cstr("hard") });
      send({ opcode: OP.UNLINK, nodeid: 4, args: cstr("f") });
      send({ opcode: OP.RMDIR, nodeid: 4, args: cstr("d") });
      expect(calls).toEqual([
        ["mkdir", 1, "dir", 0o755, 0o022],
        ["mknod", 1, "node", S_IFREG | 0o600, 0x0801, 0o077],
        ["symlink", 2, "ln", "../target/path"],
        ["link", 2 ** 34, 3, "hard"],
        ["unlink", 4, "f"],
        ["rmdir", 4, "d"],
      ]);
      expect(t.replies.map((r) => [r.error, r.len])).toEqual([[0, 128], [0, 128], [0, 128], [0, 128], [0, 0], [0, 0]]);
      expect(u64(t.replies[2]!.dv, 0)).toBe(32);
    });

    test("CREATE replies entry_out + open_out (144 bytes)", () => {
      const calls: unknown[][] = [];
      const { t, send } = rig(layout, { create: (_r, ...a) => (calls.push(a), { entry: attr(40), fh: 2 ** 36, directIo: true }) });
      const hdr = struct(16, (d) => { d.setUint32(0, 0o101, true); d.setUint32(4, S_IFREG | 0o640, true); d.setUint32(8, 0o027, true); });
      send({ opcode: OP.CREATE, nodeid: 1, opHeader: hdr, args: cstr("new.txt") });
      expect(calls).toEqual([[1, "new.txt", S_IFREG | 0o640, 0o101, 0o027, false]]);
      const r = t.only();
      expect(r.len).toBe(144);
      expect(u64(r.dv, 0)).toBe(40);
      expect(u64(r.dv, 128)).toBe(2 ** 36);
      expect(r.dv.getUint32(136, true)).toBe(1);
    });

    test("READLINK returns the target bytes", () => {
      const { t, send } = rig(layout, { readlink: () => "/a/b/ç" });
      send({ opcode: OP.READLINK });
      expect(Buffer.from(t.only().bytes).toString()).toBe("/a/b/ç");
    });
  });

  describe("names are bytes (escaped, never replaced)", () => {
    const B = (...xs: number[]) => new Uint8Array(xs);
    const name = (s: string, ...tail: number[]) => cat(s, B(...tail));
    const z = B(0);

    test("names with bytes that are not UTF-8 reach every op exactly, escaped as U+DC80+byte", () => {
      const calls: unknown[][] = [];
      const fs: Filesystem = {
        lookup: (_r, ...a) => (calls.push(["lookup", ...a]), attr(2)),
        create: (_r, p, n) => (calls.push(["create", p, n]), { entry: attr(3) }),
        mkdir: (_r, p, n) => (calls.push(["mkdir", p, n]), attr(4, { mode: S_IFDIR | 0o755 })),
        symlink: (_r, ...a) => (calls.push(["symlink", ...a]), attr(5, { mode: S_IFLNK | 0o777 })),
        link: (_r, ...a) => (calls.push(["link", ...a]), attr(6)),
        rename: (_r, ...a) => void calls.push(["rename", ...a]),
        unlink: (_r, ...a) => void calls.push(["unlink", ...a]),
        setxattr: (_r, _i, n, v) => void calls.push(["setxattr", n, [...v]]),
        getxattr: (_r, _i, n) => (calls.push(["getxattr", n]), B(0xff)),
        removexattr: (_r, _i, n) => void calls.push(["removexattr", n]),
      };
      const { t, send } = rig(layout, fs);
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cat(name("a", 0xe9), z) });
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cat(name("a", 0xe8), z) });
      send({ opcode: OP.CREATE, nodeid: 1, opHeader: struct(16), args: cat(name("new", 0xff), ".bin", z) });
      send({ opcode: OP.MKDIR, nodeid: 1, opHeader: struct(8), args: cat(B(0xc0, 0x80, 0)) });
      send({ opcode: OP.SYMLINK, nodeid: 1, args: cat(name("l", 0xfe), z, name("t/", 0xed, 0xa0, 0x80), z) });
      send({ opcode: OP.LINK, nodeid: 1, opHeader: struct(8, (d) => d.setBigUint64(0, 9n, true)), args: cat(name("h", 0xf0, 0x9f, 0x98), z) });
      send({ opcode: OP.RENAME, nodeid: 1, opHeader: renameIn(1), args: cat(name("caf", 0xe9), z, name("caf"), "\u00e9", z) });
      send({ opcode: OP.UNLINK, nodeid: 1, args: cat(name("x", 0x80), z) });
      send({ opcode: OP.SETXATTR, opHeader: setxattrIn(true, 3, 0), args: cat(name("user.", 0xe9), z, B(0xe9, 0, 0xff)) });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(0), args: cat(name("user.", 0xe8), z) });
      send({ opcode: OP.REMOVEXATTR, args: cat(name("user.", 0xff), z) });
      expect(calls).toEqual([
        ["lookup", 1, "a\udce9"],
        ["lookup", 1, "a\udce8"],
        ["create", 1, "new\udcff.bin"],
        ["mkdir", 1, "\udcc0\udc80"],
        ["symlink", 1, "l\udcfe", "t/\udced\udca0\udc80"],
        ["link", 9, 1, "h\udcf0\udc9f\udc98"],
        ["rename", 1, "caf\udce9", 1, "café", 0],
        ["unlink", 1, "x\udc80"],
        ["setxattr", "user.\udce9", [0xe9, 0, 0xff]],
        ["getxattr", "user.\udce8"],
        ["removexattr", "user.\udcff"],
      ]);
      expect(t.replies.every((r) => r.error === 0)).toBe(true);
    });

    test("readdir and readdirplus names, link targets and xattrs go back as their exact bytes", () => {
      const { t, send } = rig(layout, {
        readdir: (_r, _i, _fh, _o, out: DirList) => void (out.add("caf\udce9.txt", 10, S_IFREG, 1), out.add("a\udce8", 11, S_IFREG, 2)),
        readdirplus: (_r, _i, _fh, _o, out: DirListPlus) => void out.add("d\udcff", attr(12), 1),
        readlink: () => "t/\udced\udca0\udc80",
        listxattr: () => ["user.\udce9", "user.ok"],
        getxattr: () => "v\udcff",
      });
      send({ opcode: OP.READDIR, opHeader: rwIn(1, 0, 4096) });
      send({ opcode: OP.READDIRPLUS, opHeader: rwIn(1, 0, 4096) });
      send({ opcode: OP.READLINK });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(100) });
      send({ opcode: OP.GETXATTR, opHeader: getxattrIn(100), args: cstr("user.x") });
      const [dir, plus, link, list, get] = t.replies.map((r) => r.bytes);
      const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
      expect(hex(dir!.subarray(24, 32))).toBe(hex(B(0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74)));
      expect(new DataView(dir!.buffer, dir!.byteOffset).getUint32(16, true)).toBe(8);
      expect(hex(dir!.subarray(32 + 24, 32 + 26))).toBe("61e8");
      expect(hex(plus!.subarray(152, 154))).toBe("64ff");
      expect(hex(link!)).toBe("742feda080");
      expect(hex(list!)).toBe(hex(cat(name("user.", 0xe9), z, "user.ok", z)));
      expect(hex(get!)).toBe("76ff");
    });

    test("a string that is not a name string is refused with EIO, never sent changed", () => {
      const { t, send, logs } = rig(layout, {
        readdir: (_r, _i, _fh, _o, out: DirList) => void out.add("bad\ud800", 10, S_IFREG, 1),
        readlink: () => "\udcc3\udca9", // escapes that spell "é"
        listxattr: () => ["user.\udc00"],
      });
      send({ opcode: OP.READDIR, opHeader: rwIn(1, 0, 4096) });
      send({ opcode: OP.READLINK });
      send({ opcode: OP.LISTXATTR, opHeader: getxattrIn(100) });
      expect(t.replies.map((r) => r.error)).toEqual([-EIO, -EIO, -EIO]);
      expect(logs.filter((l) => l.includes("not a file name string")).length).toBe(3);
    });
  });

  describe("GETATTR / SETATTR", () => {
    test("GETATTR passes fh only with FUSE_GETATTR_FH and replies a 104-byte attr_out", () => {
      const fhs: (number | undefined)[] = [];
      const { t, send } = rig(layout, { getattr: (_r, ino, fh) => (fhs.push(fh), attr(ino)) }, { attrTimeout: 1.5 });
      send({ opcode: OP.GETATTR, nodeid: 8, opHeader: getattrIn() });
      send({ opcode: OP.GETATTR, nodeid: 8, opHeader: getattrIn(2 ** 34 + 2) });
      expect(fhs).toEqual([undefined, 2 ** 34 + 2]);
      const r = t.replies[0]!;
      expect(r.len).toBe(104);
      expect(u64(r.dv, 0)).toBe(1);
      expect(r.dv.getUint32(8, true)).toBe(500_000_000);
      expect(u64(r.dv, 16)).toBe(8);
      expect(u64(r.dv, 24)).toBe(9 * GiB);
    });

    test("a per-reply attrTimeout overrides attr_timeout", () => {
      const { t, send } = rig(layout, { getattr: () => ({ ...attr(1), attrTimeout: 30 }) });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() });
      expect(u64(t.only().dv, 0)).toBe(30);
    });

    test("SETATTR decodes only the fields named in `valid`", () => {
      const seen: SetAttr[] = [];
      const { t, send } = rig(layout, { setattr: (_r, ino, ch) => (seen.push(ch), attr(ino)) });
      // valid = MODE | SIZE | ATIME_NOW | MTIME | FH | KILL_SUIDGID
      const valid = (1 << 0) | (1 << 3) | (1 << 7) | (1 << 5) | (1 << 6) | (1 << 11);
      const hdr = struct(88, (d) => {
        d.setUint32(0, valid, true);
        d.setBigUint64(8, 77n, true); // fh
        d.setBigUint64(16, BigInt(9 * GiB), true); // size
        d.setBigInt64(40, -5n, true); // mtime
        d.setUint32(60, 123, true); // mtimensec
        d.setUint32(68, S_IFREG | 0o600, true); // mode
        d.setUint32(76, 999, true); // uid (not in valid)
      });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: hdr });
      expect(seen).toEqual([{ mode: S_IFREG | 0o600, size: 9 * GiB, atime: "now", mtime: { sec: -5, nsec: 123 }, fh: 77, killSuidgid: true }]);
      expect(t.only().len).toBe(104);
    });
  });

  describe("FORGET / BATCH_FORGET", () => {
    test("FORGET calls forget(nodeid, nlookup) and never replies", () => {
      const calls: [number, number][] = [];
      const { t, send } = rig(layout, { forget: (i, n) => void calls.push([i, n]) });
      send({ opcode: OP.FORGET, nodeid: 2 ** 33 + 9, opHeader: forgetIn(2 ** 32 + 3) });
      expect(calls).toEqual([[2 ** 33 + 9, 2 ** 32 + 3]]);
      expect(t.replies.length).toBe(0);
      expect(t.noReplies.length).toBe(1);
    });

    test("FORGET without a forget op still never replies", () => {
      const { t, send } = rig(layout, {});
      send({ opcode: OP.FORGET, nodeid: 5, opHeader: forgetIn(1) });
      expect(t.replies.length).toBe(0);
      expect(t.noReplies.length).toBe(1);
    });

    test("BATCH_FORGET calls forget for every (nodeid, nlookup) pair and never replies", () => {
      const calls: [number, number][] = [];
      const { t, send } = rig(layout, { forget: (i, n) => void calls.push([i, n]) });
      send({
        opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(3),
        args: cat(forgetOne(10, 1), forgetOne(2 ** 40, 7), forgetOne(12, 2 ** 32)),
      });
      expect(calls).toEqual([[10, 1], [2 ** 40, 7], [12, 2 ** 32]]);
      expect(t.replies.length).toBe(0);
      expect(t.noReplies.length).toBe(1);
    });

    test("BATCH_FORGET never reads past the request when count exceeds the pairs carried", () => {
      const calls: [number, number][] = [];
      const { t, slot, send } = rig(layout, { forget: (i, n) => void calls.push([i, n]) });
      // garbage after the request that must not be read as pairs
      slot.dataBytes.fill(0x11);
      send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(5), args: cat(forgetOne(3, 1), forgetOne(4, 2)) });
      expect(calls).toEqual([[3, 1], [4, 2]]);
      expect(t.noReplies.length).toBe(1);
    });
  });

  describe("INTERRUPT", () => {
    test("fires the AbortSignal of the in-flight request with the matching unique", async () => {
      const reqs: Request[] = [];
      const t = new FakeTransport(layout);
      const dev = new FakeTransport("classic");
      const d = new Dispatcher(baseCfg(), {
        getattr: (r) => {
          reqs.push(r);
          return new Promise<never>(() => {}); // never settles
        },
      });
      const target = makeSlot(t, layout, 4096, 0);
      const other = makeSlot(t, layout, 4096, 1);
      const intr = makeSlot(dev, "classic", 4096, 0); // INTERRUPT always comes through /dev/fuse
      writeRequest(target, { opcode: OP.GETATTR, unique: 0x5_0000_0010n, opHeader: getattrIn() });
      d.dispatch(target);
      writeRequest(other, { opcode: OP.GETATTR, unique: 0x6_0000_0010n, opHeader: getattrIn() });
      d.dispatch(other);
      const [req, otherReq] = reqs;

      // an INTERRUPT naming an unknown unique (same low half) aborts nothing
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 0x7_0000_0011n, opHeader: interruptIn(0x7_0000_0010n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(false);
      expect(otherReq!.signal.aborted).toBe(false);

      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 0x5_0000_0011n, opHeader: interruptIn(0x5_0000_0010n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(true);
      expect((req!.signal.reason as { code?: string }).code).toBe("EINTR");
      expect(otherReq!.signal.aborted).toBe(false);
      // INTERRUPT itself is never answered; the target is still being served
      expect(dev.replies.length).toBe(0);
      expect(dev.noReplies.length).toBe(2);
      await tick();
      expect(t.answered).toBe(0);
      expect(d.inflight).toBe(2);
    });

    test("a listener on the signal fires; rejecting with its reason answers -EINTR", async () => {
      const t = new FakeTransport(layout);
      const d = new Dispatcher(baseCfg(), {
        read: (r) => new Promise<number>((_res, rej) => r.signal.addEventListener("abort", () => rej(r.signal.reason))),
      });
      const target = makeSlot(t, layout, 4096, 0);
      const intr = makeSlot(new FakeTransport("classic"), "classic", 4096, 0);
      writeRequest(target, { opcode: OP.READ, unique: 42n, opHeader: rwIn(1, 0, 10) });
      d.dispatch(target);
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 43n, opHeader: interruptIn(42n) });
      d.dispatch(intr);
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-EINTR);
    });

    test("an INTERRUPT for a request already answered does nothing", () => {
      let req: Request | null = null;
      const t = new FakeTransport(layout);
      const d = new Dispatcher(baseCfg(), { getattr: (r, ino) => ((req = r), attr(ino)) });
      const target = makeSlot(t, layout, 4096, 0);
      const intr = makeSlot(new FakeTransport("classic"), "classic", 4096, 0);
      writeRequest(target, { opcode: OP.GETATTR, unique: 100n, opHeader: getattrIn() });
      d.dispatch(target);
      expect(t.only().error).toBe(0);
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 101n, opHeader: interruptIn(100n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(false);
      expect(t.replies.length).toBe(1);
    });
  });

  describe("negative_timeout", () => {
    test("ENOENT from lookup becomes a zero-nodeid entry cached for negative_timeout", async () => {
      const { t, send } = rig(layout, {
        lookup: (_r, _p, name) => {
          if (name === "sync") throw new FuseError("ENOENT");
          if (name === "code") throw { code: "ENOENT" };
          return Promise.reject(new FuseError("ENOENT"));
        },
      }, { negativeTimeout: 2.5 });
      send({ opcode: OP.LOOKUP, args: cstr("sync") });
      send({ opcode: OP.LOOKUP, args: cstr("code") });
      send({ opcode: OP.LOOKUP, args: cstr("async") });
      await t.waitAnswers(3);
      for (const r of t.replies) {
        expect(r.error).toBe(0);
        expect(r.len).toBe(128);
        expect(u64(r.dv, 0)).toBe(0);
        expect(u64(r.dv, 16)).toBe(2);
        expect(r.dv.getUint32(32, true)).toBe(500_000_000);
        expect(r.bytes.subarray(40, 128).every((b) => b === 0)).toBe(true);
      }
    });

    test("other errors, other ops, and negative_timeout 0 keep the error", () => {
      const { t, send } = rig(layout, {
        lookup: () => { throw new FuseError("EACCES"); },
        getattr: () => { throw new FuseError("ENOENT"); },
      }, { negativeTimeout: 5 });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() });
      expect(t.replies.map((r) => r.error)).toEqual([-EACCES, -ENOENT]);
      const z = rig(layout, { lookup: () => { throw new FuseError("ENOENT"); } });
      z.send({ opcode: OP.LOOKUP, args: cstr("x") });
      expect(z.t.only().error).toBe(-ENOENT);
    });
  });

  describe("kernel node references", () => {
    test("successful entry replies add a reference, FORGET / BATCH_FORGET take them back", async () => {
      const { t, d, send } = rig(layout, {
        lookup: (_r, _p, n) => {
          if (n === "missing") throw new FuseError("ENOENT");
          if (n === "bad") return attr(99, { mode: 0o644 }); // invalid → EIO, not counted
          return attr(n === "a" ? 10 : 11);
        },
        create: () => ({ entry: attr(12) }),
        mkdir: () => attr(13, { mode: S_IFDIR | 0o755 }),
      });
      for (const n of ["a", "a", "b", "missing", "bad"]) send({ opcode: OP.LOOKUP, args: cstr(n) });
      send({ opcode: OP.CREATE, opHeader: struct(16), args: cstr("c") });
      send({ opcode: OP.MKDIR, opHeader: struct(8), args: cstr("d") });
      await t.waitAnswers(7);
      expect(t.replies.map((r) => r.error)).toEqual([0, 0, 0, -ENOENT, -EIO, 0, 0]);
      expect([...d.nodes.ids()].sort((x, y) => x - y)).toEqual([10, 11, 12, 13]);
      send({ opcode: OP.FORGET, nodeid: 10, opHeader: forgetIn(1) });
      expect(d.nodes.size).toBe(4); // 10 was looked up twice
      send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(3), args: cat(forgetOne(10, 1), forgetOne(11, 1), forgetOne(12, 5)) });
      expect([...d.nodes.ids()]).toEqual([13]);
    });

    test("readdirplus entries count, except '.', '..', name-only entries and the root", () => {
      const { t, d, send } = rig(layout, {
        readdirplus(_r, _i, _f, _o, out) {
          out.add(".", attr(1, { mode: S_IFDIR | 0o755 }), 1);
          out.add("..", attr(5, { mode: S_IFDIR | 0o755 }), 2);
          out.add("x", attr(20), 3);
          out.add("y", null, 4);
          out.add("z", attr(21), 5);
        },
      });
      send({ opcode: OP.READDIRPLUS, opHeader: rwIn(1, 0, 4096) });
      expect(t.only().error).toBe(0);
      expect([...d.nodes.ids()].sort()).toEqual([20, 21]);
    });

    test("a lookup of the root is never counted", () => {
      const { d, send } = rig(layout, { lookup: () => attr(1, { mode: S_IFDIR | 0o755 }) });
      send({ opcode: OP.LOOKUP, args: cstr("..") });
      expect(d.nodes.size).toBe(0);
    });
  });

  describe("hot reload generations", () => {
    test("requests in flight finish on the old generation; onIdle runs after the last one", async () => {
      const p = Promise.withResolvers<Attr>();
      const t = new FakeTransport(layout);
      const d = new Dispatcher(baseCfg(), { getattr: () => p.promise });
      const s0 = makeSlot(t, layout, 4096, 0), s1 = makeSlot(t, layout, 4096, 1);
      writeRequest(s0, { opcode: OP.GETATTR, nodeid: 2, opHeader: getattrIn() });
      d.dispatch(s0);
      const idle: number[] = [];
      d.swap(new Generation(2, { getattr: (_r, ino) => attr(ino, { size: 222 }) }), (old) => idle.push(old.id));
      expect(idle).toEqual([]);
      writeRequest(s1, { opcode: OP.GETATTR, nodeid: 3, opHeader: getattrIn() });
      d.dispatch(s1);
      expect(u64(t.only().dv, 16 + 8)).toBe(222); // new generation answered
      expect(idle).toEqual([]);
      p.resolve(attr(2, { size: 111 }));
      await t.waitAnswers(2);
      expect(u64(t.replies[1]!.dv, 16 + 8)).toBe(111); // old generation answered its request
      expect(idle).toEqual([1]);
    });

    test("swapping an idle generation calls onIdle at once", () => {
      const d = new Dispatcher(baseCfg(), {});
      const idle: number[] = [];
      d.swap(new Generation(2, {}), (old) => idle.push(old.id));
      expect(idle).toEqual([1]);
    });
  });

  describe("kernel passthrough (backingFd)", () => {
    test("open with backingFd registers it and replies FOPEN_PASSTHROUGH + backing_id", () => {
      const opened: [number, number][] = [];
      const released: number[] = [];
      const backing = { open: (fd: number, fh: number) => (opened.push([fd, fh]), 7), release: (fh: number) => void released.push(fh) };
      const { t, send } = rig(layout, { open: () => ({ fh: 5, backingFd: 33 }) }, { backing });
      send({ opcode: OP.OPEN, opHeader: openIn(0) });
      expect(opened).toEqual([[33, 5]]);
      const r = t.only();
      expect(u64(r.dv, 0)).toBe(5);
      expect(r.dv.getUint32(8, true) & (1 << 7)).toBe(1 << 7);
      expect(r.dv.getInt32(12, true)).toBe(7);
      send({ opcode: OP.RELEASE, opHeader: releaseIn(5) });
      expect(released).toEqual([5]);
    });

    test("without passthrough negotiated, backingFd is ignored", () => {
      const { t, send } = rig(layout, { open: () => ({ fh: 5, backingFd: 33 }) });
      send({ opcode: OP.OPEN, opHeader: openIn(0) });
      const r = t.only();
      expect(r.dv.getUint32(8, true)).toBe(0);
      expect(r.dv.getInt32(12, true)).toBe(0);
    });

    test("an invalid backingFd answers EIO", () => {
      const backing = { open: () => 1, release: () => {} };
      const { t, send } = rig(layout, { open: () => ({ fh: 5, backingFd: -1 }) }, { backing });
      send({ opcode: OP.OPEN, opHeader: openIn(0) });
      expect(t.only().error).toBe(-EIO);
    });
  });

  describe("allow_root (denyOthers)", () => {
    test("other non-root users get EACCES without reaching the plugin; owner and root pass", () => {
      const uids: number[] = [];
      const { t, send } = rig(layout, { lookup: (r) => (uids.push(r.uid), attr(2)) }, { denyOthers: 1000 });
      send({ opcode: OP.LOOKUP, uid: 1234, args: cstr("x") });
      send({ opcode: OP.LOOKUP, uid: 1000, args: cstr("x") });
      send({ opcode: OP.LOOKUP, uid: 0, args: cstr("x") });
      expect(t.replies.map((r) => r.error)).toEqual([-EACCES, 0, 0]);
      expect(uids).toEqual([1000, 0]);
    });

    test("ops on already-open handles are not refused, and FORGET is still never answered", () => {
      const { t, send } = rig(layout, { read: () => 0, forget: () => {} }, { denyOthers: 1000 });
      send({ opcode: OP.READ, uid: 1234, opHeader: rwIn(1, 0, 10) });
      send({ opcode: OP.RELEASE, uid: 1234, opHeader: releaseIn(1) });
      send({ opcode: OP.FORGET, uid: 1234, opHeader: forgetIn(1) });
      expect(t.replies.map((r) => r.error)).toEqual([0, 0]);
      expect(t.noReplies.length).toBe(1);
    });
  });

  describe("stats and trace", () => {
    test("per-op stats count requests and errors", async () => {
      const { t, d, send } = rig(layout, {
        lookup: (_r, _p, n) => {
          if (n === "missing") throw new FuseError("ENOENT");
          return n === "async" ? Promise.resolve(attr(3)) : attr(2);
        },
        forget: () => {},
      });
      send({ opcode: OP.LOOKUP, args: cstr("a") });
      send({ opcode: OP.LOOKUP, args: cstr("missing") });
      send({ opcode: OP.LOOKUP, args: cstr("async") }, makeSlot(t, layout, 4096, 1)); // own slot: still in flight
      send({ opcode: OP.GETATTR, opHeader: getattrIn() }); // ENOSYS
      send({ opcode: OP.FORGET, opHeader: forgetIn(1) });
      await t.waitAnswers(5);
      const s = d.stats.snapshot();
      expect(s.lookup!.count).toBe(3);
      expect(s.lookup!.errors).toBe(1);
      expect(s.getattr!.count).toBe(1);
      expect(s.getattr!.errors).toBe(1);
      expect(s.forget!.count).toBe(1);
      expect(s.forget!.errors).toBe(0);
      expect(Object.keys(s).sort()).toEqual(["forget", "getattr", "lookup"]);
      expect(s.lookup!.max_us).toBeGreaterThanOrEqual(0);
      expect(s.lookup!.p50_us).toBeLessThanOrEqual(s.lookup!.max_us);
      expect(d.inflight).toBe(0);
    });

    test("error replies are counted by errno, expected answers apart from failures (a negative entry counts as ENOENT)", () => {
      const { send, d } = rig(layout, {
        lookup: (_r, _p, n) => {
          if (n === "io") throw new FuseError("EIO");
          throw new FuseError("ENOENT");
        },
      }, { negativeTimeout: 5 });
      send({ opcode: OP.LOOKUP, args: cstr("missing") }); // answered with a negative entry (error 0 on the wire)
      send({ opcode: OP.LOOKUP, args: cstr("io") });
      send({ opcode: OP.GETATTR, opHeader: getattrIn() }); // ENOSYS: the plugin lacks getattr
      const s = d.stats.snapshot();
      expect(s.lookup).toMatchObject({ count: 2, errors: 2, failures: 1, expected: 1, errnos: { ENOENT: 1, EIO: 1 } });
      expect(s.getattr).toMatchObject({ count: 1, errors: 1, failures: 0, expected: 1, errnos: { ENOSYS: 1 } });
    });

    test("trace: SETATTR's mode in octal, FORGET and BATCH_FORGET counts, replies decoded", () => {
      const { send, logs } = rig(layout, { setattr: (_r, ino) => attr(ino), forget: () => {} }, { trace: true });
      const hdr = struct(88, (d) => {
        d.setUint32(0, (1 << 0) | (1 << 3), true); // MODE | SIZE
        d.setBigUint64(16, 7n, true);
        d.setUint32(68, S_IFREG | 0o4751, true);
      });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: hdr });
      send({ opcode: OP.FORGET, nodeid: 5, opHeader: forgetIn(4) });
      send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(2), args: cat(forgetOne(10, 1), forgetOne(12, 3)) });
      expect(logs[0]).toMatch(/ SETATTR node=3 mode=0104751 size=7 .*→ OK 104 bytes \{attr_valid=1s ino=3 mode=0\d+ nlink=\d+ uid=\d+ gid=\d+ size=\d+ mtime=-?\d+\.\d{9}\}/);
      expect(logs[1]).toContain("FORGET node=5 nlookup=4 ");
      expect(logs[2]).toContain("BATCH_FORGET node=0 count=2 [ino:nlookup 10:1 12:3] ");
    });

    test("trace logs one line per request with op, node, args, result and transport", () => {
      const { t, send, logs } = rig(layout, { lookup: (_r, _p, n) => { if (n === "no") throw new FuseError("ENOENT"); return attr(2); } }, { trace: true });
      send({ opcode: OP.LOOKUP, unique: 0x1_0000_0004n, nodeid: 1, uid: 7, pid: 8, args: cstr("yes") });
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cstr("no") });
      send({ opcode: OP.FORGET, nodeid: 2, opHeader: forgetIn(1) });
      expect(t.answered).toBe(3);
      expect(logs.length).toBe(3);
      expect(logs[0]).toContain(`[${2 ** 32 + 4}] LOOKUP node=1 "yes" uid=7 pid=8`);
      expect(logs[0]).toContain("OK 128 bytes");
      expect(logs[0]).toContain(`[${t.name}]`);
      expect(logs[1]).toContain("-ENOENT");
      expect(logs[2]).toContain("FORGET");
      expect(logs[2]).toContain("(no reply)");
    });
  });
});

// =========================================================================================
// Runtime bugs found while writing these tests. Each test below fails on the current runtime.

describe("runtime bugs", () => {
  // BUG (runtime/dispatch/ops.ts:182-190 encLk, via :445 lockArg / codec.ts getU64+setU64):
  // lock ranges are u64 on the wire but carried as doubles. A whole-file lock has
  // end = OFFSET_MAX = 0x7fffffffffffffff, which getU64 rounds to 2^63; a plugin that reports a
  // conflicting lock by returning the lock it was given (or end = Number.MAX_VALUE-ish values)
  // makes encLk write 0x8000000000000000, which the kernel's convert_fuse_file_lock() rejects
  // (end > OFFSET_MAX) → fcntl(F_GETLK) fails with EIO. Fix: saturate lock start/end at
  // OFFSET_MAX when encoding (values ≥ 2^63 → 0x7fffffff_ffffffff).
  test("GETLK: a whole-file lock (end = OFFSET_MAX) is echoed back without overflowing OFFSET_MAX", () => {
    const { t, send } = rig("classic", { getlk: (_r, _i, _fh, _owner, lock) => ({ ...lock, type: 1, pid: 99 }) });
    const lkIn = struct(48, (d) => {
      d.setBigUint64(0, 1n, true); // fh
      d.setBigUint64(8, 0xabcdn, true); // owner
      d.setBigUint64(16, 0n, true); // start
      d.setBigUint64(24, 0x7fff_ffff_ffff_ffffn, true); // end = OFFSET_MAX
      d.setUint32(32, 1, true); // F_WRLCK
      d.setUint32(36, 1234, true);
    });
    send({ opcode: OP.GETLK, opHeader: lkIn });
    const r = t.only();
    expect(r.error).toBe(0);
    expect(r.len).toBe(24);
    expect(r.dv.getBigUint64(8, true)).toBeLessThanOrEqual(0x7fff_ffff_ffff_ffffn);
  });

  // BUG (runtime/dispatch/ops.ts:211-229 FORGET / BATCH_FORGET + dispatcher.ts:105-109 catch):
  // a plugin `forget` that throws makes runHandler throw, and dispatch() answers the FORGET with
  // -EIO through transport.reply(): FORGET/BATCH_FORGET must never be answered (§1.3). For
  // BATCH_FORGET the throw also abandons the remaining pairs, so cfg.onForget (KernelNodes) and
  // the plugin never hear of them. Fix: in both handlers call the plugin's forget inside
  // try/catch per pair (log the error), always returning NO_REPLY.
  test("a throwing forget is logged but never answered, and the batch continues", () => {
    const calls: number[] = [];
    const { t, d, send, logs } = rig("classic", {
      lookup: (_r, _p, n) => attr(Number(n)),
      forget: (ino) => {
        calls.push(ino);
        if (ino === 10) throw new Error("plugin bug in forget");
      },
    });
    send({ opcode: OP.LOOKUP, args: cstr("10") });
    send({ opcode: OP.LOOKUP, args: cstr("11") });
    expect(d.nodes.size).toBe(2);
    send({ opcode: OP.FORGET, nodeid: 10, opHeader: forgetIn(1) });
    send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(2), args: cat(forgetOne(10, 1), forgetOne(11, 1)) });
    expect(t.replies.length).toBe(2); // the two lookups only
    expect(t.noReplies.length).toBe(2);
    expect(calls).toEqual([10, 10, 11]);
    expect(d.nodes.size).toBe(0);
    expect(logs.some((l) => l.includes("forget") && l.includes("plugin bug in forget"))).toBe(true);
  });

  // BUG (same handlers, runtime/dispatch/ops.ts:214 and :226): the value the plugin's
  // forget returns is dropped. `async forget() {...}` type-checks against the API (a
  // Promise-returning function is assignable to a void one), and if it rejects the rejection is
  // unhandled; with no unhandledRejection handler in the runtime, Bun then exits the daemon
  // (checked: `bun -e 'Promise.reject(new Error())'` exits 1). Fix: if forget returns a thenable,
  // attach a catch that logs.
  test("an async forget that rejects does not leave an unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const { t, send } = rig("classic", { forget: (async () => { throw new Error("async forget failure"); }) as () => void });
      send({ opcode: OP.FORGET, nodeid: 10, opHeader: forgetIn(1) });
      send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(1), args: forgetOne(11, 1) });
      await tick();
      await tick();
      expect(t.noReplies.length).toBe(2);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  // BUG (latent; runtime/dispatch/ops.ts:74 cfgRef, read at :79-95, set at :518): encoders read the mount config from
  // the module-level `cfgRef`, set by whichever Dispatcher ran a handler last. The comment says
  // "encoders run before the next dispatch", which is false for async ops: their encoder runs
  // when the promise settles. With two Dispatchers in one process (two mounts, or an embedder
  // and a test), an async reply is encoded with the other mount's entry/attr timeouts and
  // openDefaults, and an async open's backingFd is registered through the other mount's
  // `backing` (i.e. with the wrong kernel connection). Fix: read the config from the Call (e.g. c.cfg set in dispatch) instead of a
  // module global.
  test("an async lookup is encoded with its own dispatcher's entry_timeout", async () => {
    const p = Promise.withResolvers<Entry>();
    const a = rig("uring", { lookup: () => p.promise }, { entryTimeout: 5 });
    const b = rig("uring", { lookup: () => attr(2) }, { entryTimeout: 1 });
    a.send({ opcode: OP.LOOKUP, args: cstr("slow") });
    b.send({ opcode: OP.LOOKUP, args: cstr("fast") });
    expect(u64(b.t.only().dv, 16)).toBe(1);
    p.resolve(attr(3));
    await a.t.waitAnswers(1);
    expect(u64(a.t.only().dv, 16)).toBe(5);
  });
});
