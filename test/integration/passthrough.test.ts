/**
 * passthrough through the real kernel, over both transports: the mount against the native
 * directory (differential), changes made behind its back, symlinks that point outside, ownership
 * for other users, kernel passthrough on and off, and `cp -r` / `diff -r` of a tree.
 *
 * The test process never makes a blocking call on a mount: it uses node:fs/promises and spawned
 * tools; the differential runner is a child process (it makes synchronous calls, with a timeout).
 */
import { describe, test, expect } from "bun:test";
import { writeFileSync, readFileSync, mkdirSync, symlinkSync, lstatSync, statSync, renameSync, unlinkSync, rmSync, chmodSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import {
  withMount, transports, makeTempDir, removeTempDir, withTempDir, spawnDaemon, isMounted, waitFor, REPO, isRoot, type Transport,
} from "../helpers/mount.ts";
import { needsCpus, needsRoot } from "../helpers/skip.ts";
import { run, sh, describeResult } from "../helpers/run.ts";
import { randomBytes, sha256 } from "../helpers/data.ts";

const SYS = join(REPO, "runtime/api/sys.ts");

/** A source directory for one test, removed afterwards (after the mount is gone). */
async function withSource(fn: (src: string) => Promise<void>): Promise<void> {
  const src = await makeTempDir("src");
  try {
    await fn(src);
  } finally {
    await removeTempDir(src);
  }
}

function mountOpts(transport: Transport, src: string, options: string[] = []) {
  return { plugin: "passthrough", transport, options, args: ["--source", src] };
}

// ---------------------------------------------------------------------------------------------
// The differential runner: applies the same seeded sequence of operations to the mount and to a
// native reference directory, recording each result or errno; then compares the trees, and the
// mount's stat results with the source's own.

const RUNNER = String.raw`
import * as fs from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import * as sys from ${JSON.stringify(SYS)};

const [MNT, REF, SRC, seedArg, stepsArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
function rnd(n) {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
/** Deterministic data from a seed drawn with the step's arguments (the same for both roots). */
function bytes(ds, n) {
  const b = Buffer.alloc(n);
  let x = ds >>> 0 || 7;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x; }
  return b;
}
const hash = (b) => createHash("sha1").update(b).digest("hex").slice(0, 12);
const NAMES = ["f0", "f1", "f2", "d0", "d1", "d0/f0", "d0/f1", "d0/d2", "d0/d2/f3", "d1/f0", "d1/d3", "s0", "s1", "d0/s2", "s0/f0"];
// relative targets without "..": whatever a link's directory, it resolves inside the tree (the ops
// below follow links, and must never reach the host)
const TARGETS = ["f0", "d0", "missing", "d0/f1", "s1", "f1", "d0/d2"];
const MODES = [0o600, 0o644, 0o755, 0o700, 0o640, 0o444];
const name = () => NAMES[rnd(NAMES.length)];
const R = sys.AT_FDCWD;

function kind(st) {
  return st.isFile() ? "f" : st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isFIFO() ? "p" : "?";
}
function describeStat(st) {
  return kind(st) + ":" + (st.mode & 0o7777).toString(8) + ":" + (st.isDirectory() ? "-" : st.size) + ":" + st.nlink;
}

// each op: (root, args) => result; args are drawn once per step and used on both roots
const OPS = {
  write: { args: () => [name(), rnd(4) === 0 ? 70000 + rnd(200000) : rnd(5000), rnd(1e9)], fn: (r, [p, n, ds]) => { fs.writeFileSync(join(r, p), bytes(ds, n)); } },
  pwrite: { args: () => [name(), rnd(9000), rnd(3000), rnd(1e9)], fn: (r, [p, off, n, ds]) => { const fd = fs.openSync(join(r, p), "r+"); try { return fs.writeSync(fd, bytes(ds, n), 0, n, off); } finally { fs.closeSync(fd); } } },
  append: { args: () => [name(), rnd(3000), rnd(1e9)], fn: (r, [p, n, ds]) => { fs.appendFileSync(join(r, p), bytes(ds, n)); } },
  read: { args: () => [name()], fn: (r, [p]) => hash(fs.readFileSync(join(r, p))) },
  excl: { args: () => [name()], fn: (r, [p]) => { fs.closeSync(fs.openSync(join(r, p), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o640)); } },
  truncate: { args: () => [name(), rnd(10000)], fn: (r, [p, n]) => { fs.truncateSync(join(r, p), n); } },
  mkdir: { args: () => [name(), MODES[rnd(MODES.length)] | 0o700], fn: (r, [p, m]) => { fs.mkdirSync(join(r, p), m); } },
  rmdir: { args: () => [name()], fn: (r, [p]) => { fs.rmdirSync(join(r, p)); } },
  unlink: { args: () => [name()], fn: (r, [p]) => { fs.unlinkSync(join(r, p)); } },
  rename: { args: () => [name(), name()], fn: (r, [a, b]) => { fs.renameSync(join(r, a), join(r, b)); } },
  noreplace: { args: () => [name(), name()], fn: (r, [a, b]) => { sys.renameat2(R, join(r, a), R, join(r, b), sys.RENAME_NOREPLACE); } },
  exchange: { args: () => [name(), name()], fn: (r, [a, b]) => { sys.renameat2(R, join(r, a), R, join(r, b), sys.RENAME_EXCHANGE); } },
  symlink: { args: () => [TARGETS[rnd(TARGETS.length)], name()], fn: (r, [t, p]) => { fs.symlinkSync(t, join(r, p)); } },
  readlink: { args: () => [name()], fn: (r, [p]) => fs.readlinkSync(join(r, p)) },
  link: { args: () => [name(), name()], fn: (r, [a, b]) => { fs.linkSync(join(r, a), join(r, b)); } },
  chmod: { args: () => [name(), MODES[rnd(MODES.length)]], fn: (r, [p, m]) => { fs.chmodSync(join(r, p), m); } },
  utimens: { args: () => [name(), 1e9 + rnd(1e8), rnd(1e9)], fn: (r, [p, s, ns]) => { sys.utimensat(R, join(r, p), { sec: s, nsec: ns }, { sec: s + 1, nsec: ns }, sys.AT_SYMLINK_NOFOLLOW); const st = fs.lstatSync(join(r, p), { bigint: true }); return String(st.mtimeNs); } },
  lstat: { args: () => [name()], fn: (r, [p]) => describeStat(fs.lstatSync(join(r, p))) },
  stat: { args: () => [name()], fn: (r, [p]) => describeStat(fs.statSync(join(r, p))) },
  readdir: { args: () => [["", "d0", "d1", "d0/d2", "s0"][rnd(5)]], fn: (r, [p]) => fs.readdirSync(join(r, p)).sort().join(",") },
  setxattr: { args: () => [name(), "user.k" + rnd(3), rnd(3), 1 + rnd(40), rnd(1e9)], fn: (r, [p, k, flags, n, ds]) => { sys.lsetxattr(join(r, p), k, bytes(ds, n), flags); } },
  getxattr: { args: () => [name(), "user.k" + rnd(3)], fn: (r, [p, k]) => hash(sys.lgetxattr(join(r, p), k)) },
  listxattr: { args: () => [name()], fn: (r, [p]) => sys.llistxattr(join(r, p)).filter((n) => n.startsWith("user.")).sort().join(",") },
  removexattr: { args: () => [name(), "user.k" + rnd(3)], fn: (r, [p, k]) => { sys.lremovexattr(join(r, p), k); } },
  seek: { args: () => [name(), rnd(2) ? sys.SEEK_DATA : sys.SEEK_HOLE, rnd(8000)], fn: (r, [p, w, off]) => { const fd = fs.openSync(join(r, p), "r"); try { return fs.fstatSync(fd).isFile() ? sys.lseek(fd, off, w) : "not a file"; } finally { fs.closeSync(fd); } } },
  fallocate: { args: () => [name(), rnd(20000), 1 + rnd(20000), rnd(2) ? sys.FALLOC_FL_KEEP_SIZE : 0], fn: (r, [p, off, len, mode]) => { const fd = fs.openSync(join(r, p), "r+"); try { sys.fallocate(fd, mode, off, len); return fs.fstatSync(fd).size; } finally { fs.closeSync(fd); } } },
  copy: { args: () => [name(), name(), rnd(3000), rnd(5000)], fn: (r, [a, b, off, len]) => { const fa = fs.openSync(join(r, a), "r"); try { const fb = fs.openSync(join(r, b), "r+"); try { return sys.copy_file_range(fa, 0, fb, off, len); } finally { fs.closeSync(fb); } } finally { fs.closeSync(fa); } } },
};
const OP_NAMES = Object.keys(OPS);

function outcome(fn) {
  try {
    const v = fn();
    return v === undefined ? "ok" : "ok:" + v;
  } catch (e) {
    return e.code ?? "threw:" + e.message;
  }
}

const steps = [];
const mismatches = [];
function step(op, args) {
  const a = outcome(() => OPS[op].fn(MNT, args));
  const b = outcome(() => OPS[op].fn(REF, args));
  steps.push({ op, args, a, b });
  if (a !== b) mismatches.push({ i: steps.length - 1, op, args, mount: a, native: b });
}

// a fixed prologue of operations that must fail, then the seeded random sequence
const prologue = [
  ["mkdir", ["d0", 0o755]], ["write", ["d0/f0", 10, 1]], ["mkdir", ["d1", 0o755]], ["write", ["f0", 100, 2]],
  ["rename", ["d1", "d0"]], ["unlink", ["f1"]], ["rmdir", ["d0"]], ["rename", ["f0", "d0"]], ["rename", ["d1", "f0"]],
  ["link", ["d0", "f2"]], ["mkdir", ["d0", 0o700]], ["noreplace", ["f0", "d0/f0"]], ["exchange", ["f0", "f2"]],
  ["getxattr", ["f0", "user.none"]], ["setxattr", ["f0", "user.k0", 0, 3, 3]], ["setxattr", ["f0", "user.k0", sys.XATTR_CREATE, 3, 4]],
  ["setxattr", ["f0", "user.k9", sys.XATTR_REPLACE, 3, 5]], ["removexattr", ["f0", "user.k9"]], ["rmdir", ["f0"]], ["read", ["f1"]],
  ["symlink", ["d0", "f0"]], ["readlink", ["f0"]], ["truncate", ["d0", 0]], ["rename", ["d0", "d0/d2"]], ["excl", ["f0"]],
  ["symlink", ["d0", "s0"]], ["write", ["s0/f1", 5, 6]], ["readdir", ["s0"]], ["lstat", ["s0"]], ["stat", ["s0"]],
  ["setxattr", ["s0", "user.k1", 0, 3, 7]], ["exchange", ["d0", "d1"]], ["readdir", [""]],
];
for (const [op, args] of prologue) step(op, args);
const n = Number(stepsArg);
for (let i = 0; i < n; i++) {
  const op = OP_NAMES[rnd(OP_NAMES.length)];
  step(op, OPS[op].args());
}

// the trees: mount vs reference (structure, modes, contents, link targets, xattrs) ...
function walk(root, rel = "", out = new Map()) {
  for (const e of fs.readdirSync(join(root, rel)).sort()) {
    const p = rel ? rel + "/" + e : e;
    const st = fs.lstatSync(join(root, p));
    let v = kind(st) + ":" + (st.mode & 0o7777).toString(8) + ":" + st.nlink;
    if (st.isFile()) v += ":" + hash(fs.readFileSync(join(root, p)));
    if (st.isSymbolicLink()) v += ":" + fs.readlinkSync(join(root, p));
    v += ":" + sys.llistxattr(join(root, p)).filter((x) => x.startsWith("user.")).sort().map((k) => k + "=" + hash(sys.lgetxattr(join(root, p), k))).join(",");
    out.set(p, v);
    if (st.isDirectory()) walk(root, p, out);
  }
  return out;
}
// ... and the mount's stat results vs the source's own, field by field (after the attribute
// cache timeout, before anything reads the files again)
Bun.sleepSync(1100);
const statDiffs = [];
function compareStats(rel = "") {
  for (const e of fs.readdirSync(join(SRC, rel))) {
    const p = rel ? rel + "/" + e : e;
    const a = fs.lstatSync(join(MNT, p), { bigint: true }), b = fs.lstatSync(join(SRC, p), { bigint: true });
    for (const k of ["ino", "mode", "nlink", "uid", "gid", "size", "blocks", "mtimeNs", "ctimeNs"]) {
      if (a[k] !== b[k]) statDiffs.push(p + " " + k + ": mount " + a[k] + " source " + b[k]);
    }
    if (b.isDirectory()) compareStats(p);
  }
}
compareStats();
const tm = walk(MNT), tr = walk(REF), ts = walk(SRC);
const treeDiffs = [];
for (const k of new Set([...tm.keys(), ...tr.keys()])) if (tm.get(k) !== tr.get(k)) treeDiffs.push(k + ": mount " + tm.get(k) + " native " + tr.get(k));
for (const k of new Set([...tm.keys(), ...ts.keys()])) if (tm.get(k) !== ts.get(k)) treeDiffs.push(k + ": mount " + tm.get(k) + " source " + ts.get(k));
const codes = {};
for (const s of steps) { const c = s.a.startsWith("ok") ? "ok" : s.a; codes[c] = (codes[c] ?? 0) + 1; }
console.log(JSON.stringify({ steps: steps.length, codes, prologue: steps.slice(0, prologue.length).map((s) => s.a), mismatches, statDiffs, treeDiffs, entries: tm.size }));
`;

interface DiffReport {
  steps: number;
  codes: Record<string, number>;
  prologue: string[];
  mismatches: unknown[];
  statDiffs: string[];
  treeDiffs: string[];
  entries: number;
}

async function differential(mnt: string, src: string, seed: number, steps: number): Promise<DiffReport> {
  return withTempDir(async (scratch) => {
    const ref = join(scratch, "ref");
    mkdirSync(ref);
    const script = join(scratch, "runner.mjs");
    writeFileSync(script, RUNNER);
    const r = await run([process.execPath, script, mnt, ref, src, String(seed), String(steps)], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(describeResult(r));
    return JSON.parse(r.stdout) as DiffReport;
  }, "diff");
}

// ---------------------------------------------------------------------------------------------

describe.each(transports())("passthrough over %s", (transport) => {
  test("differential: a seeded sequence of operations gives the same results and errno through the mount as on a native directory", async () => {
    await withSource(async (src) => {
      await withMount(mountOpts(transport, src), async (m) => {
        const seed = transport === "io_uring" ? 20251124 : 4242;
        const rep = await differential(m.dir, src, seed, 500);
        expect(rep.mismatches).toEqual([]);
        expect(rep.treeDiffs).toEqual([]);
        expect(rep.statDiffs).toEqual([]);
        // the failing operations were really exercised, with the errno Linux gives
        expect(rep.prologue).toEqual([
          "ok", "ok", "ok", "ok",
          "ENOTEMPTY", "ENOENT", "ENOTEMPTY", "EISDIR", "ENOTDIR",
          "EPERM", "EEXIST", "EEXIST", "ENOENT",
          "ENODATA", "ok", "EEXIST",
          "ENODATA", "ENODATA", "ENOTDIR", "ENOENT",
          "EEXIST", "EINVAL", "EISDIR", "EINVAL", "EEXIST",
          "ok", "ok", "ok:f0,f1", "ok:l:777:2:1", "ok:d:755:-:2",
          "EPERM", "ok", "ok:d0,d1,f0,s0",
        ]);
        expect(rep.codes.ok).toBeGreaterThan(100);
        expect(Object.keys(rep.codes).length).toBeGreaterThan(6); // and a variety of errno
        expect(rep.entries).toBeGreaterThan(3);
      });
    });
  });

  test("changes made in the source appear; a file renamed behind the mount's back keeps working while open", async () => {
    await withSource(async (src) => {
      mkdirSync(join(src, "dir"));
      writeFileSync(join(src, "dir", "open.txt"), "0123456789");
      await withMount(mountOpts(transport, src), async (m) => {
        const mnt = m.dir;
        // new files appear at once (no negative caching); changed ones within the attribute timeout
        writeFileSync(join(src, "outside.txt"), "from outside");
        expect(await fsp.readFile(join(mnt, "outside.txt"), "utf8")).toBe("from outside");
        writeFileSync(join(src, "outside.txt"), "changed from outside, longer");
        expect(await waitFor(async () => (await fsp.readFile(join(mnt, "outside.txt"), "utf8")) === "changed from outside, longer", 5000)).toBe(true);
        unlinkSync(join(src, "outside.txt"));
        expect(await waitFor(async () => !(await fsp.stat(join(mnt, "outside.txt")).then(() => true, () => false)), 5000)).toBe(true);
        mkdirSync(join(src, "newdir"));
        writeFileSync(join(src, "newdir", "x"), "x");
        expect(await fsp.readdir(join(mnt, "newdir"))).toEqual(["x"]);

        // open through the mount, then move the file and its directory away in the source
        const fh = await fsp.open(join(mnt, "dir", "open.txt"), "r+");
        try {
          mkdirSync(join(src, "elsewhere"));
          renameSync(join(src, "dir", "open.txt"), join(src, "elsewhere", "moved.txt"));
          renameSync(join(src, "dir"), join(src, "elsewhere", "dir2"));
          writeFileSync(join(src, "open.txt"), "impostor"); // a different file takes an old name
          const buf = Buffer.alloc(10);
          const { bytesRead } = await fh.read(buf, 0, 10, 0);
          expect(buf.toString("utf8", 0, bytesRead)).toBe("0123456789");
          await fh.write("ABC", 3);
          await fh.sync();
          expect(readFileSync(join(src, "elsewhere", "moved.txt"), "utf8")).toBe("012ABC6789");
          expect((await fh.stat()).size).toBe(10);
        } finally {
          await fh.close();
        }
        expect(readFileSync(join(src, "open.txt"), "utf8")).toBe("impostor");
        expect(await fsp.readFile(join(mnt, "elsewhere", "moved.txt"), "utf8")).toBe("012ABC6789");
      });
    });
  });

  test("symlinks pointing outside are links, never followed by the server; '..' stays inside", async () => {
    await withSource(async (src) => {
      mkdirSync(join(src, "dir"));
      symlinkSync("/etc", join(src, "escape"));
      symlinkSync("../../../../../../../../etc/passwd", join(src, "dir", "up"));
      await withMount(mountOpts(transport, src), async (m) => {
        const mnt = m.dir;
        const l = await fsp.lstat(join(mnt, "escape"));
        expect(l.isSymbolicLink()).toBe(true);
        expect(l.ino).toBe(lstatSync(join(src, "escape")).ino); // the link's own node, not /etc
        expect(await fsp.readlink(join(mnt, "escape"))).toBe("/etc");
        expect(await fsp.readlink(join(mnt, "dir", "up"))).toBe("../../../../../../../../etc/passwd");
        const ents = await fsp.readdir(mnt, { withFileTypes: true });
        expect(ents.find((e) => e.name === "escape")!.isSymbolicLink()).toBe(true);
        // following it is the client's own resolution: the kernel goes to the host's /etc
        expect((await fsp.readdir(join(mnt, "escape"))).sort()).toEqual((await fsp.readdir("/etc")).sort());
        // replacing the link by a file through the mount changes the link, never its target
        const before = statSync("/etc/hostname").mtimeMs;
        await fsp.unlink(join(mnt, "escape"));
        await fsp.writeFile(join(mnt, "escape"), "a plain file");
        expect(readFileSync(join(src, "escape"), "utf8")).toBe("a plain file");
        expect(statSync("/etc/hostname").mtimeMs).toBe(before);
        // ".." is resolved by the kernel within the mount: the file lands in the source
        await fsp.writeFile(join(mnt, "dir", "..", "x"), "via dotdot");
        expect(readFileSync(join(src, "x"), "utf8")).toBe("via dotdot");
        // operations on a link itself (lutimes, lchown) change the link in the source, not its target
        symlinkSync("/etc/hostname", join(src, "dir", "host"));
        const host = statSync("/etc/hostname");
        await fsp.lutimes(join(mnt, "dir", "host"), new Date(1_000_000_000_000), new Date(1_000_000_001_000));
        if (isRoot()) await fsp.lchown(join(mnt, "dir", "host"), 4321, 8765);
        const ls = lstatSync(join(src, "dir", "host"));
        expect(ls.mtimeMs).toBe(1_000_000_001_000);
        if (isRoot()) expect([ls.uid, ls.gid]).toEqual([4321, 8765]);
        const after = statSync("/etc/hostname");
        expect([after.mtimeMs, after.uid, after.gid]).toEqual([host.mtimeMs, host.uid, host.gid]);
      });
    });
  });

  test.skipIf(needsRoot("passthrough ownership of new nodes", "other users through allow_other"))("new files and directories belong to the calling user (allow_other), modes and times are kept", async () => {
    await withSource(async (src) => {
      chmodSync(src, 0o755); // the mount's root is the source's: let the other user in
      mkdirSync(join(src, "shared"));
      chmodSync(join(src, "shared"), 0o777);
      await withMount(mountOpts(transport, src, ["allow_other"]), async (m) => {
        const as = (cmd: string[]) => sh(["setpriv", "--reuid=4321", "--regid=8765", "--clear-groups", ...cmd]);
        const d = join(m.dir, "shared");
        await as(["sh", "-c", `umask 022 && touch "$0/file" && mkdir "$0/sub" && ln -s target "$0/link" && mkfifo -m 600 "$0/fifo"`, d]);
        for (const n of ["file", "sub", "link", "fifo"]) {
          const st = lstatSync(join(src, "shared", n));
          expect([n, st.uid, st.gid]).toEqual([n, 4321, 8765]);
        }
        expect(statSync(join(src, "shared", "file")).mode & 0o777).toBe(0o644);
        expect(statSync(join(src, "shared", "sub")).mode & 0o777).toBe(0o755);
        // POSIX checks now work for that user: chmod their own file, and not root's
        await as(["chmod", "600", join(d, "file")]);
        expect(statSync(join(src, "shared", "file")).mode & 0o777).toBe(0o600);
        writeFileSync(join(src, "shared", "roots"), "");
        const r = await run(["setpriv", "--reuid=4321", "--regid=8765", "--clear-groups", "chmod", "600", join(d, "roots")]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/not permitted/);
        // times with nanoseconds go through unchanged
        await fsp.utimes(join(d, "file"), new Date(1_000_000_000_123), new Date(1_500_000_000_456));
        expect(statSync(join(src, "shared", "file")).mtimeMs).toBe(1_500_000_000_456);
      });
    });
  });

  test("one file open several times at once (read and write), with and without kernel passthrough", async () => {
    await withSource(async (src) => {
      writeFileSync(join(src, "shared.txt"), "0123456789");
      for (const options of [[], ["no_passthrough"]]) {
        await withMount(mountOpts(transport, src, options), async (m) => {
          const p = join(m.dir, "shared.txt");
          const open: fsp.FileHandle[] = [];
          try {
            const r1 = await fsp.open(p, "r").then((h) => (open.push(h), h));
            const w = await fsp.open(p, "r+").then((h) => (open.push(h), h));
            const a = await fsp.open(p, "a").then((h) => (open.push(h), h));
            await w.write("AB", 0);
            await a.appendFile("+tail");
            const buf = Buffer.alloc(32);
            const { bytesRead } = await r1.read(buf, 0, 32, 0);
            expect(buf.toString("utf8", 0, bytesRead)).toBe("AB23456789+tail");
            expect(await fsp.readFile(p, "utf8")).toBe("AB23456789+tail"); // a fourth open
          } finally {
            await Promise.all(open.map((h) => h.close()));
          }
          expect(readFileSync(join(src, "shared.txt"), "utf8")).toBe("AB23456789+tail");
          writeFileSync(join(src, "shared.txt"), "0123456789");
        });
      }
    });
  });

  test.skipIf(needsRoot("passthrough append-only and immutable files", "chattr +a and +i"))("append-only and immutable files (chattr +a, +i) behave as on the native directory, with and without kernel passthrough", async () => {
    await withTempDir(async (dir) => {
      const ref = join(dir, "native");
      mkdirSync(ref);
      // a shell per case; $0 is the file. Exit status and what the file holds afterwards are compared.
      const cases: Record<string, string> = {
        "append": `echo appended >> "$0"`,
        "overwrite (O_TRUNC)": `echo replaced > "$0"`,
        "write in place (no O_APPEND)": `printf X | dd of="$0" conv=notrunc status=none`,
        "read": `cat "$0" > /dev/null`,
        "append while a reader holds it open": `exec 3< "$0"; echo held >> "$0"; cat <&3 > /dev/null`,
        "reader first, then read-write append": `exec 3< "$0"; exec 4<> "$0"; echo rw >> "$0"`,
        "truncate": `truncate -s 0 "$0"`,
      };
      for (const options of [[], ["no_passthrough"]]) {
        await withSource(async (src) => {
          const files: string[] = [];
          for (const attr of ["+a", "+i"])
            for (const i of Object.keys(cases).keys())
              for (const d of [ref, src]) {
                const f = join(d, `${attr === "+a" ? "append" : "immutable"}-${i}`);
                writeFileSync(f, "start\n");
                files.push(f);
                const r = await run(["chattr", attr, f]);
                if (r.code !== 0) return void console.warn(`skipping the chattr test: ${describeResult(r)}`);
              }
          try {
            await withMount(mountOpts(transport, src, options), async (m) => {
              const got: string[] = [], want: string[] = [];
              for (const attr of ["append", "immutable"])
                for (const [i, [name, cmd]] of Object.entries(cases).entries()) {
                  const base = `${attr}-${i}`;
                  const a = await run(["sh", "-c", cmd, join(ref, base)]);
                  const b = await run(["sh", "-c", cmd, join(m.dir, base)]);
                  want.push(`${attr} ${name}: exit ${a.code === 0 ? 0 : "≠ 0"}, ${JSON.stringify(readFileSync(join(ref, base), "utf8"))}`);
                  got.push(`${attr} ${name}: exit ${b.code === 0 ? 0 : "≠ 0"}, ${JSON.stringify(readFileSync(join(src, base), "utf8"))}`);
                }
              expect(got).toEqual(want);
              expect(want.filter((w) => w.includes("exit 0")).length).toBeGreaterThan(3);
              expect(want.filter((w) => w.includes("≠ 0")).length).toBeGreaterThan(3);
            });
          } finally {
            for (const f of files) await run(["chattr", "-a", "-i", f]);
          }
        });
      }
    }, "chattr");
  });

  for (const kernelPassthrough of [true, false]) {
    test(`${kernelPassthrough ? "kernel passthrough" : "-o no_passthrough"}: identical contents, cp -r and diff -r of a tree`, async () => {
      await withTempDir(async (tree) => {
        // a tree with nested directories, empty and multi-MiB files, links and odd names
        mkdirSync(join(tree, "a", "b", "c"), { recursive: true });
        writeFileSync(join(tree, "empty"), "");
        writeFileSync(join(tree, "big.bin"), randomBytes(3 << 20, 7));
        writeFileSync(join(tree, "a", "odd name ü.txt"), "odd");
        for (let i = 0; i < 60; i++) writeFileSync(join(tree, "a", "b", `f${i}`), randomBytes(i * 997, i));
        writeFileSync(join(tree, "a", "b", "c", "deep"), randomBytes(200_000, 99));
        symlinkSync("../big.bin", join(tree, "a", "link"));
        await withSource(async (src) => {
          writeFileSync(join(src, "pre.bin"), randomBytes(5 << 20, 3));
          await withMount(mountOpts(transport, src, kernelPassthrough ? [] : ["no_passthrough"]), async (m) => {
            // a file written in the source reads back identical through the mount
            expect(sha256(await fsp.readFile(join(m.dir, "pre.bin")))).toBe(sha256(readFileSync(join(src, "pre.bin"))));
            const st = await m.status();
            if (kernelPassthrough && isRoot()) {
              const opened = Number(/on \((\d+) backing files opened\)/.exec(String(st.passthrough))?.[1] ?? 0);
              expect(opened).toBeGreaterThan(0);
            } else {
              expect(String(st.passthrough)).toBe("off");
              expect(st.ops.read?.count ?? 0).toBeGreaterThan(0); // the daemon served the reads
            }
            // cp -r into the mount, then diff against the original, through the mount and in the source
            await sh(["cp", "-r", tree, join(m.dir, "copy")], { timeoutMs: 60_000 });
            await sh(["diff", "-r", "--no-dereference", tree, join(src, "copy")], { timeoutMs: 60_000 });
            await sh(["diff", "-r", "--no-dereference", tree, join(m.dir, "copy")], { timeoutMs: 60_000 });
            expect(await fsp.readlink(join(m.dir, "copy", "a", "link"))).toBe("../big.bin");
            expect(sha256(await fsp.readFile(join(m.dir, "copy", "big.bin")))).toBe(sha256(readFileSync(join(tree, "big.bin"))));
            // and back out with cp -a (modes and times preserved both ways), beside the tree: a
            // fixed /tmp/back was shared by concurrent runs and left behind by a failed one
            const back = `${tree}-back`;
            try {
              await sh(["cp", "-a", join(m.dir, "copy"), back], { timeoutMs: 60_000 });
              await sh(["diff", "-r", "--no-dereference", tree, back], { timeoutMs: 60_000 });
              const a = statSync(join(src, "copy", "a", "b", "f5"), { bigint: true }), b = statSync(join(back, "a", "b", "f5"), { bigint: true });
              expect(b.mtimeNs).toBe(a.mtimeNs);
              expect(b.mode).toBe(a.mode);
            } finally {
              rmSync(back, { recursive: true, force: true });
            }
          });
        });
      }, "tree");
    });
  }
});

// With reactor Workers, the opens of one file (and an open and its RELEASE) can be served by
// different Workers; the kernel takes one backing file per inode, so they must share it.
const TWO_CPUS = String.raw`
import os, sys
p = sys.argv[1]
os.sched_setaffinity(0, {0}); a = os.open(p, os.O_RDWR)
os.sched_setaffinity(0, {1}); b = os.open(p, os.O_RDWR)
os.pwrite(a, b"from cpu 0\n", 0); os.pwrite(b, b"from cpu 1\n", 11)
os.close(a)
os.sched_setaffinity(0, {0}); c = os.open(p, os.O_RDONLY)
sys.stdout.write(os.pread(c, 100, 0).decode())
os.close(b); os.close(c)
`;

describe.skipIf(needsRoot("kernel passthrough with reactor Workers", "FUSE passthrough needs CAP_SYS_ADMIN") || needsCpus(2, "kernel passthrough with reactor Workers", "opens from two CPUs reach two Workers"))(
  "passthrough with 2 reactor Workers",
  () => {
    test.each(transports())("kernel passthrough over %s: opens of one file from two CPUs share one backing file", async (transport) => {
      await withSource(async (src) => {
        writeFileSync(join(src, "f"), "");
        await withMount({ ...mountOpts(transport, src), reactors: 2 }, async (m) => {
          expect(await sh(["python3", "-c", TWO_CPUS, join(m.dir, "f")])).toBe("from cpu 0\nfrom cpu 1\n");
          expect(readFileSync(join(src, "f"), "utf8")).toBe("from cpu 0\nfrom cpu 1\n");
          // one backing file for the node, whichever Worker registered it, counted where status reads
          const st = await m.status();
          expect(String(st.passthrough)).toBe("on (1 backing files opened)");
          expect(st.ops.write?.count ?? 0).toBe(0); // the writes passed through
        });
      });
    });
  },
);

describe("passthrough --source validation", () => {
  test("missing, not a directory, inside the mountpoint: the daemon exits ≠ 0 naming the path, nothing is mounted", async () => {
    await withTempDir(async (dir) => {
      const mnt = join(dir, "mnt");
      mkdirSync(join(mnt, "inner"), { recursive: true });
      writeFileSync(join(dir, "file"), "");
      const cases: [string, RegExp][] = [
        [join(dir, "missing"), /--source .*\/missing: does not exist/],
        [join(dir, "file"), /--source .*\/file: not a directory/],
        [join(mnt, "inner"), /--source .*\/mnt\/inner is inside the mountpoint .*\/mnt/],
        [mnt, /--source .*\/mnt is the mountpoint itself/],
      ];
      await Promise.all(
        cases.map(async ([source, re]) => {
          const d = spawnDaemon(["mount", "passthrough", mnt, "--source", source]);
          const exited = await d.waitExit(20_000);
          if (!exited) d.signal("SIGKILL");
          expect(exited).toBe(true);
          expect(d.proc.exitCode).not.toBe(0);
          expect(d.output()).toMatch(re);
        }),
      );
      expect(await isMounted(mnt)).toBe(false);
      const missing = await run([process.execPath, join(REPO, "runtime/cli/main.ts"), "mount", "passthrough", mnt], { cwd: REPO, timeoutMs: 20_000 });
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toMatch(/--source/);
    }, "val");
  });
});
