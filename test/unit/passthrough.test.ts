/**
 * passthrough without a mount: the `furing/sys` wrappers against real files, and the plugin's ops
 * called directly (a fake request, a fake `io` on node:fs positional reads and writes).
 */
import { describe, test, expect, beforeAll, afterAll } from "bun:test";
import {
  mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, symlinkSync, statSync, lstatSync, statfsSync,
  readSync, writeSync, fsyncSync, fdatasyncSync, readdirSync, renameSync, unlinkSync, existsSync, chmodSync, linkSync, readlinkSync, openSync, closeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sys from "furing/sys";
import { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, type FileIO, type PluginContext, type Request, type DirList, type DirListPlus, type Entry } from "furing";
import plugin, { type PassthroughFs, type PassthroughOptions } from "../../plugins/passthrough/index.ts";
import { copyFileRangeFully } from "../../plugins/passthrough/ops.ts";
import { sharedRegion } from "../../runtime/host/host.ts";
/** `ctx.shared` regions per mount (one `kept` map plays one mount). */
const regionsOf = new WeakMap<Map<string, unknown>, Map<string, SharedArrayBuffer>>();
import { needsRoot } from "../helpers/skip.ts";
import { waitFor } from "../helpers/mount.ts";

const root = process.getuid?.() === 0;
let tmp = "";
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "furing-unit-pt-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let seq = 0;
function dir(tag: string): string {
  const d = join(tmp, `${tag}-${seq++}`);
  mkdirSync(d);
  return d;
}

/** Expect `fn` to throw an error carrying errno `code`. */
function throwsErrno(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeDefined();
  expect((err as { code?: string }).code).toBe(code);
}

/** Expect the op `fn` calls to fail with errno `code`, whether it throws or returns a rejected promise. */
async function rejectsErrno(fn: () => unknown, code: string): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeDefined();
  expect((err as { code?: string }).code).toBe(code);
}

function openDir(path: string): number {
  return sys.openat(sys.AT_FDCWD, path, sys.O_PATH | sys.O_DIRECTORY | sys.O_CLOEXEC);
}

// ---------------------------------------------------------------------------------------------
describe("furing/sys", () => {
  test("fstatat decodes struct stat like node:fs (file, directory, symlink)", () => {
    const d = dir("stat");
    writeFileSync(join(d, "f"), "x".repeat(5000));
    symlinkSync("f", join(d, "l"));
    mkdirSync(join(d, "sub"));
    const dfd = openDir(d);
    try {
      for (const [name, follow] of [["f", false], ["l", false], ["l", true], ["sub", false]] as const) {
        const s = sys.fstatat(dfd, name, follow ? 0 : sys.AT_SYMLINK_NOFOLLOW);
        const n = follow ? statSync(join(d, name), { bigint: true }) : lstatSync(join(d, name), { bigint: true });
        expect(BigInt(s.dev)).toBe(n.dev);
        expect(BigInt(s.ino)).toBe(n.ino);
        expect(BigInt(s.nlink)).toBe(n.nlink);
        expect(BigInt(s.mode)).toBe(n.mode);
        expect(BigInt(s.uid)).toBe(n.uid);
        expect(BigInt(s.gid)).toBe(n.gid);
        expect(BigInt(s.rdev)).toBe(n.rdev);
        expect(BigInt(s.size)).toBe(n.size);
        expect(BigInt(s.blksize)).toBe(n.blksize);
        expect(BigInt(s.blocks)).toBe(n.blocks);
        expect(BigInt(s.atimeSec) * 1_000_000_000n + BigInt(s.atimeNsec)).toBe(n.atimeNs);
        expect(BigInt(s.mtimeSec) * 1_000_000_000n + BigInt(s.mtimeNsec)).toBe(n.mtimeNs);
        expect(BigInt(s.ctimeSec) * 1_000_000_000n + BigInt(s.ctimeNsec)).toBe(n.ctimeNs);
      }
      // fstat of an O_PATH descriptor of the symlink itself, and reuse of an `into` object
      const lfd = sys.openat(dfd, "l", sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
      const into = sys.newStat();
      expect(sys.fstat(lfd, into)).toBe(into);
      expect(into.mode & S_IFMT).toBe(S_IFLNK);
      expect(into.size).toBe(1);
      expect(sys.fstatat(lfd, "", sys.AT_EMPTY_PATH).ino).toBe(into.ino);
      sys.close(lfd);
    } finally {
      sys.close(dfd);
    }
  });

  test("device numbers: mknodat and st_rdev agree with node:fs, major/minor/makedev round-trip", () => {
    expect(sys.major(sys.makedev(259, 1048575))).toBe(259);
    expect(sys.minor(sys.makedev(259, 1048575))).toBe(1048575);
    expect(sys.makedev(1, 3)).toBe(0x103);
    if (needsRoot("the passthrough mknod part of the device-number test", "mknod of device nodes")) return;
    const d = dir("dev");
    const dfd = openDir(d);
    sys.mknodat(dfd, "null", S_IFCHR | 0o600, sys.makedev(1, 3));
    const s = sys.fstatat(dfd, "null", sys.AT_SYMLINK_NOFOLLOW);
    sys.close(dfd);
    expect(s.mode & S_IFMT).toBe(S_IFCHR);
    expect(s.rdev).toBe(Number(statSync(join(d, "null"), { bigint: true }).rdev));
    expect([sys.major(s.rdev), sys.minor(s.rdev)]).toEqual([1, 3]);
  });

  test("utimensat sets nanoseconds, leaves UTIME_OMIT alone, UTIME_NOW takes the clock", () => {
    const d = dir("times");
    writeFileSync(join(d, "f"), "");
    symlinkSync("/nonexistent", join(d, "l"));
    const dfd = openDir(d);
    try {
      sys.utimensat(dfd, "f", { sec: 1_000_000_000, nsec: 123_456_789 }, { sec: 1_500_000_000, nsec: 987_654_321 }, 0);
      let n = statSync(join(d, "f"), { bigint: true });
      expect(n.atimeNs).toBe(1_000_000_000_123_456_789n);
      expect(n.mtimeNs).toBe(1_500_000_000_987_654_321n);
      sys.utimensat(dfd, "f", "omit", { sec: 7, nsec: 1 }, 0);
      n = statSync(join(d, "f"), { bigint: true });
      expect(n.atimeNs).toBe(1_000_000_000_123_456_789n);
      expect(n.mtimeNs).toBe(7_000_000_001n);
      const before = BigInt(Date.now() - 2000) * 1_000_000n;
      sys.utimensat(dfd, "f", "now", undefined, 0);
      n = statSync(join(d, "f"), { bigint: true });
      expect(n.atimeNs > before).toBe(true);
      expect(n.mtimeNs).toBe(7_000_000_001n);
      // a symlink's own times through an O_PATH descriptor (AT_EMPTY_PATH), target untouched
      const lfd = sys.openat(dfd, "l", sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
      sys.utimensat(lfd, "", { sec: 42, nsec: 5 }, { sec: 43, nsec: 6 }, sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW);
      sys.close(lfd);
      expect(lstatSync(join(d, "l"), { bigint: true }).mtimeNs).toBe(43_000_000_006n);
    } finally {
      sys.close(dfd);
    }
  });

  test("renameat2: plain, RENAME_NOREPLACE, RENAME_EXCHANGE, onto a non-empty directory", () => {
    const d = dir("rename");
    writeFileSync(join(d, "a"), "A");
    writeFileSync(join(d, "b"), "B");
    mkdirSync(join(d, "full"));
    writeFileSync(join(d, "full", "x"), "");
    mkdirSync(join(d, "empty"));
    const dfd = openDir(d);
    try {
      throwsErrno(() => sys.renameat2(dfd, "a", dfd, "b", sys.RENAME_NOREPLACE), "EEXIST");
      sys.renameat2(dfd, "a", dfd, "b", sys.RENAME_EXCHANGE);
      expect(readFileSync(join(d, "a"), "utf8")).toBe("B");
      expect(readFileSync(join(d, "b"), "utf8")).toBe("A");
      throwsErrno(() => sys.renameat2(dfd, "empty", dfd, "full", 0), "ENOTEMPTY");
      throwsErrno(() => sys.renameat2(dfd, "missing", dfd, "x", 0), "ENOENT");
      throwsErrno(() => sys.renameat2(dfd, "a", dfd, "none", sys.RENAME_EXCHANGE), "ENOENT");
      sys.renameat2(dfd, "a", dfd, "c", sys.RENAME_NOREPLACE);
      expect(readdirSync(d).sort()).toEqual(["b", "c", "empty", "full"]);
    } finally {
      sys.close(dfd);
    }
  });

  test("xattrs by path, through /proc/self/fd of an O_PATH descriptor, flags and errors", () => {
    const d = dir("xattr");
    writeFileSync(join(d, "f"), "");
    symlinkSync("f", join(d, "l"));
    const fd = sys.openat(sys.AT_FDCWD, join(d, "f"), sys.O_PATH | sys.O_CLOEXEC);
    const p = sys.procPath(fd);
    try {
      const v = new Uint8Array([0, 1, 2, 255]);
      sys.setxattr(p, "user.a", v);
      sys.setxattr(join(d, "f"), "user.b", new TextEncoder().encode("hello"));
      expect(sys.getxattr(join(d, "f"), "user.a")).toEqual(v);
      expect(new TextDecoder().decode(sys.getxattr(p, "user.b"))).toBe("hello");
      expect(sys.listxattr(p).filter((n) => n.startsWith("user.")).sort()).toEqual(["user.a", "user.b"]);
      throwsErrno(() => sys.setxattr(p, "user.a", v, sys.XATTR_CREATE), "EEXIST");
      throwsErrno(() => sys.setxattr(p, "user.zz", v, sys.XATTR_REPLACE), "ENODATA");
      throwsErrno(() => sys.getxattr(p, "user.missing"), "ENODATA");
      sys.removexattr(p, "user.a");
      throwsErrno(() => sys.removexattr(p, "user.a"), "ENODATA");
      throwsErrno(() => sys.getxattr(p, "user." + "n".repeat(300)), "ERANGE");
      // a bigger value (ext4 takes up to a block), and one over the Linux maximum (64 KiB)
      const big = new Uint8Array(3000).map((_, i) => i & 0xff);
      sys.setxattr(p, "user.big", big);
      expect(sys.getxattr(p, "user.big")).toEqual(big);
      throwsErrno(() => sys.setxattr(p, "user.huge", new Uint8Array(70000)), "E2BIG");
      // the symlink's own attributes (trusted.* is allowed on symlinks for root)
      if (root) {
        const lfd = sys.openat(sys.AT_FDCWD, join(d, "l"), sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
        sys.setxattr(sys.procPath(lfd), "trusted.t", new Uint8Array([7]));
        sys.close(lfd);
        expect(sys.lgetxattr(join(d, "l"), "trusted.t")).toEqual(new Uint8Array([7]));
        throwsErrno(() => sys.getxattr(join(d, "f"), "trusted.t"), "ENODATA");
        expect(sys.llistxattr(join(d, "l"))).toContain("trusted.t");
      }
      // descriptor variants on a real descriptor
      const rfd = sys.openat(sys.AT_FDCWD, join(d, "f"), sys.O_RDONLY | sys.O_CLOEXEC);
      sys.fsetxattr(rfd, "user.c", new Uint8Array([3]));
      expect(sys.fgetxattr(rfd, "user.c")).toEqual(new Uint8Array([3]));
      expect(sys.flistxattr(rfd)).toContain("user.c");
      sys.fremovexattr(rfd, "user.c");
      throwsErrno(() => sys.fgetxattr(fd, "user.b"), "EBADF"); // not on O_PATH descriptors
      sys.close(rfd);
    } finally {
      sys.close(fd);
    }
  });

  test("O_PATH descriptors: NOFOLLOW, readlinkat, linkat AT_EMPTY_PATH, fchownat, fchmod via /proc, truncate", () => {
    const d = dir("opath");
    writeFileSync(join(d, "f"), "0123456789");
    symlinkSync("/etc/passwd", join(d, "l"));
    const dfd = openDir(d);
    try {
      throwsErrno(() => sys.openat(dfd, "l", sys.O_RDONLY | sys.O_NOFOLLOW), "ELOOP");
      const lfd = sys.openat(dfd, "l", sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
      expect(sys.readlinkat(lfd, "").toString()).toBe("/etc/passwd");
      expect(sys.readlinkat(dfd, "l").toString()).toBe("/etc/passwd");
      throwsErrno(() => sys.fchmodat(sys.AT_FDCWD, sys.procPath(lfd), 0o600), "EOPNOTSUPP"); // lchmod semantics
      if (root) {
        sys.fchownat(lfd, "", 1234, 5678, sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW);
        const ls = lstatSync(join(d, "l"));
        expect([ls.uid, ls.gid]).toEqual([1234, 5678]);
        expect(statSync("/etc/passwd").uid).toBe(0); // the target is untouched
      }
      sys.close(lfd);
      const ffd = sys.openat(dfd, "f", sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC);
      throwsErrno(() => sys.fchmod(ffd, 0o600), "EBADF");
      sys.fchmodat(sys.AT_FDCWD, sys.procPath(ffd), 0o640);
      expect(statSync(join(d, "f")).mode & 0o7777).toBe(0o640);
      sys.truncate(sys.procPath(ffd), 4);
      expect(readFileSync(join(d, "f"), "utf8")).toBe("0123");
      if (root) {
        sys.linkat(ffd, "", dfd, "f2", sys.AT_EMPTY_PATH);
        expect(statSync(join(d, "f2")).ino).toBe(statSync(join(d, "f")).ino);
        expect(statSync(join(d, "f")).nlink).toBe(2);
      }
      sys.close(ffd);
      sys.mkdirat(dfd, "sub", 0o755);
      throwsErrno(() => sys.unlinkat(dfd, "sub", 0), "EISDIR");
      sys.unlinkat(dfd, "sub", sys.AT_REMOVEDIR);
      throwsErrno(() => sys.unlinkat(dfd, "sub", sys.AT_REMOVEDIR), "ENOENT");
      sys.symlinkat("target with spaces", dfd, "s");
      expect(readFileSync(join(d, "f"), "utf8")).toBe("0123");
      expect(sys.readlinkat(dfd, "s").toString()).toBe("target with spaces");
    } finally {
      sys.close(dfd);
    }
  });

  test("data calls: ftruncate, fallocate, lseek SEEK_DATA/SEEK_HOLE, copy_file_range, fsync", () => {
    const d = dir("data");
    const fd = sys.openat(sys.AT_FDCWD, join(d, "f"), sys.O_RDWR | sys.O_CREAT | sys.O_CLOEXEC, 0o644);
    try {
      sys.ftruncate(fd, 1 << 20); // a 1 MiB hole
      writeSync(fd, new Uint8Array(64 << 10).fill(1), 0, 64 << 10, 512 << 10); // data at 512 KiB
      sys.fsync(fd);
      expect(sys.lseek(fd, 0, sys.SEEK_DATA)).toBe(512 << 10);
      expect(sys.lseek(fd, 512 << 10, sys.SEEK_HOLE)).toBe(576 << 10);
      throwsErrno(() => sys.lseek(fd, 2 << 20, sys.SEEK_DATA), "ENXIO");
      const blocks = statSync(join(d, "f")).blocks;
      sys.fallocate(fd, sys.FALLOC_FL_KEEP_SIZE, 1 << 20, 65536);
      expect(statSync(join(d, "f")).size).toBe(1 << 20);
      expect(statSync(join(d, "f")).blocks).toBe(blocks + 128);
      sys.fallocate(fd, sys.FALLOC_FL_PUNCH_HOLE | sys.FALLOC_FL_KEEP_SIZE, 512 << 10, 64 << 10);
      throwsErrno(() => sys.lseek(fd, 0, sys.SEEK_DATA), "ENXIO");
      writeSync(fd, Buffer.from("copy me"), 0, 7, 100);
      const out = sys.openat(sys.AT_FDCWD, join(d, "g"), sys.O_RDWR | sys.O_CREAT | sys.O_CLOEXEC, 0o644);
      expect(sys.copy_file_range(fd, 100, out, 3, 7)).toBe(7);
      expect(readFileSync(join(d, "g")).subarray(3).toString()).toBe("copy me");
      expect(sys.copy_file_range(fd, 1 << 20, out, 0, 10)).toBe(0); // end of input
      sys.fsync(out);
      sys.fdatasync(out);
      sys.close(out);
      sys.syncfs(fd);
    } finally {
      sys.close(fd);
    }
    throwsErrno(() => sys.close(fd), "EBADF");
  });

  test("fstatvfs matches statfs; getdents lists every entry with its type", () => {
    const d = dir("vfs");
    writeFileSync(join(d, "file"), "");
    mkdirSync(join(d, "dir"));
    symlinkSync("x", join(d, "link"));
    const v = sys.statvfs(d);
    const n = statfsSync(d);
    expect(v.bsize).toBe(n.bsize);
    expect(v.blocks).toBe(n.blocks);
    expect(v.files).toBe(n.files);
    const dfd = openDir(d);
    expect(sys.fstatvfs(dfd).blocks).toBe(v.blocks);
    sys.close(dfd);
    const rd = sys.openat(sys.AT_FDCWD, d, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
    const all: sys.Dirent[] = [];
    for (let b = sys.getdents(rd); b.length > 0; b = sys.getdents(rd)) all.push(...b);
    sys.close(rd);
    const types = Object.fromEntries(all.map((e) => [e.name, e.type]));
    expect(types).toEqual({ ".": sys.DT_DIR, "..": sys.DT_DIR, file: sys.DT_REG, dir: sys.DT_DIR, link: sys.DT_LNK });
    expect(all.find((e) => e.name === "file")!.ino).toBe(statSync(join(d, "file")).ino);
  });

  test.skipIf(needsRoot("the passthrough file-handle test", "open_by_handle_at needs CAP_DAC_READ_SEARCH"))("file handles survive a rename and go stale when the file is gone", () => {
    const d = dir("handles");
    writeFileSync(join(d, "f"), "data");
    const dfd = sys.openat(sys.AT_FDCWD, d, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
    try {
      const h = sys.name_to_handle_at(dfd, "f", 0);
      expect(h.handle.length).toBeGreaterThan(8);
      mkdirSync(join(d, "elsewhere"));
      renameSync(join(d, "f"), join(d, "elsewhere", "g"));
      const fd = sys.open_by_handle_at(dfd, h.handle, sys.O_RDONLY | sys.O_CLOEXEC);
      const buf = Buffer.alloc(4096);
      expect(buf.toString("utf8", 0, readSync(fd, buf, 0, 4096, 0))).toBe("data");
      sys.close(fd);
      unlinkSync(join(d, "elsewhere", "g"));
      throwsErrno(() => sys.open_by_handle_at(dfd, h.handle, sys.O_PATH | sys.O_CLOEXEC), "ESTALE");
      throwsErrno(() => sys.open_by_handle_at(dfd, new Uint8Array(3), sys.O_PATH), "EINVAL");
    } finally {
      sys.close(dfd);
    }
  });

  test("bad strings fail cleanly; errors carry errno, code and the call", () => {
    throwsErrno(() => sys.fstatat(sys.AT_FDCWD, "a\0b", 0), "EINVAL");
    throwsErrno(() => sys.fstatat(sys.AT_FDCWD, "/" + "x".repeat(5000), 0), "ENAMETOOLONG");
    throwsErrno(() => sys.fstatat(sys.AT_FDCWD, "/" + "é".repeat(2100), 0), "ENAMETOOLONG"); // 4201 bytes
    try {
      sys.openat(sys.AT_FDCWD, join(tmp, "missing"), sys.O_RDONLY);
      throw new Error("no error");
    } catch (e) {
      const err = e as { errno: number; code: string; message: string };
      expect(err.errno).toBe(2);
      expect(err.code).toBe("ENOENT");
      expect(err.message).toContain("openat");
      expect(err.message).toContain("missing");
    }
    // non-ASCII names round-trip
    const d = dir("utf8");
    const dfd = openDir(d);
    sys.mkdirat(dfd, "répertoire-日本", 0o700);
    sys.close(dfd);
    expect(readdirSync(d)).toEqual(["répertoire-日本"]);
  });

  test("umask and setfsuid/setfsgid return the previous values", () => {
    const old = sys.umask(0o077);
    expect(sys.umask(old)).toBe(0o077);
    const uid = sys.setfsuid(-1); // an invalid id changes nothing and returns the current one
    expect(uid).toBe(process.geteuid!());
    expect(sys.setfsgid(-1)).toBe(process.getegid!());
  });
});

// ---------------------------------------------------------------------------------------------
// The plugin's ops, called directly

const REQ = (uid = 0, gid = 0, pid = 1): Request => ({ op: "x", uid, gid, pid, signal: new AbortController().signal });

/** FileIO on node:fs positional reads and writes (the runtime's io_uring is not there in unit tests). */
const fakeIo: FileIO = {
  read: async (fd, dest, offset) => readSync(fd, dest, 0, dest.length, offset),
  write: async (fd, src, offset) => writeSync(fd, src, 0, src.length, offset),
  fsync: async (fd, datasync) => (datasync ? fdatasyncSync(fd) : fsyncSync(fd)),
};

interface Instance {
  fs: PassthroughFs;
  ctx: PluginContext<PassthroughOptions>;
  logs: string[];
  kept: Map<string, unknown>;
}

async function instance(source: string, opts: Partial<PassthroughOptions> = {}, kept = new Map<string, unknown>(), mountpoint?: string, passthrough = false): Promise<Instance> {
  const logs: string[] = [];
  let shared = regionsOf.get(kept);
  if (shared === undefined) regionsOf.set(kept, (shared = new Map()));
  const regions = shared;
  const generation = kept.has("mounted") ? 2 : 1; // a second instance on these regions is a later generation
  kept.set("mounted", true);
  const ctx: PluginContext<PassthroughOptions> = {
    options: { source, "fd-cache": 4096, "file-handles": true, ...opts },
    mountpoint: mountpoint ?? join(tmp, "no-such-mountpoint"),
    generation,
    log: (...a: unknown[]) => logs.push(a.join(" ")),
    isOpen: () => false,
    keep: <T>(key: string, init: () => T): T => {
      if (!kept.has(key)) kept.set(key, init());
      return kept.get(key) as T;
    },
    notify: {} as PluginContext["notify"],
    io: fakeIo,
    shared: (key, n, max) => sharedRegion(regions, key, n, max, true),
    reactor: { index: 0, count: 0, primary: true },
    atime: "relatime",
    nodiratime: false,
    passthrough: () => passthrough,
    onDestroy() {},
  };
  const fs = (await plugin.setup(ctx)) as PassthroughFs;
  return { fs, ctx, logs, kept };
}

/** A DirList that takes at most `room` entries per call. */
function collector(room = Infinity) {
  const got: { name: string; ino: number; mode: number; off: number }[] = [];
  let left = room;
  const list: DirList = {
    add(name, ino, mode, off) {
      if (left-- <= 0) return false;
      got.push({ name, ino, mode, off });
      return true;
    },
  };
  return { list, got, reset: () => (left = room) };
}

async function readAll(fs: PassthroughFs, ino: number, fh: number, size = 1 << 16): Promise<string> {
  const dest = new Uint8Array(size);
  const n = (await fs.read!(REQ(), ino, fh, 0, size, dest)) as number;
  return new TextDecoder().decode(dest.subarray(0, n));
}

describe("passthrough plugin: --source validation", () => {
  test("missing, not a directory, the mountpoint itself, inside the mountpoint: errors naming the path", async () => {
    const d = dir("val");
    writeFileSync(join(d, "file"), "");
    mkdirSync(join(d, "mnt"));
    mkdirSync(join(d, "mnt", "inner"));
    const cases: [string, string | undefined, RegExp][] = [
      [join(d, "nope"), undefined, /--source .*\/nope: does not exist/],
      [join(d, "file"), undefined, /--source .*\/file: not a directory/],
      [join(d, "mnt"), join(d, "mnt"), /is the mountpoint itself/],
      [join(d, "mnt", "inner"), join(d, "mnt"), /mnt\/inner is inside the mountpoint .*\/mnt/],
    ];
    for (const [source, mnt, re] of cases) {
      let err: Error | undefined;
      try {
        await instance(source, {}, new Map(), mnt);
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(re);
    }
  });

  test("a mountpoint inside the source is hidden: lookup is EDEADLK, listings leave it out", async () => {
    const d = dir("hidden");
    mkdirSync(join(d, "mnt"));
    writeFileSync(join(d, "other"), "");
    const { fs, logs } = await instance(d, {}, new Map(), join(d, "mnt"));
    expect(logs.join("\n")).toMatch(/inside --source/);
    await rejectsErrno(() => fs.lookup!(REQ(), 1, "mnt"), "EDEADLK");
    expect(fs.lookup!(REQ(), 1, "other")).toBeDefined();
    const { fh } = fs.opendir!(REQ(), 1, 0) as { fh: number };
    const c = collector();
    fs.readdir!(REQ(), 1, fh, 0, c.list);
    expect(c.got.map((e) => e.name).sort()).toEqual([".", "..", "other"]);
    fs.releasedir!(REQ(), 1, fh);
  });
});

describe("passthrough plugin: ops on a real directory", () => {
  test("lookup: node id is the source inode number, hard links share a node, '.' and '..'", async () => {
    const d = dir("lookup");
    writeFileSync(join(d, "f"), "hi");
    linkSync(join(d, "f"), join(d, "hard"));
    mkdirSync(join(d, "sub"));
    const { fs } = await instance(d);
    const f = fs.lookup!(REQ(), 1, "f") as Entry;
    expect(f.ino).toBe(statSync(join(d, "f")).ino);
    expect(f.mode).toBe(statSync(join(d, "f")).mode);
    expect(f.size).toBe(2);
    expect(f.nlink).toBe(2);
    const h = fs.lookup!(REQ(), 1, "hard") as Entry;
    expect(h).toBe(f); // the same node object
    expect(fs.nodes.get(f.ino).nlookup).toBe(2);
    const sub = fs.lookup!(REQ(), 1, "sub") as Entry;
    expect((fs.lookup!(REQ(), sub.ino, "..") as Entry).ino).toBe(1);
    expect((fs.lookup!(REQ(), sub.ino, ".") as Entry).ino).toBe(sub.ino);
    await rejectsErrno(() => fs.lookup!(REQ(), 1, "missing"), "ENOENT");
    await rejectsErrno(() => fs.lookup!(REQ(), 1, "sub/x"), "EINVAL");
    await rejectsErrno(() => fs.getattr!(REQ(), 999_999_999, undefined), "ESTALE");
    // forget frees nodes; a parent stays while a child refers to it
    const inner = (() => {
      writeFileSync(join(d, "sub", "inner"), "");
      return fs.lookup!(REQ(), sub.ino, "inner") as Entry;
    })();
    fs.forget!(sub.ino, 3);
    expect(fs.nodes.get(sub.ino)).toBeDefined();
    fs.forget!(inner.ino, 1);
    await rejectsErrno(() => fs.getattr!(REQ(), sub.ino, undefined), "ESTALE");
    fs.forget!(f.ino, 2);
    expect(fs.nodes.size).toBe(1);
  });

  test("create, write, read, setattr (chmod, truncate, utimens incl. now), getattr through the handle", async () => {
    const d = dir("data");
    const { fs } = await instance(d);
    const old = process.umask(0o077); // the daemon's own umask must not matter
    let r;
    try {
      r = (await fs.create!(REQ(), 1, "f", S_IFREG | 0o664, sys.O_RDWR, 0o002)) as { entry: Entry; fh: number; backingFd?: number };
    } finally {
      process.umask(old);
    }
    expect(r.backingFd).toBeUndefined(); // ctx.passthrough() is false here
    expect(statSync(join(d, "f")).mode & 0o7777).toBe(0o664);
    expect(r.entry.ino).toBe(statSync(join(d, "f")).ino);
    const data = new TextEncoder().encode("hello passthrough");
    expect(await fs.write!(REQ(), r.entry.ino, r.fh, 0, data, 0)).toBe(data.length);
    expect(await readAll(fs, r.entry.ino, r.fh)).toBe("hello passthrough");
    expect(readFileSync(join(d, "f"), "utf8")).toBe("hello passthrough");
    let a = (await fs.setattr!(REQ(), r.entry.ino, { size: 5, fh: r.fh })) as Entry;
    expect(a.size).toBe(5);
    a = (await fs.setattr!(REQ(), r.entry.ino, { mode: S_IFREG | 0o600 })) as Entry;
    expect(a.mode).toBe(S_IFREG | 0o600);
    a = (await fs.setattr!(REQ(), r.entry.ino, { atime: { sec: 100, nsec: 7 }, mtime: { sec: 200, nsec: 999_999_999 } })) as Entry;
    expect([a.atimeSec, a.atimeNsec, a.mtimeSec, a.mtimeNsec]).toEqual([100, 7, 200, 999_999_999]);
    expect(statSync(join(d, "f"), { bigint: true }).mtimeNs).toBe(200_999_999_999n);
    a = (await fs.setattr!(REQ(), r.entry.ino, { mtime: "now" })) as Entry;
    expect(Math.abs(a.mtimeSec - Date.now() / 1000)).toBeLessThan(5);
    expect(a.atimeSec).toBe(100);
    a = (await fs.setattr!(REQ(), r.entry.ino, { size: 0 })) as Entry; // truncate without a handle
    expect(statSync(join(d, "f")).size).toBe(0);
    if (root) {
      a = (await fs.setattr!(REQ(), r.entry.ino, { uid: 4321, gid: 8765 })) as Entry;
      expect([a.uid, a.gid]).toEqual([4321, 8765]);
    }
    // unlinked but open: getattr through the handle still works
    unlinkSync(join(d, "f"));
    const g = (await fs.getattr!(REQ(), r.entry.ino, r.fh)) as Entry;
    expect(g.nlink).toBe(0);
    await fs.flush!(REQ(), r.entry.ino, r.fh, 0);
    await fs.fsync!(REQ(), r.entry.ino, r.fh, true);
    await fs.release!(REQ(), r.entry.ino, r.fh, 0);
    expect(fs.handles.size).toBe(0);
    await rejectsErrno(() => fs.read!(REQ(), r.entry.ino, r.fh, 0, 10, new Uint8Array(10)), "EBADF");
    // O_EXCL on an existing name; create of an existing name without O_EXCL opens it
    writeFileSync(join(d, "exists"), "old");
    await rejectsErrno(() => fs.create!(REQ(), 1, "exists", S_IFREG | 0o644, sys.O_RDWR | sys.O_EXCL, 0), "EEXIST");
    const again = (await fs.create!(REQ(), 1, "exists", S_IFREG | 0o600, sys.O_RDWR, 0)) as { entry: Entry; fh: number };
    expect(await readAll(fs, again.entry.ino, again.fh)).toBe("old");
    expect(statSync(join(d, "exists")).mode & 0o777).toBe(0o644); // not re-moded
    fs.release!(REQ(), again.entry.ino, again.fh, 0);
  });

  test("open with kernel passthrough returns the descriptor as backing file and a unique fh per open", async () => {
    const d = dir("backing");
    writeFileSync(join(d, "f"), "backing");
    const { fs } = await instance(d, {}, new Map(), undefined, true);
    const f = fs.lookup!(REQ(), 1, "f") as Entry;
    const a = fs.open!(REQ(), f.ino, sys.O_RDONLY) as { fh: number; backingFd: number };
    const b = fs.open!(REQ(), f.ino, sys.O_RDONLY) as { fh: number; backingFd: number };
    expect(a.fh).not.toBe(b.fh);
    expect(a.backingFd).not.toBe(b.backingFd);
    const buf = Buffer.alloc(16);
    expect(buf.toString("utf8", 0, readSync(a.backingFd, buf, 0, 16, 0))).toBe("backing");
    expect(sys.fstat(a.backingFd).ino).toBe(f.ino);
    fs.release!(REQ(), f.ino, a.fh, 0);
    fs.release!(REQ(), f.ino, b.fh, 0);
    throwsErrno(() => sys.fstat(a.backingFd), "EBADF");
  });

  test("mkdir, mknod, symlink, link, readlink, unlink, rmdir, rename with flags — same effects and errno as the source", async () => {
    const d = dir("names");
    const { fs } = await instance(d);
    const sub = fs.mkdir!(REQ(), 1, "sub", 0o750, 0) as Entry;
    expect(sub.mode).toBe(S_IFDIR | 0o750);
    expect(statSync(join(d, "sub")).isDirectory()).toBe(true);
    await rejectsErrno(() => fs.mkdir!(REQ(), 1, "sub", 0o755, 0), "EEXIST");
    const fifo = fs.mknod!(REQ(), sub.ino, "fifo", S_IFIFO | 0o640, 0, 0) as Entry;
    expect(fifo.mode).toBe(S_IFIFO | 0o640);
    expect(lstatSync(join(d, "sub", "fifo")).isFIFO()).toBe(true);
    const reg = fs.mknod!(REQ(), sub.ino, "reg", S_IFREG | 0o600, 0, 0) as Entry;
    expect(reg.mode).toBe(S_IFREG | 0o600);
    if (root) {
      const chr = fs.mknod!(REQ(), sub.ino, "null", S_IFCHR | 0o666, (1 << 8) | 3, 0) as Entry;
      expect(chr.rdev).toBe((1 << 8) | 3);
      const st = statSync(join(d, "sub", "null"));
      expect(st.rdev).toBe(sys.makedev(1, 3));
    }
    const link = fs.symlink!(REQ(), 1, "escape", "/etc") as Entry;
    expect(link.mode & S_IFMT).toBe(S_IFLNK);
    expect(Buffer.from((await fs.readlink!(REQ(), link.ino)) as Uint8Array).toString()).toBe("/etc");
    expect(lstatSync(join(d, "escape")).isSymbolicLink()).toBe(true);
    // names with a slash never reach a system call; the server does not resolve "escape/passwd"
    await rejectsErrno(() => fs.lookup!(REQ(), 1, "escape/passwd"), "EINVAL");
    await rejectsErrno(() => fs.lookup!(REQ(), link.ino, "passwd"), "ENOTDIR");
    await rejectsErrno(() => fs.create!(REQ(), link.ino, "x", S_IFREG | 0o644, sys.O_RDWR, 0), "ENOTDIR");
    // a symlink replacing a name: create never follows it (O_NOFOLLOW)
    symlinkSync(join(tmp, "outside-target"), join(d, "trap"));
    await rejectsErrno(() => fs.create!(REQ(), 1, "trap", S_IFREG | 0o644, sys.O_RDWR, 0), "ELOOP");
    expect(existsSync(join(tmp, "outside-target"))).toBe(false);
    // hard link
    const hl = fs.link!(REQ(), reg.ino, 1, "hardlink") as Entry;
    expect(hl).toBe(fs.nodes.get(reg.ino));
    expect(hl.nlink).toBe(2);
    await rejectsErrno(() => fs.link!(REQ(), reg.ino, 1, "hardlink"), "EEXIST");
    // rename: plain, NOREPLACE, EXCHANGE, onto a non-empty directory
    writeFileSync(join(d, "a"), "A");
    writeFileSync(join(d, "b"), "B");
    fs.rename!(REQ(), 1, "a", sub.ino, "a2", 0);
    expect(readFileSync(join(d, "sub", "a2"), "utf8")).toBe("A");
    await rejectsErrno(() => fs.rename!(REQ(), sub.ino, "a2", 1, "b", sys.RENAME_NOREPLACE), "EEXIST");
    fs.rename!(REQ(), sub.ino, "a2", 1, "b", sys.RENAME_EXCHANGE);
    expect(readFileSync(join(d, "b"), "utf8")).toBe("A");
    expect(readFileSync(join(d, "sub", "a2"), "utf8")).toBe("B");
    mkdirSync(join(d, "empty"));
    await rejectsErrno(() => fs.rename!(REQ(), 1, "empty", 1, "sub", 0), "ENOTEMPTY");
    await rejectsErrno(() => fs.rename!(REQ(), 1, "nope", 1, "x", 0), "ENOENT");
    // unlink, rmdir
    await rejectsErrno(() => fs.unlink!(REQ(), 1, "missing"), "ENOENT");
    await rejectsErrno(() => fs.unlink!(REQ(), 1, "sub"), "EISDIR");
    await rejectsErrno(() => fs.rmdir!(REQ(), 1, "sub"), "ENOTEMPTY");
    await rejectsErrno(() => fs.rmdir!(REQ(), 1, "b"), "ENOTDIR");
    fs.unlink!(REQ(), 1, "hardlink");
    fs.rmdir!(REQ(), 1, "empty");
    expect(readdirSync(d).sort()).toEqual(["b", "escape", "sub", "trap"]);
  });

  test.skipIf(needsRoot("the passthrough ownership test", "it creates nodes as other users"))("new nodes belong to the calling user; set-group-ID directories keep their group; umask of the daemon ignored", async () => {
    const d = dir("owner");
    chmodSync(d, 0o777);
    mkdirSync(join(d, "sgid"), { mode: 0o2777 });
    chmodSync(join(d, "sgid"), 0o2777);
    const { fs } = await instance(d);
    const me = REQ(1234, 5678);
    const f = (await fs.create!(me, 1, "f", S_IFREG | 0o4755, sys.O_WRONLY, 0)) as { entry: Entry; fh: number };
    fs.release!(me, f.entry.ino, f.fh, 0);
    const dd = fs.mkdir!(me, 1, "d", 0o755, 0) as Entry;
    const s = fs.symlink!(me, 1, "s", "f") as Entry;
    const n = fs.mknod!(me, 1, "n", S_IFIFO | 0o600, 0, 0) as Entry;
    for (const [name, e] of [["f", f.entry], ["d", dd], ["s", s], ["n", n]] as const) {
      const st = lstatSync(join(d, name));
      expect([name, st.uid, st.gid]).toEqual([name, 1234, 5678]);
      expect([e.uid, e.gid]).toEqual([1234, 5678]);
    }
    expect(statSync(join(d, "f")).mode & 0o7777).toBe(0o4755); // set-user-ID survived the chown
    const sg = fs.lookup!(REQ(), 1, "sgid") as Entry;
    const inSg = fs.mkdir!(me, sg.ino, "child", 0o755, 0) as Entry;
    const st = statSync(join(d, "sgid", "child"));
    expect([st.uid, st.gid]).toEqual([1234, 0]); // the directory's group, and its set-group-ID bit
    expect(st.mode & 0o2000).toBe(0o2000);
    expect(inSg.gid).toBe(0);
    // root callers: nothing changes hands
    const r = fs.mkdir!(REQ(), 1, "byroot", 0o700, 0) as Entry;
    expect([r.uid, r.gid]).toEqual([0, 0]);
  });

  test("copy_file_range: short counts are continued until the length is copied or the source ends", () => {
    const d = dir("copy-short");
    const data = Buffer.alloc(101_648, 0).map((_, i) => (i * 7) & 255);
    writeFileSync(join(d, "in"), data);
    writeFileSync(join(d, "out"), "");
    const fdIn = openSync(join(d, "in"), "r"), fdOut = openSync(join(d, "out"), "r+");
    try {
      // the real call, cut to a pipe's worth as the splice does when a signal is pending
      const calls: number[][] = [];
      const short: typeof sys.copy_file_range = (a, offA, b, offB, len, flags) => {
        calls.push([offA!, offB!, len]);
        return sys.copy_file_range(a, offA, b, offB, Math.min(len, 65_536), flags);
      };
      expect(copyFileRangeFully(short, fdIn, 0, fdOut, 10, 101_648, 0)).toBe(101_648);
      expect(calls).toEqual([[0, 10, 101_648], [65_536, 65_546, 36_112]]);
      expect(readFileSync(join(d, "out")).subarray(10).equals(data)).toBe(true);
      // past the end of the source: what there is, then 0 ends it
      calls.length = 0;
      expect(copyFileRangeFully(short, fdIn, 100_000, fdOut, 0, 200_000, 0)).toBe(1_648);
      expect(calls.length).toBe(2);
      // an error after some bytes answers the count; before any, the error
      let n = 0;
      const failing: typeof sys.copy_file_range = () => {
        if (n++ > 0) throw Object.assign(new Error("copy_file_range: ENOSPC"), { errno: 28 });
        return 4096;
      };
      expect(copyFileRangeFully(failing, fdIn, 0, fdOut, 0, 10_000, 0)).toBe(4096);
      n = 1;
      expect(() => copyFileRangeFully(failing, fdIn, 0, fdOut, 0, 10_000, 0)).toThrow("ENOSPC");
    } finally {
      closeSync(fdIn);
      closeSync(fdOut);
    }
  });

  test("xattrs, statfs, fallocate, lseek SEEK_DATA/SEEK_HOLE, copy_file_range through the ops", async () => {
    const d = dir("misc");
    writeFileSync(join(d, "f"), "");
    const { fs } = await instance(d);
    const f = fs.lookup!(REQ(), 1, "f") as Entry;
    fs.setxattr!(REQ(), f.ino, "user.k", new TextEncoder().encode("v"), 0);
    expect(new TextDecoder().decode((await fs.getxattr!(REQ(), f.ino, "user.k")) as Uint8Array)).toBe("v");
    expect(sys.getxattr(join(d, "f"), "user.k")).toEqual(new TextEncoder().encode("v"));
    expect(await fs.listxattr!(REQ(), f.ino)).toContain("user.k");
    await rejectsErrno(() => fs.setxattr!(REQ(), f.ino, "user.k", new Uint8Array(1), sys.XATTR_CREATE), "EEXIST");
    fs.removexattr!(REQ(), f.ino, "user.k");
    await rejectsErrno(() => fs.getxattr!(REQ(), f.ino, "user.k"), "ENODATA");
    await rejectsErrno(() => fs.removexattr!(REQ(), f.ino, "user.k"), "ENODATA");
    const sf = (await fs.statfs!(REQ(), 1)) as { blocks: number; bsize: number; namelen: number };
    expect(sf.blocks).toBe(statfsSync(d).blocks);
    expect(sf.namelen).toBe(255);
    const o = fs.open!(REQ(), f.ino, sys.O_RDWR) as { fh: number };
    fs.fallocate!(REQ(), f.ino, o.fh, 0, 8192, 0);
    expect(statSync(join(d, "f")).size).toBe(8192);
    fs.fallocate!(REQ(), f.ino, o.fh, 8192, 8192, sys.FALLOC_FL_KEEP_SIZE);
    expect(statSync(join(d, "f")).size).toBe(8192);
    expect(statSync(join(d, "f")).blocks).toBe(32);
    await fs.write!(REQ(), f.ino, o.fh, 256 << 10, new Uint8Array(4096).fill(7), 0);
    sys.fdatasync(fs.handles.file(o.fh).fd);
    expect(await fs.lseek!(REQ(), f.ino, o.fh, 0, sys.SEEK_DATA)).toBe(256 << 10); // fallocated space reads as a hole
    expect(await fs.lseek!(REQ(), f.ino, o.fh, 256 << 10, sys.SEEK_HOLE)).toBe((256 << 10) + 4096);
    await rejectsErrno(() => fs.lseek!(REQ(), f.ino, o.fh, 300 << 10, sys.SEEK_DATA), "ENXIO");
    await fs.write!(REQ(), f.ino, o.fh, 0, new TextEncoder().encode("abcdef"), 0);
    writeFileSync(join(d, "g"), "");
    const g = fs.lookup!(REQ(), 1, "g") as Entry;
    const og = fs.open!(REQ(), g.ino, sys.O_WRONLY) as { fh: number };
    expect(await fs.copyFileRange!(REQ(), f.ino, o.fh, 2, g.ino, og.fh, 0, 3, 0)).toBe(3);
    expect(readFileSync(join(d, "g"), "utf8")).toBe("cde");
    fs.release!(REQ(), f.ino, o.fh, 0);
    fs.release!(REQ(), g.ino, og.fh, 0);
  });

  test("readdir: index cookies resume where the kernel stopped, and any offset rescans", async () => {
    const d = dir("readdir");
    const names = Array.from({ length: 300 }, (_, i) => `entry-${i}`);
    for (const n of names) writeFileSync(join(d, n), "");
    const { fs } = await instance(d);
    const { fh } = fs.opendir!(REQ(), 1, 0) as { fh: number };
    const c = collector(7);
    let off = 0;
    for (;;) {
      const before = c.got.length;
      c.reset();
      fs.readdir!(REQ(), 1, fh, off, c.list);
      if (c.got.length === before) break;
      off = c.got[c.got.length - 1]!.off;
    }
    expect(c.got.map((e) => e.name).sort()).toEqual([".", "..", ...names].sort());
    expect(c.got.map((e) => e.off)).toEqual(c.got.map((_, i) => i + 1));
    const byName = new Map(c.got.map((e) => [e.name, e]));
    expect(byName.get("entry-7")!.ino).toBe(statSync(join(d, "entry-7")).ino);
    expect(byName.get("entry-7")!.mode).toBe(S_IFREG);
    expect(byName.get(".")!.ino).toBe(1);
    // seekdir to an earlier cookie: the same entries again
    const again = collector(3);
    fs.readdir!(REQ(), 1, fh, 100, again.list);
    expect(again.got.map((e) => e.name)).toEqual(c.got.slice(100, 103).map((e) => e.name));
    fs.releasedir!(REQ(), 1, fh);
  });

  test("readdirplus counts one lookup per entry sent, none for entries that did not fit or for . and ..", async () => {
    const d = dir("rdplus");
    for (let i = 0; i < 10; i++) writeFileSync(join(d, `f${i}`), "x".repeat(i));
    const { fs } = await instance(d);
    const { fh } = fs.opendir!(REQ(), 1, 0) as { fh: number };
    const got: { name: string; e: Entry | null; off: number }[] = [];
    let room = 5;
    const list: DirListPlus = {
      add(name, e, off) {
        if (room-- <= 0) return false;
        got.push({ name, e, off });
        return true;
      },
    };
    fs.readdirplus!(REQ(), 1, fh, 0, list);
    room = 100;
    fs.readdirplus!(REQ(), 1, fh, got[got.length - 1]!.off, list);
    expect(got.length).toBe(12);
    for (const g of got) {
      if (g.name === "." || g.name === "..") {
        expect(g.e!.ino).toBe(1);
        continue;
      }
      expect(g.e!.size).toBe(Number(g.name.slice(1)));
      expect(fs.nodes.get(g.e!.ino).nlookup).toBe(1); // the one that did not fit was given back
    }
    expect(fs.nodes.size).toBe(11);
    fs.releasedir!(REQ(), 1, fh);
  });

  test.skipIf(!root)("export support: forgotten nodes answer \".\" by id with their generation, up to --export-nodes of them", async () => {
    const d = dir("export");
    const dfd = openDir(d);
    for (let i = 0; i < 40; i++) sys.close(sys.openat(dfd, `f${i}`, sys.O_CREAT | sys.O_WRONLY | sys.O_CLOEXEC, 0o644));
    sys.mkdirat(dfd, "sub", 0o755);
    sys.mkdirat(dfd, "sub/deeper", 0o755);
    sys.close(dfd);
    const off = await instance(d, { "export-nodes": 0 });
    expect(off.fs.exportSupport).toBe(false);
    expect(() => off.fs.lookup!(REQ(), (off.fs.lookup!(REQ(), 1, "f0") as Entry).ino + 1e9, ".")).toThrow(/gone/);
    await expect(instance(d, { "export-nodes": -1 })).rejects.toThrow("--export-nodes -1: must be an integer from 0 to 4194304");
    const { fs } = await instance(d, { "export-nodes": 16 });
    expect(fs.exportSupport).toBe(true);
    const e = [...Array(40).keys()].map((i) => fs.lookup!(REQ(), 1, `f${i}`) as Entry);
    expect(new Set(e.map((x) => x.generation)).size).toBe(40);
    for (const x of e) fs.forget!(x.ino, 1);
    expect(fs.nodes.size).toBe(1);
    // the 16 forgotten last come back with their generation; older ones are gone
    for (let i = 0; i < 40; i++) {
      if (i < 24) expect(() => fs.lookup!(REQ(), e[i]!.ino, ".")).toThrow(/gone/);
      else expect(fs.lookup!(REQ(), e[i]!.ino, ".") as Entry).toMatchObject({ ino: e[i]!.ino, generation: e[i]!.generation });
    }
    // found again by name: the same generation while retired, a new one once evicted
    fs.forget!(e[39]!.ino, 1);
    expect((fs.lookup!(REQ(), 1, "f39") as Entry).generation).toBe(e[39]!.generation);
    expect((fs.lookup!(REQ(), 1, "f0") as Entry).generation).not.toBe(e[0]!.generation);
    // a directory's ".." from the source, also when the parent was forgotten
    const sub = fs.lookup!(REQ(), 1, "sub") as Entry;
    const deeper = fs.lookup!(REQ(), sub.ino, "deeper") as Entry;
    fs.forget!(sub.ino, 1);
    expect(fs.nodes.find(sub.ino)).toBeDefined(); // held by its child
    fs.forget!(deeper.ino, 1);
    expect(fs.nodes.find(sub.ino)).toBeUndefined();
    const again = fs.lookup!(REQ(), deeper.ino, ".") as Entry;
    expect(again.generation).toBe(deeper.generation);
    expect(fs.lookup!(REQ(), deeper.ino, "..") as Entry).toMatchObject({ ino: sub.ino, generation: sub.generation });
    expect(fs.lookup!(REQ(), sub.ino, "..") as Entry).toMatchObject({ ino: 1, generation: 0 });
    expect(() => fs.lookup!(REQ(), e[30]!.ino, "..")).toThrow(/not a directory/);
    // deleted: gone, even while a descriptor of ours keeps the inode
    fs.forget!(e[30]!.ino, 1);
    rmSync(join(d, "f30"));
    expect(() => fs.lookup!(REQ(), e[30]!.ino, ".")).toThrow(/gone/);
  });

  test("100k-file scale: nodes do not pin descriptors (bounded cache, re-open on demand)", async () => {
    const d = dir("many");
    const N = 21000; // more than RLIMIT_NOFILE (20000)
    const dfd = openDir(d);
    for (let i = 0; i < N; i++) sys.close(sys.openat(dfd, `f${i}`, sys.O_CREAT | sys.O_WRONLY | sys.O_CLOEXEC, 0o644));
    sys.close(dfd);
    for (const handles of [true, false]) {
      const { fs } = await instance(d, { "fd-cache": 64, "file-handles": handles });
      const fdsBefore = readdirSync("/proc/self/fd").length;
      const ids: number[] = [];
      for (let i = 0; i < N; i++) ids.push((fs.lookup!(REQ(), 1, `f${i}`) as Entry).ino);
      await Bun.sleep(0); // evicted descriptors are closed in a microtask
      for (const id of ids) expect((fs.getattr!(REQ(), id, undefined) as Entry).ino).toBe(id);
      await Bun.sleep(0);
      expect(readdirSync("/proc/self/fd").length - fdsBefore).toBeLessThan(80);
      expect(fs.nodes.size).toBe(N + 1);
      for (const id of ids) fs.forget!(id, 1);
      expect(fs.nodes.size).toBe(1);
    }
  }, 60_000);

  test("external renames: file handles find moved nodes; by-name mode goes ESTALE (never the wrong file)", async () => {
    for (const handles of [true, false]) {
      const d = dir(`moved-${handles}`);
      mkdirSync(join(d, "a"));
      writeFileSync(join(d, "a", "f"), "content");
      const { fs } = await instance(d, { "fd-cache": 16, "file-handles": handles });
      const a = fs.lookup!(REQ(), 1, "a") as Entry;
      const f = fs.lookup!(REQ(), a.ino, "f") as Entry;
      // push both out of the descriptor cache
      for (let i = 0; i < 40; i++) {
        writeFileSync(join(d, `x${i}`), "");
        fs.lookup!(REQ(), 1, `x${i}`);
        fs.getattr!(REQ(), (fs.lookup!(REQ(), 1, `x${i}`) as Entry).ino, undefined);
      }
      expect(fs.nodes.isCached(f.ino)).toBe(false);
      renameSync(join(d, "a"), join(d, "b")); // behind the filesystem's back
      writeFileSync(join(d, "a"), "impostor"); // something else now has the old name
      if (root && handles) {
        expect((fs.getattr!(REQ(), f.ino, undefined) as Entry).size).toBe(7);
        const o = fs.open!(REQ(), f.ino, sys.O_RDONLY) as { fh: number };
        expect(await readAll(fs, f.ino, o.fh)).toBe("content");
        fs.release!(REQ(), f.ino, o.fh, 0);
      } else {
        await rejectsErrno(() => fs.getattr!(REQ(), f.ino, undefined), "ESTALE");
        await rejectsErrno(() => fs.getattr!(REQ(), a.ino, undefined), "ESTALE");
      }
      // a fresh lookup under the new name finds the same nodes again, in every mode
      const b = fs.lookup!(REQ(), 1, "b") as Entry;
      expect(b).toBe(fs.nodes.get(a.ino));
      expect(fs.lookup!(REQ(), b.ino, "f")).toBe(fs.nodes.get(f.ino));
      expect((fs.getattr!(REQ(), f.ino, undefined) as Entry).size).toBe(7);
    }
  });

  test("a rename through the ops keeps by-name re-opening working", async () => {
    const d = dir("renamed");
    mkdirSync(join(d, "a"));
    writeFileSync(join(d, "a", "f"), "x");
    const { fs } = await instance(d, { "fd-cache": 16, "file-handles": false });
    const a = fs.lookup!(REQ(), 1, "a") as Entry;
    const f = fs.lookup!(REQ(), a.ino, "f") as Entry;
    fs.mkdir!(REQ(), 1, "z", 0o755, 0);
    const z = fs.lookup!(REQ(), 1, "z") as Entry;
    fs.rename!(REQ(), a.ino, "f", z.ino, "g", 0);
    fs.rename!(REQ(), 1, "a", 1, "a2", 0);
    for (let i = 0; i < 40; i++) {
      writeFileSync(join(d, `x${i}`), "");
      fs.getattr!(REQ(), (fs.lookup!(REQ(), 1, `x${i}`) as Entry).ino, undefined);
    }
    expect(fs.nodes.isCached(f.ino)).toBe(false);
    expect((fs.getattr!(REQ(), f.ino, undefined) as Entry).ino).toBe(statSync(join(d, "z", "g")).ino);
    expect((fs.getattr!(REQ(), a.ino, undefined) as Entry).ino).toBe(statSync(join(d, "a2")).ino);
  });

  test("hot reload: a second generation keeps node ids and open handles", async () => {
    const d = dir("reload");
    writeFileSync(join(d, "f"), "survives");
    const g1 = await instance(d);
    const f = g1.fs.lookup!(REQ(), 1, "f") as Entry;
    const o = g1.fs.open!(REQ(), f.ino, sys.O_RDONLY) as { fh: number };
    const g2 = await instance(d, {}, g1.kept);
    expect(g2.logs.length).toBe(0); // the source was not opened again
    expect(g2.fs.nodes.get(f.ino).nlookup).toBe(1);
    expect(await readAll(g2.fs, f.ino, o.fh)).toBe("survives");
    g2.fs.release!(REQ(), f.ino, o.fh, 0);
    expect(g1.fs.handles.size).toBe(0); // one table, shared
    // shared state of another layout is refused
    new Int32Array(regionsOf.get(g1.kept)!.get("passthrough.meta")!)[2] = 99;
    await rejectsErrno(() =>
      instance(d, {}, g1.kept).catch((e) => {
        throw Object.assign(e, { code: /incompatible/.test(e.message) ? "EINCOMPAT" : e.code });
      }),
      "EINCOMPAT",
    );
  });

  test("two instances on one table: a node dropped by one loses the other's cached descriptor at its next lookup", async () => {
    const d = dir("two-instances");
    writeFileSync(join(d, "f"), "x");
    writeFileSync(join(d, "g"), "y");
    const a = await instance(d);
    const b = await instance(d, {}, a.kept);
    const f = (a.fs.lookup!(REQ(), 1, "f") as Entry).ino; // (a node's view reads its record: keep the id)
    a.fs.getattr!(REQ(), f, undefined);
    expect(a.fs.nodes.isCached(f)).toBe(true);
    // b unlinks it and the kernel forgets it through b: the node is dropped
    b.fs.unlink!(REQ(), 1, "f");
    b.fs.forget!(f, 1);
    expect(b.fs.nodes.size).toBe(1);
    // a's next descriptor lookup closes its descriptor of the dropped node
    const g = (a.fs.lookup!(REQ(), 1, "g") as Entry).ino;
    a.fs.getattr!(REQ(), g, undefined);
    expect(a.fs.nodes.isCached(f)).toBe(false);
    expect(a.fs.nodes.isCached(g)).toBe(true);
    a.fs.forget!(g, 1);
  });

  test("two instances on one table: an idle instance closes its descriptor of a node the other dropped without another op (an unlinked file's space is freed)", async () => {
    const d = dir("two-instances-idle");
    writeFileSync(join(d, "f"), "x");
    const a = await instance(d);
    const b = await instance(d, {}, a.kept);
    const f = (a.fs.lookup!(REQ(), 1, "f") as Entry).ino;
    a.fs.getattr!(REQ(), f, undefined);
    expect(a.fs.nodes.isCached(f)).toBe(true);
    b.fs.unlink!(REQ(), 1, "f");
    b.fs.forget!(f, 1);
    // no op on a: its descriptor of the unlinked file goes anyway
    expect(await waitFor(() => !a.fs.nodes.isCached(f), 2000)).toBe(true);
    await Bun.sleep(0);
    expect(namelessFds(d)).toBe(0);
  });

  test("one directory stream read in turns by two instances lists every entry once, also when one repeats an offset after the other moved the descriptor", async () => {
    const d = dir("stream-turns");
    const want: string[] = [];
    // more than one getdents batch (32 KiB) of entries
    for (let i = 0; i < 2000; i++) {
      const n = `entry-${i}-${"x".repeat(40)}`;
      writeFileSync(join(d, n), "");
      want.push(n);
    }
    const a = await instance(d);
    const b = await instance(d, {}, a.kept);
    const o = a.fs.opendir!(REQ(), 1, 0) as { fh: number };
    const seen: string[] = [];
    let offset = 0;
    for (let turn = 0; turn < 1000; turn++) {
      const c = collector(45);
      (turn % 3 === 1 ? b : a).fs.readdir!(REQ(), 1, o.fh, offset, c.list);
      if (c.got.length === 0) break;
      for (const e of c.got) seen.push(e.name);
      offset = c.got[c.got.length - 1]!.off;
    }
    expect(seen.filter((n) => n !== "." && n !== "..").sort()).toEqual(want.sort());
    // The same offset asked again on a after b read the stream to its end (a retried request):
    // a's cached batch runs out part way, and the shared descriptor is at b's position by then.
    const first = collector(45);
    a.fs.readdir!(REQ(), 1, o.fh, 0, first.list);
    const at = first.got[first.got.length - 1]!.off;
    const rest = collector();
    b.fs.readdir!(REQ(), 1, o.fh, at, rest.list);
    const again = collector();
    a.fs.readdir!(REQ(), 1, o.fh, at, again.list);
    expect(again.got.map((e) => e.name)).toEqual(rest.got.map((e) => e.name));
    expect(first.got.length + rest.got.length).toBe(want.length + 2);
    a.fs.releasedir!(REQ(), 1, o.fh);
    expect(b.fs.handles.size).toBe(0);
  });

  /** This process's descriptors of files under `d` that have no name any more ("... (deleted)"). */
  function namelessFds(d: string): number {
    let n = 0;
    for (const fd of readdirSync("/proc/self/fd")) {
      try {
        const t = readlinkSync(`/proc/self/fd/${fd}`);
        if (t.startsWith(d + "/") && t.endsWith(" (deleted)")) n++;
      } catch {}
    }
    return n;
  }

  test("two instances on one table: an O_TMPFILE file made through one is named by a link through the other", async () => {
    const d = dir("tmpfile-two");
    const a = await instance(d);
    const b = await instance(d, {}, a.kept);
    const r = a.fs.tmpfile!(REQ(), 1, 0o640, sys.O_RDWR, 0) as { entry: Entry; fh: number };
    const ino = r.entry.ino;
    writeSync(a.fs.handles.file(r.fh).fd, "unnamed at first");
    expect(readdirSync(d)).toEqual([]);
    // the open file and the pinned O_PATH descriptor
    expect(namelessFds(d)).toBe(2);
    a.fs.release!(REQ(), ino, r.fh, 0);
    // the LINK comes to the other instance: it needs the pinned descriptor (no name, no parent)
    expect((b.fs.link!(REQ(), ino, 1, "named") as Entry).ino).toBe(ino);
    expect(readFileSync(join(d, "named"), "utf8")).toBe("unnamed at first");
    await Bun.sleep(0); // descriptors are closed after the op
    expect(namelessFds(d)).toBe(0);
    // named now: re-opened like any other node, through either instance
    expect((a.fs.getattr!(REQ(), ino, undefined) as Entry).nlink).toBe(1);
    a.fs.forget!(ino, 2);
    expect(b.fs.nodes.size).toBe(1);
  });

  test("an O_TMPFILE file linked, then unlinked while open, still answers getattr (by file handle or by name), on either instance", async () => {
    for (const handles of [true, false]) {
      if (handles && !root) continue; // file handles need CAP_DAC_READ_SEARCH
      const d = dir(`tmpfile-relinked-${handles}`);
      const a = await instance(d, { "fd-cache": 16, "file-handles": handles });
      const b = await instance(d, { "fd-cache": 16, "file-handles": handles }, a.kept);
      const t = a.fs.tmpfile!(REQ(), 1, 0o600, sys.O_RDWR, 0) as { entry: Entry; fh: number };
      expect(await a.fs.write!(REQ(), t.entry.ino, t.fh, 0, new TextEncoder().encode("tmp!"), 0)).toBe(4);
      a.fs.link!(REQ(), t.entry.ino, 1, "named");
      a.fs.unlink!(REQ(), 1, "named");
      await Bun.sleep(0); // descriptors closed after the op
      // fstat of the open file: from the instance that made it and from the other
      expect({ handles, size: (a.fs.getattr!(REQ(), t.entry.ino, undefined) as Entry).size }).toEqual({ handles, size: 4 });
      expect({ handles, size: (b.fs.getattr!(REQ(), t.entry.ino, undefined) as Entry).size }).toEqual({ handles, size: 4 });
      a.fs.release!(REQ(), t.entry.ino, t.fh, 0);
      a.fs.forget!(t.entry.ino, 2);
      expect(a.fs.nodes.size).toBe(1);
    }
  });

  test("two instances on one table: an O_TMPFILE file closed and forgotten through the other without a name leaves no descriptor", async () => {
    const d = dir("tmpfile-gone");
    const a = await instance(d);
    const b = await instance(d, {}, a.kept);
    const r = a.fs.tmpfile!(REQ(), 1, 0o600, sys.O_RDWR, 0) as { entry: Entry; fh: number };
    const ino = r.entry.ino;
    expect(namelessFds(d)).toBe(2);
    b.fs.release!(REQ(), ino, r.fh, 0);
    b.fs.forget!(ino, 1);
    expect(a.fs.nodes.size).toBe(1);
    await Bun.sleep(0);
    // the pin is closed too (an O_PATH descriptor of the nameless file would keep its space in use)
    expect(namelessFds(d)).toBe(0);
    throwsErrno(() => a.fs.link!(REQ(), ino, 1, "late"), "ESTALE");
  });

  test("two instances on one table: a file unlinked while open is still reached through the other instance", async () => {
    const d = dir("unlinked-open");
    // re-opened by name (file handles may still open an unlinked inode, depending on the filesystem)
    const a = await instance(d, { "file-handles": false });
    const b = await instance(d, { "file-handles": false }, a.kept);
    const r = a.fs.create!(REQ(), 1, "f", 0o644, sys.O_RDWR, 0) as { entry: Entry; fh: number };
    const ino = r.entry.ino;
    a.fs.unlink!(REQ(), 1, "f");
    // b has no descriptor of it cached, and neither its name nor its file handle opens it now
    expect(b.fs.nodes.isCached(ino)).toBe(false);
    expect((b.fs.getattr!(REQ(), ino, undefined) as Entry).nlink).toBe(0);
    expect(b.fs.listxattr!(REQ(), ino)).toEqual([]);
    b.fs.release!(REQ(), ino, r.fh, 0);
    b.fs.forget!(ino, 1);
    expect(a.fs.nodes.size).toBe(1);
  });

  test("two instances on one table under kernel passthrough: opens of one inode follow the open already there, whichever instance made it", async () => {
    const d = dir("suid-two");
    const file = join(d, "f");
    writeFileSync(file, "x");
    chmodSync(file, 0o644);
    const a = await instance(d, {}, undefined, undefined, true);
    const b = await instance(d, {}, a.kept, undefined, true);
    const f = (a.fs.lookup!(REQ(), 1, "f") as Entry).ino;
    type Open = { fh: number; backingFd?: number };
    const o1 = a.fs.open!(REQ(), f, sys.O_RDWR) as Open;
    expect(o1.backingFd).toBeDefined();
    // setuid while a's passthrough open is held: b's open must pass through as well
    chmodSync(file, 0o4755);
    const o2 = b.fs.open!(REQ(), f, sys.O_RDWR) as Open;
    expect(o2.backingFd).toBeDefined();
    a.fs.release!(REQ(), f, o1.fh, 0);
    b.fs.release!(REQ(), f, o2.fh, 0);
    // nothing open: a setuid file is served by the daemon ...
    const o3 = b.fs.open!(REQ(), f, sys.O_RDWR) as Open;
    expect(o3.backingFd).toBeUndefined();
    // ... and while that open is held, a's open follows it even though the bit is gone
    chmodSync(file, 0o644);
    const o4 = a.fs.open!(REQ(), f, sys.O_RDONLY) as Open;
    expect(o4.backingFd).toBeUndefined();
    b.fs.release!(REQ(), f, o3.fh, 0);
    a.fs.release!(REQ(), f, o4.fh, 0);
    // all closed: an ordinary file passes through again
    const o5 = b.fs.open!(REQ(), f, sys.O_RDONLY) as Open;
    expect(o5.backingFd).toBeDefined();
    b.fs.release!(REQ(), f, o5.fh, 0);
    a.fs.forget!(f, 1);
  });

  test("access (no_default_permissions): mode bits against the caller", async () => {
    const d = dir("access");
    writeFileSync(join(d, "f"), "");
    chmodSync(join(d, "f"), 0o640);
    const { fs } = await instance(d);
    const f = fs.lookup!(REQ(), 1, "f") as Entry;
    fs.access!(REQ(), f.ino, 4 | 2); // root
    await rejectsErrno(() => fs.access!(REQ(), f.ino, 1), "EACCES"); // no x bit anywhere
    await rejectsErrno(() => fs.access!(REQ(4242, 4242, 0), f.ino, 4), "EACCES"); // others: ---
    fs.access!(REQ(4242, 0, 0), f.ino, 4); // group root: r--
    await rejectsErrno(() => fs.access!(REQ(4242, 0, 0), f.ino, 2), "EACCES");
    fs.access!(REQ(4242, 4242, 0), f.ino, 0);
    // supplementary groups of the calling process count (read from /proc/<pid>/status)
    if (root) {
      const { chownSync } = await import("node:fs");
      chownSync(join(d, "f"), 0, 777);
      const member = Bun.spawn(["setpriv", "--groups=777", "sleep", "30"]);
      try {
        for (let i = 0; i < 100 && !/^Groups:\s*777\s*$/m.test(readFileSync(`/proc/${member.pid}/status`, "utf8")); i++) await Bun.sleep(20);
        fs.access!(REQ(4242, 4242, member.pid), f.ino, 4);
        await rejectsErrno(() => fs.access!(REQ(4242, 4242, 0), f.ino, 4), "EACCES");
      } finally {
        member.kill();
      }
    }
  });
});
