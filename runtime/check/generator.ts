/**
 * The op generator: a seeded random source of ops plus a model of what exists on the reference
 * root (paths and their types, open slots), so that most ops hit existing files and some hit
 * missing ones, wrong types, long names, loops and the other error paths.
 *
 * The model follows the reference root's results (an op changes it only if it succeeded there)
 * and is re-synchronised from the reference snapshot at every checkpoint; it is only a guide for
 * picking targets, never the thing that is checked.
 */
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  O_APPEND,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOATIME,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  XATTR_CREATE,
  XATTR_REPLACE,
  type As,
  type Op,
  type OpKind,
  type Result,
  type TimeArg,
  type XTarget,
} from "./ops.ts";
import type { Snapshot } from "./executor.ts";
import { Rng } from "./rng.ts";
import { isNameString } from "../api/names.ts";

/** Node types the model knows: directory, regular file, symlink, fifo, char/block device, socket. */
export type Kind = "d" | "f" | "l" | "p" | "c" | "b" | "s";

interface SlotInfo {
  kind: Kind;
  acc: number;
}

export const SLOTS = 6;
const GiB = 1 << 30;
const NAMES = ["a", "b", "c", "d", "e", "f", "g", "h"];
/**
 * Names whose bytes are not UTF-8, as name strings (each such byte is U+DC80 + byte, see
 * runtime/api/names.ts): Latin-1, pairs that differ only in one invalid byte, an overlong form,
 * an encoded surrogate, a truncated 4-byte sequence, a lone continuation byte.
 */
const BYTE_NAMES = ["a\udce9", "a\udce8", "caf\udce9", "caf\udce8", "\udcff", "o\udcc0\udc80", "s\udced\udca0\udc80", "t\udcf0\udc9f\udc98", "\udc80c"];
const USERS: As[] = [
  [1000, 1000],
  [1001, 1000],
  [1002, 1002],
];
const IDS = [0, 1000, 1001, 1002, 65534];
const XNAMES = ["user.a", "user.b", "user.cc", "trusted.t", "security.s", "user.a", "user.\udce9", "user.\udce8"];
/** Explicit times, all far from "now" (the comparator tells explicit from current times that way). */
const TIMES: Array<[number, number]> = [
  [0, 0],
  [1_000_000_000, 0],
  [1_234_567_890, 123_456_789],
  [1_500_000_000, 999_999_999],
  [2_147_483_647, 1],
  [2_147_483_648, 500],
  [4_294_967_303, 7],
  [-1, 0],
  [-86_400 * 365, 250_000_000],
];

export interface GeneratorOptions {
  /** Ops between checkpoints. */
  checkEvery: number;
  /** Share of ops performed as an unprivileged user. */
  asUser: number;
  /** Above this many names the generator removes more than it creates. */
  maxEntries: number;
  /** Op kinds to leave out (e.g. ones a target does not support). */
  exclude?: OpKind[];
  /**
   * Only ops whose allocation is the same on any page-granular filesystem (no holes inside
   * files, no punching, no copy_file_range): for ENOSPC profiles, where tmpfs and memfs must run
   * out of space at the same op.
   */
  dense?: boolean;
  /** Adjusts every mode the generator picks (to stay clear of a known difference). */
  modeFilter?: (mode: number) => number;
  /** Ops that may run as an unprivileged user (default: all). */
  userOp?: (op: Op) => boolean;
}

export const defaultGeneratorOptions: GeneratorOptions = { checkEvery: 40, asUser: 0.12, maxEntries: 60 };

const WEIGHTS: Record<Exclude<OpKind, "check">, number> = {
  open: 10, tmpfile: 0.6, close: 5, write: 8, pwrite: 10, read: 4, pread: 5, lseek: 5, truncate: 2, ftruncate: 3,
  fallocate: 5, cfr: 3, fsync: 0.5, mkdir: 5, rmdir: 3, unlink: 4, rename: 7, link: 3, linkfd: 0.6, symlink: 3,
  readlink: 1.5, chmod: 2, fchmod: 1, chown: 2, fchown: 0.7, utimens: 2.5, futimens: 1, mknod: 1.5, stat: 3,
  fstat: 2, access: 1, readdir: 2, setxattr: 4, getxattr: 3, listxattr: 2, removexattr: 2, statfs: 0.5,
};
const CREATES: OpKind[] = ["open", "mkdir", "symlink", "link", "linkfd", "mknod"];
const REMOVES: OpKind[] = ["unlink", "rmdir", "rename"];
const DENSE_EXCLUDE: OpKind[] = ["cfr", "truncate", "ftruncate", "fallocate", "pwrite", "tmpfile", "linkfd", "lseek"];

export class Model {
  paths = new Map<string, Kind>();
  /** Paths that had xattrs at the last checkpoint or got one since (targets for get/remove). */
  xattrs = new Set<string>();
  slots: Array<SlotInfo | null> = new Array(SLOTS).fill(null);

  kindOf(p: string): Kind | undefined {
    return p === "" ? "d" : this.paths.get(p);
  }

  private remove(p: string): void {
    this.paths.delete(p);
    for (const k of [...this.paths.keys()]) if (k.startsWith(p + "/")) this.paths.delete(k);
  }

  private subtree(p: string): Array<[string, Kind]> {
    return [...this.paths].filter(([k]) => k === p || k.startsWith(p + "/"));
  }

  /** Applies op's effect if it succeeded on the reference. */
  update(op: Op, r: Result): void {
    if (r.e !== undefined) return;
    switch (op.k) {
      case "open":
        if ((op.fl & O_CREAT) !== 0 && this.kindOf(op.p) === undefined && clean(op.p)) this.paths.set(op.p, "f");
        this.slots[op.s] = { kind: this.kindOf(op.p) ?? "f", acc: op.fl & 3 };
        break;
      case "tmpfile":
        this.slots[op.s] = { kind: "f", acc: op.fl & 3 };
        break;
      case "close":
        this.slots[op.s] = null;
        break;
      case "mkdir":
        if (clean(op.p)) this.paths.set(op.p, "d");
        break;
      case "mknod":
        if (clean(op.p)) this.paths.set(op.p, kindOfMode(op.m));
        break;
      case "symlink":
        if (clean(op.p)) this.paths.set(op.p, "l");
        break;
      case "link":
        if (clean(op.q)) this.paths.set(op.q, op.follow ? "f" : (this.kindOf(op.p) ?? "f"));
        break;
      case "linkfd":
        if (clean(op.q)) this.paths.set(op.q, this.slots[op.s]?.kind ?? "f");
        break;
      case "unlink":
      case "rmdir":
        this.remove(op.p);
        break;
      case "setxattr":
        if (op.p !== undefined) this.xattrs.add(op.p);
        break;
      case "rename": {
        if (!clean(op.p) || !clean(op.q) || op.p === op.q) break;
        const src = this.subtree(op.p);
        const dst = this.subtree(op.q);
        this.remove(op.p);
        this.remove(op.q);
        for (const [k, v] of src) this.paths.set(op.q + k.slice(op.p.length), v);
        if (op.fl & RENAME_EXCHANGE) for (const [k, v] of dst) this.paths.set(op.p + k.slice(op.q.length), v);
        break;
      }
      default:
    }
  }

  /** Re-reads the tree from a reference snapshot (the slots stay). */
  resync(snap: Snapshot): void {
    this.paths.clear();
    this.xattrs.clear();
    for (const e of snap.entries) {
      if (e.p !== "") this.paths.set(e.p, kindOfMode(e.st.mode));
      if (Array.isArray(e.x) && e.x.length > 0) this.xattrs.add(e.p);
    }
  }
}

function clean(p: string): boolean {
  return p !== "" && !p.split("/").some((c) => c === "." || c === ".." || c.length > 255);
}

export function kindOfMode(m: number): Kind {
  switch (m & S_IFMT) {
    case S_IFDIR: return "d";
    case S_IFLNK: return "l";
    case S_IFIFO: return "p";
    case S_IFCHR: return "c";
    case S_IFBLK: return "b";
    case S_IFSOCK: return "s";
    default: return "f";
  }
}

export class Generator {
  readonly rng: Rng;
  readonly model = new Model();
  readonly opts: GeneratorOptions;
  private weights: Record<string, number>;
  private sinceCheck = 0;
  private xseed = 1;

  constructor(readonly seed: number, opts: Partial<GeneratorOptions> = {}) {
    this.rng = new Rng(seed);
    this.opts = { ...defaultGeneratorOptions, ...opts };
    const excluded = new Set([...(this.opts.exclude ?? []), ...(this.opts.dense ? DENSE_EXCLUDE : [])]);
    this.weights = Object.fromEntries(Object.entries(WEIGHTS).filter(([k]) => !excluded.has(k as OpKind)));
  }

  /** The next op (a checkpoint every `checkEvery` ops). */
  next(): Op {
    if (++this.sinceCheck > this.opts.checkEvery) {
      this.sinceCheck = 0;
      return { k: "check" };
    }
    const w = { ...this.weights };
    if (this.model.paths.size > this.opts.maxEntries) {
      for (const k of CREATES) if (k in w) w[k] = (w[k] as number) * 0.2;
      for (const k of REMOVES) if (k in w) w[k] = (w[k] as number) * 3;
    }
    const op = this.make(this.rng.weighted(w) as Exclude<OpKind, "check">);
    if (this.rng.chance(this.opts.asUser) && op.k !== "close" && op.k !== "open" && op.k !== "tmpfile") op.as = this.rng.pick(USERS);
    else if (this.rng.chance(this.opts.asUser / 2) && (op.k === "open" || op.k === "tmpfile")) op.as = this.rng.pick(USERS);
    if (op.as && this.opts.userOp && !this.opts.userOp(op)) delete op.as;
    return op;
  }

  /** Tells the model how the op went on the reference root. */
  observe(op: Op, reference: Result): void {
    this.model.update(op, reference);
  }

  // ---- targets ----------------------------------------------------------------------------------

  private existing(kinds?: Kind[]): string | undefined {
    const all = [...this.model.paths].filter(([, k]) => kinds === undefined || kinds.includes(k));
    if (all.length === 0) return undefined;
    return this.rng.pick(all)[0];
  }

  private dirs(): string[] {
    return ["", ...[...this.model.paths].filter(([, k]) => k === "d").map(([p]) => p)];
  }

  private name(): string {
    const r = this.rng;
    const x = r.int(100);
    if (x < 2) return "N".repeat(256); // ENAMETOOLONG
    if (x < 3) return "L".repeat(255);
    if (x < 4) return "é" + r.pick(NAMES); // non-ASCII
    if (x < 5) return "\udce9".repeat(r.pick([255, 256])); // NAME_MAX counts bytes
    if (x < 12) return r.pick(BYTE_NAMES); // not UTF-8
    return r.pick(NAMES);
  }

  private join(dir: string, name: string): string {
    return dir === "" ? name : `${dir}/${name}`;
  }

  /** A path that may or may not exist: mostly a new name in an existing directory. */
  private randomPath(): string {
    const r = this.rng;
    const x = r.int(100);
    if (x < 8) {
      const s = this.byteSibling();
      if (s !== undefined) return s;
    }
    if (x < 80) return this.join(r.pick(this.dirs()), this.name());
    if (x < 88) return this.join(this.existing(["f", "l", "p"]) ?? "a", this.name()); // ENOTDIR or via a symlink
    if (x < 96) return this.join(this.join(r.pick(this.dirs()), "nx" + r.int(3)), this.name()); // ENOENT parent
    const d = this.existing(["d"]);
    if (d !== undefined && x < 98) return `${d}/.`;
    if (d !== undefined) return `${d}/..`;
    return this.name();
  }

  /**
   * An existing path whose last name is not UTF-8, with its last escaped byte changed: a name
   * that differs from one that exists only in an invalid byte (`a\xe9` next to `a\xe8`).
   */
  private byteSibling(): string | undefined {
    const last = (p: string) => p.slice(p.lastIndexOf("/") + 1);
    const ps = [...this.model.paths.keys()].filter((p) => !last(p).isWellFormed());
    if (ps.length === 0) return undefined;
    const p = this.rng.pick(ps);
    let i = p.length - 1;
    while (i > p.lastIndexOf("/") && (p.charCodeAt(i) < 0xdc80 || p.charCodeAt(i) > 0xdcff)) i--;
    const q = p.slice(0, i) + String.fromCharCode(0xdc80 + ((p.charCodeAt(i) - 0xdc80) ^ 1)) + p.slice(i + 1);
    return isNameString(q) ? q : undefined;
  }

  /** An existing path of one of `kinds` with probability `p`, else a random path. */
  private target(kinds: Kind[] | undefined, p = 0.8): string {
    if (this.rng.chance(p)) {
      const e = this.existing(kinds) ?? (this.rng.chance(0.5) ? this.existing() : undefined);
      if (e !== undefined) return e;
    }
    return this.randomPath();
  }

  private openSlot(kinds?: Kind[]): number | undefined {
    const ok = this.model.slots.map((s, i) => (s !== null && (kinds === undefined || kinds.includes(s.kind)) ? i : -1)).filter((i) => i >= 0);
    if (ok.length === 0) return undefined;
    return this.rng.pick(ok);
  }

  private freeSlot(): number | undefined {
    const free = this.model.slots.map((s, i) => (s === null ? i : -1)).filter((i) => i >= 0);
    if (free.length === 0) return undefined;
    return this.rng.pick(free);
  }

  // ---- values -----------------------------------------------------------------------------------

  private offset(): number {
    const r = this.rng;
    const x = r.int(100);
    if (this.opts.dense) return r.int(64 << 10);
    if (x < 12) return 0;
    if (x < 40) return r.int(16 << 10);
    if (x < 62) return r.int(300 << 10);
    if (x < 85) return r.int(5 << 20);
    if (x < 88) return 4 * GiB - r.int(64 << 10); // across the 4 GiB line
    if (x < 93) return 4 * GiB + r.int(8 << 20);
    if (x < 96) return r.range(5, 12) * GiB + r.int(1 << 20); // "files larger than 8 GiB work"
    if (x < 98) return r.int(64) * 65536; // chunk aligned
    return r.int(64) * 4096; // page aligned
  }

  private length(max = 1 << 20): number {
    const r = this.rng;
    const x = r.int(100);
    let n: number;
    if (x < 3) n = 0;
    else if (x < 28) n = r.range(1, 100);
    else if (x < 58) n = r.range(100, 8192);
    else if (x < 72) n = r.int(17) * 4096;
    else if (x < 90) n = r.range(8192, 128 << 10);
    else n = r.range(128 << 10, 1 << 20);
    return Math.min(n, max);
  }

  private mode(): number {
    const m = this.pickMode();
    return this.opts.modeFilter ? this.opts.modeFilter(m) : m;
  }

  private pickMode(): number {
    const r = this.rng;
    return r.chance(0.7) ? r.pick([0o644, 0o600, 0o755, 0o777, 0o666, 0o700, 0o640, 0o444, 0o000]) : r.pick([0o4755, 0o2755, 0o6777, 0o1777, 0o2775, r.int(0o10000)]);
  }

  private time(): TimeArg {
    const r = this.rng;
    const x = r.int(100);
    if (x < 30) return "now";
    if (x < 50) return "omit";
    if (x < 52) return [r.pick(TIMES)[0], 1_000_000_000]; // EINVAL
    if (x < 75) return r.pick(TIMES);
    return [r.range(1_000_000_000, 1_700_000_000), r.int(1_000_000_000)];
  }

  private xname(): string {
    const r = this.rng;
    const x = r.int(100);
    if (x < 85) return r.pick(XNAMES);
    if (x < 88) return "user." + "x".repeat(251); // 256 bytes: ERANGE
    if (x < 90) return "user." + "x".repeat(250); // 255 bytes: fine
    if (x < 93) return "user.";
    if (x < 96) return "other.namespace";
    if (x < 98) return "";
    return "trusted." + r.pick(NAMES);
  }

  private xtarget(existingAttr = false): XTarget {
    const r = this.rng;
    if (existingAttr && this.model.xattrs.size > 0 && r.chance(0.6)) return { p: r.pick([...this.model.xattrs]), nf: r.chance(0.3) || undefined };
    if (r.chance(0.2)) {
      const s = this.openSlot();
      if (s !== undefined) return { s };
    }
    const p = this.target(undefined, 0.85);
    return r.chance(0.3) ? { p, nf: true } : { p };
  }

  // ---- ops --------------------------------------------------------------------------------------

  private make(kind: Exclude<OpKind, "check">): Op {
    const r = this.rng;
    const needSlot = (kinds?: Kind[]): number | undefined => this.openSlot(kinds);
    switch (kind) {
      case "open": {
        const s = this.freeSlot();
        if (s === undefined) return { k: "close", s: this.openSlot() as number };
        const p = r.chance(0.75) ? this.target(["f"], 0.8) : this.target(undefined, 0.6);
        let fl = r.pick([O_RDONLY, O_WRONLY, O_RDWR, O_RDWR]) | O_NONBLOCK;
        if (r.chance(0.6)) fl |= O_CREAT;
        if (r.chance(0.15)) fl |= O_EXCL;
        if (r.chance(0.15) && !this.opts.dense) fl |= O_TRUNC; // (dense: files only grow, no fd points past EOF)
        if (r.chance(0.15)) fl |= O_APPEND;
        if (r.chance(0.03)) fl |= O_DIRECTORY;
        if (r.chance(0.05)) fl |= O_NOFOLLOW;
        if (r.chance(0.05)) fl |= O_NOATIME;
        return { k: "open", p, fl, m: this.mode(), s };
      }
      case "tmpfile": {
        const s = this.freeSlot();
        if (s === undefined) return { k: "close", s: this.openSlot() as number };
        const p = this.target(["d"], 0.9);
        const fl = r.pick([O_RDWR, O_WRONLY, O_RDONLY]) | (r.chance(0.2) ? O_EXCL : 0) | O_NONBLOCK;
        return { k: "tmpfile", p, fl, m: this.mode(), s };
      }
      case "close": {
        const s = needSlot();
        return s === undefined ? this.make("open") : { k: "close", s };
      }
      case "write": {
        const s = needSlot(["f"]) ?? needSlot();
        return s === undefined ? this.make("open") : { k: "write", s, len: this.length(), seed: this.dataSeed() };
      }
      case "pwrite": {
        const s = needSlot(["f"]) ?? needSlot();
        if (s === undefined) return this.make("open");
        return { k: "pwrite", s, off: r.chance(0.01) ? -1 : this.offset(), len: this.length(), seed: this.dataSeed() };
      }
      case "read": {
        const s = needSlot();
        return s === undefined ? this.make("open") : { k: "read", s, len: this.length(256 << 10) };
      }
      case "pread": {
        const s = needSlot();
        return s === undefined ? this.make("open") : { k: "pread", s, off: r.chance(0.01) ? -5 : this.offset(), len: this.length(256 << 10) };
      }
      case "lseek": {
        const s = needSlot();
        if (s === undefined) return this.make("open");
        const wh = r.pick([SEEK_SET, SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_DATA, SEEK_HOLE, SEEK_HOLE]);
        const off = wh === SEEK_CUR || wh === SEEK_END ? r.range(-70000, 70000) : r.chance(0.02) ? -1 : this.offset();
        return { k: "lseek", s, off, wh };
      }
      case "truncate":
        return { k: "truncate", p: this.target(["f"]), size: this.size() };
      case "ftruncate": {
        const s = needSlot();
        return s === undefined ? this.make("open") : { k: "ftruncate", s, size: this.size() };
      }
      case "fallocate": {
        const s = needSlot();
        if (s === undefined) return this.make("open");
        const mode = r.pick([0, 0, 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]);
        const len = r.chance(0.03) ? 0 : Math.max(1, this.length());
        return { k: "fallocate", s, mode, off: r.chance(0.01) ? -1 : this.offset(), len };
      }
      case "cfr": {
        const si = needSlot();
        const so = needSlot();
        if (si === undefined || so === undefined) return this.make("open");
        const oi = r.chance(0.3) ? null : this.offset();
        const oo = r.chance(0.3) ? null : this.offset();
        return { k: "cfr", si, oi, so, oo, len: this.length(512 << 10) };
      }
      case "fsync": {
        const s = needSlot();
        return s === undefined ? this.make("open") : { k: "fsync", s };
      }
      case "mkdir":
        return { k: "mkdir", p: this.randomPathOrExisting(0.1), m: r.chance(0.8) ? r.pick([0o755, 0o777, 0o700, 0o1777, 0o2775]) : this.mode() };
      case "rmdir":
        return { k: "rmdir", p: this.nonRoot(this.target(["d"], 0.85)) };
      case "unlink":
        return { k: "unlink", p: this.nonRoot(this.target(["f", "l", "p", "c", "s", "b"], 0.85)) };
      case "rename": {
        const p = this.nonRoot(this.target(undefined, 0.9));
        let q: string;
        const x = r.int(100);
        if (x < 40) q = this.nonRoot(this.target(undefined, 1));
        else if (x < 45 && this.model.kindOf(p) === "d") q = `${p}/${r.pick(NAMES)}`; // into itself: EINVAL
        else q = this.randomPath();
        const fl = r.pick([0, 0, 0, 0, 0, 0, RENAME_NOREPLACE, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_EXCHANGE, RENAME_EXCHANGE, RENAME_NOREPLACE | RENAME_EXCHANGE]);
        return { k: "rename", p, q: this.nonRoot(q), fl };
      }
      case "link":
        return { k: "link", p: this.target(["f", "l", "p", "s", "c"], 0.85), q: this.nonRoot(this.randomPathOrExisting(0.1)), follow: r.chance(0.2) || undefined };
      case "linkfd": {
        const s = needSlot(["f"]);
        return s === undefined ? this.make("link") : { k: "linkfd", s, q: this.nonRoot(this.randomPathOrExisting(0.1)) };
      }
      case "symlink": {
        const p = this.nonRoot(this.randomPathOrExisting(0.08));
        return { k: "symlink", t: this.symlinkTarget(p), p };
      }
      case "readlink":
        return { k: "readlink", p: this.target(["l"], 0.85) };
      case "chmod":
        return { k: "chmod", p: this.target(undefined, 0.9), m: this.mode() };
      case "fchmod": {
        const s = needSlot();
        return s === undefined ? this.make("chmod") : { k: "fchmod", s, m: this.mode() };
      }
      case "chown":
        return { k: "chown", p: this.target(undefined, 0.9), u: this.id(), g: this.id(), nf: r.chance(0.3) || undefined };
      case "fchown": {
        const s = needSlot();
        return s === undefined ? this.make("chown") : { k: "fchown", s, u: this.id(), g: this.id() };
      }
      case "utimens":
        return { k: "utimens", p: this.target(undefined, 0.9), a: this.time(), mt: this.time(), nf: r.chance(0.3) || undefined };
      case "futimens": {
        const s = needSlot();
        return s === undefined ? this.make("utimens") : { k: "futimens", s, a: this.time(), mt: this.time() };
      }
      case "mknod": {
        const type = r.pick([S_IFIFO, S_IFIFO, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFCHR, S_IFBLK, S_IFREG, 0, S_IFDIR]);
        // only harmless devices (null, zero, full, 0:0), though both roots are nodev anyway
        const dev = type === S_IFCHR || type === S_IFBLK ? r.pick([0x103, 0x105, 0x107, 0]) : 0;
        const perm = r.pick([0o644, 0o600, 0o666, 0o4644, 0o2644]);
        return { k: "mknod", p: this.nonRoot(this.randomPathOrExisting(0.1)), m: type | (this.opts.modeFilter ? this.opts.modeFilter(perm) : perm), dev };
      }
      case "stat":
        return { k: "stat", p: this.target(undefined, 0.85), nf: r.chance(0.5) || undefined };
      case "fstat": {
        const s = needSlot();
        return s === undefined ? this.make("stat") : { k: "fstat", s };
      }
      case "access":
        return { k: "access", p: this.target(undefined, 0.85), mode: r.int(8) };
      case "readdir":
        return { k: "readdir", p: this.target(["d"], 0.9) };
      case "setxattr": {
        const len = r.pick([0, 1, 5, 17, 100, r.int(300), r.int(4096), 65536, 65537]);
        return { k: "setxattr", ...this.xtarget(), n: this.xname(), len, seed: this.dataSeed(), fl: r.pick([0, 0, 0, XATTR_CREATE, XATTR_REPLACE, XATTR_CREATE | XATTR_REPLACE, 4]) };
      }
      case "getxattr":
        return { k: "getxattr", ...this.xtarget(true), n: this.xname(), size: r.pick([0, 1, 3, 65536, 65536, 65536]) };
      case "listxattr":
        return { k: "listxattr", ...this.xtarget(true), size: r.pick([0, 4, 65536, 65536]) };
      case "removexattr":
        return { k: "removexattr", ...this.xtarget(true), n: this.xname() };
      case "statfs":
        return { k: "statfs" };
    }
  }

  private nonRoot(p: string): string {
    return p === "" ? this.rng.pick(NAMES) : p;
  }

  private randomPathOrExisting(pExisting: number): string {
    return this.rng.chance(pExisting) ? this.target(undefined, 1) : this.randomPath();
  }

  /**
   * A symlink target that stays inside the root wherever the link is moved: relative and
   * without "..": another entry of the link's directory or below it, the link itself (a loop),
   * an absent name, or a long string.
   */
  private symlinkTarget(link: string): string {
    const r = this.rng;
    const dir = link.includes("/") ? link.slice(0, link.lastIndexOf("/")) : "";
    const x = r.int(100);
    if (x < 50) {
      const below = [...this.model.paths.keys()].filter((p) => dir === "" || p.startsWith(dir + "/"));
      if (below.length) return dir === "" ? r.pick(below) : r.pick(below).slice(dir.length + 1);
    }
    if (x < 65) return link.slice(dir === "" ? 0 : dir.length + 1); // itself: ELOOP
    if (x < 70) return ".";
    if (x < 74) return "x".repeat(r.pick([200, 4000])); // long targets take a page on tmpfs
    if (x < 75) return "";
    if (x < 82) return r.pick(BYTE_NAMES) + (r.chance(0.3) ? "/" + r.pick(BYTE_NAMES) : ""); // not UTF-8
    return r.pick(NAMES) + (r.chance(0.3) ? "/" + r.pick(NAMES) : "");
  }

  private size(): number {
    const r = this.rng;
    const x = r.int(100);
    if (x < 15) return 0;
    if (x < 17) return -1;
    if (x < 95) return this.offset();
    return r.range(1, 20) * GiB;
  }

  private id(): number {
    return this.rng.chance(0.15) ? -1 : this.rng.pick(IDS);
  }

  private dataSeed(): number {
    return this.rng.chance(0.05) ? 0 : this.xseed++ * 2654435761 >>> 0 || 1;
  }
}
