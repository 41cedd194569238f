/**
 * One load-checker worker (a child process; see ./checker.ts): mixed file operations on its own
 * tree `<root>/w<id>/` and on its own regions of the shared files, checked against a shadow model.
 *
 *   bun test/load/worker.ts '<json WorkerConfig>'
 *
 * fsx-style: every file (inode) has a model of its bytes, size and link count; every read is
 * compared byte for byte with the model, every stat with its size, link count and inode number,
 * every readdir with the model's names, and expected errors (EEXIST, ENOTEMPTY, ENOENT) are
 * checked too. The operation sequence depends only on the seed (the model is private to the
 * worker), so a failure is replayed by running the same seed for the same number of operations.
 * Open descriptors are kept across renames and unlinks (unlinked-but-open files are read, written,
 * truncated and fstat'ed until closed).
 *
 * Syscalls are synchronous: this process does nothing else, and blocking here is the point.
 * Prints one JSON line (WorkerResult) and exits 0, or 1 after the first mismatch or unexpected
 * error (with the last operations in `recent`).
 */
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { Rng } from "./rng.ts";

export interface SharedRegion {
  path: string;
  offset: number;
  length: number;
}

export interface WorkerConfig {
  root: string;
  id: number;
  seed: number;
  durationMs: number;
  /** Stop after this many operations (0: only the duration counts). */
  maxOps: number;
  shared: SharedRegion[];
  maxFileSize: number;
  maxFiles: number;
  maxDirs: number;
  /** Fraction of by-path reads and writes done with O_DIRECT (through the daemon, not the page cache). */
  directIo: number;
  /**
   * Self-test of the checker: at this operation, change one byte of a file behind the model's
   * back (as a lost or misplaced write would); the run must then report a mismatch. 0: never.
   */
  sabotageAtOp?: number;
}

export interface WorkerResult {
  id: number;
  seed: number;
  ok: boolean;
  ops: number;
  opCounts: Record<string, number>;
  durationMs: number;
  bytesWritten: number;
  bytesVerified: number;
  mismatches: number;
  errors: number;
  /** sha256 of each shared region at the end (same order as config.shared). */
  regionHashes: string[];
  failure?: { kind: "mismatch" | "error"; op: number; message: string; recent: string[] };
}

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_DIRECT } = fs.constants;
const MAX_DEPTH = 3;
const MAX_CACHED_FDS = 6;

class Inode {
  data = new Uint8Array(0);
  size = 0;
  nlink = 1;
  fd = -1;
  /** st_ino once seen (every name of the inode must report it). */
  ino = 0;
  constructor(readonly id: number) {}

  ensure(n: number): void {
    if (n <= this.data.length) return;
    const next = new Uint8Array(Math.max(n, Math.min(this.data.length * 2, n + (1 << 20))));
    next.set(this.data.subarray(0, this.size));
    this.data = next;
  }
  write(off: number, bytes: Uint8Array): void {
    this.ensure(off + bytes.length);
    if (off > this.size) this.data.fill(0, this.size, off);
    this.data.set(bytes, off);
    this.size = Math.max(this.size, off + bytes.length);
  }
  truncate(n: number): void {
    if (n < this.size) this.data.fill(0, n, this.size);
    else {
      this.ensure(n);
      this.data.fill(0, this.size, n);
    }
    this.size = n;
  }
}

class Failure extends Error {
  constructor(readonly kind: "mismatch" | "error", message: string) {
    super(message);
  }
}

export function runWorker(cfg: WorkerConfig): WorkerResult {
  const rng = new Rng(cfg.seed);
  const base = `${cfg.root}/w${cfg.id}`;
  const abs = (rel: string) => (rel === "" ? base : `${base}/${rel}`);
  const files = new Map<string, Inode>();
  const dirs = new Set<string>([""]);
  const orphans: Inode[] = [];
  const cached: Inode[] = [];
  const regions = cfg.shared.map((r) => ({ ...r, model: new Uint8Array(r.length) }));
  const counts: Record<string, number> = {};
  const recent: string[] = [];
  let opNo = 0, bytesWritten = 0, bytesVerified = 0, nextId = 1, nextName = 1;
  const buf = new Uint8Array(cfg.maxFileSize + 65536);

  const note = (s: string) => {
    recent.push(`#${opNo} ${s}`);
    if (recent.length > 40) recent.shift();
  };
  const errCode = (e: unknown) => (e as { code?: string })?.code ?? String(e);
  /** Runs a syscall; an error is a failure naming the op and path. */
  function sys<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw new Failure("error", `${what}: unexpected ${errCode(e)} (${(e as Error)?.message ?? e})`);
    }
  }
  /** Runs a syscall that must fail with `code`. */
  function expectFail(what: string, code: string, fn: () => unknown): void {
    try {
      fn();
    } catch (e) {
      if (errCode(e) === code) return;
      throw new Failure("error", `${what}: expected ${code}, got ${errCode(e)}`);
    }
    throw new Failure("error", `${what}: expected ${code}, but it succeeded`);
  }
  function compare(what: string, got: Uint8Array, want: Uint8Array, fileOff: number): void {
    if (got.length !== want.length) throw new Failure("mismatch", `${what}: read ${got.length} bytes, model has ${want.length}`);
    if (Buffer.compare(got, want) !== 0) {
      let i = 0;
      while (got[i] === want[i]) i++;
      const hex = (a: Uint8Array) => Buffer.from(a.subarray(i, i + 16)).toString("hex");
      throw new Failure("mismatch", `${what}: first difference at file offset ${fileOff + i}: got ${hex(got)} want ${hex(want)}`);
    }
    bytesVerified += got.length;
  }

  const names = () => [...files.keys()];
  const depth = (d: string) => (d === "" ? 0 : d.split("/").length);
  const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
  const childrenOf = (d: string) => {
    const out: string[] = [];
    const pre = d === "" ? "" : d + "/";
    for (const f of files.keys()) if (parentOf(f) === d) out.push(f.slice(pre.length));
    for (const x of dirs) if (x !== "" && parentOf(x) === d) out.push(x.slice(pre.length));
    return out.sort();
  };
  const subdirCount = (d: string) => [...dirs].filter((x) => x !== "" && parentOf(x) === d).length;
  const newName = (prefix: string) => {
    const d = rng.pick([...dirs]);
    return d === "" ? `${prefix}${nextName++}` : `${d}/${prefix}${nextName++}`;
  };
  /** Drops one link of `node` (unlink, or replaced by rename). */
  function dropLink(node: Inode): void {
    node.nlink--;
    if (node.nlink === 0 && node.fd >= 0) orphans.push(node);
  }
  function closeCached(node: Inode): void {
    sys(`close fd of inode ${node.id}`, () => fs.closeSync(node.fd));
    node.fd = -1;
    cached.splice(cached.indexOf(node), 1);
    const o = orphans.indexOf(node);
    if (o >= 0) orphans.splice(o, 1);
  }
  /** An fd for `name`'s inode: the cached one, or a fresh one (closed by `done`). */
  function fdFor(name: string, flags: number, useCached: boolean): { fd: number; done: () => void; how: string } {
    const node = files.get(name)!;
    if (useCached && node.fd >= 0) return { fd: node.fd, done: () => {}, how: "cached fd" };
    const direct = (flags & O_DIRECT) !== 0;
    const fd = sys(`open ${name}${direct ? " O_DIRECT" : ""}`, () => fs.openSync(abs(name), flags));
    return { fd, done: () => sys(`close ${name}`, () => fs.closeSync(fd)), how: direct ? "O_DIRECT" : "open" };
  }
  const directFlag = () => (rng.chance(cfg.directIo) ? O_DIRECT : 0);
  /** A target inode for data ops: a named file (by name) or, sometimes, an unlinked open one. */
  function target(): { name: string | null; node: Inode } | null {
    if (orphans.length > 0 && rng.chance(0.15)) return { name: null, node: rng.pick(orphans) };
    if (files.size === 0) return null;
    const name = rng.pick(names());
    return { name, node: files.get(name)! };
  }
  function checkStat(what: string, st: fs.Stats, node: Inode): void {
    if (!st.isFile()) throw new Failure("mismatch", `${what}: not a regular file (mode ${st.mode.toString(8)})`);
    if (st.size !== node.size) throw new Failure("mismatch", `${what}: size ${st.size}, model ${node.size}`);
    if (st.nlink !== node.nlink) throw new Failure("mismatch", `${what}: nlink ${st.nlink}, model ${node.nlink}`);
    if (node.ino === 0) node.ino = st.ino;
    else if (st.ino !== node.ino) throw new Failure("mismatch", `${what}: st_ino ${st.ino}, earlier ${node.ino} (names of one inode must agree)`);
  }

  // ---- operations ------------------------------------------------------------------------

  function opCreate(): void {
    if (files.size >= cfg.maxFiles) return opUnlink();
    const name = newName("f");
    const node = new Inode(nextId++);
    const fd = sys(`create ${name}`, () => fs.openSync(abs(name), O_CREAT | O_EXCL | O_RDWR, 0o644));
    files.set(name, node);
    let n = 0;
    if (rng.chance(0.7)) {
      n = rng.length(Math.min(cfg.maxFileSize, 256 * 1024));
      const data = rng.fill(buf.subarray(0, n));
      const w = sys(`write ${name}`, () => fs.writeSync(fd, data, 0, n, 0));
      if (w !== n) throw new Failure("mismatch", `write ${name}: wrote ${w} of ${n}`);
      node.write(0, data);
      bytesWritten += n;
    }
    note(`create ${name} (inode ${node.id}) with ${n} bytes`);
    if (cached.length < MAX_CACHED_FDS && rng.chance(0.3)) {
      node.fd = fd;
      cached.push(node);
    } else sys(`close ${name}`, () => fs.closeSync(fd));
    expectFail(`create ${name} again (O_EXCL)`, "EEXIST", () => fs.openSync(abs(name), O_CREAT | O_EXCL | O_RDWR, 0o644));
  }

  function opWrite(): void {
    const t = target();
    if (t === null) return opCreate();
    const { name, node } = t;
    const max = cfg.maxFileSize;
    const len = rng.length(Math.min(max, 512 * 1024));
    // mostly inside or just past the end; sometimes far past it (a hole)
    const off = Math.min(max - len, rng.chance(0.1) ? rng.int(max) : rng.int(node.size + 8192));
    if (off < 0) return;
    const data = rng.fill(buf.subarray(0, len));
    const io = name === null ? { fd: node.fd, done: () => {}, how: "unlinked fd" } : fdFor(name, O_WRONLY | directFlag(), rng.chance(0.4));
    note(`write ${name ?? `(unlinked inode ${node.id})`} off=${off} len=${len} via ${io.how}`);
    const w = sys(`write ${name} off=${off} len=${len}`, () => fs.writeSync(io.fd, data, 0, len, off));
    io.done();
    if (w !== len) throw new Failure("mismatch", `write ${name}: wrote ${w} of ${len}`);
    node.write(off, data);
    bytesWritten += len;
  }

  function opRead(): void {
    const t = target();
    if (t === null) return opCreate();
    const { name, node } = t;
    const len = rng.length(Math.min(cfg.maxFileSize, 512 * 1024));
    const off = rng.int(node.size + 4096);
    const io = name === null ? { fd: node.fd, done: () => {}, how: "unlinked fd" } : fdFor(name, O_RDONLY | directFlag(), rng.chance(0.4));
    note(`read ${name ?? `(unlinked inode ${node.id})`} off=${off} len=${len} via ${io.how}`);
    const got = buf.subarray(0, len);
    let n = 0;
    // a short read before EOF is legal; keep reading until EOF or `len`
    for (;;) {
      const r = sys(`read ${name} off=${off + n}`, () => fs.readSync(io.fd, got, n, len - n, off + n));
      if (r === 0) break;
      n += r;
      if (n >= len) break;
    }
    io.done();
    const want = node.data.subarray(Math.min(off, node.size), Math.min(off + len, node.size));
    compare(`read ${name ?? `(unlinked inode ${node.id})`} off=${off} len=${len}`, got.subarray(0, n), want, off);
  }

  function opTruncate(): void {
    const t = target();
    if (t === null) return opCreate();
    const { name, node } = t;
    const r = rng.int(10);
    const size = r < 2 ? 0 : r < 6 ? rng.int(node.size + 1) : rng.int(cfg.maxFileSize + 1);
    const viaFd = name === null || (node.fd >= 0 && rng.chance(0.5));
    note(`truncate ${name ?? `(unlinked inode ${node.id})`} to ${size} via ${viaFd ? "ftruncate" : "truncate"}`);
    if (viaFd) sys(`ftruncate ${name} ${size}`, () => fs.ftruncateSync(node.fd, size));
    else sys(`truncate ${name} ${size}`, () => fs.truncateSync(abs(name!), size));
    node.truncate(size);
  }

  function opFsync(): void {
    const t = target();
    if (t === null) return opCreate();
    const { name, node } = t;
    const io = name === null ? { fd: node.fd, done: () => {}, how: "unlinked fd" } : fdFor(name, O_RDWR, rng.chance(0.5));
    const len = rng.length(8192);
    const off = rng.int(Math.min(node.size, cfg.maxFileSize - len) + 1);
    const data = rng.fill(buf.subarray(0, len));
    const datasync = rng.chance(0.3);
    note(`write+${datasync ? "fdatasync" : "fsync"} ${name ?? `(unlinked inode ${node.id})`} off=${off} len=${len} via ${io.how}`);
    const w = sys(`write ${name}`, () => fs.writeSync(io.fd, data, 0, len, off));
    if (w !== len) throw new Failure("mismatch", `write ${name}: wrote ${w} of ${len}`);
    node.write(off, data);
    bytesWritten += len;
    sys(`fsync ${name}`, () => (datasync ? fs.fdatasyncSync(io.fd) : fs.fsyncSync(io.fd)));
    io.done();
  }

  function opStat(): void {
    if (rng.chance(0.2)) {
      const d = rng.pick([...dirs]);
      note(`stat dir ${d || "."}`);
      const st = sys(`stat dir ${d}`, () => fs.statSync(abs(d)));
      if (!st.isDirectory()) throw new Failure("mismatch", `stat ${d}: not a directory`);
      const want = 2 + subdirCount(d);
      if (st.nlink !== want) throw new Failure("mismatch", `stat dir ${d || "."}: nlink ${st.nlink}, model ${want}`);
      return;
    }
    const t = target();
    if (t === null) return opCreate();
    const { name, node } = t;
    if (name === null || (node.fd >= 0 && rng.chance(0.3))) {
      note(`fstat ${name ?? `(unlinked inode ${node.id})`}`);
      checkStat(`fstat ${name ?? `(unlinked inode ${node.id})`}`, sys("fstat", () => fs.fstatSync(node.fd)), node);
    } else {
      note(`stat ${name}`);
      checkStat(`stat ${name}`, sys(`stat ${name}`, () => fs.statSync(abs(name))), node);
    }
  }

  function opLink(): void {
    if (files.size === 0 || files.size >= cfg.maxFiles) return opUnlink();
    const src = rng.pick(names());
    const node = files.get(src)!;
    if (rng.chance(0.1) && files.size > 1) {
      const dst = rng.pick(names());
      note(`link ${src} -> existing ${dst} (EEXIST)`);
      expectFail(`link ${src} ${dst}`, "EEXIST", () => fs.linkSync(abs(src), abs(dst)));
      return;
    }
    const dst = newName("l");
    note(`link ${src} -> ${dst} (inode ${node.id}, nlink ${node.nlink} -> ${node.nlink + 1})`);
    sys(`link ${src} ${dst}`, () => fs.linkSync(abs(src), abs(dst)));
    node.nlink++;
    files.set(dst, node);
    checkStat(`stat ${dst} after link`, sys(`stat ${dst}`, () => fs.statSync(abs(dst))), node);
  }

  function opUnlink(): void {
    if (files.size === 0) return opCreate();
    if (rng.chance(0.05)) {
      const ghost = `${rng.pick([...dirs])}/nothing-here-${nextName++}`.replace(/^\//, "");
      note(`unlink ${ghost} (ENOENT)`);
      expectFail(`unlink ${ghost}`, "ENOENT", () => fs.unlinkSync(abs(ghost)));
      return;
    }
    const name = rng.pick(names());
    const node = files.get(name)!;
    note(`unlink ${name} (inode ${node.id}, nlink ${node.nlink} -> ${node.nlink - 1}${node.fd >= 0 ? ", open" : ""})`);
    sys(`unlink ${name}`, () => fs.unlinkSync(abs(name)));
    files.delete(name);
    dropLink(node);
    if (node.nlink > 0) {
      const other = [...files].find(([, n]) => n === node)![0];
      checkStat(`stat ${other} after unlinking ${name}`, sys(`stat ${other}`, () => fs.statSync(abs(other))), node);
    }
  }

  function opRename(): void {
    if (rng.chance(0.15)) return opRenameDir();
    if (files.size === 0) return opCreate();
    const src = rng.pick(names());
    const node = files.get(src)!;
    const dst = rng.chance(0.4) && files.size > 1 ? rng.pick(names()) : newName("r");
    const victim = files.get(dst);
    note(`rename ${src} -> ${dst}${victim ? ` (replacing inode ${victim.id})` : ""}`);
    sys(`rename ${src} ${dst}`, () => fs.renameSync(abs(src), abs(dst)));
    if (victim === node) return; // two names of one inode: rename does nothing
    if (victim !== undefined) dropLink(victim);
    files.delete(src);
    files.set(dst, node);
    expectFail(`stat ${src} after rename`, "ENOENT", () => fs.statSync(abs(src)));
  }

  function opRenameDir(): void {
    const movable = [...dirs].filter((d) => d !== "");
    if (movable.length === 0) return opMkdir();
    const d = rng.pick(movable);
    const parents = [...dirs].filter((p) => p !== d && !p.startsWith(d + "/"));
    const p = rng.pick(parents);
    const leaf = `m${nextName++}`;
    const dst = p === "" ? leaf : `${p}/${leaf}`;
    const height = Math.max(...[...dirs].filter((x) => x === d || x.startsWith(d + "/")).map((x) => depth(x) - depth(d)));
    if (depth(dst) + height > MAX_DEPTH) return;
    note(`rename dir ${d} -> ${dst}`);
    sys(`rename dir ${d} ${dst}`, () => fs.renameSync(abs(d), abs(dst)));
    const move = (x: string) => (x === d ? dst : x.startsWith(d + "/") ? dst + x.slice(d.length) : x);
    const nextDirs = [...dirs].map(move);
    dirs.clear();
    for (const x of nextDirs) dirs.add(x);
    const nextFiles = [...files].map(([k, v]) => [move(k), v] as const);
    files.clear();
    for (const [k, v] of nextFiles) files.set(k, v);
  }

  function opMkdir(): void {
    const candidates = [...dirs].filter((d) => depth(d) < MAX_DEPTH);
    if (dirs.size >= cfg.maxDirs || candidates.length === 0) return opRmdir();
    const p = rng.pick(candidates);
    const d = p === "" ? `d${nextName++}` : `${p}/d${nextName++}`;
    note(`mkdir ${d}`);
    sys(`mkdir ${d}`, () => fs.mkdirSync(abs(d), 0o755));
    dirs.add(d);
    expectFail(`mkdir ${d} again`, "EEXIST", () => fs.mkdirSync(abs(d), 0o755));
  }

  function opRmdir(): void {
    const ds = [...dirs].filter((d) => d !== "");
    if (ds.length === 0) return opMkdir();
    const d = rng.pick(ds);
    if (childrenOf(d).length > 0) {
      note(`rmdir ${d} (ENOTEMPTY)`);
      expectFail(`rmdir ${d}`, "ENOTEMPTY", () => fs.rmdirSync(abs(d)));
      return;
    }
    note(`rmdir ${d}`);
    sys(`rmdir ${d}`, () => fs.rmdirSync(abs(d)));
    dirs.delete(d);
  }

  function opReaddir(): void {
    const d = rng.pick([...dirs]);
    note(`readdir ${d || "."}`);
    const got = sys(`readdir ${d}`, () => fs.readdirSync(abs(d))).sort();
    const want = childrenOf(d);
    if (got.join("\0") !== want.join("\0")) {
      const extra = got.filter((x) => !want.includes(x)), missing = want.filter((x) => !got.includes(x));
      throw new Failure("mismatch", `readdir ${d || "."}: extra [${extra.join(", ")}], missing [${missing.join(", ")}]`);
    }
  }

  function opOpenClose(): void {
    if (cached.length > 0 && (cached.length >= MAX_CACHED_FDS || rng.chance(0.5))) {
      const node = rng.pick(cached);
      note(`close cached fd of inode ${node.id}${node.nlink === 0 ? " (unlinked: last reference)" : ""}`);
      closeCached(node);
      return;
    }
    if (files.size === 0) return opCreate();
    const name = rng.pick(names());
    const node = files.get(name)!;
    if (node.fd >= 0) return;
    note(`open ${name} (cached)`);
    node.fd = sys(`open ${name}`, () => fs.openSync(abs(name), O_RDWR));
    cached.push(node);
  }

  function regionIo(write: boolean): void {
    if (regions.length === 0) return write ? opWrite() : opRead();
    const r = rng.pick(regions);
    const len = rng.length(Math.min(r.length, 128 * 1024));
    const at = rng.int(r.length - len + 1);
    const direct = directFlag();
    note(`${write ? "write" : "read"} shared ${r.path} region+${at} len=${len}${direct ? " O_DIRECT" : ""}`);
    const fd = sys(`open ${r.path}`, () => fs.openSync(r.path, (write ? O_WRONLY : O_RDONLY) | direct));
    try {
      if (write) {
        const data = rng.fill(buf.subarray(0, len));
        const w = sys(`write ${r.path}`, () => fs.writeSync(fd, data, 0, len, r.offset + at));
        if (w !== len) throw new Failure("mismatch", `write ${r.path}: wrote ${w} of ${len}`);
        r.model.set(data, at);
        bytesWritten += len;
      } else {
        const got = buf.subarray(0, len);
        let n = 0;
        for (;;) {
          const k = sys(`read ${r.path}`, () => fs.readSync(fd, got, n, len - n, r.offset + at + n));
          if (k === 0 || (n += k) >= len) break;
        }
        compare(`read shared ${r.path} region+${at} len=${len}`, got.subarray(0, n), r.model.subarray(at, at + len), r.offset + at);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  const table: [string, number, () => void][] = [
    ["write", 16, opWrite],
    ["read", 18, opRead],
    ["truncate", 6, opTruncate],
    ["create", 6, opCreate],
    ["rename", 6, opRename],
    ["link", 5, opLink],
    ["unlink", 6, opUnlink],
    ["fsync", 4, opFsync],
    ["mkdir", 3, opMkdir],
    ["rmdir", 2, opRmdir],
    ["stat", 8, opStat],
    ["readdir", 3, opReaddir],
    ["openclose", 4, opOpenClose],
    ["shared-write", 6, () => regionIo(true)],
    ["shared-read", 7, () => regionIo(false)],
  ];
  const total = table.reduce((s, [, w]) => s + w, 0);

  /** Everything the model knows, checked against the mount. */
  function verifyAll(): void {
    for (const node of [...orphans]) {
      const got = buf.subarray(0, node.size);
      const n = sys(`read unlinked inode ${node.id}`, () => fs.readSync(node.fd, got, 0, node.size, 0));
      compare(`final read of unlinked inode ${node.id}`, got.subarray(0, n), node.data.subarray(0, node.size), 0);
      checkStat(`final fstat of unlinked inode ${node.id}`, sys("fstat", () => fs.fstatSync(node.fd)), node);
    }
    for (const node of [...cached]) closeCached(node);
    const seen = new Set<Inode>();
    for (const [name, node] of files) {
      checkStat(`final stat ${name}`, sys(`stat ${name}`, () => fs.statSync(abs(name))), node);
      if (seen.has(node)) continue;
      seen.add(node);
      const fd = sys(`open ${name}`, () => fs.openSync(abs(name), O_RDONLY | (cfg.directIo > 0 ? O_DIRECT : 0)));
      const got = buf.subarray(0, node.size);
      let n = 0;
      for (;;) {
        const k = sys(`read ${name}`, () => fs.readSync(fd, got, n, node.size - n, n));
        if (k === 0 || (n += k) >= node.size) break;
      }
      fs.closeSync(fd);
      compare(`final read ${name}`, got.subarray(0, n), node.data.subarray(0, node.size), 0);
    }
    for (const d of dirs) {
      const got = sys(`readdir ${d}`, () => fs.readdirSync(abs(d))).sort();
      if (got.join("\0") !== childrenOf(d).join("\0")) throw new Failure("mismatch", `final readdir ${d || "."}: got [${got.join(", ")}], model [${childrenOf(d).join(", ")}]`);
    }
    for (const r of regions) {
      const fd = sys(`open ${r.path}`, () => fs.openSync(r.path, O_RDONLY));
      const got = buf.subarray(0, r.length);
      const n = sys(`read ${r.path}`, () => fs.readSync(fd, got, 0, r.length, r.offset));
      fs.closeSync(fd);
      compare(`final read of shared ${r.path} region`, got.subarray(0, n), r.model, r.offset);
    }
  }

  /** Flips one byte of the largest file without telling the model (see sabotageAtOp). */
  function sabotage(): void {
    let victim: [string, Inode] | undefined;
    for (const e of files) if (e[1].size > 0 && (victim === undefined || e[1].size > victim[1].size)) victim = e;
    if (victim === undefined) return;
    const [name, node] = victim;
    const at = node.size >> 1;
    note(`sabotage: flip byte ${at} of ${name} behind the model's back`);
    const fd = fs.openSync(abs(name), O_WRONLY);
    fs.writeSync(fd, new Uint8Array([node.data[at]! ^ 0xff]), 0, 1, at);
    fs.closeSync(fd);
  }

  const t0 = performance.now();
  const deadline = Date.now() + cfg.durationMs;
  let failure: WorkerResult["failure"];
  try {
    sys(`mkdir ${base}`, () => fs.mkdirSync(base));
    // the shared regions start as the checker wrote them: zeros
    while ((cfg.maxOps === 0 || opNo < cfg.maxOps) && (cfg.durationMs === 0 || Date.now() < deadline)) {
      opNo++;
      if (opNo === cfg.sabotageAtOp) sabotage();
      let x = rng.int(total);
      for (const [name, w, fn] of table) {
        if ((x -= w) < 0) {
          counts[name] = (counts[name] ?? 0) + 1;
          fn();
          break;
        }
      }
    }
    opNo++;
    note("final verification");
    verifyAll();
  } catch (e) {
    const f = e instanceof Failure ? e : new Failure("error", `worker crashed: ${(e as Error)?.stack ?? e}`);
    failure = { kind: f.kind, op: opNo, message: f.message, recent: [...recent] };
  }
  return {
    id: cfg.id,
    seed: cfg.seed,
    ok: failure === undefined,
    ops: opNo - 1,
    opCounts: counts,
    durationMs: Math.round(performance.now() - t0),
    bytesWritten,
    bytesVerified,
    mismatches: failure?.kind === "mismatch" ? 1 : 0,
    errors: failure?.kind === "error" ? 1 : 0,
    regionHashes: regions.map((r) => createHash("sha256").update(r.model).digest("hex")),
    failure,
  };
}

if (import.meta.main) {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as WorkerConfig;
  const result = runWorker(cfg);
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
