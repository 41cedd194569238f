/**
 * passthrough never reads or writes outside its source directory, whatever paths, symlinks, ".."
 * chains, hard links, renames and races a client throws at it (issue 4, safety).
 *
 * How an escape would be seen. Canary files and directories are planted next to the source (a
 * sibling directory `outside/`, and names in the source's parent that a server walking ".." would
 * reach), with contents that say SECRET, old access times (relatime updates them on any read)
 * and an inotify watcher on every canary directory (a compiled helper: any open, read, write,
 * attribute change, creation or deletion is an event). Afterwards every canary must be exactly
 * as planted: no event, same atime/mtime/ctime/size/contents, no new names. The client also
 * reports what it saw through the mount: no read may return SECRET, and no inode the mount
 * reports may be a canary's (passthrough's node ids are the source's inode numbers, so a server
 * that looked up a canary would show its number).
 *
 * Telling the server's own escapes from the client's legitimate symlink following. A symlink
 * in the source that points outside is followed by the *client's* kernel, as natively: that is
 * not the server escaping. So the client runs in a private mount namespace (unshare -m) where
 * the source's parent directory is covered by a tmpfs of decoys (DECOY contents) and /etc by an
 * overlay whose writes land in a scratch upper directory: whatever the client reaches by
 * following links lands on decoys, and only the daemon (in the original namespace) could
 * touch the real canaries. The last test shows the detector working: a simulated escape (a
 * direct read, write, creation and attribute change of the canaries, a canary inode and SECRET
 * content in the client's report) is reported.
 *
 * Scenarios: absolute and relative symlinks to /etc and to the canaries (read, write, append,
 * create, mkdir, truncate, chmod, chown, utimes through them; readlink and lstat of them), O_CREAT
 * through dangling links (plain, O_EXCL, O_NOFOLLOW), xattrs of links, ".." chains inside the
 * mount and past its root, mknod, link (with and without following) and rename across, and the
 * server's trace showing it never received ".", ".." or a name with a slash. Then races: a
 * renamer swaps a directory of the source with absolute and relative links to the outside
 * (RENAME_EXCHANGE and non-atomic rename + symlink), swaps a subdirectory likewise, and makes a
 * dangling link appear and vanish, while a client opens, reads, writes, creates, mkdirs, lists
 * and chdirs below it; with file handles, and re-opening nodes by parent and name through a
 * 16-descriptor cache (the path where a link taking a name could be followed).
 *
 * To see these tests fail, point them at a modified copy of the plugin:
 * `ESCAPE_TEST_PLUGIN=/tmp/pt bun test test/integration/passthrough-escape.test.ts`. A copy whose
 * lookups follow symlinks fails every test; one whose only fault is re-opening by name without
 * O_NOFOLLOW and the identity check fails just the racing test that re-opens by name.
 *
 * Needs root (mount namespaces, tmpfs, overlay). The test process never touches the mount: the
 * client and the racing renamer are child processes.
 */
import { describe, test, expect } from "bun:test";
import { mkdirSync, writeFileSync, readFileSync, symlinkSync, lstatSync, utimesSync, readdirSync, existsSync, statSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { withMount, transports, makeTempDir, removeTempDir, REPO, type Transport } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { run, sh, describeResult } from "../helpers/run.ts";
import * as sys from "../../runtime/api/sys.ts";

const SYS = join(REPO, "runtime/api/sys.ts");
/** An access time long past: relatime updates it on the next read. */
const OLD = new Date(1_000_000_000_000);
const ZERO = ["attr_timeout=0", "entry_timeout=0", "negative_timeout=0"];

// ---------------------------------------------------------------------------------------------
// The inotify watcher: prints "ready", then one line per event on the watched directories.

const WATCHER_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/inotify.h>
static const char *dirs[256];
int main(int argc, char **argv) {
  int fd = inotify_init1(0);
  if (fd < 0) { perror("inotify_init1"); return 1; }
  for (int i = 1; i < argc && i < 256; i++) {
    int wd = inotify_add_watch(fd, argv[i], IN_ALL_EVENTS | IN_DONT_FOLLOW);
    if (wd < 0) { perror(argv[i]); return 1; }
    if (wd < 256) dirs[wd] = argv[i];
  }
  printf("ready\n");
  fflush(stdout);
  char buf[65536] __attribute__((aligned(8)));
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 0;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      printf("%s\t%#x\t%s\n", e->wd < 256 && dirs[e->wd] ? dirs[e->wd] : "?", e->mask, e->len ? e->name : "");
      fflush(stdout);
      p += sizeof *e + e->len;
    }
  }
}
`;

/** Compiles the watcher into `dir` (gcc, a fraction of a second); null without gcc. */
async function watcherBinary(dir: string): Promise<string | null> {
  if (Bun.which("gcc") === null) {
    console.warn("passthrough escape tests: no gcc, so no inotify watcher (times, contents, names and inodes are still checked)");
    return null;
  }
  const bin = join(dir, "watch");
  if (existsSync(bin)) return bin;
  writeFileSync(join(dir, "watch.c"), WATCHER_C);
  await sh(["gcc", "-O1", "-o", bin, join(dir, "watch.c")]);
  return bin;
}

interface Watch {
  stop(): Promise<string[]>;
}

/** Watches `dirs` (each directory itself, not recursively); `ignore` filters legitimate events. */
async function watch(bin: string, dirs: string[], ignore: (line: string) => boolean): Promise<Watch> {
  const proc = Bun.spawn([bin, ...dirs], { stdout: "pipe", stderr: "pipe" });
  let out = "";
  const dec = new TextDecoder();
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((r) => (readyResolve = r));
  const pump = (async () => {
    for await (const chunk of proc.stdout) {
      out += dec.decode(chunk, { stream: true });
      if (out.includes("ready\n")) readyResolve();
    }
  })();
  await Promise.race([ready, proc.exited.then(async () => { throw new Error(`watcher exited: ${await new Response(proc.stderr).text()}`); }), Bun.sleep(10_000).then(() => { throw new Error("watcher not ready"); })]);
  return {
    async stop() {
      await Bun.sleep(100); // let late events arrive
      proc.kill("SIGTERM");
      await proc.exited;
      await pump.catch(() => {});
      return out.split("\n").slice(1).filter((l) => l !== "" && !ignore(l));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Canaries

interface Layout {
  base: string;
  /** The source's parent: canaries in it stand where a server walking ".." from the source would land. */
  srv: string;
  src: string;
  outside: string;
  /** Mountpoint of the overlay's scratch tmpfs in the client's namespace. */
  nsEtc: string;
  /** Where the client and racer scripts live (not hidden in the client's namespace). */
  cli: string;
  /** A name unique to this run, for files that must never appear in the host's /etc. */
  tag: string;
}

/** Canary files (relative to srv) and their contents. */
const CANARY_FILES: Record<string, string> = {
  "file.txt": "SECRET-parent-file", // same name as a source file: what ".." from the source root would hit
  "race/file.txt": "SECRET-parent-race",
  "outside/canary.txt": "SECRET-canary",
  "outside/canary2.txt": "SECRET-canary2",
  "outside/canary3.txt": "SECRET-canary3",
  "outside/victim/file.txt": "SECRET-victim", // same names as the racing directory's
  "outside/victim/sub/x": "SECRET-victim-x",
};
const CANARY_DIRS = ["race", "outside", "outside/victim", "outside/victim/sub"];
/** Names the client tries to create through links: none may ever appear among the canaries. */
const NEVER = ["outside/created-abs", "outside/created-abs2", "outside/created-rel", "outside/spot-target", "outside/newfile", "outside/newdir"];

interface Snap {
  path: string;
  ino: number;
  size: number;
  mode: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

async function layout(): Promise<Layout> {
  const base = await makeTempDir("escape");
  const l: Layout = {
    base,
    srv: join(base, "srv"),
    src: join(base, "srv", "DIR"),
    outside: join(base, "srv", "outside"),
    nsEtc: join(base, "nsetc"),
    cli: join(base, "cli"),
    tag: `furing-escape-${process.pid}-${Date.now()}`,
  };
  for (const d of [l.srv, l.src, l.nsEtc, l.cli, ...CANARY_DIRS.map((d) => join(l.srv, d))]) mkdirSync(d, { recursive: true });
  for (const [p, c] of Object.entries(CANARY_FILES)) writeFileSync(join(l.srv, p), c);
  // xattrs on a canary: reading them through a link must give the link's, never these
  sys.setxattr(join(l.outside, "canary.txt"), "user.secret", Buffer.from("SECRET-xattr"));
  sys.setxattr(join(l.outside, "canary.txt"), "trusted.secret", Buffer.from("SECRET-trusted"));
  return l;
}

/** Ages every canary's access time (after the last setup write), so a read would change it. */
function ageCanaries(l: Layout): void {
  for (const p of [...Object.keys(CANARY_FILES), ...CANARY_DIRS]) utimesSync(join(l.srv, p), OLD, statSync(join(l.srv, p)).mtime);
}

function canaryInodes(l: Layout): number[] {
  return [l.srv, ...[...Object.keys(CANARY_FILES), ...CANARY_DIRS].map((p) => join(l.srv, p))].map((p) => lstatSync(p).ino);
}

function snapshot(l: Layout): Snap[] {
  return [...Object.keys(CANARY_FILES), ...CANARY_DIRS].map((p) => {
    const s = lstatSync(join(l.srv, p), { bigint: true });
    return { path: p, ino: Number(s.ino), size: Number(s.size), mode: Number(s.mode), atimeNs: s.atimeNs, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
  });
}

interface Observed {
  /** Inode numbers the client saw on the FUSE mount's device. */
  inos: number[];
  /** Contents the client read (or their first bytes). */
  contents: string[];
}

/**
 * Everything that differs between the canaries now and as planted: watcher events, changed
 * times or sizes, new or missing names, changed contents or xattrs, and canary inodes or SECRET
 * contents among what the client observed. Empty when nothing escaped. Reads the canaries last
 * (after the times are compared), so it never disturbs what it checks.
 */
function canaryProblems(l: Layout, before: Snap[], events: string[], seen: Observed[], hostEtc: Map<string, number>): string[] {
  const problems = events.map((e) => `inotify: ${e}`);
  const after = new Map(snapshot(l).map((s) => [s.path, s]));
  for (const b of before) {
    const a = after.get(b.path)!;
    for (const k of ["ino", "size", "mode", "atimeNs", "mtimeNs", "ctimeNs"] as const)
      if (a[k] !== b[k]) problems.push(`${b.path}: ${k} changed from ${b[k]} to ${a[k]}`);
  }
  const expected: Record<string, string[]> = { "": CANARY_DIRS.filter((d) => !d.includes("/")) };
  for (const d of CANARY_DIRS) expected[d] = [];
  for (const f of Object.keys(CANARY_FILES)) {
    const i = f.lastIndexOf("/");
    const dir = i < 0 ? "" : f.slice(0, i);
    (expected[dir] ??= []).push(f.slice(i + 1));
  }
  for (const d of CANARY_DIRS) for (const e of CANARY_DIRS) if (e.startsWith(d + "/") && !e.slice(d.length + 1).includes("/")) expected[d]!.push(e.slice(d.length + 1));
  for (const [d, names] of Object.entries(expected)) {
    const got = readdirSync(join(l.srv, d)).filter((n) => !(d === "" && n === "DIR"));
    const want = [...names].sort();
    if (JSON.stringify(got.sort()) !== JSON.stringify(want)) problems.push(`${d || "."}: names ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`);
  }
  for (const n of NEVER) if (existsSync(join(l.srv, n))) problems.push(`${n} was created`);
  for (const [p, c] of Object.entries(CANARY_FILES)) {
    const now = readFileSync(join(l.srv, p), "utf8");
    if (now !== c) problems.push(`${p}: contents ${JSON.stringify(now.slice(0, 60))} instead of ${JSON.stringify(c)}`);
  }
  const x = sys.listxattr(join(l.outside, "canary.txt")).sort();
  if (JSON.stringify(x) !== JSON.stringify(["trusted.secret", "user.secret"])) problems.push(`outside/canary.txt: xattrs now ${JSON.stringify(x)}`);
  const inos = new Set(canaryInodes(l));
  for (const o of seen) {
    for (const i of o.inos) if (inos.has(i)) problems.push(`the client saw a canary's inode ${i} through the mount`);
    for (const c of o.contents) if (c.includes("SECRET")) problems.push(`the client read ${JSON.stringify(c.slice(0, 60))} through the mount`);
  }
  // the host's /etc: nothing of this run's tag, and the files the client wrote "through" links unchanged
  for (const n of readdirSync("/etc"))
    if (n.startsWith(l.tag)) {
      problems.push(`/etc/${n} was created`);
      rmSync(join("/etc", n), { force: true }); // an escaping server (ESCAPE_TEST_PLUGIN) leaves nothing behind
    }
  for (const [p, m] of hostEtc) if (statSync(p).mtimeMs !== m) problems.push(`${p} was modified`);
  return problems;
}

function hostEtcTimes(): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of ["/etc/hostname", "/etc/passwd"]) if (existsSync(p)) m.set(p, statSync(p).mtimeMs);
  return m;
}

/** Starts the watcher on every canary directory; events about the source itself are legitimate. */
async function watchCanaries(l: Layout): Promise<Watch> {
  const bin = await watcherBinary(l.cli);
  if (bin === null) return { stop: async () => [] };
  const dirs = [l.srv, ...CANARY_DIRS.map((d) => join(l.srv, d))];
  return watch(bin, dirs, (line) => {
    const [dir, , name] = line.split("\t");
    return dir === l.srv && name === "DIR";
  });
}

// ---------------------------------------------------------------------------------------------
// The client, run in a private mount namespace that hides the real canaries behind decoys.

/** Runs `script args...` with bun in a mount namespace where l.srv is decoys and /etc an overlay. */
async function inNamespace(l: Layout, script: string, args: string[], timeoutMs: number) {
  const setup = [
    "set -e",
    `mount -t tmpfs -o size=64m furing-decoys "$1"`,
    `mount -t tmpfs -o size=16m furing-etc "$2"`,
    `mkdir "$2/upper" "$2/work"`,
    `mount -t overlay furing-etc -o "lowerdir=/etc,upperdir=$2/upper,workdir=$2/work" /etc`,
    `shift 2`,
    `exec "$@"`,
  ].join("\n");
  const r = await run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c", setup, "sh", l.srv, l.nsEtc, process.execPath, script, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(describeResult(r));
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`client printed no JSON:\n${describeResult(r)}`);
  }
}

/** Shared by the client scripts: decoys in the namespace's tmpfs, result recording. */
const CLIENT_PRELUDE = String.raw`
import * as fs from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import * as sys from ${JSON.stringify(SYS)};
const [MNT, SRV, TAG, durationArg] = process.argv.slice(2);
// decoys where the client's own symlink following lands (the real canaries are hidden)
for (const d of ["outside/victim/sub", "race", "DIR"]) fs.mkdirSync(join(SRV, d), { recursive: true });
for (const [p, c] of [["file.txt", "DECOY-parent"], ["outside/canary.txt", "DECOY-canary"], ["outside/canary2.txt", "DECOY-canary2"],
    ["outside/canary3.txt", "DECOY-canary3"], ["outside/victim/file.txt", "DECOY-victim"], ["outside/victim/sub/x", "DECOY-x"]])
  fs.writeFileSync(join(SRV, p), c);
const FUSE_DEV = fs.statSync(MNT).dev;
const seen = { inos: [], contents: [] };
function note(st) { if (st.dev === FUSE_DEV) seen.inos.push(st.ino); return st; }
function errName(e) { return e.code ?? (e.errno !== undefined ? "errno " + e.errno : String(e.message ?? e)); }
`;

const STATIC_CLIENT = String.raw`
const M = (p) => join(MNT, p);
const res = {};
function t(name, fn) {
  try { const v = fn(); res[name] = v === undefined ? "ok" : "ok:" + v; } catch (e) { res[name] = errName(e); }
}
const read = (p) => { const c = fs.readFileSync(p, "utf8"); seen.contents.push(c); return c; };
const O = fs.constants;

// symlinks are links: their own node, their own text; following them is the client's business
for (const n of ["etc-abs", "etc-rel", "out-abs", "out-rel", "canary-abs", "canary-abs2", "canary-abs3", "canary-rel", "a/b/canary-rel-deep", "dangle-abs", "dangle-abs2", "dangle-abs3", "dangle-rel", "dangle-etc"])
  t("readlink " + n, () => fs.readlinkSync(M(n)));
t("lstat out-abs", () => { const s = note(fs.lstatSync(M("out-abs"))); return s.isSymbolicLink() ? "link" : "not a link"; });
// reading through links to outside: the client reaches the decoys (absolute) or nothing (relative
// to the mountpoint, where nothing is)
t("read canary-abs", () => read(M("canary-abs")));
t("read canary-rel", () => read(M("canary-rel")));
t("read a/b/canary-rel-deep", () => read(M("a/b/canary-rel-deep")));
t("read out-abs/victim/file.txt", () => read(M("out-abs/victim/file.txt")));
t("read out-rel/canary.txt", () => read(M("out-rel/canary.txt")));
t("read etc-abs/hostname", () => read(M("etc-abs/hostname")) === fs.readFileSync("/etc/hostname", "utf8") ? "host" : "other");
t("read etc-rel/hostname", () => read(M("etc-rel/hostname")) === fs.readFileSync("/etc/hostname", "utf8") ? "host" : "other");
// writing and creating through them
t("write canary-abs", () => fs.writeFileSync(M("canary-abs"), "written through canary-abs"));
t("append out-abs/victim/file.txt", () => fs.appendFileSync(M("out-abs/victim/file.txt"), "+appended"));
t("create out-abs/newfile", () => fs.writeFileSync(M("out-abs/newfile"), "new"));
t("mkdir out-abs/newdir", () => fs.mkdirSync(M("out-abs/newdir")));
t("write etc-abs/" + TAG + "-w", () => fs.writeFileSync(M("etc-abs/" + TAG + "-w"), "x"));
t("write etc-rel/" + TAG + "-r", () => fs.writeFileSync(M("etc-rel/" + TAG + "-r"), "x"));
t("truncate canary-abs2", () => fs.truncateSync(M("canary-abs2"), 1));
t("chmod canary-abs3", () => fs.chmodSync(M("canary-abs3"), 0o600));
t("utimes canary-abs3", () => fs.utimesSync(M("canary-abs3"), 1, 1));
t("chown canary-abs3", () => fs.chownSync(M("canary-abs3"), 4321, 4321));
// O_CREAT through dangling links
t("O_CREAT dangle-abs", () => { fs.closeSync(fs.openSync(M("dangle-abs"), O.O_CREAT | O.O_WRONLY, 0o644)); return fs.existsSync(join(SRV, "outside/created-abs")) ? "landed on the decoy side" : "?"; });
t("O_CREAT dangle-rel", () => fs.closeSync(fs.openSync(M("dangle-rel"), O.O_CREAT | O.O_WRONLY, 0o644)));
t("O_CREAT|O_EXCL dangle-abs2", () => fs.closeSync(fs.openSync(M("dangle-abs2"), O.O_CREAT | O.O_EXCL | O.O_WRONLY, 0o644)));
t("O_CREAT|O_NOFOLLOW dangle-abs2", () => fs.closeSync(fs.openSync(M("dangle-abs2"), O.O_CREAT | O.O_NOFOLLOW | O.O_WRONLY, 0o644)));
t("O_CREAT dangle-etc", () => { fs.closeSync(fs.openSync(M("dangle-etc"), O.O_CREAT | O.O_WRONLY, 0o644)); return fs.existsSync("/etc/" + TAG + "-dangle") ? "in the namespace's /etc" : "?"; });
// xattrs of a link are the link's own (the canary behind it has user.secret and trusted.secret)
t("llistxattr canary-abs", () => sys.llistxattr(M("canary-abs")).join(","));
t("lgetxattr canary-abs trusted.secret", () => Buffer.from(sys.lgetxattr(M("canary-abs"), "trusted.secret")).toString());
t("lsetxattr canary-abs trusted.planted", () => sys.lsetxattr(M("canary-abs"), "trusted.planted", Buffer.from("x")));
t("lremovexattr canary-abs trusted.secret", () => sys.lremovexattr(M("canary-abs"), "trusted.secret"));
// ".." is resolved by the kernel on the client's side: within the mount, or past its root into the
// client's own tree; it never reaches the server as a name
t("a/b/c/../../../file.txt is file.txt", () => note(fs.statSync(M("a/b/c/../../../file.txt"))).ino === note(fs.statSync(M("file.txt"))).ino ? "same" : "different");
t("read a/../a/b/../../file.txt", () => read(M("a/../a/b/../../file.txt")));
t("read a/b/c/" + "../".repeat(40) + "etc/hostname", () => read(M("a/b/c/" + "../".repeat(40) + "etc/hostname")) === fs.readFileSync("/etc/hostname", "utf8") ? "host" : "other");
t("read ../../.. chain to a canary", () => read(M("../".repeat(30) + SRV.slice(1) + "/outside/victim/sub/x")));
t("readdir .. of the mount root", () => fs.readdirSync(M("..")).includes(MNT.split("/").pop()) ? "the mountpoint's parent" : "?");
t("stat ../<mountpoint>/a/../file.txt", () => note(fs.statSync(M("../" + MNT.split("/").pop() + "/a/../file.txt"))).ino === note(fs.statSync(M("file.txt"))).ino ? "same" : "different");
t("create a/b/../../created-via-dotdot", () => fs.writeFileSync(M("a/b/../../created-via-dotdot"), "inside"));
// mknod, hard links and renames across
const tool = (cmd) => {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
  if (r.status === 0) return;
  const known = [["File exists", "EEXIST"], ["Invalid cross-device link", "EXDEV"], ["No such file", "ENOENT"], ["Permission denied", "EACCES"]].find(([m]) => r.stderr.includes(m));
  throw Object.assign(new Error(r.stderr.trim()), known ? { code: known[1] } : {});
};
t("mknod etc-abs (existing link)", () => tool(["mknod", M("etc-abs"), "p"]));
t("mknod dangle-abs3 (dangling link)", () => tool(["mknod", M("dangle-abs3"), "p"]));
t("mknod out-abs/fifo", () => tool(["mknod", M("out-abs/fifo"), "p"]));
t("link canary-abs (the link itself)", () => fs.linkSync(M("canary-abs"), M("hl-nofollow")));
t("ln -L canary-abs (its target)", () => tool(["ln", "-L", M("canary-abs"), M("hl-follow")]));
t("link out-abs/victim/file.txt into the mount", () => fs.linkSync(M("out-abs/victim/file.txt"), M("hl-out")));
t("link file.txt out through out-abs", () => fs.linkSync(M("file.txt"), M("out-abs/hl-in")));
t("rename out-abs/victim/file.txt into the mount", () => fs.renameSync(M("out-abs/victim/file.txt"), M("stolen")));
t("rename file2.txt out through out-abs", () => fs.renameSync(M("file2.txt"), M("out-abs/moved")));
t("rename canary-rel (the link)", () => fs.renameSync(M("canary-rel"), M("canary-rel-renamed")));
t("rename file3.txt over out-rel (the link)", () => fs.renameSync(M("file3.txt"), M("out-rel")));
t("symlink to /etc/hostname", () => fs.symlinkSync("/etc/hostname", M("new-link")));
t("read new-link", () => read(M("new-link")) === fs.readFileSync("/etc/hostname", "utf8") ? "host" : "other");
console.log(JSON.stringify({ res, seen }));
`;

/** The racer (original namespace): swaps `race` in the source with links to the outside, and makes `spot` a dangling link to it. */
const RACER = String.raw`
import * as fs from "node:fs";
import { join } from "node:path";
import * as sys from ${JSON.stringify(SYS)};
const [SRC, OUTSIDE, STOP, capArg] = process.argv.slice(2);
// runs until the client has seen what it needs (it creates STOP), never past the cap
const cap = Date.now() + Number(capArg);
const R = sys.AT_FDCWD;
const p = (n) => join(SRC, n);
let swaps = 0, errors = 0;
for (let i = 0; (i % 64 !== 0 || !fs.existsSync(STOP)) && Date.now() < cap; i++) {
  try {
    switch (i % 4) {
      case 0: // atomic: the directory and an absolute link to the outside trade names
        sys.renameat2(R, p("race"), R, p("link-abs"), sys.RENAME_EXCHANGE);
        sys.renameat2(R, p("race"), R, p("link-abs"), sys.RENAME_EXCHANGE);
        break;
      case 1: // atomic, a relative link
        sys.renameat2(R, p("race"), R, p("link-rel"), sys.RENAME_EXCHANGE);
        sys.renameat2(R, p("race"), R, p("link-rel"), sys.RENAME_EXCHANGE);
        break;
      case 2: // not atomic: the directory goes away, a link takes its name for a moment
        fs.renameSync(p("race"), p("race.away"));
        fs.symlinkSync(OUTSIDE + "/victim", p("race"));
        fs.unlinkSync(p("race"));
        fs.renameSync(p("race.away"), p("race"));
        break;
      case 3: // a subdirectory of the racing directory trades places with a link
        sys.renameat2(R, p("race/sub"), R, p("race/sublink"), sys.RENAME_EXCHANGE);
        sys.renameat2(R, p("race/sub"), R, p("race/sublink"), sys.RENAME_EXCHANGE);
        break;
    }
    swaps++;
  } catch { errors++; }
  // a dangling link to the outside appears and disappears where the client creates files
  try { fs.symlinkSync(OUTSIDE + "/spot-target", p("spot")); } catch {}
  try { fs.unlinkSync(p("spot")); } catch {}
}
console.log(JSON.stringify({ swaps, errors }));
`;

/** Outcomes the racing client must see at least once: the race really happened and got through. */
const RACE_NEEDED = ["race was a directory", "race was a link", "read race/file.txt ok", "create race/n ok", "O_CREAT spot ok"];

const RACE_CLIENT = String.raw`
// at least the given time, then on until every outcome the test asserts has been seen: the
// client catches "race" as a link in only a few percent of its lookups, so a fixed time can miss
// it on a loaded machine; the cap ends it either way (and the test then fails on the counts)
const [capArg, STOP] = process.argv.slice(6);
const end = Date.now() + Number(durationArg);
const cap = Date.now() + Number(capArg);
const NEEDED = ${JSON.stringify(RACE_NEEDED)};
const M = (p) => join(MNT, p);
const counts = {};
const bump = (k) => (counts[k] = (counts[k] ?? 0) + 1);
function t(name, fn) { try { fn(); bump(name + " ok"); } catch (e) { bump(name + " " + errName(e)); } }
const O = fs.constants;
for (let i = 0; (Date.now() < end || NEEDED.some((k) => !counts[k])) && Date.now() < cap; i++) {
  t("lstat race", () => { const s = note(fs.lstatSync(M("race"))); bump(s.isSymbolicLink() ? "race was a link" : s.isDirectory() ? "race was a directory" : "race was other"); });
  t("read race/file.txt", () => { const c = fs.readFileSync(M("race/file.txt"), "utf8"); seen.contents.push(c.slice(0, 40)); });
  t("open+fstat race/file.txt", () => { const fd = fs.openSync(M("race/file.txt"), "r"); try { note(fs.fstatSync(fd)); } finally { fs.closeSync(fd); } });
  t("stat race/sub/x", () => note(fs.statSync(M("race/sub/x"))));
  t("read race/sub/x", () => seen.contents.push(fs.readFileSync(M("race/sub/x"), "utf8").slice(0, 40)));
  t("create race/n", () => { const f = M("race/n" + (i % 8)); fs.writeFileSync(f, "new " + i); note(fs.statSync(f)); fs.unlinkSync(f); });
  t("write race/file.txt", () => fs.writeFileSync(M("race/file.txt"), "INSIDE-race"));
  t("mkdir race/d", () => { fs.mkdirSync(M("race/d" + (i % 8))); fs.rmdirSync(M("race/d" + (i % 8))); });
  t("readdir race", () => { for (const e of fs.readdirSync(M("race"))) if (e.startsWith("SECRET")) seen.contents.push(e); });
  t("O_CREAT spot", () => { const fd = fs.openSync(M("spot"), O.O_CREAT | O.O_WRONLY, 0o644); try { note(fs.fstatSync(fd)); } finally { fs.closeSync(fd); } });
  t("unlink spot", () => fs.unlinkSync(M("spot")));
  if (i % 16 === 0) t("chdir race/sub + read x", () => { process.chdir(M("race/sub")); try { seen.contents.push(fs.readFileSync("x", "utf8").slice(0, 40)); note(fs.statSync("..")); } finally { process.chdir("/"); } });
}
fs.writeFileSync(STOP, "");
console.log(JSON.stringify({ counts, seen }));
`;

function writeScript(l: Layout, name: string, body: string, prelude = true): string {
  const f = join(l.cli, name);
  writeFileSync(f, (prelude ? CLIENT_PRELUDE : "") + body);
  return f;
}

/** Runs `fn` with a fresh layout, removed afterwards (after the mount is gone). */
async function withLayout(fn: (l: Layout) => Promise<void>): Promise<void> {
  const l = await layout();
  try {
    await fn(l);
  } finally {
    await removeTempDir(l.base);
  }
}

function mountOpts(transport: Transport, l: Layout, options: string[], args: string[] = []) {
  // ESCAPE_TEST_PLUGIN: a modified copy of the plugin, to show these tests failing on a server that escapes
  return { plugin: process.env.ESCAPE_TEST_PLUGIN ?? "passthrough", transport, options, args: ["--source", l.src, ...args], timeoutMs: 90_000 };
}

// ---------------------------------------------------------------------------------------------

describe.each(transports())("passthrough escape attempts over %s", (transport: Transport) => {
  test.skipIf(needsRoot(`passthrough escape attempts over ${transport}`, "mount namespaces, tmpfs and overlay mounts"))("symlinks to /etc and to the outside (absolute, relative), '..' chains, O_CREAT through dangling links, xattrs, mknod, link and rename across: nothing outside the source is read or written", async () => {
    await withLayout(async (l) => {
      const S = l.src;
      mkdirSync(join(S, "a", "b", "c"), { recursive: true });
      writeFileSync(join(S, "file.txt"), "INSIDE-file");
      writeFileSync(join(S, "file2.txt"), "INSIDE-file2");
      writeFileSync(join(S, "file3.txt"), "INSIDE-file3");
      const links: Record<string, string> = {
        "etc-abs": "/etc",
        "etc-rel": "../".repeat(16) + "etc",
        "out-abs": l.outside,
        "out-rel": "../outside",
        "canary-abs": join(l.outside, "canary.txt"),
        "canary-abs2": join(l.outside, "canary2.txt"),
        "canary-abs3": join(l.outside, "canary3.txt"),
        "canary-rel": "../outside/canary.txt",
        "a/b/canary-rel-deep": "../../../outside/canary.txt",
        "dangle-abs": join(l.outside, "created-abs"),
        "dangle-abs2": join(l.outside, "created-abs2"),
        "dangle-abs3": join(l.outside, "created-abs3"),
        "dangle-rel": "../outside/created-rel",
        "dangle-etc": `/etc/${l.tag}-dangle`,
      };
      for (const [n, target] of Object.entries(links)) symlinkSync(target, join(S, n));
      const linkIno = lstatSync(join(S, "canary-abs")).ino;
      ageCanaries(l);
      const before = snapshot(l);
      const etc = hostEtcTimes();
      const w = await watchCanaries(l);
      let out: { res: Record<string, string>; seen: Observed } | undefined;
      let trace = "";
      let events: string[] = [];
      try {
        await withMount(mountOpts(transport, l, ZERO, ["-d"]), async (m) => {
          const client = writeScript(l, "static.mjs", STATIC_CLIENT);
          out = await inNamespace(l, client, [m.dir, l.srv, l.tag, "0"], 60_000);
          trace = m.log();
        });
      } finally {
        events = await w.stop();
      }
      const res = out!.res;
      const expected: Record<string, string> = {
        ...Object.fromEntries(Object.entries(links).map(([n, t]) => [`readlink ${n}`, `ok:${t}`])),
        "lstat out-abs": "ok:link",
        "read canary-abs": "ok:DECOY-canary",
        "read canary-rel": "ENOENT",
        "read a/b/canary-rel-deep": "ENOENT",
        "read out-abs/victim/file.txt": "ok:DECOY-victim",
        "read out-rel/canary.txt": "ENOENT",
        "read etc-abs/hostname": "ok:host",
        "read etc-rel/hostname": "ok:host",
        "write canary-abs": "ok",
        "append out-abs/victim/file.txt": "ok",
        "create out-abs/newfile": "ok",
        "mkdir out-abs/newdir": "ok",
        [`write etc-abs/${l.tag}-w`]: "ok",
        [`write etc-rel/${l.tag}-r`]: "ok",
        "truncate canary-abs2": "ok",
        "chmod canary-abs3": "ok",
        "utimes canary-abs3": "ok",
        "chown canary-abs3": "ok",
        "O_CREAT dangle-abs": "ok:landed on the decoy side",
        "O_CREAT dangle-rel": "ENOENT",
        "O_CREAT|O_EXCL dangle-abs2": "EEXIST",
        "O_CREAT|O_NOFOLLOW dangle-abs2": "ELOOP",
        "O_CREAT dangle-etc": "ok:in the namespace's /etc",
        "llistxattr canary-abs": "ok:",
        "lgetxattr canary-abs trusted.secret": "ENODATA",
        "lsetxattr canary-abs trusted.planted": "ok",
        "lremovexattr canary-abs trusted.secret": "ENODATA",
        "a/b/c/../../../file.txt is file.txt": "ok:same",
        "read a/../a/b/../../file.txt": "ok:INSIDE-file",
        [`read a/b/c/${"../".repeat(40)}etc/hostname`]: "ok:host",
        "read ../../.. chain to a canary": "ok:DECOY-x",
        "readdir .. of the mount root": "ok:the mountpoint's parent",
        "stat ../<mountpoint>/a/../file.txt": "ok:same",
        "create a/b/../../created-via-dotdot": "ok",
        "mknod etc-abs (existing link)": "EEXIST",
        "mknod dangle-abs3 (dangling link)": "EEXIST",
        "mknod out-abs/fifo": "ok",
        "link canary-abs (the link itself)": "ok",
        "ln -L canary-abs (its target)": "EXDEV",
        "link out-abs/victim/file.txt into the mount": "EXDEV",
        "link file.txt out through out-abs": "EXDEV",
        "rename out-abs/victim/file.txt into the mount": "EXDEV",
        "rename file2.txt out through out-abs": "EXDEV",
        "rename canary-rel (the link)": "ok",
        "rename file3.txt over out-rel (the link)": "ok",
        "symlink to /etc/hostname": "ok",
        "read new-link": "ok:host",
      };
      expect(res).toEqual(expected);
      // the source changed only where it should: links stay links, new names are inside
      expect(readFileSync(join(S, "created-via-dotdot"), "utf8")).toBe("inside");
      expect(lstatSync(join(S, "hl-nofollow")).ino).toBe(linkIno); // a second name of the link itself
      expect(readlinkSync(join(S, "canary-rel-renamed"))).toBe("../outside/canary.txt");
      expect(readFileSync(join(S, "out-rel"), "utf8")).toBe("INSIDE-file3");
      expect(readlinkSync(join(S, "new-link"))).toBe("/etc/hostname");
      expect(sys.llistxattr(join(S, "canary-abs"))).toEqual(["trusted.planted"]);
      // the server never received ".", ".." or a name with a slash
      const names = [...trace.matchAll(/^\[\d+\] [A-Z_]+ node=\d+ "([^"]*)"/gm)].map((x) => x[1]!);
      expect(names.length).toBeGreaterThan(20);
      expect(names.filter((n) => n === "." || n === ".." || n.includes("/"))).toEqual([]);
      expect(canaryProblems(l, before, events, [out!.seen], etc)).toEqual([]);
    });
  }, 120_000);

  for (const variant of [
    { name: "file handles", args: [] as string[] },
    { name: "re-opened by parent and name, 16 cached descriptors", args: ["--file-handles=false", "--fd-cache", "16"] },
  ]) {
    test.skipIf(needsRoot(`renames racing lookups over ${transport}`, "mount namespaces, tmpfs and overlay mounts"))(`renames racing lookups (${variant.name}): a directory swapped with links to the outside while a client opens, reads, creates below it`, async () => {
      await withLayout(async (l) => {
        const S = l.src;
        mkdirSync(join(S, "race", "sub"), { recursive: true });
        writeFileSync(join(S, "race", "file.txt"), "INSIDE-race");
        writeFileSync(join(S, "race", "sub", "x"), "INSIDE-x");
        symlinkSync(join(l.outside, "victim"), join(S, "link-abs"));
        symlinkSync("../outside/victim", join(S, "link-rel"));
        symlinkSync(join(l.outside, "victim", "sub"), join(S, "race", "sublink"));
        ageCanaries(l);
        const before = snapshot(l);
        const etc = hostEtcTimes();
        const w = await watchCanaries(l);
        let client: { counts: Record<string, number>; seen: Observed } | undefined;
        let racer: { swaps: number; errors: number } | undefined;
        let events: string[] = [];
        try {
          await withMount(mountOpts(transport, l, ZERO, variant.args), async (m) => {
            const minMs = 2500;
            const capMs = 30_000;
            const stop = join(l.cli, "race.stop");
            const racerScript = writeScript(l, "racer.mjs", RACER, false);
            const [c, r] = await Promise.all([
              inNamespace(l, writeScript(l, "race.mjs", RACE_CLIENT), [m.dir, l.srv, l.tag, String(minMs), String(capMs), stop], 60_000),
              run([process.execPath, racerScript, S, l.outside, stop, String(capMs)], { timeoutMs: 60_000 }),
            ]);
            if (r.code !== 0) throw new Error(describeResult(r));
            client = c;
            racer = JSON.parse(r.stdout.trim());
          });
        } finally {
          events = await w.stop();
        }
        const counts = client!.counts;
        if (process.env.ESCAPE_TEST_DEBUG) console.error(JSON.stringify({ racer, counts, inodesSeen: client!.seen.inos.length }));
        // nothing escaped
        expect(canaryProblems(l, before, events, [client!.seen], etc)).toEqual([]);
        // and the race really happened: the client saw both states and got through many times
        expect(racer!.swaps).toBeGreaterThan(50);
        expect(RACE_NEEDED.filter((k) => !((counts[k] ?? 0) > 0))).toEqual([]); // outcomes never seen
        // what was read is the source's or the decoys' (the client following a link itself)
        const kinds = new Set(client!.seen.contents.map((c) => c.replace(/^(INSIDE|DECOY).*/, "$1")));
        for (const k of kinds) expect(["INSIDE", "DECOY", ""]).toContain(k);
      });
    }, 120_000);
  }
});

describe.skipIf(needsRoot("the escape detector", "mount namespaces, tmpfs and overlay mounts"))("the escape detector", () => {
  test("reports a simulated escape: canaries read, written, created beside, attributes changed, and seen through the client", async () => {
    await withLayout(async (l) => {
      ageCanaries(l);
      const before = snapshot(l);
      const etc = hostEtcTimes();
      // nothing done: nothing reported
      let w = await watchCanaries(l);
      expect(canaryProblems(l, before, await w.stop(), [{ inos: [], contents: ["INSIDE", "DECOY-canary"] }], etc)).toEqual([]);

      // what an escaping server would do, done directly (the check above read the canaries: age them again)
      ageCanaries(l);
      const clean = snapshot(l);
      w = await watchCanaries(l);
      readFileSync(join(l.outside, "canary.txt")); // a read
      const fd = sys.openat(sys.AT_FDCWD, join(l.outside, "victim", "file.txt"), sys.O_RDONLY); // an open without a read
      sys.close(fd);
      writeFileSync(join(l.outside, "victim", "sub", "x"), "SECRET-victim-x"); // rewritten with the same contents
      writeFileSync(join(l.outside, "created-abs"), ""); // a creation
      sys.setxattr(join(l.outside, "canary.txt"), "user.planted", Buffer.from("x"));
      const problems = canaryProblems(l, clean, await w.stop(), [{ inos: [lstatSync(join(l.outside, "canary2.txt")).ino], contents: ["SECRET-canary3"] }], etc);
      const text = problems.join("\n");
      if (Bun.which("gcc") !== null) {
        expect(text).toMatch(/inotify: .*\/outside\t0x1\tcanary\.txt/); // IN_ACCESS
        expect(text).toMatch(/inotify: .*\/victim\t0x20\tfile\.txt/); // IN_OPEN
        expect(text).toMatch(/inotify: .*\/outside\t0x100\tcreated-abs/); // IN_CREATE
      }
      expect(text).toMatch(/outside\/canary\.txt: atimeNs changed/);
      expect(text).toMatch(/outside\/victim\/sub\/x: mtimeNs changed/);
      expect(text).toMatch(/outside: names .*created-abs/);
      expect(text).toMatch(/outside\/created-abs was created/);
      expect(text).toMatch(/xattrs now .*user\.planted/);
      expect(text).toMatch(/the client saw a canary's inode/);
      expect(text).toMatch(/the client read "SECRET-canary3"/);
    });
  }, 60_000);
});
