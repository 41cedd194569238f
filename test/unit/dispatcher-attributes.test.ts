/**
 * Attributes: GETATTR and SETATTR.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import type { SetAttr } from "../../runtime/api/types.ts";
import { S_IFREG } from "../../runtime/api/constants.ts";
import { LAYOUTS, struct, u64 } from "../helpers/fake-transport.ts";
import { OP, GiB, rig, attr, getattrIn } from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
});
