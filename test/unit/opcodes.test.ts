/**
 * The opcode table against the kernel's header: every struct size is computed here from its field
 * list as written in include/uapi/linux/fuse.h (7.45), with C's alignment rules, and the
 * per-opcode facts come from fs/fuse (which arguments each request carries, which are never
 * answered). Nothing here is taken from runtime/: the table must agree with the header, not with
 * itself.
 */
import { describe, expect, test } from "bun:test";
import { OPCODES, Op, VARIABLE, inSize, nameCount, outSize, opName, expectsReply, knownOpcode, afterSize, dataSizeAt } from "../../runtime/kernel/opcodes.ts";

type Field = "u16" | "u32" | "i32" | "u64" | "i64" | { struct: Field[] } | { array: Field; n: number };
const size1 = (f: Field): number => (typeof f === "string" ? (f === "u16" ? 2 : f.endsWith("32") ? 4 : 8) : "struct" in f ? sizeof(f.struct) : size1(f.array) * f.n);
const align1 = (f: Field): number => (typeof f === "string" ? size1(f) : "struct" in f ? Math.max(...f.struct.map(align1)) : align1(f.array));
/** sizeof(struct { fields }) on x86-64. */
function sizeof(fields: Field[]): number {
  let off = 0, al = 1;
  for (const f of fields) {
    const a = align1(f);
    al = Math.max(al, a);
    off = Math.ceil(off / a) * a + size1(f);
  }
  return Math.ceil(off / al) * al;
}

// include/uapi/linux/fuse.h, field by field
const fuse_attr: Field[] = ["u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"];
const fuse_file_lock: Field[] = ["u64", "u64", "u32", "u32"];
const S = {
  entry_out: sizeof(["u64", "u64", "u64", "u64", "u32", "u32", { struct: fuse_attr }]),
  attr_out: sizeof(["u64", "u32", "u32", { struct: fuse_attr }]),
  forget_in: sizeof(["u64"]),
  batch_forget_in: sizeof(["u32", "u32"]),
  getattr_in: sizeof(["u32", "u32", "u64"]),
  setattr_in: sizeof(["u32", "u32", "u64", "u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"]),
  mknod_in: sizeof(["u32", "u32", "u32", "u32"]),
  mkdir_in: sizeof(["u32", "u32"]),
  rename_in: sizeof(["u64"]),
  rename2_in: sizeof(["u64", "u32", "u32"]),
  link_in: sizeof(["u64"]),
  open_in: sizeof(["u32", "u32"]),
  create_in: sizeof(["u32", "u32", "u32", "u32"]),
  open_out: sizeof(["u64", "u32", "i32"]),
  release_in: sizeof(["u64", "u32", "u32", "u64"]),
  flush_in: sizeof(["u64", "u32", "u32", "u64"]),
  read_in: sizeof(["u64", "u64", "u32", "u32", "u64", "u32", "u32"]),
  write_in: sizeof(["u64", "u64", "u32", "u32", "u64", "u32", "u32"]),
  write_out: sizeof(["u32", "u32"]),
  statfs_out: sizeof([{ struct: ["u64", "u64", "u64", "u64", "u64", "u32", "u32", "u32", "u32", { array: "u32", n: 6 }] }]),
  fsync_in: sizeof(["u64", "u32", "u32"]),
  setxattr_in: sizeof(["u32", "u32", "u32", "u32"]),
  getxattr_in: sizeof(["u32", "u32"]),
  lk_in: sizeof(["u64", "u64", { struct: fuse_file_lock }, "u32", "u32"]),
  lk_out: sizeof([{ struct: fuse_file_lock }]),
  access_in: sizeof(["u32", "u32"]),
  init_in: sizeof(["u32", "u32", "u32", "u32", "u32", { array: "u32", n: 11 }]),
  init_out: sizeof(["u32", "u32", "u32", "u32", "u16", "u16", "u32", "u32", "u16", "u16", "u32", "u32", "u16", { array: "u16", n: 11 }]),
  interrupt_in: sizeof(["u64"]),
  bmap_in: sizeof(["u64", "u32", "u32"]),
  bmap_out: sizeof(["u64"]),
  ioctl_in: sizeof(["u64", "u32", "u32", "u64", "u32", "u32"]),
  poll_in: sizeof(["u64", "u64", "u32", "u32"]),
  poll_out: sizeof(["u32", "u32"]),
  notify_retrieve_in: sizeof(["u64", "u64", "u32", "u32", "u64", "u64"]),
  fallocate_in: sizeof(["u64", "u64", "u64", "u32", "u32"]),
  lseek_in: sizeof(["u64", "u64", "u32", "u32"]),
  lseek_out: sizeof(["u64"]),
  copy_file_range_in: sizeof(["u64", "u64", "u64", "u64", "u64", "u64", "u64"]),
  copy_file_range_out: sizeof(["u64"]),
  setupmapping_in: sizeof(["u64", "u64", "u64", "u64", "u64"]),
  removemapping_in: sizeof(["u32"]),
  syncfs_in: sizeof(["u64"]),
  statx_in: sizeof(["u32", "u32", "u64", "u32", "u32"]),
  statx_out: sizeof(["u64", "u32", "u32", { array: "u64", n: 2 }, {
    struct: ["u32", "u32", "u64", "u32", "u32", "u32", "u16", "u16", "u64", "u64", "u64", "u64",
      { struct: ["i64", "u32", "i32"] }, { struct: ["i64", "u32", "i32"] }, { struct: ["i64", "u32", "i32"] }, { struct: ["i64", "u32", "i32"] },
      "u32", "u32", "u32", "u32", { array: "u64", n: 14 }],
  }]),
};

/** What each request carries and returns (fs/fuse): [opcode, name, fixed in, fixed out, names, answered]. */
const V = VARIABLE;
const KERNEL: [number, string, number, number, number, boolean][] = [
  [1, "lookup", 0, S.entry_out, 1, true],
  [2, "forget", S.forget_in, 0, 0, false],
  [3, "getattr", S.getattr_in, S.attr_out, 0, true],
  [4, "setattr", S.setattr_in, S.attr_out, 0, true],
  [5, "readlink", 0, V, 0, true],
  [6, "symlink", 0, S.entry_out, 2, true],
  [8, "mknod", S.mknod_in, S.entry_out, 1, true],
  [9, "mkdir", S.mkdir_in, S.entry_out, 1, true],
  [10, "unlink", 0, 0, 1, true],
  [11, "rmdir", 0, 0, 1, true],
  [12, "rename", S.rename_in, 0, 2, true],
  [13, "link", S.link_in, S.entry_out, 1, true],
  [14, "open", S.open_in, S.open_out, 0, true],
  [15, "read", S.read_in, V, 0, true],
  [16, "write", S.write_in, S.write_out, 0, true],
  [17, "statfs", 0, S.statfs_out, 0, true],
  [18, "release", S.release_in, 0, 0, true],
  [20, "fsync", S.fsync_in, 0, 0, true],
  [21, "setxattr", S.setxattr_in, 0, 1, true],
  [22, "getxattr", S.getxattr_in, V, 1, true],
  [23, "listxattr", S.getxattr_in, V, 0, true],
  [24, "removexattr", 0, 0, 1, true],
  [25, "flush", S.flush_in, 0, 0, true],
  [26, "init", S.init_in, S.init_out, 0, true],
  [27, "opendir", S.open_in, S.open_out, 0, true],
  [28, "readdir", S.read_in, V, 0, true],
  [29, "releasedir", S.release_in, 0, 0, true],
  [30, "fsyncdir", S.fsync_in, 0, 0, true],
  [31, "getlk", S.lk_in, S.lk_out, 0, true],
  [32, "setlk", S.lk_in, 0, 0, true],
  [33, "setlkw", S.lk_in, 0, 0, true],
  [34, "access", S.access_in, 0, 0, true],
  [35, "create", S.create_in, S.entry_out + S.open_out, 1, true],
  [36, "interrupt", S.interrupt_in, 0, 0, false],
  [37, "bmap", S.bmap_in, S.bmap_out, 0, true],
  [38, "destroy", 0, 0, 0, true],
  [39, "ioctl", S.ioctl_in, V, 0, true],
  [40, "poll", S.poll_in, S.poll_out, 0, true],
  [41, "notify_reply", 0, 0, 0, false],
  [42, "batch_forget", S.batch_forget_in, 0, 0, false],
  [43, "fallocate", S.fallocate_in, 0, 0, true],
  [44, "readdirplus", S.read_in, V, 0, true],
  [45, "rename2", S.rename2_in, 0, 2, true],
  [46, "lseek", S.lseek_in, S.lseek_out, 0, true],
  [47, "copy_file_range", S.copy_file_range_in, S.write_out, 0, true],
  [48, "setupmapping", S.setupmapping_in, 0, 0, true],
  [49, "removemapping", S.removemapping_in, 0, 0, true],
  [50, "syncfs", S.syncfs_in, 0, 0, true],
  [51, "tmpfile", S.create_in, S.entry_out + S.open_out, 1, true],
  [52, "statx", S.statx_in, S.statx_out, 0, true],
  [53, "copy_file_range_64", S.copy_file_range_in, S.copy_file_range_out, 0, true],
];

test("struct sizes computed from the header's field lists match the reference's (§1.6)", () => {
  // a few anchors from shared/reference/fuse-protocol.md, so the layout rules above are right
  expect([S.entry_out, S.attr_out, S.setattr_in, S.statfs_out, S.init_in, S.init_out, S.lk_in, S.copy_file_range_in, S.statx_out]).toEqual([128, 104, 88, 80, 64, 64, 48, 56, 288]);
});

describe("the opcode table agrees with the kernel", () => {
  for (const [opcode, name, inBytes, out, names, answered] of KERNEL) {
    test(`${opcode} ${name}: in ${inBytes}, out ${out === V ? "variable" : out}, ${names} name(s), ${answered ? "answered" : "never answered"}`, () => {
      const row = OPCODES[opcode]!;
      expect(row).toBeDefined();
      expect(row.name).toBe(name);
      expect(opName(opcode)).toBe(name);
      // NOTIFY_REPLY's fuse_notify_retrieve_in is its second argument (an empty op header first)
      expect(row.in + row.after).toBe(opcode === 41 ? S.notify_retrieve_in : inBytes);
      expect(inSize(opcode, 45, true) + afterSize(opcode)).toBe(opcode === 41 ? S.notify_retrieve_in : opcode === 26 ? 16 : inBytes);
      expect(outSize(opcode)).toBe(out);
      expect(nameCount(opcode)).toBe(names);
      expect(expectsReply(opcode)).toBe(answered);
    });
  }
  test("every row of the table is one of the kernel's opcodes, under its enum name", () => {
    const known = new Set(KERNEL.map((k) => k[0]));
    for (const row of OPCODES) if (row !== undefined) expect(known.has(row.opcode)).toBe(true);
    for (const [key, value] of Object.entries(Op)) expect(OPCODES[value]!.name).toBe(key.toLowerCase());
    expect(knownOpcode(7)).toBe(false);
    expect(knownOpcode(19)).toBe(false);
    expect(knownOpcode(4096)).toBe(false);
    expect(opName(4096)).toBe("op4096");
    expect(expectsReply(4096)).toBe(true); // answered ENOSYS
  });
});

test("older sizes the kernel still sends: setxattr without SETXATTR_EXT, mknod before 7.12, write before 7.9, INIT before 7.36", () => {
  // fuse.h FUSE_COMPAT_SETXATTR_IN_SIZE, FUSE_COMPAT_MKNOD_IN_SIZE, FUSE_COMPAT_WRITE_IN_SIZE
  expect(inSize(21, 45, false)).toBe(8);
  expect(inSize(21, 45, true)).toBe(16);
  expect(inSize(8, 11, true)).toBe(8);
  expect(inSize(8, 12, true)).toBe(16);
  expect(inSize(16, 8, true)).toBe(24);
  expect(inSize(16, 9, true)).toBe(40);
  // fuse_init_in was major, minor, max_readahead, flags before flags2 and unused[11] came in 7.36
  expect(inSize(26, 45, true)).toBe(16);
  expect(inSize(4096, 45, true)).toBe(-1);
});

test("data that follows the names is sized by a header field: fuse_write_in.size @16, fuse_setxattr_in.size @0", () => {
  for (const [opcode] of KERNEL) expect(dataSizeAt(opcode)).toBe(opcode === 16 ? 16 : opcode === 21 ? 0 : -1);
});
