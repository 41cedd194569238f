/**
 * Directory listings: READDIR and READDIRPLUS.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import type { DirList, DirListPlus } from "../../runtime/api/types.ts";
import { S_IFDIR, S_IFREG, S_IFLNK } from "../../runtime/api/constants.ts";
import { LAYOUTS, rwIn, u64 } from "../helpers/fake-transport.ts";
import { OP, EIO, rig, attr, tick, parseDirents } from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
});
