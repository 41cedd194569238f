/**
 * The namespace ops: LOOKUP (and negative_timeout), MKNOD/MKDIR/SYMLINK/LINK/UNLINK/RMDIR/RENAME,
 * and names carried as bytes.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import type { Filesystem, Request, DirList, DirListPlus } from "../../runtime/api/types.ts";
import { FuseError } from "../../runtime/api/errno.ts";
import { S_IFDIR, S_IFREG, S_IFLNK } from "../../runtime/api/constants.ts";
import { LAYOUTS, cat, cstr, struct, rwIn, u64 } from "../helpers/fake-transport.ts";
import {
  OP, EIO, ENOENT, EACCES, GiB, rig, attr, getattrIn, getxattrIn, setxattrIn, renameIn, rename2In,
} from "../helpers/dispatch-rig.ts";

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
});
