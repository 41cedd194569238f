/**
 * What the kernel holds: FORGET and BATCH_FORGET, and the kernel node references.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { FuseError } from "../../runtime/api/errno.ts";
import { S_IFDIR } from "../../runtime/api/constants.ts";
import { LAYOUTS, cat, cstr, struct, rwIn } from "../helpers/fake-transport.ts";
import { OP, EIO, ENOENT, rig, attr, forgetIn, batchForgetIn, forgetOne } from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
});
