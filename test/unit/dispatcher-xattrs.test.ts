/**
 * Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { FuseError } from "../../runtime/api/errno.ts";
import { LAYOUTS, cat, cstr } from "../helpers/fake-transport.ts";
import { OP, EIO, ERANGE, ENODATA, rig, getxattrIn, setxattrIn } from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
});
