/**
 * memfs operations called directly (no mount): data store, namespace rules, lookup counting,
 * readdir cookies, xattrs, limits. Errnos and timestamp rules are the ones tmpfs shows.
 */
import { describe, expect, test } from "bun:test";
import {
  Errno,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  R_OK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SEEK_DATA,
  SEEK_HOLE,
  W_OK,
  XATTR_CREATE,
  XATTR_REPLACE,
  X_OK,
  type DirList,
  type DirListPlus,
  type Entry,
  type Filesystem,
  type PluginContext,
  type Request,
} from "furing";
import plugin from "../../plugins/memfs/index.ts";
import { createOps } from "../../plugins/memfs/ops.ts";
import { createState, type MemfsState } from "../../plugins/memfs/state.ts";
import { parseInodes, parseMode, parseSize, type MemfsOptions } from "../../plugins/memfs/options.ts";
import type { Node } from "../../plugins/memfs/nodes.ts";
import { sharedRegion } from "../../runtime/host/host.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const ROOT = 1;

function request(uid = 0, gid = 0): Request {
  return { op: "test", uid, gid, pid: 1, signal: new AbortController().signal };
}
const req = request();

/** A fresh memfs: ops called like the runtime calls them, and the state to inspect. */
function memfs(limits: { maxBytes?: number; maxInodes?: number } = {}) {
  const state = createState({
    maxBytes: limits.maxBytes ?? 1 * GiB,
    maxInodes: limits.maxInodes ?? 100_000,
    rootMode: 0o755,
    uid: 0,
    gid: 0,
  });
  const fs = createOps(state) as Required<Filesystem>;
  return { fs, state };
}

type Fs = Required<Filesystem>;

/** The errno an op throws (fails the test if it does not throw). */
function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    return (e as { errno: number }).errno;
  }
  throw new Error("expected the operation to fail");
}

function createFile(fs: Fs, parent: number, name: string, data?: Uint8Array | string, mode = 0o644): Entry {
  const r = fs.create(req, parent, name, mode, O_CREAT | O_RDWR, 0) as { entry: Entry; fh?: number };
  if (data !== undefined) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    expect(fs.write(req, r.entry.ino, r.fh ?? 0, 0, bytes, 0)).toBe(bytes.length);
  }
  fs.release(req, r.entry.ino, r.fh ?? 0, 0);
  return r.entry;
}

function read(fs: Fs, ino: number, offset: number, size: number): Uint8Array {
  const dest = new Uint8Array(size).fill(0xee); // garbage: holes must be written as zeros
  const n = fs.read(req, ino, 0, offset, size, dest) as number;
  return dest.subarray(0, n);
}

function text(fs: Fs, ino: number): string {
  const n = fs.getattr(req, ino, undefined) as Entry;
  return new TextDecoder().decode(read(fs, ino, 0, n.size));
}

/** The attributes of a node as a plain object (nodes are views of shared records). */
function attrsOf(n: Entry): Record<string, unknown> {
  const { ino, mode, nlink, uid, gid, size, blocks, rdev, atimeSec, atimeNsec, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec } = n;
  return { ino, mode, nlink, uid, gid, size, blocks, rdev, atimeSec, atimeNsec, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec };
}

function attr(fs: Fs, ino: number): Node {
  return fs.getattr(req, ino, undefined) as Node;
}

function pattern(len: number, seed = 1): Uint8Array {
  const a = new Uint8Array(len);
  let x = seed;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    a[i] = x >>> 24;
  }
  return a;
}

/** Readdir collectors with a byte budget, sized like fuse_dirent / fuse_direntplus records. */
class Listing implements DirList {
  entries: { name: string; ino: number; mode: number; off: number }[] = [];
  constructor(private budget: number) {}
  add(name: string, ino: number, mode: number, nextOffset: number): boolean {
    const size = (24 + Buffer.byteLength(name) + 7) & ~7;
    if (size > this.budget) return false;
    this.budget -= size;
    this.entries.push({ name, ino, mode, off: nextOffset });
    return true;
  }
}
class ListingPlus implements DirListPlus {
  entries: { name: string; entry: Entry | null; off: number }[] = [];
  constructor(private budget: number) {}
  add(name: string, entry: Entry | null, nextOffset: number): boolean {
    const size = (152 + Buffer.byteLength(name) + 7) & ~7;
    if (size > this.budget) return false;
    this.budget -= size;
    this.entries.push({ name, entry, off: nextOffset });
    return true;
  }
}

/** List a whole directory in rounds of `budget` bytes, calling `between` after each round. */
function listAll(fs: Fs, ino: number, budget = 4096, between?: (round: number) => void): string[] {
  const names: string[] = [];
  let offset = 0;
  for (let round = 0; ; round++) {
    const l = new Listing(budget);
    fs.readdir(req, ino, 0, offset, l);
    if (l.entries.length === 0) return names;
    for (const e of l.entries) names.push(e.name);
    offset = l.entries[l.entries.length - 1]!.off;
    between?.(round);
  }
}

function after(a: Node, field: "atime" | "mtime" | "ctime", sec: number, nsec: number): boolean {
  const s = a[`${field}Sec`];
  const ns = a[`${field}Nsec`];
  return s > sec || (s === sec && ns > nsec);
}
function sameStamp(a: Node, b: Node): boolean {
  return a.mtimeSec === b.ctimeSec && a.mtimeNsec === b.ctimeNsec;
}

function stamp(n: Node, field: "atime" | "mtime" | "ctime"): [number, number] {
  return [n[`${field}Sec`], n[`${field}Nsec`]];
}

describe("file data", () => {
  test("writes and reads at unaligned offsets across chunk boundaries", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    const data = pattern(300_000);
    // Write in odd-sized pieces that straddle the 64 KiB chunk boundaries.
    const pieces = [1, 4095, 61_000, 9_999, 70_000, 3, 154_902];
    let off = 0;
    for (const len of pieces) {
      expect(fs.write(req, f.ino, 0, off, data.subarray(off, off + len), 0)).toBe(len);
      off += len;
    }
    expect(off).toBe(data.length);
    expect(attr(fs, f.ino).size).toBe(data.length);
    expect(read(fs, f.ino, 0, data.length)).toEqual(data);
    for (const [o, n] of [[65_535, 2], [65_000, 70_000], [131_071, 131_074], [299_990, 100], [1, 65_536]] as const) {
      expect(read(fs, f.ino, o, n)).toEqual(data.subarray(o, Math.min(o + n, data.length)));
    }
    // Overwrite in the middle, across a boundary.
    const patch = pattern(5000, 7);
    fs.write(req, f.ino, 0, 129_000, patch, 0);
    data.set(patch, 129_000);
    expect(read(fs, f.ino, 0, data.length)).toEqual(data);
  });

  test("read writes into the destination view at its own offset, short at EOF", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", "hello world");
    const backing = new Uint8Array(64).fill(9);
    const dest = backing.subarray(8, 8 + 32);
    expect(fs.read(req, f.ino, 0, 6, 32, dest)).toBe(5);
    expect(new TextDecoder().decode(dest.subarray(0, 5))).toBe("world");
    expect(backing[7]).toBe(9);
    expect(backing[13]).toBe(9); // nothing written past the count
    expect(fs.read(req, f.ino, 0, 11, 32, dest)).toBe(0);
    expect(fs.read(req, f.ino, 0, 1000, 32, dest)).toBe(0);
  });

  test("holes read as zeros and cost nothing", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f");
    fs.write(req, f.ino, 0, 200_000, new Uint8Array([1, 2, 3]), 0);
    expect(attr(fs, f.ino).size).toBe(200_003);
    const all = read(fs, f.ino, 0, 200_003);
    expect(all.subarray(0, 200_000).every((b) => b === 0)).toBe(true);
    expect([...all.subarray(200_000)]).toEqual([1, 2, 3]);
    // Only the chunk holding the bytes is allocated (pages from its start to the data).
    expect(state.usedBytes).toBeLessThanOrEqual(64 * KiB);
    expect(attr(fs, f.ino).blocks * 512).toBe(state.usedBytes);
  });

  test("small files cost whole pages, like tmpfs", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f", "x");
    expect(attr(fs, f.ino).blocks).toBe(8);
    fs.write(req, f.ino, 0, 4096, new Uint8Array(1), 0);
    expect(attr(fs, f.ino).blocks).toBe(16);
    expect(state.usedBytes).toBe(8192);
    createFile(fs, ROOT, "empty");
    expect(state.usedBytes).toBe(8192);
  });

  test("truncate shrinks, frees and zeroes the tail; extending reads zeros", () => {
    const { fs, state } = memfs();
    const data = pattern(200_000);
    const f = createFile(fs, ROOT, "f", data);
    const used = state.usedBytes;
    fs.setattr(req, f.ino, { size: 70_001 });
    expect(attr(fs, f.ino).size).toBe(70_001);
    expect(state.usedBytes).toBe(65_536 + 8192); // chunk 0 + 2 pages of chunk 1
    expect(state.usedBytes).toBeLessThan(used);
    fs.setattr(req, f.ino, { size: 150_000 });
    const got = read(fs, f.ino, 0, 150_000);
    expect(got.subarray(0, 70_001)).toEqual(data.subarray(0, 70_001));
    expect(got.subarray(70_001).every((b) => b === 0)).toBe(true);
    fs.setattr(req, f.ino, { size: 0 });
    expect(state.usedBytes).toBe(0);
    expect(attr(fs, f.ino).blocks).toBe(0);
    expect(read(fs, f.ino, 0, 10).length).toBe(0);
  });

  test("truncate on open with O_TRUNC", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f", "content");
    fs.open(req, f.ino, O_WRONLY | O_TRUNC);
    expect(attr(fs, f.ino).size).toBe(0);
    expect(state.usedBytes).toBe(0);
    fs.release(req, f.ino, 0, 0);
  });

  test("holes are exact at 4 KiB pages inside a chunk: SEEK_DATA/SEEK_HOLE, st_blocks, punch (as tmpfs)", () => {
    const { fs, state } = memfs();
    // Data from the middle of a large hole: the first data page, not its chunk's start.
    const f = createFile(fs, ROOT, "far");
    fs.write(req, f.ino, 0, 4243456, new Uint8Array(100).fill(1), 0);
    expect(fs.lseek(req, f.ino, 0, 0, SEEK_DATA)).toBe(4243456);
    expect(fs.lseek(req, f.ino, 0, 4194304, SEEK_DATA)).toBe(4243456);
    expect(attr(fs, f.ino).blocks).toBe(8);
    expect(state.usedBytes).toBe(4096);
    // One page punched inside a chunk is a hole, freed.
    const g = createFile(fs, ROOT, "punched", pattern(65536));
    fs.fallocate(req, g.ino, 0, 4096, 4096, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(fs.lseek(req, g.ino, 0, 0, SEEK_HOLE)).toBe(4096);
    expect(fs.lseek(req, g.ino, 0, 4096, SEEK_DATA)).toBe(8192);
    expect(attr(fs, g.ino).blocks).toBe(15 * 8);
    expect(read(fs, g.ino, 4096, 4096).every((b) => b === 0)).toBe(true);
    expect(read(fs, g.ino, 8192, 10)).toEqual(pattern(65536).subarray(8192, 8202));
    // A partial page stays data (zeroed); punching the rest of the chunk's pages frees it.
    fs.fallocate(req, g.ino, 0, 8192, 100, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(fs.lseek(req, g.ino, 0, 8192, SEEK_DATA)).toBe(8192);
    fs.fallocate(req, g.ino, 0, 0, 65536, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(attr(fs, g.ino).blocks).toBe(0);
    expect(errnoOf(() => fs.lseek(req, g.ino, 0, 0, SEEK_DATA))).toBe(Errno.ENXIO);
    // fallocated pages are held but read as holes until written (or fallocated again).
    const h = createFile(fs, ROOT, "falloc");
    fs.fallocate(req, h.ino, 0, 0, 16384, 0);
    expect(attr(fs, h.ino).blocks).toBe(32);
    expect(errnoOf(() => fs.lseek(req, h.ino, 0, 0, SEEK_DATA))).toBe(Errno.ENXIO);
    fs.write(req, h.ino, 0, 8192, new Uint8Array([1]), 0);
    expect(fs.lseek(req, h.ino, 0, 0, SEEK_DATA)).toBe(8192);
    expect(fs.lseek(req, h.ino, 0, 8192, SEEK_HOLE)).toBe(12288);
    fs.fallocate(req, h.ino, 0, 0, 4096, 0);
    expect(fs.lseek(req, h.ino, 0, 0, SEEK_DATA)).toBe(0);
    expect(attr(fs, h.ino).blocks).toBe(32);
    expect(state.usedBytes).toBe(4096 + 15 * 4096 - 65536 + 16384 + 4096);
  });

  test("sparse file beyond 8 GiB", () => {
    const { fs, state } = memfs({ maxBytes: 64 * MiB });
    const f = createFile(fs, ROOT, "big");
    expect(fs.write(req, f.ino, 0, 9 * GiB, new Uint8Array([42]), 0)).toBe(1);
    const a = attr(fs, f.ino);
    expect(a.size).toBe(9 * GiB + 1);
    expect(a.blocks).toBe(8);
    expect(state.usedBytes).toBe(4096);
    expect([...read(fs, f.ino, 9 * GiB - 2, 10)]).toEqual([0, 0, 42]);
    expect(fs.lseek(req, f.ino, 0, 0, SEEK_DATA)).toBe(9 * GiB);
    expect(fs.lseek(req, f.ino, 0, 0, SEEK_HOLE)).toBe(0);
    fs.write(req, f.ino, 0, 12 * GiB + 5, new Uint8Array([7]), 0);
    expect(attr(fs, f.ino).size).toBe(12 * GiB + 6);
    fs.setattr(req, f.ino, { size: 10 * GiB });
    expect(state.usedBytes).toBe(4096);
    expect(errnoOf(() => fs.write(req, f.ino, 0, Number.MAX_SAFE_INTEGER, new Uint8Array(2), 0))).toBe(Errno.EFBIG);
  });

  test("writes go where the kernel says, also for O_APPEND opens (the kernel picks EOF)", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "log", "abc");
    expect(fs.open(req, f.ino, O_WRONLY | O_APPEND)).toBeUndefined(); // no handle needed
    fs.write(req, f.ino, 0, 3, new TextEncoder().encode("def"), O_WRONLY | O_APPEND);
    // A write-back flush through an O_APPEND handle must land at its own offset.
    fs.write(req, f.ino, 0, 0, new TextEncoder().encode("A"), O_WRONLY | O_APPEND);
    expect(text(fs, f.ino)).toBe("Abcdef");
    fs.release(req, f.ino, 0, 0);
  });

  test("write updates mtime and ctime; read updates atime per relatime", async () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", "x");
    const n = attr(fs, f.ino);
    const [ms, mns] = stamp(n, "mtime");
    await Bun.sleep(2);
    fs.write(req, f.ino, 0, 1, new Uint8Array([1]), 0);
    expect(after(n, "mtime", ms, mns)).toBe(true);
    expect(stamp(n, "ctime")).toEqual(stamp(n, "mtime"));
    // atime is older than mtime: the read updates it, a second read does not.
    await Bun.sleep(2);
    read(fs, f.ino, 0, 1);
    const at = stamp(n, "atime");
    expect(after(n, "atime", ...stamp(n, "mtime"))).toBe(true);
    await Bun.sleep(2);
    read(fs, f.ino, 0, 1);
    expect(stamp(n, "atime")).toEqual(at);
  });

  test("atime modes: relatime's day-old rule, strictatime, noatime, nodiratime", async () => {
    for (const [atime, nodiratime] of [["relatime", false], ["strictatime", false], ["noatime", false], ["relatime", true]] as const) {
      const state = createState({ maxBytes: GiB, maxInodes: 1000, rootMode: 0o755, uid: 0, gid: 0 });
      const fs = createOps(state, { atime, nodiratime }) as Fs;
      const f = createFile(fs, ROOT, "f", "x");
      const n = attr(fs, f.ino);
      const d = attr(fs, ROOT);
      await Bun.sleep(12); // past a coarse clock tick
      read(fs, f.ino, 0, 1);
      fs.readdir(req, ROOT, 0, 0, new Listing(4096));
      const first = stamp(n, "atime");
      expect(after(n, "atime", ...stamp(n, "mtime"))).toBe(atime !== "noatime");
      expect(after(d, "atime", ...stamp(d, "mtime"))).toBe(atime !== "noatime" && !nodiratime);
      // newer than mtime and ctime: only strictatime updates
      await Bun.sleep(12); // past a coarse clock tick
      read(fs, f.ino, 0, 1);
      expect(stamp(n, "atime")[0] !== first[0] || stamp(n, "atime")[1] !== first[1]).toBe(atime === "strictatime");
      // a day old (yet newer than mtime and ctime, set back with it): relatime updates too
      const past = Math.floor(Date.now() / 1000) - 2 * 86400;
      n.atimeSec = past + 10;
      n.mtimeSec = n.ctimeSec = past;
      d.atimeSec = past + 10;
      d.mtimeSec = d.ctimeSec = past;
      read(fs, f.ino, 0, 1);
      fs.readdir(req, ROOT, 0, 0, new Listing(4096));
      expect(n.atimeSec > past + 10).toBe(atime !== "noatime");
      expect(d.atimeSec > past + 10).toBe(atime !== "noatime" && !nodiratime);
    }
  });

  test("copyFileRange copies data, writes holes as zeros (as tmpfs's splice fallback), stops at EOF", () => {
    const { fs } = memfs();
    const data = pattern(100_000);
    const src = createFile(fs, ROOT, "src", data);
    fs.write(req, src.ino, 0, 300_000, new Uint8Array([5]), 0);
    const dst = createFile(fs, ROOT, "dst", pattern(10, 3));
    expect(fs.copyFileRange(req, src.ino, 0, 1000, dst.ino, 0, 5, 1_000_000, 0)).toBe(299_001);
    expect(attr(fs, dst.ino).size).toBe(5 + 299_001);
    expect(read(fs, dst.ino, 5, 99_000)).toEqual(data.subarray(1000));
    expect(read(fs, dst.ino, 5 + 299_000, 1)[0]).toBe(5);
    expect(read(fs, dst.ino, 200_000, 1000).every((b) => b === 0)).toBe(true);
    // The copy is all data, like tmpfs's: its pages are held and SEEK_HOLE finds no hole in it.
    expect(attr(fs, dst.ino).blocks).toBe(Math.ceil((5 + 299_001) / 4096) * 8);
    expect(fs.lseek(req, dst.ino, 0, 0, SEEK_HOLE)).toBe(5 + 299_001);
    expect(fs.copyFileRange(req, src.ino, 0, 400_000, dst.ino, 0, 0, 10, 0)).toBe(0);
    // Overlapping ranges in one file are refused; disjoint ones work.
    expect(errnoOf(() => fs.copyFileRange(req, src.ino, 0, 0, src.ino, 0, 50, 100, 0))).toBe(Errno.EINVAL);
    expect(fs.copyFileRange(req, src.ino, 0, 0, src.ino, 0, 400_000, 100, 0)).toBe(100);
    expect(read(fs, src.ino, 400_000, 100)).toEqual(data.subarray(0, 100));
  });
});

describe("size limit", () => {
  test("ENOSPC leaves earlier data intact; a write that partly fits is short", () => {
    const { fs, state } = memfs({ maxBytes: 64 * KiB });
    const a = pattern(40 * KiB, 1);
    const fa = createFile(fs, ROOT, "a", a);
    const fb = createFile(fs, ROOT, "b");
    const b = pattern(40 * KiB, 2);
    // 24 KiB left: the write stops at that page boundary.
    expect(fs.write(req, fb.ino, 0, 0, b, 0)).toBe(24 * KiB);
    expect(errnoOf(() => fs.write(req, fb.ino, 0, 24 * KiB, b.subarray(24 * KiB), 0))).toBe(Errno.ENOSPC);
    expect(state.usedBytes).toBe(64 * KiB);
    expect(read(fs, fa.ino, 0, a.length)).toEqual(a);
    expect(read(fs, fb.ino, 0, 24 * KiB)).toEqual(b.subarray(0, 24 * KiB));
    expect(attr(fs, fb.ino).size).toBe(24 * KiB);
    // Overwriting allocated bytes still works when full.
    expect(fs.write(req, fa.ino, 0, 10, new Uint8Array([1, 2]), 0)).toBe(2);
    // fallocate is all or nothing.
    expect(errnoOf(() => fs.fallocate(req, fb.ino, 0, 0, 100 * KiB, 0))).toBe(Errno.ENOSPC);
    expect(attr(fs, fb.ino).size).toBe(24 * KiB);
    // Long symlinks take a page too.
    expect(errnoOf(() => fs.symlink(req, ROOT, "l", "x".repeat(200)))).toBe(Errno.ENOSPC);
    fs.unlink(req, ROOT, "a");
    fs.forget(fa.ino, 1);
    expect(state.usedBytes).toBe(24 * KiB);
    expect(fs.write(req, fb.ino, 0, 24 * KiB, b.subarray(24 * KiB), 0)).toBe(16 * KiB);
    expect(read(fs, fb.ino, 0, b.length)).toEqual(b);
  });

  test("node limit: ENOSPC on create, hard links count like tmpfs", () => {
    const { fs, state } = memfs({ maxInodes: 4 });
    const f = createFile(fs, ROOT, "f1");
    createFile(fs, ROOT, "f2");
    fs.link(req, f.ino, ROOT, "f1-link");
    expect(errnoOf(() => createFile(fs, ROOT, "f3"))).toBe(Errno.ENOSPC);
    expect(errnoOf(() => fs.mkdir(req, ROOT, "d", 0o755, 0))).toBe(Errno.ENOSPC);
    expect(errnoOf(() => fs.lookup(req, ROOT, "f3"))).toBe(Errno.ENOENT);
    fs.unlink(req, ROOT, "f1-link");
    expect((fs.statfs(req, ROOT) as { ffree: number }).ffree).toBe(1);
    createFile(fs, ROOT, "f3");
    expect(state.nodes.size).toBe(4);
  });
});

describe("statfs", () => {
  test("reports the limits and usage", () => {
    const { fs } = memfs({ maxBytes: 1 * MiB, maxInodes: 1000 });
    let s = fs.statfs(req, ROOT) as { blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number };
    expect(s).toMatchObject({ blocks: 256, bfree: 256, bavail: 256, files: 1000, ffree: 999, bsize: 4096, namelen: 255 });
    const f = createFile(fs, ROOT, "f", pattern(10_000));
    fs.mkdir(req, ROOT, "d", 0o755, 0);
    s = fs.statfs(req, ROOT) as typeof s;
    expect(s).toMatchObject({ blocks: 256, bfree: 253, bavail: 253, files: 1000, ffree: 997 });
    // Extended attributes use inode space (40 + name + value bytes).
    fs.setxattr(req, f.ino, "user.big", new Uint8Array(5000), 0);
    expect((fs.statfs(req, ROOT) as typeof s).ffree).toBe(997 - 5);
    fs.removexattr(req, f.ino, "user.big");
    expect((fs.statfs(req, ROOT) as typeof s).ffree).toBe(997);
  });

  test("unlimited size and nodes report zeros, like tmpfs", () => {
    const { fs } = memfs({ maxBytes: Infinity, maxInodes: Infinity });
    expect(fs.statfs(req, ROOT)).toMatchObject({ blocks: 0, bfree: 0, files: 0, ffree: 0 });
    createFile(fs, ROOT, "f", "x");
  });
});

describe("namespace", () => {
  test("root directory", () => {
    const { fs } = memfs();
    const r = attr(fs, ROOT);
    expect(r.ino).toBe(1);
    expect(r.mode).toBe(S_IFDIR | 0o755);
    expect(r.nlink).toBe(2);
    expect(r.size).toBe(40);
  });

  test("getattr and lookup answer with the node itself", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    expect(fs.getattr(req, f.ino, undefined)).toBe(f as Node);
    const before = (f as Node).nlookup;
    expect(fs.lookup(req, ROOT, "f")).toBe(f);
    expect((f as Node).nlookup).toBe(before + 1);
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    expect(fs.lookup(req, d.ino, "..")).toBe(attr(fs, ROOT));
    expect(fs.lookup(req, d.ino, ".")).toBe(d);
    // Export support: "." by node id works for any node (counted), ".." only for directories,
    // and a node without names is gone.
    expect(fs.lookup(req, f.ino, ".")).toBe(f);
    expect((f as Node).nlookup).toBe(before + 2);
    expect(errnoOf(() => fs.lookup(req, f.ino, ".."))).toBe(Errno.ENOTDIR);
    fs.unlink(req, ROOT, "f");
    expect(errnoOf(() => fs.lookup(req, f.ino, "."))).toBe(Errno.ENOENT);
    fs.rmdir(req, ROOT, "d");
    expect(errnoOf(() => fs.lookup(req, d.ino, "."))).toBe(Errno.ENOENT);
    expect(errnoOf(() => fs.lookup(req, d.ino, ".."))).toBe(Errno.ENOENT);
    expect(createOps(createState({ maxBytes: GiB, maxInodes: 10, rootMode: 0o755, uid: 0, gid: 0 })).exportSupport).toBe(true);
  });

  test("create, mknod, mkdir, symlink: types, modes, owners, errors", () => {
    const { fs } = memfs();
    const user = request(1000, 1000);
    const d = fs.mkdir(user, ROOT, "d", 0o777, 0o022) as Entry;
    expect(d.mode).toBe(S_IFDIR | 0o755);
    expect(d.uid).toBe(1000);
    expect(d.gid).toBe(1000);
    const fifo = fs.mknod(req, d.ino, "fifo", S_IFIFO | 0o644, 0, 0) as Entry;
    expect(fifo.mode).toBe(S_IFIFO | 0o644);
    const dev = fs.mknod(req, d.ino, "null", S_IFCHR | 0o666, 0x103, 0) as Entry;
    expect(dev.mode & S_IFMT).toBe(S_IFCHR);
    expect(dev.rdev).toBe(0x103);
    const reg = fs.mknod(req, d.ino, "reg", 0o600, 0, 0) as Entry;
    expect(reg.mode).toBe(S_IFREG | 0o600);
    const l = fs.symlink(req, d.ino, "l", "../target") as Entry;
    expect(l.mode).toBe(S_IFLNK | 0o777);
    expect(l.size).toBe(9);
    expect(l.blocks).toBe(0);
    expect(fs.readlink(req, l.ino)).toBe("../target");
    expect((fs.symlink(req, d.ino, "long", "t".repeat(200)) as Entry).blocks).toBe(8);
    expect(errnoOf(() => fs.symlink(req, d.ino, "toolong", "t".repeat(4096)))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(() => fs.readlink(req, reg.ino))).toBe(Errno.EINVAL);

    expect(errnoOf(() => fs.mkdir(req, d.ino, "fifo", 0o755, 0))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.mknod(req, d.ino, "reg", S_IFREG | 0o644, 0, 0))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.symlink(req, d.ino, "l", "x"))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.create(req, d.ino, "reg", 0o644, O_CREAT | O_EXCL | O_WRONLY, 0))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.mkdir(req, reg.ino, "x", 0o755, 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.lookup(req, reg.ino, "x"))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.create(req, reg.ino, "x", 0o644, O_CREAT, 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.lookup(req, d.ino, "nope"))).toBe(Errno.ENOENT);

    // Names: 255 UTF-8 bytes fit, 256 do not (also when counted in multi-byte characters).
    fs.mkdir(req, d.ino, "a".repeat(255), 0o755, 0);
    expect(errnoOf(() => fs.mkdir(req, d.ino, "a".repeat(256), 0o755, 0))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(() => fs.lookup(req, d.ino, "é".repeat(128)))).toBe(Errno.ENAMETOOLONG);
    fs.mkdir(req, d.ino, "é".repeat(127), 0o755, 0);
    expect(errnoOf(() => createFile(fs, d.ino, "b".repeat(300)))).toBe(Errno.ENAMETOOLONG);
  });

  test("create of an existing name without O_EXCL opens it", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", "data");
    const r = fs.create(req, ROOT, "f", 0o644, O_CREAT | O_WRONLY | O_TRUNC, 0) as { entry: Entry };
    expect(r.entry.ino).toBe(f.ino);
    expect(attr(fs, f.ino).size).toBe(0);
  });

  test("set-group-ID directories pass on their group (and the bit, to directories)", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "shared", 0o2775, 0) as Entry;
    fs.setattr(req, d.ino, { gid: 50 });
    const user = request(1000, 1000);
    const f = createFile(fs, d.ino, "f") as Entry;
    const sub = fs.mkdir(user, d.ino, "sub", 0o755, 0) as Entry;
    expect(f.gid).toBe(50);
    expect(sub.gid).toBe(50);
    expect(sub.mode).toBe(S_IFDIR | 0o2755);
    expect(sub.uid).toBe(1000);
    const plain = fs.mkdir(user, ROOT, "plain", 0o755, 0) as Entry;
    expect(plain.gid).toBe(1000);
  });

  test("creating and removing names updates the parent's mtime, ctime and size", async () => {
    const { fs } = memfs();
    const root = attr(fs, ROOT);
    let [s, ns] = stamp(root, "mtime");
    await Bun.sleep(2);
    const f = createFile(fs, ROOT, "f");
    expect(after(root, "mtime", s, ns)).toBe(true);
    expect(stamp(root, "ctime")).toEqual(stamp(root, "mtime"));
    // the new node takes the operation's (coarse) time; the parent, whose ctime must move
    // forward, may take a finer one (tmpfs's multigrain timestamps)
    expect(after(root, "mtime", ...stamp(f as Node, "ctime")) || sameStamp(root, f as Node)).toBe(true);
    expect(root.size).toBe(60);
    [s, ns] = stamp(root, "mtime");
    const [fs0, fns0] = stamp(f as Node, "ctime");
    await Bun.sleep(2);
    fs.unlink(req, ROOT, "f");
    expect(after(root, "mtime", s, ns)).toBe(true);
    expect(root.size).toBe(40);
    expect(after(f as Node, "ctime", fs0, fns0)).toBe(true); // the removed node's ctime moves too
  });

  test("unlink and rmdir errors", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    createFile(fs, d.ino, "f");
    expect(errnoOf(() => fs.rmdir(req, ROOT, "d"))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(() => fs.unlink(req, ROOT, "d"))).toBe(Errno.EISDIR);
    expect(errnoOf(() => fs.rmdir(req, d.ino, "f"))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.unlink(req, ROOT, "missing"))).toBe(Errno.ENOENT);
    expect(errnoOf(() => fs.rmdir(req, ROOT, "missing"))).toBe(Errno.ENOENT);
    fs.unlink(req, d.ino, "f");
    fs.rmdir(req, ROOT, "d");
    expect(attr(fs, ROOT).nlink).toBe(2);
    // A removed directory accepts no new entries.
    expect(errnoOf(() => createFile(fs, d.ino, "g"))).toBe(Errno.ENOENT);
  });
});

describe("link counts", () => {
  test("files: link and unlink", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", "data");
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    expect(fs.link(req, f.ino, d.ino, "g")).toBe(f);
    expect(attr(fs, f.ino).nlink).toBe(2);
    expect(fs.lookup(req, d.ino, "g")).toBe(f);
    expect(errnoOf(() => fs.link(req, f.ino, d.ino, "g"))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.link(req, d.ino, ROOT, "dirlink"))).toBe(Errno.EPERM);
    fs.unlink(req, ROOT, "f");
    expect(attr(fs, f.ino).nlink).toBe(1);
    expect(text(fs, f.ino)).toBe("data");
    fs.unlink(req, d.ino, "g");
    expect(attr(fs, f.ino).nlink).toBe(0);
    expect(errnoOf(() => fs.link(req, f.ino, ROOT, "again"))).toBe(Errno.ENOENT);
  });

  test("directories: 2 + subdirectories", () => {
    const { fs } = memfs();
    const a = fs.mkdir(req, ROOT, "a", 0o755, 0) as Entry;
    expect(attr(fs, ROOT).nlink).toBe(3);
    expect(attr(fs, a.ino).nlink).toBe(2);
    fs.mkdir(req, a.ino, "b", 0o755, 0);
    fs.mkdir(req, a.ino, "c", 0o755, 0);
    createFile(fs, a.ino, "file");
    expect(attr(fs, a.ino).nlink).toBe(4);
    fs.rename(req, a.ino, "b", ROOT, "b", 0);
    expect(attr(fs, a.ino).nlink).toBe(3);
    expect(attr(fs, ROOT).nlink).toBe(4);
    fs.rmdir(req, a.ino, "c");
    expect(attr(fs, a.ino).nlink).toBe(2);
  });
});

describe("rename", () => {
  function tree() {
    const m = memfs();
    const { fs } = m;
    const d1 = fs.mkdir(req, ROOT, "d1", 0o755, 0) as Entry;
    const sub = fs.mkdir(req, d1.ino, "sub", 0o755, 0) as Entry;
    const d2 = fs.mkdir(req, ROOT, "d2", 0o755, 0) as Entry;
    const d3 = fs.mkdir(req, ROOT, "d3", 0o755, 0) as Entry;
    createFile(fs, d3.ino, "x");
    const f1 = createFile(fs, ROOT, "f1", "one");
    const f2 = createFile(fs, ROOT, "f2", "two");
    return { ...m, d1, sub, d2, d3, f1, f2 };
  }

  test("plain rename moves the name and stamps times", async () => {
    const { fs, f1, d2 } = tree();
    const n = attr(fs, f1.ino);
    const [s, ns] = stamp(n, "ctime");
    await Bun.sleep(2);
    fs.rename(req, ROOT, "f1", d2.ino, "moved", 0);
    expect(fs.lookup(req, d2.ino, "moved")).toBe(n);
    expect(errnoOf(() => fs.lookup(req, ROOT, "f1"))).toBe(Errno.ENOENT);
    expect(after(n, "ctime", s, ns)).toBe(true);
    expect(stamp(attr(fs, d2.ino), "mtime")).toEqual(stamp(n, "ctime"));
    expect(stamp(attr(fs, ROOT), "mtime")).toEqual(stamp(n, "ctime"));
    expect(attr(fs, d2.ino).size).toBe(60);
  });

  test("replacing a file drops the old one", () => {
    const { fs, state, f1, f2 } = tree();
    fs.rename(req, ROOT, "f1", ROOT, "f2", 0);
    expect(fs.lookup(req, ROOT, "f2")).toBe(f1);
    expect(attr(fs, f2.ino).nlink).toBe(0);
    fs.forget(f2.ino, 2); // create + the lookup inside createFile's reply
    expect(state.nodes.has(f2.ino)).toBe(false);
  });

  test("directory over an empty directory is allowed", () => {
    const { fs, d2, d1, sub } = tree();
    fs.rename(req, ROOT, "d2", d1.ino, "sub", 0);
    expect(fs.lookup(req, d1.ino, "sub")).toBe(d2);
    expect(attr(fs, sub.ino).nlink).toBe(0);
    expect(attr(fs, d1.ino).nlink).toBe(3);
    expect(attr(fs, ROOT).nlink).toBe(2 + 3 - 1);
    const l = new Listing(4096);
    fs.readdir(req, d2.ino, 0, 0, l);
    expect(l.entries.find((e) => e.name === "..")!.ino).toBe(d1.ino);
  });

  test("errnos", () => {
    const { fs, d1, d3, f1, f2, sub } = tree();
    expect(errnoOf(() => fs.rename(req, ROOT, "d1", ROOT, "d3", 0))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(() => fs.rename(req, ROOT, "f1", ROOT, "d3", 0))).toBe(Errno.EISDIR);
    expect(errnoOf(() => fs.rename(req, ROOT, "d3", ROOT, "f1", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.rename(req, ROOT, "d1", sub.ino, "z", 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => fs.rename(req, ROOT, "d1", d1.ino, "z", 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => fs.rename(req, d1.ino, "sub", ROOT, "d1", 0))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(() => fs.rename(req, ROOT, "nope", ROOT, "x", 0))).toBe(Errno.ENOENT);
    expect(errnoOf(() => fs.rename(req, f1.ino, "x", ROOT, "y", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => fs.rename(req, ROOT, "f1", ROOT, "f2", RENAME_NOREPLACE))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.rename(req, ROOT, "f1", ROOT, "nope", RENAME_EXCHANGE))).toBe(Errno.ENOENT);
    expect(errnoOf(() => fs.rename(req, ROOT, "f1", ROOT, "f2", RENAME_EXCHANGE | RENAME_NOREPLACE))).toBe(Errno.EINVAL);
    expect(errnoOf(() => fs.rename(req, ROOT, "f1", ROOT, "x".repeat(256), 0))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(() => fs.rename(req, ROOT, "d1", sub.ino, "y", RENAME_EXCHANGE))).toBe(Errno.ENOENT);
    expect(errnoOf(() => fs.rename(req, ROOT, "d1", d1.ino, "sub", RENAME_EXCHANGE))).toBe(Errno.EINVAL);
    // Nothing changed.
    expect(text(fs, f1.ino)).toBe("one");
    expect(fs.lookup(req, ROOT, "f2")).toBe(f2);
    expect(fs.lookup(req, ROOT, "d3")).toBe(d3);
  });

  test("same node (a name onto itself, or another hard link) is a no-op", () => {
    const { fs, f1 } = tree();
    fs.rename(req, ROOT, "f1", ROOT, "f1", 0);
    fs.link(req, f1.ino, ROOT, "f1b");
    fs.rename(req, ROOT, "f1", ROOT, "f1b", 0);
    expect(fs.lookup(req, ROOT, "f1")).toBe(f1);
    expect(fs.lookup(req, ROOT, "f1b")).toBe(f1);
    expect(attr(fs, f1.ino).nlink).toBe(2);
  });

  test("RENAME_NOREPLACE to a free name", () => {
    const { fs, f1 } = tree();
    fs.rename(req, ROOT, "f1", ROOT, "free", RENAME_NOREPLACE);
    expect(fs.lookup(req, ROOT, "free")).toBe(f1);
  });

  test("RENAME_EXCHANGE swaps, also a file with a directory across parents", () => {
    const { fs, f1, f2, d1, d3 } = tree();
    fs.rename(req, ROOT, "f1", ROOT, "f2", RENAME_EXCHANGE);
    expect(fs.lookup(req, ROOT, "f1")).toBe(f2);
    expect(fs.lookup(req, ROOT, "f2")).toBe(f1);
    const x = fs.lookup(req, d3.ino, "x") as Entry;
    const rootLinks = attr(fs, ROOT).nlink;
    fs.rename(req, ROOT, "d1", d3.ino, "x", RENAME_EXCHANGE);
    expect(fs.lookup(req, ROOT, "d1")).toBe(x);
    expect(fs.lookup(req, d3.ino, "x")).toBe(d1);
    expect(attr(fs, ROOT).nlink).toBe(rootLinks - 1);
    expect(attr(fs, d3.ino).nlink).toBe(3);
    const l = new Listing(4096);
    fs.readdir(req, d1.ino, 0, 0, l);
    expect(l.entries[1]).toMatchObject({ name: "..", ino: d3.ino });
  });

  test("RENAME_WHITEOUT leaves a 0/0 character device", () => {
    const { fs, f1 } = tree();
    fs.rename(req, ROOT, "f1", ROOT, "g", RENAME_WHITEOUT);
    expect(fs.lookup(req, ROOT, "g")).toBe(f1);
    const w = fs.lookup(req, ROOT, "f1") as Entry;
    expect(w.mode).toBe(S_IFCHR);
    expect(w.rdev).toBe(0);
  });
});

describe("lookup counting and freeing", () => {
  test("unlink while open keeps the data until release, then frees it", () => {
    const { fs, state } = memfs();
    const r = fs.create(req, ROOT, "f", 0o644, O_CREAT | O_RDWR, 0) as { entry: Entry; fh: number };
    const ino = r.entry.ino;
    fs.write(req, ino, r.fh, 0, pattern(100_000), 0);
    fs.unlink(req, ROOT, "f");
    fs.forget(ino, 1);
    expect(state.nodes.has(ino)).toBe(true);
    expect(read(fs, ino, 0, 100_000)).toEqual(pattern(100_000));
    fs.write(req, ino, r.fh, 100_000, new Uint8Array([1]), 0);
    expect(attr(fs, ino).nlink).toBe(0);
    fs.release(req, ino, r.fh, 0);
    expect(state.nodes.has(ino)).toBe(false);
    expect(state.usedBytes).toBe(0);
  });

  test("forget frees unlinked nodes and their memory, only at zero", () => {
    const { fs, state } = memfs({ maxInodes: 100 });
    const ffree = (fs.statfs(req, ROOT) as { ffree: number }).ffree;
    const f = createFile(fs, ROOT, "f", pattern(300_000));
    fs.setxattr(req, f.ino, "user.a", new Uint8Array(2000), 0);
    fs.lookup(req, ROOT, "f"); // nlookup 2
    fs.unlink(req, ROOT, "f");
    fs.forget(f.ino, 1);
    expect(state.nodes.has(f.ino)).toBe(true);
    expect(state.usedBytes).toBeGreaterThan(0);
    fs.forget(f.ino, 1);
    expect(state.nodes.has(f.ino)).toBe(false);
    expect(state.usedBytes).toBe(0);
    expect((fs.statfs(req, ROOT) as { ffree: number }).ffree).toBe(ffree);
    expect(errnoOf(() => fs.getattr(req, f.ino, undefined))).toBe(Errno.ENOENT);
    fs.forget(f.ino, 1); // unknown ids are ignored
  });

  test("forget of a linked node keeps it; removed directories go when forgotten and closed", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f");
    fs.forget(f.ino, 1);
    expect(fs.lookup(req, ROOT, "f")).toBe(f);
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    fs.opendir(req, d.ino, 0);
    fs.rmdir(req, ROOT, "d");
    expect(attr(fs, d.ino).nlink).toBe(0);
    fs.forget(d.ino, 1);
    expect(state.nodes.has(d.ino)).toBe(true);
    const l = new Listing(4096);
    fs.readdir(req, d.ino, 0, 0, l);
    expect(l.entries).toEqual([]);
    fs.releasedir(req, d.ino, 0);
    expect(state.nodes.has(d.ino)).toBe(false);
    fs.forget(ROOT, 1);
    expect(state.nodes.has(ROOT)).toBe(true);
  });

  test("100k empty files stay lean", () => {
    const { fs, state } = memfs({ maxInodes: 200_000 });
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) fs.create(req, ROOT, `file-${i}`, 0o644, O_CREAT | O_WRONLY, 0);
    Bun.gc(true);
    const perFile = (process.memoryUsage().heapUsed - before) / 100_000;
    expect(state.nodes.size).toBe(100_001);
    expect(perFile).toBeLessThan(1024);
  });
});

describe("names are stored exactly", () => {
  test("any JS string (lone surrogates, NUL-free control characters, long) round-trips through create, readdir, lookup, rename, symlink and xattr names", () => {
    const { fs } = memfs();
    const names = ["a\ud800b", "\udfff", "\ud83d\ude00", "tab\there", "\u00e9t\u00e9", "x".repeat(85)];
    const inos = names.map((n) => createFile(fs, ROOT, n).ino);
    const l = new Listing(65536);
    fs.readdir(req, ROOT, 0, 0, l);
    expect(l.entries.slice(2).map((e) => e.name).reverse()).toEqual(names);
    names.forEach((n, i) => expect((fs.lookup(req, ROOT, n) as Entry).ino).toBe(inos[i]!));
    // names that differ only in one code unit are different names
    expect(errnoOf(() => fs.lookup(req, ROOT, "a\ud801b"))).toBe(Errno.ENOENT);
    fs.rename(req, ROOT, "a\ud800b", ROOT, "\udc00\ud800", 0);
    expect((fs.lookup(req, ROOT, "\udc00\ud800") as Entry).ino).toBe(inos[0]!);
    expect(errnoOf(() => fs.lookup(req, ROOT, "a\ud800b"))).toBe(Errno.ENOENT);
    const target = "../\ud800/\u00e9/" + "y".repeat(300);
    const sl = fs.symlink(req, ROOT, "s", target) as Entry;
    expect(fs.readlink(req, sl.ino)).toBe(target);
    fs.setxattr(req, inos[1]!, "user.\ud800", new Uint8Array([1, 2]), 0);
    expect(fs.listxattr(req, inos[1]!)).toEqual(["user.\ud800"]);
    expect([...(fs.getxattr(req, inos[1]!, "user.\ud800") as Uint8Array)]).toEqual([1, 2]);
  });
});

describe("readdir", () => {
  test("lists . and .. first, then the newest entry first (as tmpfs)", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    createFile(fs, d.ino, "b");
    fs.mkdir(req, d.ino, "a", 0o755, 0);
    fs.symlink(req, d.ino, "c", "b");
    const l = new Listing(4096);
    fs.readdir(req, d.ino, 0, 0, l);
    // Cookies b 3, a 4, c 5; each entry's offset is the next entry's cookie, the last's is above
    // every other (tmpfs's DIR_OFFSET_EOD).
    expect(l.entries.map((e) => [e.name, e.off])).toEqual([[".", 1], ["..", 5], ["c", 4], ["a", 3], ["b", 0x7fffffff]]);
    expect(l.entries[0]!.ino).toBe(d.ino);
    expect(l.entries[1]!.ino).toBe(ROOT);
    expect(l.entries[3]!.mode & S_IFMT).toBe(S_IFDIR);
    expect(l.entries[2]!.mode & S_IFMT).toBe(S_IFLNK);
    // Resume from any cookie: the entry with that cookie comes next.
    const m = new Listing(4096);
    fs.readdir(req, d.ino, 0, 4, m);
    expect(m.entries.map((e) => e.name)).toEqual(["a", "b"]);
    const last = new Listing(4096);
    fs.readdir(req, d.ino, 0, 3, last);
    expect(last.entries.map((e) => e.name)).toEqual(["b"]);
    // An offset that was never a cookie (above them all) lists everything, as tmpfs.
    for (const off of [6, 1000, 0x7ffffffe, 0x80000000]) {
      const all = new Listing(4096);
      fs.readdir(req, d.ino, 0, off, all);
      expect(all.entries.map((e) => e.name)).toEqual(["c", "a", "b"]);
    }
    const m2 = new Listing(4096);
    fs.readdir(req, d.ino, 0, 2, m2);
    expect(m2.entries.map((e) => e.name)).toEqual(["c", "a", "b"]);
    const end = new Listing(4096);
    fs.readdir(req, d.ino, 0, 0x7fffffff, end);
    expect(end.entries).toEqual([]);
    expect(errnoOf(() => fs.readdir(req, (fs.lookup(req, d.ino, "b") as Entry).ino, 0, 0, new Listing(100)))).toBe(Errno.ENOTDIR);
  });

  test("cookies stay valid while entries are created and removed between calls", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    const initial = Array.from({ length: 300 }, (_, i) => `f${i}`);
    for (const n of initial) createFile(fs, d.ino, n);
    const seen: string[] = [];
    const removedSeen = new Set<string>();
    const removedUnseen = new Set<string>();
    const added: string[] = [];
    let offset = 0;
    for (let round = 0; round < 1000; round++) {
      const l = new Listing(512); // about 16 entries per call
      fs.readdir(req, d.ino, 0, offset, l);
      if (l.entries.length === 0) break;
      for (const e of l.entries) seen.push(e.name);
      offset = l.entries[l.entries.length - 1]!.off;
      // Between calls: remove entries behind and ahead of the cursor, add a new one.
      const seenSet = new Set(seen);
      for (const victim of [`f${round}`, `f${299 - round}`]) {
        if (removedSeen.has(victim) || removedUnseen.has(victim)) continue;
        fs.unlink(req, d.ino, victim);
        (seenSet.has(victim) ? removedSeen : removedUnseen).add(victim);
      }
      if (round < 30) {
        createFile(fs, d.ino, `new${round}`);
        added.push(`new${round}`);
      }
    }
    const set = new Set(seen);
    expect(set.size).toBe(seen.length); // nothing listed twice
    expect(seen.slice(0, 2)).toEqual([".", ".."]);
    expect(removedUnseen.size).toBeGreaterThan(5);
    for (const n of removedUnseen) expect(set.has(n)).toBe(false); // removed before reached: not listed
    for (const n of initial) if (!removedUnseen.has(n)) expect(set.has(n)).toBe(true);
    for (const n of added) expect(set.has(n)).toBe(false); // newer than the cursor: not listed
    expect(seen.length).toBe(2 + 300 - removedUnseen.size);
  });

  test("tombstones are compacted and cookies still resume", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    for (let i = 0; i < 1000; i++) createFile(fs, d.ino, `f${i}`);
    for (let i = 0; i < 990; i++) fs.unlink(req, d.ino, `f${i}`);
    const l = new Listing(4096);
    fs.readdir(req, d.ino, 0, 3 + 994, l); // f994's cookie: f994 is next
    expect(l.entries.map((e) => e.name)).toEqual(["f994", "f993", "f992", "f991", "f990"]);
    expect(listAll(fs, d.ino, 100).length).toBe(12);
  });

  test("renamed, exchanged, linked and whiteout names list as new, as in tmpfs", () => {
    const { fs } = memfs();
    for (const n of ["a", "b", "c", "d", "e"]) createFile(fs, ROOT, n);
    expect(listAll(fs, ROOT)).toEqual([".", "..", "e", "d", "c", "b", "a"]);
    fs.rename(req, ROOT, "c", ROOT, "a", 0);
    expect(listAll(fs, ROOT)).toEqual([".", "..", "a", "e", "d", "b"]);
    fs.rename(req, ROOT, "b", ROOT, "z", 0);
    expect(listAll(fs, ROOT)).toEqual([".", "..", "z", "a", "e", "d"]);
    fs.rename(req, ROOT, "d", ROOT, "e", RENAME_EXCHANGE);
    expect(listAll(fs, ROOT)).toEqual([".", "..", "e", "d", "z", "a"]);
    fs.link(req, (fs.lookup(req, ROOT, "a") as Entry).ino, ROOT, "a2");
    fs.rename(req, ROOT, "z", ROOT, "y", RENAME_WHITEOUT);
    expect(listAll(fs, ROOT)).toEqual([".", "..", "y", "z", "a2", "e", "d", "a"]);
  });

  test("readdirplus counts a lookup for each accepted entry except . and ..", () => {
    const { fs } = memfs();
    const d = fs.mkdir(req, ROOT, "d", 0o755, 0) as Entry;
    const files = Array.from({ length: 20 }, (_, i) => createFile(fs, d.ino, `file-${i}`) as Node);
    const dir = attr(fs, d.ino);
    const before = files.map((f) => f.nlookup);
    const dirLookups = dir.nlookup;
    const rootLookups = attr(fs, ROOT).nlookup;
    let offset = 0;
    const names: string[] = [];
    for (;;) {
      const l = new ListingPlus(600); // a few entries per call: some `add`s are refused
      fs.readdirplus(req, d.ino, 0, offset, l);
      if (l.entries.length === 0) break;
      for (const e of l.entries) {
        names.push(e.name);
        expect(e.entry).not.toBeNull();
      }
      offset = l.entries[l.entries.length - 1]!.off;
    }
    expect(names.length).toBe(22);
    files.forEach((f, i) => expect(f.nlookup).toBe(before[i]! + 1));
    expect(dir.nlookup).toBe(dirLookups);
    expect(attr(fs, ROOT).nlookup).toBe(rootLookups);
  });
});

describe("setattr", () => {
  test("chmod, chown, utimens and ctime", async () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    const n = attr(fs, f.ino);
    let [s, ns] = stamp(n, "ctime");
    await Bun.sleep(2);
    fs.setattr(req, f.ino, { mode: 0o4755 });
    expect(n.mode).toBe(S_IFREG | 0o4755);
    expect(after(n, "ctime", s, ns)).toBe(true);
    // the kernel (HANDLE_KILLPRIV_V2) asks a chown of a non-directory to kill privileges
    fs.setattr(req, f.ino, { uid: 5, gid: 6, killSuidgid: true });
    expect([n.uid, n.gid]).toEqual([5, 6]);
    expect(n.mode).toBe(S_IFREG | 0o755); // chown clears set-user-ID
    fs.setattr(req, f.ino, { mode: 0o2745 });
    fs.setattr(req, f.ino, { gid: 7, killSuidgid: true });
    expect(n.mode).toBe(S_IFREG | 0o2745); // not group-executable, root: set-group-ID stays
    fs.setattr(req, f.ino, { mode: 0o6755 });
    fs.setattr(req, f.ino, { killSuidgid: true });
    expect(n.mode).toBe(S_IFREG | 0o755);
    const d = fs.mkdir(req, ROOT, "d", 0o2755, 0) as Entry;
    fs.setattr(req, d.ino, { uid: 3, killSuidgid: true });
    expect(attr(fs, d.ino).mode).toBe(S_IFDIR | 0o2755); // directories keep it

    fs.setattr(req, f.ino, { atime: { sec: 1, nsec: 2 }, mtime: { sec: 3, nsec: 4 } });
    expect([n.atimeSec, n.atimeNsec, n.mtimeSec, n.mtimeNsec]).toEqual([1, 2, 3, 4]);
    [s, ns] = stamp(n, "ctime");
    await Bun.sleep(2);
    fs.setattr(req, f.ino, { atime: "now", mtime: "now" });
    expect(after(n, "mtime", s, ns)).toBe(true);
    expect(stamp(n, "atime")).toEqual(stamp(n, "mtime"));
    expect(stamp(n, "ctime")).toEqual(stamp(n, "mtime"));
    fs.setattr(req, f.ino, { ctime: { sec: 9, nsec: 9 } });
    expect(stamp(n, "ctime")).toEqual([9, 9]);
    // An empty request is what chown(f, -1, -1) sends: tmpfs stamps ctime for it.
    fs.setattr(req, f.ino, {});
    expect(after(n, "ctime", 9, 9)).toBe(true);
  });

  test("truncate stamps mtime, except to the same size of a file without data (as tmpfs); ftruncate always does", async () => {
    const { fs } = memfs();
    const e = createFile(fs, ROOT, "e");
    const en = attr(fs, e.ino);
    let [s, ns] = stamp(en, "mtime");
    await Bun.sleep(2);
    fs.setattr(req, e.ino, { size: 0 });
    expect(stamp(en, "mtime")).toEqual([s, ns]);
    expect(stamp(en, "ctime")).toEqual([s, ns]);
    const f = createFile(fs, ROOT, "f", "abc");
    const n = attr(fs, f.ino);
    [s, ns] = stamp(n, "mtime");
    fs.setattr(req, f.ino, { size: 3 }); // holds a page: shmem_truncate_range stamps it
    expect(after(n, "mtime", s, ns)).toBe(true);
    [s, ns] = stamp(n, "mtime");
    fs.setattr(req, f.ino, { size: 10 });
    expect(after(n, "mtime", s, ns)).toBe(true);
    // ftruncate (the kernel sends FATTR_FH and leaves the times to the filesystem): tmpfs stamps
    // mtime and ctime even for the same size
    [s, ns] = stamp(n, "mtime");
    fs.setattr(req, f.ino, { size: 10, fh: 0 });
    expect(after(n, "mtime", s, ns)).toBe(true);
    expect(stamp(n, "ctime")).toEqual(stamp(n, "mtime"));
    expect(errnoOf(() => fs.setattr(req, ROOT, { size: 0 }))).toBe(Errno.EISDIR);
    const l = fs.symlink(req, ROOT, "l", "f") as Entry;
    expect(errnoOf(() => fs.setattr(req, l.ino, { size: 0 }))).toBe(Errno.EINVAL);
  });
});

describe("O_NOATIME", () => {
  test("reads through an open or a create with O_NOATIME leave atime alone", () => {
    const { fs } = memfs();
    const O_NOATIME = 0o1000000;
    const c = fs.create(req, ROOT, "f", S_IFREG | 0o644, O_CREAT | O_RDWR | O_NOATIME, 0) as { entry: Entry; fh?: number };
    fs.write(req, c.entry.ino, c.fh ?? 0, 0, new Uint8Array([1, 2, 3]), 0);
    const n = attr(fs, c.entry.ino);
    fs.setattr(req, n.ino, { atime: { sec: 1000, nsec: 0 } }); // a day old: relatime would update
    fs.read(req, n.ino, c.fh ?? 0, 0, 3, new Uint8Array(3));
    expect(stamp(n, "atime")).toEqual([1000, 0]);
    const o = fs.open(req, n.ino, O_RDONLY | O_NOATIME) as { fh?: number } | undefined;
    fs.read(req, n.ino, o?.fh ?? 0, 0, 3, new Uint8Array(3));
    expect(stamp(n, "atime")).toEqual([1000, 0]);
    fs.read(req, n.ino, 0, 0, 3, new Uint8Array(3)); // an ordinary handle
    expect(n.atimeSec).toBeGreaterThan(1000);
  });
});

describe("xattrs", () => {
  const v = (s: string) => new TextEncoder().encode(s);

  test("set, get, list, remove with CREATE/REPLACE", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    fs.setxattr(req, f.ino, "user.b", v("1"), 0);
    fs.setxattr(req, f.ino, "user.a", v("22"), XATTR_CREATE);
    fs.setxattr(req, f.ino, "trusted.t", v(""), 0);
    fs.setxattr(req, f.ino, "security.s", v("s"), 0);
    expect(new TextDecoder().decode(fs.getxattr(req, f.ino, "user.a") as Uint8Array)).toBe("22");
    expect((fs.getxattr(req, f.ino, "trusted.t") as Uint8Array).length).toBe(0);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user.a", v("x"), XATTR_CREATE))).toBe(Errno.EEXIST);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user.zz", v("x"), XATTR_REPLACE))).toBe(Errno.ENODATA);
    fs.setxattr(req, f.ino, "user.a", v("333"), XATTR_REPLACE);
    expect((fs.getxattr(req, f.ino, "user.a") as Uint8Array).length).toBe(3);
    // tmpfs order; trusted.* only for root.
    expect(fs.listxattr(req, f.ino)).toEqual(["user.b", "user.a", "trusted.t", "security.s"]);
    expect(fs.listxattr(request(1000, 1000), f.ino)).toEqual(["user.b", "user.a", "security.s"]);
    fs.removexattr(req, f.ino, "user.a");
    expect(errnoOf(() => fs.getxattr(req, f.ino, "user.a"))).toBe(Errno.ENODATA);
    expect(errnoOf(() => fs.removexattr(req, f.ino, "user.a"))).toBe(Errno.ENODATA);
  });

  test("value is copied", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    const buf = v("abc");
    fs.setxattr(req, f.ino, "user.x", buf, 0);
    buf[0] = 0;
    expect(new TextDecoder().decode(fs.getxattr(req, f.ino, "user.x") as Uint8Array)).toBe("abc");
  });

  test("errnos", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    const l = fs.symlink(req, ROOT, "l", "f") as Entry;
    const p = fs.mknod(req, ROOT, "p", S_IFIFO | 0o644, 0, 0) as Entry;
    expect(errnoOf(() => fs.getxattr(req, f.ino, "user.missing"))).toBe(Errno.ENODATA);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user.big", new Uint8Array(65537), 0))).toBe(Errno.E2BIG);
    fs.setxattr(req, f.ino, "user.max", new Uint8Array(65536), 0);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "other.x", v("1"), 0))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.getxattr(req, f.ino, "system.x"))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.removexattr(req, f.ino, "foo"))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user.", v("1"), 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user." + "n".repeat(251), v("1"), 0))).toBe(Errno.ERANGE);
    expect(errnoOf(() => fs.setxattr(req, f.ino, "user.x", v("1"), 4))).toBe(Errno.EINVAL);
    // user.* only on regular files and directories; other namespaces anywhere.
    expect(errnoOf(() => fs.setxattr(req, l.ino, "user.x", v("1"), 0))).toBe(Errno.EPERM);
    expect(errnoOf(() => fs.setxattr(req, p.ino, "user.x", v("1"), 0))).toBe(Errno.EPERM);
    expect(errnoOf(() => fs.getxattr(req, l.ino, "user.x"))).toBe(Errno.ENODATA);
    fs.setxattr(req, l.ino, "trusted.x", v("1"), 0);
    fs.setxattr(req, ROOT, "user.dir", v("1"), 0);
  });
});

describe("access", () => {
  test("checks mode bits for owner, group and others; root needs an x bit to execute", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", undefined, 0o640);
    fs.setattr(req, f.ino, { uid: 1000, gid: 100 });
    const owner = request(1000, 1000);
    const group = request(2000, 100);
    const other = request(3000, 3000);
    fs.access(owner, f.ino, R_OK | W_OK);
    expect(errnoOf(() => fs.access(owner, f.ino, X_OK))).toBe(Errno.EACCES);
    fs.access(group, f.ino, R_OK);
    expect(errnoOf(() => fs.access(group, f.ino, W_OK))).toBe(Errno.EACCES);
    expect(errnoOf(() => fs.access(other, f.ino, R_OK))).toBe(Errno.EACCES);
    fs.access(other, f.ino, 0);
    fs.access(req, f.ino, R_OK | W_OK);
    expect(errnoOf(() => fs.access(req, f.ino, X_OK))).toBe(Errno.EACCES);
    fs.access(req, ROOT, X_OK);
  });
});

describe("fallocate", () => {
  test("mode 0 allocates and extends; KEEP_SIZE allocates only", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f");
    fs.fallocate(req, f.ino, 0, 0, 100_000, 0);
    expect(attr(fs, f.ino).size).toBe(100_000);
    expect(state.usedBytes).toBe(65_536 + 36_864);
    expect(read(fs, f.ino, 0, 100_000).every((b) => b === 0)).toBe(true);
    fs.fallocate(req, f.ino, 0, 0, 200_000, FALLOC_FL_KEEP_SIZE);
    expect(attr(fs, f.ino).size).toBe(100_000);
    expect(attr(fs, f.ino).blocks * 512).toBe(3 * 65_536 + 4096);
    // Space past EOF reads as zeros once the file grows over it.
    fs.setattr(req, f.ino, { size: 200_000 });
    expect(read(fs, f.ino, 100_000, 100_000).every((b) => b === 0)).toBe(true);
  });

  test("PUNCH_HOLE|KEEP_SIZE zeroes the range and frees covered chunks", () => {
    const { fs, state } = memfs();
    const data = pattern(300_000);
    const f = createFile(fs, ROOT, "f", data);
    const used = state.usedBytes;
    fs.fallocate(req, f.ino, 0, 100, 200_000, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(attr(fs, f.ino).size).toBe(300_000);
    // Chunks 1 and 2 were wholly inside (freed), chunk 0 lost its tail past the first page.
    expect(state.usedBytes).toBe(used - 2 * 65_536 - 15 * 4096);
    const got = read(fs, f.ino, 0, 300_000);
    expect(got.subarray(0, 100)).toEqual(data.subarray(0, 100));
    expect(got.subarray(100, 200_100).every((b) => b === 0)).toBe(true);
    expect(got.subarray(200_100)).toEqual(data.subarray(200_100));
    // Punching the tail of the last chunk trims it to whole pages.
    fs.fallocate(req, f.ino, 0, 270_000, 100_000, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(read(fs, f.ino, 269_999, 2)).toEqual(new Uint8Array([data[269_999]!, 0]));
    expect(attr(fs, f.ino).blocks * 512).toBe(state.usedBytes);
  });

  test("unsupported modes and bad ranges", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f", "abc");
    expect(errnoOf(() => fs.fallocate(req, f.ino, 0, 0, 10, FALLOC_FL_PUNCH_HOLE))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.fallocate(req, f.ino, 0, 0, 10, FALLOC_FL_ZERO_RANGE))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.fallocate(req, f.ino, 0, 0, 10, 0x08))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => fs.fallocate(req, f.ino, 0, 0, 0, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => fs.fallocate(req, ROOT, 0, 0, 10, 0))).toBe(Errno.EISDIR);
    expect(text(fs, f.ino)).toBe("abc");
  });
});

describe("lseek", () => {
  test("SEEK_DATA and SEEK_HOLE follow allocated chunks; ENXIO at or past EOF", () => {
    const { fs } = memfs();
    const f = createFile(fs, ROOT, "f");
    fs.write(req, f.ino, 0, 0, new Uint8Array(5000), 0); // chunk 0: 2 pages
    fs.write(req, f.ino, 0, 3 * 65_536, new Uint8Array(65_536 + 10), 0); // chunks 3 and 4
    fs.setattr(req, f.ino, { size: 10 * 65_536 });
    expect(fs.lseek(req, f.ino, 0, 0, SEEK_DATA)).toBe(0);
    expect(fs.lseek(req, f.ino, 0, 100, SEEK_DATA)).toBe(100);
    expect(fs.lseek(req, f.ino, 0, 0, SEEK_HOLE)).toBe(8192);
    expect(fs.lseek(req, f.ino, 0, 8192, SEEK_DATA)).toBe(3 * 65_536);
    expect(fs.lseek(req, f.ino, 0, 3 * 65_536, SEEK_HOLE)).toBe(4 * 65_536 + 4096);
    expect(errnoOf(() => fs.lseek(req, f.ino, 0, 4 * 65_536 + 4096, SEEK_DATA))).toBe(Errno.ENXIO);
    expect(fs.lseek(req, f.ino, 0, 9 * 65_536, SEEK_HOLE)).toBe(9 * 65_536);
    expect(errnoOf(() => fs.lseek(req, f.ino, 0, 10 * 65_536, SEEK_HOLE))).toBe(Errno.ENXIO);
    expect(errnoOf(() => fs.lseek(req, f.ino, 0, 10 * 65_536, SEEK_DATA))).toBe(Errno.ENXIO);
    // A fully written file: the only hole is the one at EOF.
    const g = createFile(fs, ROOT, "g", pattern(200_000));
    expect(fs.lseek(req, g.ino, 0, 5, SEEK_HOLE)).toBe(200_000);
    const e = createFile(fs, ROOT, "empty");
    expect(errnoOf(() => fs.lseek(req, e.ino, 0, 0, SEEK_DATA))).toBe(Errno.ENXIO);
  });
});

describe("plugin", () => {
  /** `ctx.shared` regions per mount (one `kept` map plays one mount). */
  const regionsOf = new WeakMap<Map<string, unknown>, Map<string, SharedArrayBuffer>>();
  /** A PluginContext as the host gives it; `kept` plays the host's store across generations. */
  function context(options: Record<string, string>, kept: Map<string, unknown>, generation: number): PluginContext<MemfsOptions> {
    let shared = regionsOf.get(kept);
    if (shared === undefined) regionsOf.set(kept, (shared = new Map()));
    const regions = shared;
    return {
      options,
      mountpoint: "/m",
      generation,
      log() {},
      isOpen: () => false,
      keep<T>(key: string, init: () => T): T {
        if (!kept.has(key)) kept.set(key, init());
        return kept.get(key) as T;
      },
      notify: {} as PluginContext["notify"],
      io: {} as PluginContext["io"],
      shared: (key, n, max) => sharedRegion(regions, key, n, max, true),
      reactor: { index: 0, count: 0, primary: true },
      atime: "relatime",
      nodiratime: false,
      passthrough: () => false,
      onDestroy() {},
    };
  }

  test("setup builds a filesystem from options", async () => {
    const fs = (await plugin.setup(context({ size: "1M", inodes: "10", mode: "1777" }, new Map(), 1))) as Fs;
    expect(fs.statfs(req, ROOT)).toMatchObject({ blocks: 256, files: 10 });
    expect(attr(fs, ROOT).mode).toBe(S_IFDIR | 0o1777);
    expect(attr(fs, ROOT).uid).toBe(process.getuid!());
    expect(plugin.name).toBe("memfs");
  });

  test("a new generation serves the tree kept by the previous one", async () => {
    const kept = new Map<string, unknown>();
    const gen1 = (await plugin.setup(context({}, kept, 1))) as Fs;
    const f = createFile(gen1, ROOT, "f", "kept");
    // the tree lives in the ctx.shared regions: a new generation (new objects) serves the same nodes
    const gen2 = (await plugin.setup(context({ inodes: "5" }, kept, 2))) as Fs;
    expect({ ...attrsOf(gen2.lookup(req, ROOT, "f") as Node) }).toEqual({ ...attrsOf(f) });
    expect(text(gen2, f.ino)).toBe("kept");
    expect(createFile(gen2, ROOT, "g").ino).toBeGreaterThan(f.ino);
    expect(gen2.statfs(req, ROOT)).toEqual(gen1.statfs(req, ROOT)); // the first run's limits, not these options
    // A region laid out by other code is refused with a clear error.
    new Int32Array(regionsOf.get(kept)!.get("memfs.meta")!)[2] = 99;
    expect(() => plugin.setup(context({}, kept, 3))).toThrow(/incompatible/);
  });

  test("option parsing", () => {
    expect(parseSize("512M")).toBe(512 * MiB);
    expect(parseSize("2g")).toBe(2 * GiB);
    expect(parseSize("1.5k")).toBe(4096);
    expect(parseSize("64KiB")).toBe(64 * KiB);
    expect(parseSize("50%", 8 * GiB)).toBe(4 * GiB);
    expect(parseSize(undefined, 8 * GiB)).toBe(4 * GiB);
    expect(parseSize("0")).toBe(Infinity);
    expect(() => parseSize("lots")).toThrow(/--size/);
    expect(parseInodes("10k")).toBe(10_240);
    expect(parseInodes(undefined, 8 * GiB)).toBe(8 * GiB / 4096 / 2);
    expect(parseInodes("0")).toBe(Infinity);
    expect(() => parseInodes("-1")).toThrow(/--inodes/);
    expect(parseMode("1777")).toBe(0o1777);
    expect(() => parseMode("999")).toThrow(/--mode/);
  });

  test("two instances on one mount's regions: an O_TMPFILE file made through one is linked through the other, unless O_EXCL", async () => {
    const kept = new Map<string, unknown>();
    const a = (await plugin.setup(context({}, kept, 1))) as Fs;
    const b = (await plugin.setup(context({}, kept, 2))) as Fs;
    const t = a.tmpfile(req, ROOT, 0o644, O_RDWR, 0) as { entry: Entry };
    const ino = t.entry.ino;
    expect(t.entry.nlink).toBe(0);
    a.write(req, ino, 0, 0, new TextEncoder().encode("unnamed"), 0);
    a.release(req, ino, 0, O_RDWR);
    // the LINK comes to the other instance: it must see that this node may get a first name
    const named = b.link(req, ino, ROOT, "named") as Entry;
    expect(named.ino).toBe(ino);
    expect(named.nlink).toBe(1);
    expect(text(a, (a.lookup(req, ROOT, "named") as Entry).ino)).toBe("unnamed");
    // only once: unlinked again it stays unlinked
    b.unlink(req, ROOT, "named");
    expect(errnoOf(() => a.link(req, ino, ROOT, "again"))).toBe(Errno.ENOENT);
    a.forget(ino, 2);
    // O_EXCL: never linkable, from any instance; freed when closed and forgotten
    const x = a.tmpfile(req, ROOT, 0o600, O_RDWR | O_EXCL, 0) as { entry: Entry };
    const xino = x.entry.ino;
    expect(errnoOf(() => b.link(req, xino, ROOT, "x"))).toBe(Errno.ENOENT);
    const before = (b.statfs(req, ROOT) as { ffree: number }).ffree;
    b.release(req, xino, 0, O_RDWR);
    b.forget(xino, 1);
    expect((a.statfs(req, ROOT) as { ffree: number }).ffree).toBe(before + 1);
    // a never-linked tmpfile freed through the other instance leaves nothing linkable behind: a
    // file unlinked while open (in whichever slot it lands) cannot be linked back
    const y = a.tmpfile(req, ROOT, 0o600, O_RDWR, 0) as { entry: Entry };
    b.release(req, y.entry.ino, 0, O_RDWR);
    b.forget(y.entry.ino, 1);
    const g = createFile(b, ROOT, "g");
    const gino = g.ino;
    a.open(req, gino, O_RDWR);
    a.unlink(req, ROOT, "g");
    expect(errnoOf(() => b.link(req, gino, ROOT, "g2"))).toBe(Errno.ENOENT);
  });

  test("ops can be rebuilt around an existing state (hot reload)", () => {
    const { fs, state } = memfs();
    const f = createFile(fs, ROOT, "f", "kept");
    const fs2 = createOps(state as MemfsState) as Fs;
    expect(fs2.lookup(req, ROOT, "f")).toBe(f);
    expect(text(fs2, f.ino)).toBe("kept");
    const g = createFile(fs2, ROOT, "g");
    expect(g.ino).toBeGreaterThan(f.ino);
  });
});
