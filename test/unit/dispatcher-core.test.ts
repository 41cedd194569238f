/**
 * What the dispatcher does for every op: missing ops and their defaults, error mapping, invalid
 * replies turned into EIO, hot-reload generations, allow_root, stats and the -d trace.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher, Generation } from "../../runtime/dispatch/dispatcher.ts";
import type { Filesystem, Attr } from "../../runtime/api/types.ts";
import { FuseError } from "../../runtime/api/errno.ts";
import { S_IFREG } from "../../runtime/api/constants.ts";
import {
  FakeTransport, LAYOUTS, makeSlot, writeRequest, cat, cstr, struct, rwIn, u64, type RequestSpec,
} from "../helpers/fake-transport.ts";
import {
  OP, EIO, ENOENT, EACCES, ENOSYS, ENODATA, baseCfg, rig, attr, getattrIn, openIn, releaseIn, getxattrIn, forgetIn, batchForgetIn, forgetOne,
} from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
