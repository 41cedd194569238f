/**
 * File data: READ and WRITE, and kernel passthrough (backingFd) on OPEN.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { LAYOUTS, cat, rwIn, u64 } from "../helpers/fake-transport.ts";
import { OP, EIO, GiB, rig, replyOff, openIn, releaseIn } from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
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
});
