/**
 * The comparator: decides whether the filesystem under test (A) answered an op like the
 * reference (B), and whether two checkpoints of the whole tree agree.
 *
 * Compared exactly: return values and errno names, names and their readdir order, file types,
 * permission bits, link counts, owners, sizes, device numbers, symlink targets, xattr names (in
 * listing order) and values, file contents (by hash), which names are hard links of which, and
 * statfs totals. Not compared: inode numbers and st_dev. Compared by rules (the intended
 * differences, see docs/differential-testing.md):
 * - times: explicitly set times must be equal; current times must not be ordered differently
 *   (x before y on A but after y on B) and must change between checkpoints on A exactly when they
 *   change on B;
 * - st_blocks and statfs free blocks, where the allocation granularity may differ;
 * - SEEK_DATA/SEEK_HOLE answers: any answer the file's content allows.
 */
import type { Attr, SnapEntry, Snapshot } from "./executor.ts";
import { describe, SEEK_DATA, SEEK_HOLE, S_IFMT, S_IFDIR, S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, type Op, type Result } from "./ops.ts";

export interface Rules {
  /** Compare readdir order (tmpfs and memfs both list newest first); else compare as sets. */
  readdirOrder: boolean;
  /** Compare listxattr order; else as sets. */
  xattrOrder: boolean;
  /**
   * st_blocks of regular files: "exact" always, "dense" only where both files have no holes and
   * the reference holds exactly the pages below EOF (elsewhere memfs's 64 KiB chunks may hold
   * more or fewer pages than tmpfs), "never".
   */
  blocks: "exact" | "dense" | "never";
  /** SEEK_DATA/SEEK_HOLE: "exact", or "content" (any answer the file's content allows). */
  seek: "exact" | "content";
  /** statfs fields to compare exactly. */
  statfs: string[];
  /**
   * statfs free blocks: equal when every file holds the same blocks on both roots, else A's used
   * blocks must add up to what its files hold. Off when both roots share a filesystem.
   */
  statfsFree: boolean;
  /**
   * atime of regular files: "exact" (by the same rules as the other times), or "may-lag": through
   * FUSE, reads the kernel serves from its page cache (and reads at EOF) never reach the daemon, so
   * A's atime may stay behind B's. Then A's atime may only change when B's does, and is left out
   * of the ordering check.
   */
  fileAtime: "exact" | "may-lag";
  /** Inode numbers of removed nodes may come back (ext4 and most disk filesystems; not tmpfs, memfs). */
  inodesReused: boolean;
  /** Compare xattrs at checkpoints (default true; `furing check` without the xattrs family: false). */
  xattrs?: boolean;
  /** Compare times at checkpoints (default true; `furing check` without the times family: false). */
  times?: boolean;
}

export const memfsRules: Rules = {
  readdirOrder: true,
  xattrOrder: true,
  blocks: "dense",
  seek: "content",
  statfs: ["bsize", "frsize", "blocks", "files", "ffree", "favail", "namemax"],
  statfsFree: true,
  fileAtime: "may-lag",
  inodesReused: false,
};

export interface Difference {
  /** Index of the op (in the executed sequence) where it showed. */
  index: number;
  op: Op;
  /** A short stable category, used to check that a shrunk sequence shows the same problem. */
  sig: string;
  message: string;
  /** What A and B answered, when the op's answers differed (not at checkpoints). */
  a?: Result;
  b?: Result;
}

/** The parent's questions to the reference root, for answers that are checked by content. */
export interface Oracle {
  /** Are bytes [from, to) of slot s's file on the reference all zero (to -1: EOF)? And its size. */
  zeros(s: number, from: number, to: number): Promise<{ zero: boolean; size: number }>;
  /** The type of slot s's file on the reference. */
  type(s: number): Promise<"dir" | "file" | "other">;
}

const show = (x: unknown) => JSON.stringify(x);

function sameJSON(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Fields of struct stat compared exactly per op (times and blocks are checked at checkpoints). */
function statFields(st: Attr): Record<string, number> {
  const t = st.mode & S_IFMT;
  return { mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, ...(t === S_IFCHR || t === S_IFBLK ? { rdev: st.rdev } : {}) };
}

/** Compares one op's answers; returns a message when they differ in a way the rules do not allow. */
export async function compareResult(op: Op, a: Result, b: Result, rules: Rules, oracle: Oracle): Promise<string | undefined> {
  const msg = () => `A: ${show(a)}\nB: ${show(b)}`;
  if (a.e !== b.e) return compareErrors(op, a, b, rules, oracle);
  if (a.e !== undefined) return undefined;
  switch (op.k) {
    case "stat":
    case "fstat":
      return sameJSON(statFields(a.v as Attr), statFields(b.v as Attr)) ? undefined : `A: ${show(statFields(a.v as Attr))}\nB: ${show(statFields(b.v as Attr))}`;
    case "statfs": {
      const pick = (v: unknown) => Object.fromEntries(rules.statfs.map((k) => [k, (v as Record<string, number>)[k]]));
      return sameJSON(pick(a.v), pick(b.v)) ? undefined : `A: ${show(a.v)}\nB: ${show(b.v)}`;
    }
    case "readdir":
      if (!rules.readdirOrder) {
        const sort = (v: unknown) => [...(v as Array<[string, number]>)].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
        return sameJSON(sort(a.v), sort(b.v)) ? undefined : msg();
      }
      return sameJSON(a.v, b.v) ? undefined : msg();
    case "listxattr":
      if (!rules.xattrOrder && Array.isArray(a.v) && Array.isArray(b.v)) return sameJSON([...a.v].sort(), [...b.v].sort()) ? undefined : msg();
      return sameJSON(a.v, b.v) ? undefined : msg();
    case "lseek":
      if (a.v === b.v) return undefined;
      // a directory's position is the filesystem's own cookie (and FUSE answers SEEK_END itself)
      if ((await oracle.type(op.s)) === "dir") return undefined;
      if (rules.seek === "content" && (op.wh === SEEK_DATA || op.wh === SEEK_HOLE)) return seekCheck(op, a, b, oracle);
      return msg();
    default:
      return sameJSON(a.v, b.v) ? undefined : msg();
  }
}

/** Compares one op's answers (see compareResult), with the rules that need the reference's help. */
async function compareErrors(op: Op, a: Result, b: Result, rules: Rules, oracle: Oracle): Promise<string | undefined> {
  const msg = `A: ${show(a)}\nB: ${show(b)}`;
  switch (op.k) {
    case "lseek":
      if ((await oracle.type(op.s)) === "dir") {
        // tmpfs takes only SEEK_SET/SEEK_CUR on a directory, disk filesystems (passthrough's
        // reference) answer by their own directory cookies; FUSE's kernel answers SEEK_END/DATA/
        // HOLE itself (generic_file_llseek: SEEK_END from the size, SEEK_DATA/SEEK_HOLE from the
        // size and offset, ENXIO past it) without asking the daemon. And a directory's position
        // is the filesystem's own cookie, so a SEEK_CUR back past 0 fails on one side only
        // (seed 7729870: memfs EINVAL where tmpfs's position was further on).
        return a.e === "ENXIO" || a.e === "EINVAL" || (typeof a.v === "number" && a.v >= 0) ? undefined : `${msg}\n(not what FUSE's generic_file_llseek answers for a directory)`;
      }
      if (rules.seek === "content" && (op.wh === SEEK_DATA || op.wh === SEEK_HOLE)) return seekCheck(op, a, b, oracle);
      return msg;
    case "read":
      // read(2) checks position + count before the directory answers EISDIR, and a directory's
      // position is the filesystem's own cookie (a disk filesystem's SEEK_END lands near 2^63,
      // which FUSE refuses): EINVAL on one side only is that (seed 6253261 against ext4)
      if ((a.e === "EISDIR" || a.e === "EINVAL") && (b.e === "EISDIR" || b.e === "EINVAL") && (await oracle.type(op.s)) === "dir") return undefined;
      return msg;
    default:
      return msg;
  }
}

/**
 * SEEK_DATA/SEEK_HOLE answers that differ from the reference's are accepted when the content
 * allows them: data may be reported where the reference has a hole (allocated zeros), and a hole
 * where the reference holds only zeros; anything else (a position outside [offset, size], a hole
 * over nonzero bytes, data past EOF, another errno) is a difference.
 */
async function seekCheck(op: Op & { k: "lseek" }, a: Result, b: Result, oracle: Oracle): Promise<string | undefined> {
  const bad = (why: string) => `A: ${show(a)}\nB: ${show(b)}\n(${why})`;
  if (a.e !== undefined && a.e !== "ENXIO") return bad("A's errno is not ENXIO");
  if (b.e !== undefined && b.e !== "ENXIO") return bad("B's errno is not ENXIO");
  const off = op.off;
  const { size } = await oracle.zeros(op.s, 0, 0);
  if (off < 0 || off >= size) return bad(`offset ${off} outside [0, ${size}) must give ENXIO on both`);
  if (op.wh === SEEK_DATA) {
    if (a.e !== undefined) return (await oracle.zeros(op.s, off, -1)).zero ? undefined : bad(`A says no data after ${off} but the reference has nonzero bytes there`);
    const r = a.v as number;
    if (r < off || r >= size) return bad(`A's data offset ${r} is outside [${off}, ${size})`);
    return (await oracle.zeros(op.s, off, r)).zero ? undefined : bad(`A skips nonzero bytes in [${off}, ${r})`);
  }
  if (a.e !== undefined) return bad("SEEK_HOLE below EOF cannot give ENXIO");
  const r = a.v as number;
  if (r < off || r > size) return bad(`A's hole offset ${r} is outside [${off}, ${size}]`);
  if (r === size) return undefined;
  if (r !== off && r % 4096 !== 0) return bad(`A's hole at ${r} is neither the offset, a page boundary nor EOF`);
  const end = Math.min(Math.floor(r / 4096) * 4096 + 4096, size);
  return (await oracle.zeros(op.s, r, end)).zero ? undefined : bad(`A reports a hole at ${r} over nonzero bytes`);
}

// ---- checkpoints ----------------------------------------------------------------------------------

/** What a checkpoint comparison keeps for the next one (node identities and times). */
export class CheckState {
  private canonA = new Map<number, number>();
  private canonB = new Map<number, number>();
  private nextA = 1;
  private nextB = 1;
  /** Previous checkpoint's attributes by A's inode number, with B's inode number of the same node. */
  private prev = new Map<number, { bIno: number; a: Attr; b: Attr; children?: string }>();
  /** Start of the run (seconds): times more than a day away from it were set explicitly. */
  readonly start = Math.floor(Date.now() / 1000);

  /** Compares two snapshots; returns the differences (empty when they agree). */
  compare(A: Snapshot, B: Snapshot, rules: Rules): Array<{ sig: string; message: string }> {
    const out: Array<{ sig: string; message: string }> = [];
    const add = (sig: string, message: string) => out.push({ sig, message });

    // Names and their order.
    const pa = A.entries.map((e) => e.p);
    const pb = B.entries.map((e) => e.p);
    if (!sameJSON(pa, pb)) {
      const sa = new Set(pa), sb = new Set(pb);
      const onlyA = pa.filter((p) => !sb.has(p)), onlyB = pb.filter((p) => !sa.has(p));
      if (onlyA.length || onlyB.length) {
        add("snap:names", `names differ: only on A: ${show(onlyA.slice(0, 20))}, only on B: ${show(onlyB.slice(0, 20))}`);
        return out;
      }
      if (rules.readdirOrder) add("snap:order", `readdir order differs:\nA: ${show(pa)}\nB: ${show(pb)}`);
    }
    const byPath = new Map(B.entries.map((e) => [e.p, e]));
    const pairs: Array<[SnapEntry, SnapEntry]> = A.entries.map((e) => [e, byPath.get(e.p) as SnapEntry]);
    if (A.slots.length !== B.slots.length || A.slots.some((s, i) => s.p !== B.slots[i]?.p)) {
      add("snap:slots", `open slots differ: A ${show(A.slots.map((s) => s.p))} B ${show(B.slots.map((s) => s.p))}`);
      return out;
    }
    A.slots.forEach((s, i) => pairs.push([s, B.slots[i] as SnapEntry]));

    // Node identity: which names (and open slots) are the same node, in this snapshot and, where
    // inode numbers are never reused (tmpfs, memfs), since the first one (renames keep nodes).
    const local = (side: 0 | 1) => {
      const m = new Map<number, number>();
      return pairs.map((p) => {
        const ino = p[side].st.ino;
        let id = m.get(ino);
        if (id === undefined) m.set(ino, (id = m.size + 1));
        return id;
      });
    };
    const la = local(0), lb = local(1);
    const ga = rules.inodesReused ? la : pairs.map(([a]) => this.canon(this.canonA, a.st.ino));
    const gb = rules.inodesReused ? lb : pairs.map(([, b]) => this.canon(this.canonB, b.st.ino));
    for (let i = 0; i < pairs.length; i++) {
      if (la[i] === lb[i] && ga[i] === gb[i]) continue;
      const [a] = pairs[i] as [SnapEntry, SnapEntry];
      const sameA = pairs.filter((_, j) => la[j] === la[i]).map(([x]) => x.p);
      const sameB = pairs.filter((_, j) => lb[j] === lb[i]).map(([x]) => x.p);
      add("snap:identity", la[i] !== lb[i] ? `${show(a.p)}: names of the same node differ: A ${show(sameA)} B ${show(sameB)}` : `${show(a.p)}: is the same node as at an earlier checkpoint on one side only`);
      return out;
    }

    // Attributes, contents, xattrs.
    let blocksExact = true;
    let usedA = 0;
    const seenA = new Set<number>();
    for (const [a, b] of pairs) {
      const fa = statFields(a.st), fb = statFields(b.st);
      for (const k of Object.keys({ ...fa, ...fb })) if (fa[k] !== fb[k]) add(`snap:${k}`, `${show(a.p)}: ${k} A ${fmt(k, fa[k])} B ${fmt(k, fb[k])}`);
      if (a.pos !== b.pos) add("snap:position", `${show(a.p)}: file position A ${a.pos} B ${b.pos}`);
      if (a.t !== b.t) add("snap:target", `${show(a.p)}: symlink target A ${show(a.t)} B ${show(b.t)}`);
      if (a.h !== b.h) add("snap:content", `${show(a.p)}: content differs (size ${a.st.size}): ${pageDiff(a, b)}`);
      if (rules.xattrs !== false && !sameJSON(a.x, b.x)) {
        const sorted = (x: SnapEntry["x"]) => (Array.isArray(x) ? [...x].sort((p, q) => (p[0] < q[0] ? -1 : 1)) : x);
        if (rules.xattrOrder || !sameJSON(sorted(a.x), sorted(b.x))) add("snap:xattr", `${show(a.p)}: xattrs A ${show(a.x)} B ${show(b.x)}`);
      }
      const reg = (a.st.mode & S_IFMT) === S_IFREG;
      const fresh = !seenA.has(a.st.ino);
      seenA.add(a.st.ino);
      if (fresh) usedA += a.st.blocks;
      if (a.st.blocks !== b.st.blocks) {
        const comparable = rules.blocks === "exact" || !reg || (rules.blocks === "dense" && a.dense && b.dense && b.st.blocks === Math.ceil(b.st.size / 4096) * 8);
        if (comparable && rules.blocks !== "never") add("snap:blocks", `${show(a.p)}: st_blocks A ${a.st.blocks} B ${b.st.blocks} (size ${a.st.size}, both without holes)`);
        blocksExact = false;
      }
      if (reg && a.st.blocks % 8 !== 0) add("snap:blocks", `${show(a.p)}: st_blocks ${a.st.blocks} on A is not a whole number of pages`);
    }

    // statfs.
    if (typeof A.statfs === "string" || typeof B.statfs === "string") {
      if (A.statfs !== B.statfs) add("snap:statfs", `statfs A ${show(A.statfs)} B ${show(B.statfs)}`);
    } else {
      const fs = A.statfs, fb = B.statfs;
      for (const k of rules.statfs) if (fs[k] !== fb[k]) add("snap:statfs", `statfs ${k}: A ${fs[k]} B ${fb[k]}\nA: ${show(fs)}\nB: ${show(fb)}`);
      if (!rules.statfsFree) {
        // nothing more
      } else if (blocksExact) {
        for (const k of ["bfree", "bavail"]) if (fs[k] !== fb[k]) add("snap:statfs", `statfs ${k}: A ${fs[k]} B ${fb[k]} (every file holds the same blocks on both)`);
      } else if (fs.blocks! > 0) {
        // The free count must still add up on A: used pages = the pages its files hold.
        const used = ((fs.blocks! - fs.bfree!) * fs.frsize!) / 512;
        const usedB = ((fb.blocks! - fb.bfree!) * fb.frsize!) / 512;
        const sumB = sumBlocks(pairs.map(([, b]) => b));
        if (usedB === sumB && used !== usedA) add("snap:statfs", `statfs on A: ${used / 8} pages used, but its files hold ${usedA / 8}`);
      }
    }

    // Times.
    if (rules.times !== false) this.compareTimes(pairs, A.entries.length, rules, add);
    return out;
  }

  /** Canonical node ids, numbered per side in order of first appearance: equal when the trees agree. */
  private canon(map: Map<number, number>, ino: number): number {
    let id = map.get(ino);
    if (id === undefined) map.set(ino, (id = map === this.canonA ? this.nextA++ : this.nextB++));
    return id;
  }

  /** `pairs`: the named entries (the first `named`), then the open descriptors. */
  private compareTimes(pairs: Array<[SnapEntry, SnapEntry]>, named: number, rules: Rules, add: (sig: string, m: string) => void): void {
    const day = 86400;
    const now = (t: [number, number]) => Math.abs(t[0] - this.start) < day;
    const ns = (t: [number, number]) => t[0] * 1e9 + t[1]; // ordering only: float precision is enough within a day
    const current: Array<{ a: number; b: number; what: string; ta: [number, number]; tb: [number, number] }> = [];
    const next = new Map<number, { bIno: number; a: Attr; b: Attr; children?: string }>();
    // each directory's entry names (by path), to tell whether its entries changed since last time
    const children = new Map<string, string[]>();
    for (const [ea] of pairs.slice(0, named)) {
      const cut = ea.p.lastIndexOf("/");
      const dir = cut < 0 ? (ea.p === "" ? undefined : "") : ea.p.slice(0, cut);
      if (dir === undefined) continue;
      const list = children.get(dir);
      if (list === undefined) children.set(dir, [ea.p.slice(cut + 1)]);
      else list.push(ea.p.slice(cut + 1));
    }
    pairs.forEach(([ea, eb]) => {
      const id = ea.st.ino;
      if (next.has(id)) return;
      const names = (ea.st.mode & S_IFMT) === S_IFDIR ? (children.get(ea.p) ?? []).sort().join("/") : undefined;
      next.set(id, { bIno: eb.st.ino, a: ea.st, b: eb.st, children: names });
      for (const f of ["atime", "mtime", "ctime"] as const) {
        const ta = ea.st[f], tb = eb.st[f];
        const na = now(ta), nb = now(tb);
        const type = ea.st.mode & S_IFMT;
        // Times A may not see change: atime of regular files (reads served by the page cache or at
        // EOF never reach the daemon), and all times of FIFOs (the kernel's pipe code stamps
        // them; on FUSE the inode has S_NOATIME|S_NOCMTIME and the daemon is never told).
        const lags = (f === "atime" && type === S_IFREG && rules.fileAtime === "may-lag") || type === S_IFIFO;
        if (!na || !nb) {
          // an explicit time that B's access replaced and A's did not see
          if (lags && nb) continue;
          if (ta[0] !== tb[0] || ta[1] !== tb[1]) add(`snap:${f}`, `${show(ea.p)}: ${f} A ${stamp(ta)} B ${stamp(tb)} (set explicitly on ${na ? "B" : nb ? "A" : "both"})`);
          continue;
        }
        // Current times are ordered, except atimes (whether relatime updated one depends on
        // clock ticks, see below) and lagging times.
        if (f !== "atime" && !lags) current.push({ a: ns(ta), b: ns(tb), what: `${show(ea.p)} ${f}`, ta, tb });
        const prior = this.prev.get(id);
        // the same node as last time on both sides (inode numbers may be reused on some filesystems)
        const before = prior !== undefined && prior.bIno === eb.st.ino ? prior : undefined;
        if (!before) continue;
        const ca = !sameJSON(before.a[f], ta), cb = !sameJSON(before.b[f], tb);
        if (ca === cb) continue;
        if (cb && lags) continue;
        if (f === "atime") {
          // relatime decides by the order of atime against mtime/ctime, and that order is not the
          // same on both sides near a clock tick: tmpfs's multigrain timestamps take the fine clock
          // only for a ctime someone looked at (stat), and an atime it takes that way raises no
          // floor, so a later coarse mtime can be older than it; B's decisions follow that hidden
          // state. So a one-sided atime change is judged by A's own times (relatime on A is what
          // is under test), never by a tolerance:
          // - B updated and A did not: A must not have been due (atime newer than mtime and ctime,
          //   and less than a day old) when the window began, or be due only through an mtime set
          //   in the future: then every access is due, and touch_atime skips one at the very time
          //   the atime already holds (no clock tick since), which the comparator cannot see;
          // - A updated and B did not: A must have been due when the window began, or have had
          //   its ctime changed in it (any change makes it due again).
          if (cb && (!relatimeDue(before.a) || dueOnlyByFutureMtime(before.a))) continue;
          if (ca && (relatimeDue(before.a) || !sameJSON(before.a.ctime, ea.st.ctime))) continue;
        } else if (ca && names !== undefined && before.children !== undefined && names !== before.children) {
          // A directory whose entries changed, with mtime/ctime moved on A only: tmpfs's link,
          // unlink and rmdir stamp the directory with the linked or removed node's new time, and
          // within one clock tick that can be the directory's own current time (the change stays
          // invisible on B); memfs stamps the directory itself, so its times always move.
          continue;
        }
        const times = (st: Attr) => `a ${stamp(st.atime)} m ${stamp(st.mtime)} c ${stamp(st.ctime)}`;
        add(
          `snap:${f}-change`,
          `${show(ea.p)}: ${f} ${cb ? "changed" : "did not change"} on B since the last checkpoint but ${ca ? "changed" : "did not change"} on A\n` +
            `  A: ${times(before.a)} → ${times(ea.st)}\n  B: ${times(before.b)} → ${times(eb.st)}`,
        );
      }
    });
    this.prev = next;
    // No two current times in opposite orders: sort by A, look for a B smaller than an earlier group's.
    current.sort((x, y) => x.a - y.a || x.b - y.b);
    let max: (typeof current)[number] | undefined;
    for (let i = 0; i < current.length; ) {
      let j = i;
      while (j < current.length && current[j]!.a === current[i]!.a) j++;
      for (let k = i; k < j; k++) {
        const c = current[k]!;
        if (max !== undefined && c.b < max.b) {
          add("snap:time-order", `${max.what} is later than ${c.what} on B (${stamp(max.tb)} > ${stamp(c.tb)}) but earlier on A (${stamp(max.ta)} < ${stamp(c.ta)})`);
          return;
        }
      }
      for (let k = i; k < j; k++) if (max === undefined || current[k]!.b > max.b) max = current[k]!;
      i = j;
    }
  }
}

/**
 * Would relatime update this atime on the next access: not newer than mtime or ctime, or more
 * than a day old (relatime_need_update)?
 */
function relatimeDue(st: Attr): boolean {
  const le = (x: [number, number], y: [number, number]) => x[0] < y[0] || (x[0] === y[0] && x[1] <= y[1]);
  return le(st.atime, st.mtime) || le(st.atime, st.ctime) || Date.now() / 1000 - st.atime[0] >= 86400;
}

/** Due for relatime only because mtime was set ahead of the clock (utimensat into the future)? */
function dueOnlyByFutureMtime(st: Attr): boolean {
  const le = (x: [number, number], y: [number, number]) => x[0] < y[0] || (x[0] === y[0] && x[1] <= y[1]);
  const now = Date.now() / 1000;
  return st.mtime[0] > now && !le(st.atime, st.ctime) && now - st.atime[0] < 86400;
}

function sumBlocks(entries: SnapEntry[]): number {
  const seen = new Set<number>();
  let n = 0;
  for (const e of entries) if (!seen.has(e.st.ino)) (seen.add(e.st.ino), (n += e.st.blocks));
  return n;
}

function stamp(t: [number, number]): string {
  return `${t[0]}.${String(t[1]).padStart(9, "0")}`;
}

function fmt(k: string, v: number | undefined): string {
  return v === undefined ? "-" : k === "mode" ? "0" + v.toString(8) : String(v);
}

function pageDiff(a: SnapEntry, b: SnapEntry): string {
  if (!a.pages || !b.pages) return `hash A ${a.h} B ${b.h}`;
  const ma = new Map(a.pages), mb = new Map(b.pages);
  const diff: number[] = [];
  for (const k of new Set([...ma.keys(), ...mb.keys()])) if (ma.get(k) !== mb.get(k)) diff.push(k);
  diff.sort((x, y) => x - y);
  return `pages that differ (4 KiB index): ${diff.slice(0, 12).join(", ")}${diff.length > 12 ? ` … (${diff.length})` : ""}; nonzero pages A ${a.pages.length} B ${b.pages.length}`;
}

export function formatOps(ops: Op[]): string {
  return ops.map((op, i) => `${String(i + 1).padStart(4)}  ${describe(op)}`).join("\n");
}
