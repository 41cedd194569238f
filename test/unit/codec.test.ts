/**
 * The protocol codec on plain byte buffers. Every expected offset comes from
 * shared/reference/fuse-protocol.md (§1.4, §1.6, §1.8), written out here, and every u64 is read
 * back with DataView.getBigUint64 rather than the codec's own getU64.
 */
import { describe, expect, test } from "bun:test";
import {
  getU64, setU64, getI64, setI64, encodeAttr, encodeAttrOut, encodeEntry, encodeNegativeEntry,
  encodeOpenOut, encodeStatfs, encodeDirent, encodeDirentPlus, encodeInitOut, decodeInitIn,
  validateDirentName, hasCap, ReplyError, type InitOut,
  encodeWriteOut, encodeXattrSize, encodeLseekOut, encodeCopyOut64, encodeLkOut,
  decodeAttrOut, decodeEntryOut, decodeOpenOut, decodeStatfs, decodeWriteOut, decodeXattrSize, decodeLseekOut,
  decodeCopyOut64, decodeLkOut, direntRecordSize,
  encodeNotifyHeader, encodeInvalInodeOut, encodeInvalEntryOut, encodeDeleteOut, encodeStoreOut, encodeRetrieveOut,
} from "../../runtime/kernel/codec.ts";
import { Op, outSize } from "../../runtime/kernel/opcodes.ts";
import type { Attr, Entry } from "../../runtime/api/types.ts";
import { S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK } from "../../runtime/api/constants.ts";
import { u64 } from "../helpers/fake-transport.ts";

const GiB = 2 ** 30;
const TWO32 = 2 ** 32;

/** A buffer pre-filled with 0xAA, so fields the codec forgets to write (or zero) show up. */
function dirty(size: number): { dv: DataView; bytes: Uint8Array; buf: Buffer } {
  const ab = new ArrayBuffer(size);
  const bytes = new Uint8Array(ab).fill(0xaa);
  return { dv: new DataView(ab), bytes, buf: Buffer.from(ab) };
}

function attr(over: Partial<Attr> = {}): Attr {
  return {
    ino: 0x1_2345_6789, // above 2^32
    mode: S_IFREG | 0o640,
    nlink: 3,
    uid: 1001,
    gid: 1002,
    size: 9 * GiB,
    atimeSec: 1_700_000_001,
    atimeNsec: 111,
    mtimeSec: 1_700_000_002,
    mtimeNsec: 222,
    ctimeSec: 1_700_000_003,
    ctimeNsec: 333,
    ...over,
  };
}

/** Checks a fuse_attr at `off` against `a` (§1.6: 88 bytes). */
function expectAttrAt(dv: DataView, off: number, a: Attr): void {
  expect(u64(dv, off + 0)).toBe(a.ino);
  expect(u64(dv, off + 8)).toBe(a.size);
  expect(u64(dv, off + 16)).toBe(a.blocks ?? Math.ceil(a.size / 512));
  expect(Number(dv.getBigInt64(off + 24, true))).toBe(a.atimeSec);
  expect(Number(dv.getBigInt64(off + 32, true))).toBe(a.mtimeSec);
  expect(Number(dv.getBigInt64(off + 40, true))).toBe(a.ctimeSec);
  expect(dv.getUint32(off + 48, true)).toBe(a.atimeNsec);
  expect(dv.getUint32(off + 52, true)).toBe(a.mtimeNsec);
  expect(dv.getUint32(off + 56, true)).toBe(a.ctimeNsec);
  expect(dv.getUint32(off + 60, true)).toBe(a.mode);
  expect(dv.getUint32(off + 64, true)).toBe(a.nlink);
  expect(dv.getUint32(off + 68, true)).toBe(a.uid);
  expect(dv.getUint32(off + 72, true)).toBe(a.gid);
  expect(dv.getUint32(off + 76, true)).toBe(a.rdev ?? 0);
  expect(dv.getUint32(off + 80, true)).toBe(a.blksize ?? 0);
  expect(dv.getUint32(off + 84, true)).toBe(0); // flags
}

describe("u64 helpers", () => {
  const values = [0, 1, 0xffff_ffff, TWO32, TWO32 + 1, 9 * GiB, 0x1234_5678_9abc, Number.MAX_SAFE_INTEGER];

  test.each(values)("setU64(%p) writes the little-endian u64 and getU64 reads it back", (v) => {
    const { dv } = dirty(16);
    setU64(dv, 4, v);
    expect(dv.getBigUint64(4, true)).toBe(BigInt(v));
    expect(getU64(dv, 4)).toBe(v);
    // neighbours untouched
    expect(dv.getUint32(0, true)).toBe(0xaaaaaaaa);
    expect(dv.getUint32(12, true)).toBe(0xaaaaaaaa);
  });

  test("getU64 reads values written by the kernel side (BigInt writer)", () => {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setBigUint64(0, 9n * 1024n ** 3n, true);
    expect(getU64(dv, 0)).toBe(9 * GiB);
    dv.setBigUint64(0, 0xffff_ffffn << 20n, true);
    expect(getU64(dv, 0)).toBe(0xffff_ffff * 2 ** 20);
  });

  test.each([0, 1, -1, -TWO32, -(9 * GiB), -1_700_000_000, 1_700_000_000, -Number.MAX_SAFE_INTEGER])("setI64/getI64 round-trip %p", (v) => {
    const dv = new DataView(new ArrayBuffer(8));
    setI64(dv, 0, v);
    expect(dv.getBigInt64(0, true)).toBe(BigInt(v));
    expect(getI64(dv, 0)).toBe(v);
  });
});

describe("encodeAttr (struct fuse_attr, 88 bytes)", () => {
  test("every field lands at its reference offset; u64 above 2^32 and flags zeroed", () => {
    const { dv } = dirty(8 + 88 + 8);
    const a = attr({ blocks: 77, rdev: 0x0801, blksize: 65536 });
    encodeAttr(dv, 8, a);
    expectAttrAt(dv, 8, a);
    expect(u64(dv, 16)).toBe(9663676416); // 9 GiB, the size field at +8
    // the bytes around the struct are untouched
    expect(dv.getUint32(4, true)).toBe(0xaaaaaaaa);
    expect(dv.getUint32(96, true)).toBe(0xaaaaaaaa);
  });

  test("blocks defaults to ceil(size / 512); rdev and blksize default to 0", () => {
    const { dv } = dirty(88);
    encodeAttr(dv, 0, attr({ size: 1025 }));
    expect(u64(dv, 16)).toBe(3);
    expect(dv.getUint32(76, true)).toBe(0);
    expect(dv.getUint32(80, true)).toBe(0);
    encodeAttr(dv, 0, attr({ size: 9 * GiB }));
    expect(u64(dv, 16)).toBe((9 * GiB) / 512);
  });

  test("times before 1970 are encoded as signed 64-bit seconds", () => {
    const { dv } = dirty(88);
    encodeAttr(dv, 0, attr({ mtimeSec: -86400, atimeSec: -1 }));
    expect(dv.getBigInt64(32, true)).toBe(-86400n);
    expect(dv.getBigInt64(24, true)).toBe(-1n);
  });

  test.each([
    ["regular", S_IFREG | 0o644],
    ["directory", S_IFDIR | 0o755],
    ["symlink", S_IFLNK | 0o777],
    ["char device", S_IFCHR | 0o600],
    ["block device", S_IFBLK | 0o600],
    ["fifo", S_IFIFO | 0o600],
    ["socket", S_IFSOCK | 0o600],
    ["setuid regular", S_IFREG | 0o4755],
  ])("mode of a %s is written verbatim", (_n, mode) => {
    const { dv } = dirty(88);
    encodeAttr(dv, 0, attr({ mode }));
    expect(dv.getUint32(60, true)).toBe(mode);
  });

  const invalid: [string, unknown][] = [
    ["null", null],
    ["undefined", undefined],
    ["a number", 42],
    ["missing mode", { ...attr(), mode: undefined }],
    ["mode without file type bits", attr({ mode: 0o644 })],
    ["negative size", attr({ size: -1 })],
    ["NaN size", attr({ size: NaN })],
    ["infinite size", attr({ size: Infinity })],
    ["string size", { ...attr(), size: "10" }],
    ["missing ino", { ...attr(), ino: undefined }],
    ["negative nlink", attr({ nlink: -1 })],
    ["missing uid", { ...attr(), uid: undefined }],
    ["negative blocks", attr({ blocks: -5 })],
  ];
  test.each(invalid)("%s throws ReplyError", (_n, a) => {
    const { dv } = dirty(88);
    expect(() => encodeAttr(dv, 0, a as Attr)).toThrow(ReplyError);
  });

  test("ReplyError names the offending field", () => {
    const { dv } = dirty(88);
    expect(() => encodeAttr(dv, 0, attr({ size: -1 }))).toThrow(/size/);
    expect(() => encodeAttr(dv, 0, attr({ mode: 0o644 }))).toThrow(/type/);
    expect(() => encodeAttr(dv, 0, null as unknown as Attr)).toThrow(/null/);
  });

  // BUG (runtime/kernel/codec.ts:67): only "no type bits at all" is rejected. The kernel's
  // fuse_invalid_attr() also rejects S_IFMT values that are not one of the 7 file types
  // (0o030000, 0o050000, 0o070000, ... 0o170000): LOOKUP then fails with EIO and GETATTR marks the
  // inode bad (fuse_make_bad). Such a reply is malformed and should be a ReplyError here.
  test("a mode whose S_IFMT is not one of the 7 file types throws ReplyError", () => {
    const { dv } = dirty(88);
    const accepted: string[] = [];
    for (const fmt of [0o030000, 0o050000, 0o070000, 0o110000, 0o130000, 0o150000, 0o160000, 0o170000]) {
      try {
        encodeAttr(dv, 0, attr({ mode: fmt | 0o644 }));
        accepted.push("0o" + fmt.toString(8));
      } catch (e) {
        expect(e).toBeInstanceOf(ReplyError);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe("encodeAttrOut (struct fuse_attr_out, 104 bytes)", () => {
  test("attr_valid@0, attr_valid_nsec@8, dummy@12, attr@16; returns 104", () => {
    const { dv } = dirty(104);
    const a = attr();
    expect(encodeAttrOut(dv, 0, a, 1)).toBe(104);
    expect(u64(dv, 0)).toBe(1);
    expect(dv.getUint32(8, true)).toBe(0);
    expect(dv.getUint32(12, true)).toBe(0);
    expectAttrAt(dv, 16, a);
  });

  test("fractional timeouts are split into seconds and nanoseconds", () => {
    const { dv } = dirty(104);
    encodeAttrOut(dv, 0, attr(), 1.5);
    expect(u64(dv, 0)).toBe(1);
    expect(dv.getUint32(8, true)).toBe(500_000_000);
    encodeAttrOut(dv, 0, attr(), 0.25);
    expect(u64(dv, 0)).toBe(0);
    expect(dv.getUint32(8, true)).toBe(250_000_000);
  });

  test("a per-reply attrTimeout overrides the mount default", () => {
    const { dv } = dirty(104);
    encodeAttrOut(dv, 0, { ...attr(), attrTimeout: 3600.001 }, 1);
    expect(u64(dv, 0)).toBe(3600);
    expect(dv.getUint32(8, true)).toBe(1_000_000);
  });

  test("invalid attributes throw ReplyError", () => {
    const { dv } = dirty(104);
    expect(() => encodeAttrOut(dv, 0, attr({ mode: 0o644 }), 1)).toThrow(ReplyError);
    expect(() => encodeAttrOut(dv, 0, attr({ size: -2 }), 1)).toThrow(ReplyError);
  });

  // BUG (runtime/kernel/codec.ts:86): encodeAttrOut reads `a.attrTimeout` before encodeAttr checks
  // that `a` is an object, so getattr/setattr returning undefined/null throws a TypeError instead
  // of a ReplyError: still EIO, but logged as "threw: TypeError ..." rather than "returned an
  // invalid reply".
  test("null / undefined attributes throw ReplyError (not TypeError)", () => {
    const { dv } = dirty(104);
    expect(() => encodeAttrOut(dv, 0, null as unknown as Attr, 1)).toThrow(ReplyError);
    expect(() => encodeAttrOut(dv, 0, undefined as unknown as Attr, 1)).toThrow(ReplyError);
  });
});

describe("encodeEntry (struct fuse_entry_out, 128 bytes)", () => {
  test("nodeid@0 generation@8 entry_valid@16 attr_valid@24 nsecs@32/36 attr@40", () => {
    const { dv } = dirty(128);
    const e: Entry = { ...attr(), generation: 0x2_0000_0007 };
    expect(encodeEntry(dv, 0, e, 2.75, 0.5)).toBe(128);
    expect(u64(dv, 0)).toBe(e.ino);
    expect(u64(dv, 8)).toBe(0x2_0000_0007);
    expect(u64(dv, 16)).toBe(2);
    expect(u64(dv, 24)).toBe(0);
    expect(dv.getUint32(32, true)).toBe(750_000_000);
    expect(dv.getUint32(36, true)).toBe(500_000_000);
    expectAttrAt(dv, 40, e);
  });

  test("generation defaults to 0; per-entry timeouts override the defaults", () => {
    const { dv } = dirty(128);
    encodeEntry(dv, 0, { ...attr(), entryTimeout: 10, attrTimeout: 0 }, 1, 1);
    expect(u64(dv, 8)).toBe(0);
    expect(u64(dv, 16)).toBe(10);
    expect(dv.getUint32(32, true)).toBe(0);
    expect(u64(dv, 24)).toBe(0);
    expect(dv.getUint32(36, true)).toBe(0);
  });

  test("integer timeouts carry no nanoseconds", () => {
    const { dv } = dirty(128);
    encodeEntry(dv, 0, attr(), 1, 1);
    expect(u64(dv, 16)).toBe(1);
    expect(u64(dv, 24)).toBe(1);
    expect(dv.getUint32(32, true)).toBe(0);
    expect(dv.getUint32(36, true)).toBe(0);
  });

  test.each([null, undefined, "x"])("entry %p throws ReplyError", (e) => {
    const { dv } = dirty(128);
    expect(() => encodeEntry(dv, 0, e as unknown as Entry, 1, 1)).toThrow(ReplyError);
  });

  test("invalid attributes inside the entry throw ReplyError", () => {
    const { dv } = dirty(128);
    expect(() => encodeEntry(dv, 0, attr({ mode: 0o755 }), 1, 1)).toThrow(ReplyError);
    expect(() => encodeEntry(dv, 0, { ...attr(), ino: -1 }, 1, 1)).toThrow(ReplyError);
  });

  // BUG (runtime/kernel/codec.ts encodeValidity, used by encodeEntry): plugin-supplied timeouts are
  // not validated. A negative entryTimeout/attrTimeout is written through setU64 as
  // 0xFFFFFFFF_FFFFFFFF, i.e. "cache forever" (and Infinity becomes 0 s, NaN 0 s). Every other
  // numeric field goes through num() and is rejected when negative or not finite.
  test("a negative per-entry timeout is rejected, not encoded as 2^64-1 seconds", () => {
    const { dv } = dirty(128);
    let threw: unknown = null;
    try {
      encodeEntry(dv, 0, { ...attr(), entryTimeout: -1 }, 1, 1);
    } catch (e) {
      threw = e;
    }
    if (threw === null) expect(dv.getBigUint64(16, true)).toBeLessThan(2n ** 63n);
    expect(threw).toBeInstanceOf(ReplyError);
  });
});

describe("encodeNegativeEntry", () => {
  test("zero nodeid and attributes, entry_valid split into sec + nsec", () => {
    const { dv, bytes } = dirty(4 + 128 + 4);
    expect(encodeNegativeEntry(dv, 4, 2.5)).toBe(128);
    expect(u64(dv, 4 + 0)).toBe(0);
    expect(u64(dv, 4 + 16)).toBe(2);
    expect(dv.getUint32(4 + 32, true)).toBe(500_000_000);
    const rest = [...bytes.subarray(4, 4 + 16), ...bytes.subarray(4 + 24, 4 + 32), ...bytes.subarray(4 + 36, 4 + 128)];
    expect(rest.every((b) => b === 0)).toBe(true);
    expect(bytes[3]).toBe(0xaa);
    expect(bytes[132]).toBe(0xaa);
  });
});

describe("encodeOpenOut (struct fuse_open_out, 16 bytes)", () => {
  test("fh@0 open_flags@8 backing_id@12", () => {
    const { dv } = dirty(16);
    expect(encodeOpenOut(dv, 0, { fh: 0x1_0000_0005, keepCache: true, directIo: true }, 0)).toBe(16);
    expect(u64(dv, 0)).toBe(0x1_0000_0005);
    expect(dv.getUint32(8, true)).toBe(0b11); // DIRECT_IO 1<<0 | KEEP_CACHE 1<<1
    expect(dv.getInt32(12, true)).toBe(0);
  });

  test("each FOPEN bit at its reference value, plus mount defaults", () => {
    const { dv } = dirty(16);
    encodeOpenOut(dv, 0, { nonseekable: true }, 0);
    expect(dv.getUint32(8, true)).toBe(1 << 2);
    encodeOpenOut(dv, 0, { cacheDir: true }, 0);
    expect(dv.getUint32(8, true)).toBe(1 << 3);
    encodeOpenOut(dv, 0, { noflush: true }, 0);
    expect(dv.getUint32(8, true)).toBe(1 << 5);
    encodeOpenOut(dv, 0, { parallelDirectWrites: true }, 0);
    expect(dv.getUint32(8, true)).toBe(1 << 6);
    encodeOpenOut(dv, 0, undefined, 1 << 1);
    expect(u64(dv, 0)).toBe(0);
    expect(dv.getUint32(8, true)).toBe(1 << 1);
  });

  test("a backing id sets FOPEN_PASSTHROUGH (1<<7) and backing_id@12", () => {
    const { dv } = dirty(16);
    encodeOpenOut(dv, 0, { fh: 9, keepCache: true }, 0, 42);
    expect(u64(dv, 0)).toBe(9);
    expect(dv.getUint32(8, true)).toBe((1 << 7) | (1 << 1));
    expect(dv.getInt32(12, true)).toBe(42);
  });

  test("a non-object reply or a bad fh throws ReplyError", () => {
    const { dv } = dirty(16);
    expect(() => encodeOpenOut(dv, 0, 5 as never, 0)).toThrow(ReplyError);
    expect(() => encodeOpenOut(dv, 0, { fh: -1 }, 0)).toThrow(ReplyError);
  });
});

describe("encodeStatfs (struct fuse_kstatfs, 80 bytes)", () => {
  test("u64 counters, u32 sizes, frsize defaulting to bsize, padding and spare zeroed", () => {
    const { dv, bytes } = dirty(80);
    const s = { blocks: 5 * TWO32 + 3, bfree: TWO32, bavail: 12345, files: 1_000_000, ffree: 999_999, bsize: 4096, namelen: 255 };
    expect(encodeStatfs(dv, 0, s)).toBe(80);
    expect(u64(dv, 0)).toBe(s.blocks);
    expect(u64(dv, 8)).toBe(s.bfree);
    expect(u64(dv, 16)).toBe(s.bavail);
    expect(u64(dv, 24)).toBe(s.files);
    expect(u64(dv, 32)).toBe(s.ffree);
    expect(dv.getUint32(40, true)).toBe(4096);
    expect(dv.getUint32(44, true)).toBe(255);
    expect(dv.getUint32(48, true)).toBe(4096);
    expect(bytes.subarray(52, 80).every((b) => b === 0)).toBe(true);
  });

  test("explicit frsize", () => {
    const { dv } = dirty(80);
    encodeStatfs(dv, 0, { blocks: 1, bfree: 1, bavail: 1, files: 1, ffree: 1, bsize: 65536, namelen: 1024, frsize: 512 });
    expect(dv.getUint32(40, true)).toBe(65536);
    expect(dv.getUint32(44, true)).toBe(1024);
    expect(dv.getUint32(48, true)).toBe(512);
  });

  test("missing or negative fields throw ReplyError", () => {
    const { dv } = dirty(80);
    expect(() => encodeStatfs(dv, 0, null as never)).toThrow(ReplyError);
    expect(() => encodeStatfs(dv, 0, { blocks: 1, bfree: 1, bavail: 1, files: 1, ffree: -1, bsize: 4096, namelen: 255 })).toThrow(/ffree/);
    expect(() => encodeStatfs(dv, 0, { blocks: 1, bfree: 1, bavail: 1, files: 1, ffree: 1, namelen: 255 } as never)).toThrow(/bsize/);
  });
});

const align8 = (n: number) => Math.ceil(n / 8) * 8;

describe("encodeDirent (struct fuse_dirent)", () => {
  test.each([1, 2, 7, 8, 9, 16, 17, 255])("a %d-byte name takes align8(24 + namelen) bytes, zero padded", (n) => {
    const { dv, buf, bytes } = dirty(8 + 24 + 256 + 8);
    const name = "n".repeat(n);
    const end = encodeDirent(dv, buf, 8, bytes.length, name, 0x1_0000_0009, S_IFREG | 0o644, 0x2_0000_0001);
    const rec = align8(24 + n);
    expect(end).toBe(8 + rec);
    expect(u64(dv, 8 + 0)).toBe(0x1_0000_0009);
    expect(u64(dv, 8 + 8)).toBe(0x2_0000_0001);
    expect(dv.getUint32(8 + 16, true)).toBe(n);
    expect(dv.getUint32(8 + 20, true)).toBe(8); // DT_REG
    expect(buf.toString("utf8", 8 + 24, 8 + 24 + n)).toBe(name);
    expect(bytes.subarray(8 + 24 + n, 8 + rec).every((b) => b === 0)).toBe(true);
    expect(bytes[8 + rec]).toBe(0xaa); // nothing written past the record
    expect(bytes[7]).toBe(0xaa);
  });

  test.each([
    [S_IFDIR | 0o755, 4],
    [S_IFREG | 0o644, 8],
    [S_IFLNK | 0o777, 10],
    [S_IFCHR, 2],
    [S_IFBLK, 6],
    [S_IFIFO, 1],
    [S_IFSOCK, 12],
    [0, 0],
  ])("mode %o gives d_type %d ((mode & 0170000) >> 12)", (mode, dt) => {
    const { dv, buf } = dirty(64);
    encodeDirent(dv, buf, 0, 64, "x", 1, mode, 1);
    expect(dv.getUint32(20, true)).toBe(dt);
  });

  test("namelen counts UTF-8 bytes, not characters", () => {
    const { dv, buf } = dirty(64);
    const end = encodeDirent(dv, buf, 0, 64, "é✓", 1, S_IFREG, 1);
    expect(dv.getUint32(16, true)).toBe(5); // 2 + 3 bytes
    expect(end).toBe(align8(24 + 5));
    expect(buf.toString("utf8", 24, 29)).toBe("é✓");
  });

  test("returns -1 and writes nothing when the record does not fit", () => {
    const { dv, buf, bytes } = dirty(64);
    // "abc": record 32 bytes. Fits exactly in [0, 32), not in [0, 31) or [8, 39).
    expect(encodeDirent(dv, buf, 0, 31, "abc", 1, S_IFREG, 1)).toBe(-1);
    expect(encodeDirent(dv, buf, 8, 39, "abc", 1, S_IFREG, 1)).toBe(-1);
    expect(bytes.every((b) => b === 0xaa)).toBe(true);
    expect(encodeDirent(dv, buf, 0, 32, "abc", 1, S_IFREG, 1)).toBe(32);
  });

  test("consecutive records pack back to back", () => {
    const { dv, buf } = dirty(256);
    let p = 0;
    const names = ["a", "bbbbbbbbb", "cc"];
    for (const [i, n] of names.entries()) p = encodeDirent(dv, buf, p, 256, n, 10 + i, S_IFREG, i + 1);
    expect(p).toBe(32 + 40 + 32);
    let o = 0;
    for (const [i, n] of names.entries()) {
      expect(u64(dv, o)).toBe(10 + i);
      expect(u64(dv, o + 8)).toBe(i + 1);
      const len = dv.getUint32(o + 16, true);
      expect(buf.toString("utf8", o + 24, o + 24 + len)).toBe(n);
      o += align8(24 + len);
    }
  });
});

describe("encodeDirentPlus (struct fuse_direntplus)", () => {
  test.each([1, 8, 9, 100])("a %d-byte name takes align8(152 + namelen) bytes: entry_out then dirent, name @152", (n) => {
    const size = 8 + 152 + 128;
    const { dv, buf, bytes } = dirty(size);
    const e: Entry = { ...attr({ mode: S_IFDIR | 0o755 }), generation: 3 };
    const name = "d".repeat(n);
    const end = encodeDirentPlus(dv, buf, 8, size, name, e, 0x3_0000_0000, 2, 0.5);
    const rec = align8(152 + n);
    expect(end).toBe(8 + rec);
    // fuse_entry_out
    expect(u64(dv, 8 + 0)).toBe(e.ino);
    expect(u64(dv, 8 + 8)).toBe(3);
    expect(u64(dv, 8 + 16)).toBe(2);
    expect(dv.getUint32(8 + 36, true)).toBe(500_000_000);
    expectAttrAt(dv, 8 + 40, e);
    // fuse_dirent at +128
    expect(u64(dv, 8 + 128)).toBe(e.ino);
    expect(u64(dv, 8 + 136)).toBe(0x3_0000_0000);
    expect(dv.getUint32(8 + 144, true)).toBe(n);
    expect(dv.getUint32(8 + 148, true)).toBe(4); // DT_DIR
    expect(buf.toString("utf8", 8 + 152, 8 + 152 + n)).toBe(name);
    expect(bytes.subarray(8 + 152 + n, 8 + rec).every((b) => b === 0)).toBe(true);
    expect(bytes[7]).toBe(0xaa);
    if (8 + rec < size) expect(bytes[8 + rec]).toBe(0xaa);
  });

  test("a null entry is a name only: zero entry_out, ino 0, type 0", () => {
    const { dv, buf, bytes } = dirty(160);
    expect(encodeDirentPlus(dv, buf, 0, 160, "ghost", null, 7, 1, 1)).toBe(160);
    expect(bytes.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(u64(dv, 128)).toBe(0);
    expect(u64(dv, 136)).toBe(7);
    expect(dv.getUint32(144, true)).toBe(5);
    expect(dv.getUint32(148, true)).toBe(0);
    expect(buf.toString("utf8", 152, 157)).toBe("ghost");
  });

  test("returns -1 and writes nothing when the record does not fit", () => {
    const { dv, buf, bytes } = dirty(200);
    expect(encodeDirentPlus(dv, buf, 0, 159, "x", attr(), 1, 1, 1)).toBe(-1);
    expect(bytes.every((b) => b === 0xaa)).toBe(true);
    expect(encodeDirentPlus(dv, buf, 0, 160, "x", attr(), 1, 1, 1)).toBe(160);
  });

  test("an invalid entry throws ReplyError", () => {
    const { dv, buf } = dirty(200);
    expect(() => encodeDirentPlus(dv, buf, 0, 200, "x", attr({ mode: 0o644 }), 1, 1, 1)).toThrow(ReplyError);
  });
});

describe("validateDirentName", () => {
  test.each(["a", ".", "..", "with space", "ünïcödé", "x".repeat(255)])("accepts %p", (n) => {
    expect(() => validateDirentName(n)).not.toThrow();
  });
  test.each(["", "a/b", "/", "nul\0byte", 5 as unknown as string])("rejects %p with ReplyError", (n) => {
    expect(() => validateDirentName(n)).toThrow(ReplyError);
  });
});

describe("INIT", () => {
  test("decodeInitIn reads major@0 minor@4 max_readahead@8 flags@12 flags2@16", () => {
    const dv = new DataView(new ArrayBuffer(40 + 64));
    dv.setUint32(40, 7, true);
    dv.setUint32(44, 45, true);
    dv.setUint32(48, 131072, true);
    dv.setUint32(52, 0xc000_0001, true); // bits 31, 30, 0
    dv.setUint32(56, 0x0000_0202, true); // bits 33, 41
    expect(decodeInitIn(dv, 40)).toEqual({ major: 7, minor: 45, maxReadahead: 131072, flags: 0xc000_0001, flags2: 0x202 });
  });

  test("encodeInitOut writes every field at its reference offset and zeroes the rest", () => {
    const { dv, bytes } = dirty(64);
    const o: InitOut = {
      major: 7, minor: 45, maxReadahead: 0x20000, flags: 0xc000_1234 | 0, flags2: 0x8000_0200 | 0,
      maxBackground: 0xfff1, congestionThreshold: 0x0bcd, maxWrite: 1 << 20, timeGran: 1,
      maxPages: 256, maxStackDepth: 2, requestTimeout: 0x7788,
    };
    expect(encodeInitOut(dv, 0, o)).toBe(64);
    expect(dv.getUint32(0, true)).toBe(7);
    expect(dv.getUint32(4, true)).toBe(45);
    expect(dv.getUint32(8, true)).toBe(0x20000);
    expect(dv.getUint32(12, true)).toBe(0xc000_1234); // negative int flags written as u32
    expect(dv.getUint16(16, true)).toBe(0xfff1);
    expect(dv.getUint16(18, true)).toBe(0x0bcd);
    expect(dv.getUint32(20, true)).toBe(1 << 20);
    expect(dv.getUint32(24, true)).toBe(1);
    expect(dv.getUint16(28, true)).toBe(256);
    expect(dv.getUint16(30, true)).toBe(0); // map_alignment
    expect(dv.getUint32(32, true)).toBe(0x8000_0200);
    expect(dv.getUint32(36, true)).toBe(2);
    expect(dv.getUint16(40, true)).toBe(0x7788);
    expect(bytes.subarray(42, 64).every((b) => b === 0)).toBe(true);
  });

  test("hasCap reads bits 0..31 from flags and 32..63 from flags2", () => {
    const flags = (1 << 0) | (1 << 30) | (1 << 31);
    const flags2 = (1 << (33 - 32)) | (1 << (41 - 32)) | (1 << 31);
    for (const b of [0, 30, 31, 33, 41, 63]) expect(hasCap(flags, flags2, b)).toBe(true);
    for (const b of [1, 29, 32, 34, 40, 62]) expect(hasCap(flags, flags2, b)).toBe(false);
  });
});

// The small out-structs the dispatcher used to write inline: each at its fuse.h offsets, every byte
// written (padding zeroed over a dirty buffer), and its size the opcode table's reply size.
describe("small reply structs", () => {
  test("fuse_write_out: size@0 padding@4 (8 bytes), the table's size for WRITE and COPY_FILE_RANGE", () => {
    const { dv, bytes } = dirty(16);
    expect(encodeWriteOut(dv, 0, 4096, 4096, "write")).toBe(8);
    expect(dv.getUint32(0, true)).toBe(4096);
    expect(dv.getUint32(4, true)).toBe(0);
    expect(bytes[8]).toBe(0xaa);
    expect(outSize(Op.WRITE)).toBe(8);
    expect(outSize(Op.COPY_FILE_RANGE)).toBe(8);
  });

  test.each([[-1], [4097], [1.5], ["4"], [undefined]])("fuse_write_out: a count of %p outside 0..max is a ReplyError naming the op", (n) => {
    const { dv } = dirty(8);
    expect(() => encodeWriteOut(dv, 0, n, 4096, "write")).toThrow(new ReplyError(`write must return a byte count 0..4096 (got ${String(n)})`));
  });

  test("fuse_getxattr_out: size@0 padding@4 (8 bytes)", () => {
    const { dv } = dirty(8);
    expect(encodeXattrSize(dv, 0, 300)).toBe(8);
    expect(dv.getUint32(0, true)).toBe(300);
    expect(dv.getUint32(4, true)).toBe(0);
  });

  test("fuse_lseek_out: offset@0 as u64 (8 bytes, the table's LSEEK size)", () => {
    const { dv } = dirty(8);
    expect(encodeLseekOut(dv, 0, 5 * TWO32 + 7)).toBe(outSize(Op.LSEEK));
    expect(dv.getBigUint64(0, true)).toBe(BigInt(5 * TWO32 + 7));
    expect(() => encodeLseekOut(dv, 0, -1)).toThrow(ReplyError);
    expect(() => encodeLseekOut(dv, 0, "0")).toThrow(ReplyError);
  });

  test("fuse_copy_file_range_out: bytes_copied@0 as u64 (the table's COPY_FILE_RANGE_64 size)", () => {
    const { dv } = dirty(8);
    expect(encodeCopyOut64(dv, 0, 6 * GiB)).toBe(outSize(Op.COPY_FILE_RANGE_64));
    expect(dv.getBigUint64(0, true)).toBe(BigInt(6 * GiB));
    expect(() => encodeCopyOut64(dv, 0, 0.5)).toThrow(ReplyError);
  });

  test("fuse_lk_out: start@0 end@8 type@16 pid@20 (24 bytes, the table's GETLK size)", () => {
    const { dv } = dirty(24);
    expect(encodeLkOut(dv, 0, { start: 10, end: 2 ** 63 - 1, type: 1, pid: 4242 } as never)).toBe(outSize(Op.GETLK));
    expect(dv.getBigUint64(0, true)).toBe(10n);
    expect(dv.getBigUint64(8, true)).toBe(0x7fff_ffff_ffff_ffffn); // OFFSET_MAX: to the end of the file
    expect(dv.getUint32(16, true)).toBe(1);
    expect(dv.getUint32(20, true)).toBe(4242);
    expect(() => encodeLkOut(dv, 0, null as never)).toThrow(new ReplyError("getlk must return a lock"));
    expect(() => encodeLkOut(dv, 0, { start: "x", end: 0, type: 2, pid: 0 } as never)).toThrow(ReplyError);
  });
});

// include/uapi/linux/fuse.h (7.45) / fuse-protocol.md §1.10: the notification structs. Each is
// encoded after a 16-byte out-header at an odd-looking offset, so nothing depends on alignment to 0.
describe("notification structs (server → kernel)", () => {
  const H = 16;

  test("fuse_out_header of a notification: len@0, error@4 = code, unique@8 = 0 (INC_EPOCH is this alone)", () => {
    const { dv, bytes } = dirty(24);
    expect(encodeNotifyHeader(dv, 0, 8, 16)).toBe(16);
    expect(dv.getUint32(0, true)).toBe(16);
    expect(dv.getInt32(4, true)).toBe(8);
    expect(dv.getBigUint64(8, true)).toBe(0n);
    expect(bytes[16]).toBe(0xaa);
  });

  test("fuse_notify_inval_inode_out: ino@0 u64, off@8 i64, len@16 i64 (24 bytes)", () => {
    const { dv, bytes } = dirty(H + 32);
    expect(encodeInvalInodeOut(dv, H, 0x1_2345_6789, -1, 5 * TWO32 + 3)).toBe(24);
    expect(dv.getBigUint64(H, true)).toBe(0x1_2345_6789n);
    expect(dv.getBigInt64(H + 8, true)).toBe(-1n); // attributes only
    expect(dv.getBigInt64(H + 16, true)).toBe(BigInt(5 * TWO32 + 3));
    expect(bytes[H - 1]).toBe(0xaa);
    expect(bytes[H + 24]).toBe(0xaa);
  });

  test("fuse_notify_inval_entry_out: parent@0 u64, namelen@8, flags@12 (16 bytes), then name + NUL", () => {
    const { dv, bytes } = dirty(H + 32);
    expect(encodeInvalEntryOut(dv, bytes, H, 0x2_0000_0001, "héllo", 6, true)).toBe(16 + 6 + 1);
    expect(dv.getBigUint64(H, true)).toBe(0x2_0000_0001n);
    expect(dv.getUint32(H + 8, true)).toBe(6);
    expect(dv.getUint32(H + 12, true)).toBe(1); // FUSE_EXPIRE_ONLY
    expect(Buffer.from(bytes.subarray(H + 16, H + 22)).toString("utf8")).toBe("héllo");
    expect(bytes[H + 22]).toBe(0);
    expect(bytes[H + 23]).toBe(0xaa);
    encodeInvalEntryOut(dv, bytes, H, 1, "x", 1, false);
    expect(dv.getUint32(H + 12, true)).toBe(0);
  });

  test("fuse_notify_delete_out: parent@0, child@8 (u64), namelen@16, padding@20 (24 bytes), then name + NUL", () => {
    const { dv, bytes } = dirty(H + 40);
    expect(encodeDeleteOut(dv, bytes, H, 7, 0x3_0000_0009, "gone", 4)).toBe(24 + 4 + 1);
    expect(dv.getBigUint64(H, true)).toBe(7n);
    expect(dv.getBigUint64(H + 8, true)).toBe(0x3_0000_0009n);
    expect(dv.getUint32(H + 16, true)).toBe(4);
    expect(dv.getUint32(H + 20, true)).toBe(0);
    expect(Buffer.from(bytes.subarray(H + 24, H + 28)).toString()).toBe("gone");
    expect(bytes[H + 28]).toBe(0);
    expect(bytes[H + 29]).toBe(0xaa);
  });

  test("fuse_notify_store_out: nodeid@0, offset@8 (u64), size@16, padding@20 (24 bytes), then the data", () => {
    const { dv, bytes } = dirty(H + 40);
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    expect(encodeStoreOut(dv, bytes, H, 42, 9 * GiB, data)).toBe(24 + 5);
    expect(dv.getBigUint64(H, true)).toBe(42n);
    expect(dv.getBigUint64(H + 8, true)).toBe(BigInt(9 * GiB));
    expect(dv.getUint32(H + 16, true)).toBe(5);
    expect(dv.getUint32(H + 20, true)).toBe(0);
    expect([...bytes.subarray(H + 24, H + 29)]).toEqual([1, 2, 3, 4, 5]);
    expect(bytes[H + 29]).toBe(0xaa);
  });

  test("fuse_notify_retrieve_out: notify_unique@0, nodeid@8, offset@16 (u64), size@24, padding@28 (32 bytes)", () => {
    const { dv, bytes } = dirty(H + 40);
    expect(encodeRetrieveOut(dv, H, 0x1234, 0x4000_0000, 0x1_0000_0002, 3 * TWO32 + 4096, 65536)).toBe(32);
    expect(dv.getBigUint64(H, true)).toBe(0x4000_0000_0000_1234n);
    expect(dv.getBigUint64(H + 8, true)).toBe(0x1_0000_0002n);
    expect(dv.getBigUint64(H + 16, true)).toBe(BigInt(3 * TWO32 + 4096));
    expect(dv.getUint32(H + 24, true)).toBe(65536);
    expect(dv.getUint32(H + 28, true)).toBe(0);
    expect(bytes[H + 32]).toBe(0xaa);
  });
});

// The -d trace's decoders read what the kernel reads: each is checked over bytes written at the
// reference offsets with BigInt/DataView writers (not the codec's encoders), then against its encoder.
describe("reply decoders (the -d trace)", () => {
  test("decodeAttrOut / decodeEntryOut read every fuse_attr field and the validities at their offsets", () => {
    const { dv } = dirty(128);
    dv.setBigUint64(0, 0x1_0000_0005n, true); // nodeid
    dv.setBigUint64(8, 7n, true); // generation
    dv.setBigUint64(16, 2n, true); // entry_valid
    dv.setBigUint64(24, 3n, true); // attr_valid
    dv.setUint32(32, 500_000_000, true);
    dv.setUint32(36, 250_000_000, true);
    const a = 40;
    dv.setBigUint64(a, 0x1_0000_0005n, true);
    dv.setBigUint64(a + 8, BigInt(9 * GiB), true);
    dv.setBigUint64(a + 16, 77n, true);
    dv.setBigInt64(a + 24, -5n, true);
    dv.setBigInt64(a + 32, 1_700_000_002n, true);
    dv.setBigInt64(a + 40, 1_700_000_003n, true);
    [11, 22, 33, S_IFREG | 0o640, 2, 1001, 1002, 0x0801, 4096].forEach((v, i) => dv.setUint32(a + 48 + 4 * i, v, true));
    const e = decodeEntryOut(dv, 0);
    expect(e).toEqual({
      nodeid: 0x1_0000_0005, generation: 7, entryValid: 2.5, attrValid: 3.25,
      attr: {
        ino: 0x1_0000_0005, size: 9 * GiB, blocks: 77, atimeSec: -5, mtimeSec: 1_700_000_002, ctimeSec: 1_700_000_003,
        atimeNsec: 11, mtimeNsec: 22, ctimeNsec: 33, mode: S_IFREG | 0o640, nlink: 2, uid: 1001, gid: 1002, rdev: 0x0801, blksize: 4096,
      },
    });
    const { dv: out } = dirty(104);
    const a2 = attr({ rdev: 5, blksize: 512 });
    encodeAttrOut(out, 0, a2, 1.5);
    expect(decodeAttrOut(out, 0)).toEqual({ attrValid: 1.5, attr: { ...a2, rdev: 5, blksize: 512, blocks: Math.ceil(9 * GiB / 512) } });
  });

  test("decodeOpenOut: fh@0 open_flags@8 backing_id@12 (signed)", () => {
    const { dv } = dirty(16);
    dv.setBigUint64(0, 0x2_0000_0003n, true);
    dv.setUint32(8, 0x81, true);
    dv.setInt32(12, -1, true);
    expect(decodeOpenOut(dv, 0)).toEqual({ fh: 0x2_0000_0003, openFlags: 0x81, backingId: -1 });
  });

  test("decodeStatfs reads what encodeStatfs writes, frsize included", () => {
    const s = { blocks: 5 * TWO32, bfree: 4, bavail: 3, files: 2 * TWO32, ffree: 1, bsize: 4096, namelen: 255, frsize: 1024 };
    const { dv } = dirty(80);
    encodeStatfs(dv, 0, s);
    expect(decodeStatfs(dv, 0)).toEqual(s);
    dv.setUint32(48, 512, true);
    expect(decodeStatfs(dv, 0).frsize).toBe(512);
  });

  test("small structs: write_out and getxattr_out size@0, lseek_out / copy_file_range_out u64@0, lk_out start@0 end@8 type@16 pid@20", () => {
    const { dv } = dirty(24);
    dv.setUint32(0, 4096, true);
    expect(decodeWriteOut(dv, 0)).toBe(4096);
    expect(decodeXattrSize(dv, 0)).toBe(4096);
    dv.setBigUint64(0, BigInt(6 * GiB), true);
    expect(decodeLseekOut(dv, 0)).toBe(6 * GiB);
    expect(decodeCopyOut64(dv, 0)).toBe(6 * GiB);
    dv.setBigUint64(0, 10n, true);
    dv.setBigUint64(8, 3n * BigInt(TWO32), true);
    dv.setUint32(16, 1, true);
    dv.setUint32(20, 4242, true);
    expect(decodeLkOut(dv, 0)).toEqual({ start: 10, end: 3 * TWO32, type: 1, pid: 4242 });
  });

  test("direntRecordSize: namelen@16 of the dirent (after the entry_out for direntplus), padded to 8", () => {
    const { dv, buf } = dirty(512);
    const end1 = encodeDirent(dv, buf, 0, 512, "abcdefghi", 5, S_IFREG, 1);
    expect(direntRecordSize(dv, 0, false)).toBe(end1);
    expect(end1).toBe(24 + 16); // 24 + 9 bytes → 40
    const { dv: dv2, buf: buf2 } = dirty(512);
    const end2 = encodeDirentPlus(dv2, buf2, 0, 512, "a", attr() as Entry, 1, 1, 1);
    expect(direntRecordSize(dv2, 0, true)).toBe(end2);
    expect(end2).toBe(128 + 24 + 8);
  });
});
