/**
 * The node table: node records, directory entries, lookup and link counting, freeing.
 *
 * Every node is a fixed record of 128 bytes in the shared "memfs.nodes" region, at its slot
 * (field indexes below). A {@link Node} is one thread's view of a slot: its properties read and
 * write the record, so it is at once the filesystem's inode and the `Entry`/`Attr` the runtime
 * encodes. The runtime reads an entry's fields after the op has returned and dropped the lock:
 * each field is one aligned word (never torn), and a node an entry reply names cannot be freed
 * before the kernel forgets it, so at worst fields come from two moments, as a kernel
 * filesystem's lockless stat (generic_fillattr) reads them.
 *
 * Node ids: slot + generation × 2^32. A freed slot is reused with its generation raised, so an
 * id is not handed out twice (until a slot has been reused 2^21 times) and the FUSE generation
 * stays 0; the root is slot 1, generation 0: ROOT_ID.
 *
 * Directories are records in the shared heap: a name table (StringMap name → cookie) and a list
 * of entries in cookie order (oldest first; readdir walks it backwards), so a listing can resume
 * from any cookie by binary search while entries come and go. Removed entries stay in the list
 * as tombstones (node id 0) until they outnumber the live ones, then the list is compacted.
 * Names are stored as UTF-16 code units: any JS string round-trips exactly.
 *
 * Lifetime: a node is freed (its slot released, its data and accounting given back) when it has
 * no names (nlink 0), the kernel holds no references (nlookup 0: every entry reply adds one,
 * forget subtracts) and no open file or directory handle refers to it.
 *
 * Everything here runs with the state's lock held (ops.ts takes it for every op).
 */
import { S_IFDIR, S_IFMT, ROOT_ID, nameByteLength, atimeNeedsUpdate, type AtimeMode, type Entry, readUnits, writeUnits } from "furing";
import * as sys from "furing/sys";
import { EEXIST, ENAMETOOLONG, ENOENT, ENOSPC, ENOTDIR } from "./errors.ts";
import { nodeById, viewOf, type MemfsState } from "./state.ts";
import { M_FLOOR_NSEC, M_FLOOR_SEC, M_FREE_SLOT, M_LIVE, M_NEXT_SLOT } from "./layout.ts";
import { freeData } from "./data.ts";
import { freeXattrs } from "./xattr.ts";

/** Size tmpfs reports per directory entry (BOGO_DIRENT_SIZE); an empty directory is 2 of them. */
export const DIRENT_SIZE = 20;
/** Inode-space cost of one node or extra hard link, as in tmpfs (BOGO_INODE_SIZE). */
export const INODE_SPACE = 1024;
/** Longest name, in bytes (counted with nameByteLength: an escaped byte counts one). */
export const NAME_MAX = 255;
/** Slots per generation: ids are slot + generation × SLOT_LIMIT. */
export const SLOT_LIMIT = 2 ** 32;

// A record: 16 Float64 / 32 Uint32 words.
export const NODE_BYTES = 128;
export const NODE_F64 = 16;
export const NODE_U32 = 32;
export const N_ID = 0;
const N_SIZE = 1, N_BLOCKS = 2, N_ATIME = 3, N_MTIME = 4, N_CTIME = 5, N_NLOOKUP = 6, N_PARENT = 7;
const U_ATIME_NS = 16, U_MTIME_NS = 17, U_CTIME_NS = 18, U_MODE = 19, U_NLINK = 20, U_UID = 21, U_GID = 22, U_RDEV = 23;
const U_OPENS = 24, U_WRITERS = 25, U_DIR = 26, U_CHUNKS = 27, U_TARGET = 28, U_XATTRS = 29, U_GEN = 30;
/** Non-zero while the slot holds a node: LIVE, plus LINKABLE for an O_TMPFILE node `link` may name. */
export const N_LIVE_U32 = 31;
const LIVE = 1;
/**
 * An O_TMPFILE node opened without O_EXCL and not linked yet: the only kind of node with nlink 0
 * that `link` may give a name. A flag in the shared record, so every instance sees it, and it
 * goes with the node when the node is freed (the word is cleared).
 */
const LINKABLE = 2;

/**
 * A thread's view of one node record: each field below is a property that reads and writes the
 * record (accessors installed from FIELDS).
 */
export class Node implements Entry {
  declare readonly ino: number;
  declare mode: number;
  declare nlink: number;
  declare uid: number;
  declare gid: number;
  declare size: number;
  /** 512-byte blocks allocated (data chunks, long symlink targets). */
  declare blocks: number;
  declare rdev: number;
  declare atimeSec: number;
  declare atimeNsec: number;
  declare mtimeSec: number;
  declare mtimeNsec: number;
  declare ctimeSec: number;
  declare ctimeNsec: number;
  /** Entry replies the kernel has not forgotten yet. */
  declare nlookup: number;
  /** Open file and directory handles. */
  declare opens: number;
  /** Of those, handles open for writing. */
  declare writers: number;
  /** Directories: the containing directory's id (the root's is itself). */
  declare parent: number;
  /** Directories: their record in the heap (0 for other nodes). */
  declare dir: number;
  /** Regular files: their chunk table in the heap (data.ts); 0 while the file has none. */
  declare chunks: number;
  /** Symlinks: the target's UTF-16 units in the heap; 0 otherwise. */
  declare targetPtr: number;
  /** Extended attributes: a StringMap in the heap (name → value block); 0 until the first one. */
  declare xattrs: number;
  /** First Float64 and Uint32 index of the record. */
  readonly f: number;
  readonly u: number;
  constructor(
    readonly s: MemfsState,
    readonly slot: number,
  ) {
    this.f = slot * NODE_F64;
    this.u = slot * NODE_U32;
  }
  get isDir(): boolean {
    return this.s.nu[this.u + U_DIR] !== 0;
  }
}

/** Record fields: name, Float64 (true) or Uint32 word, index. */
const FIELDS: [string, boolean, number][] = [
  ["ino", true, N_ID], ["size", true, N_SIZE], ["blocks", true, N_BLOCKS], ["atimeSec", true, N_ATIME],
  ["mtimeSec", true, N_MTIME], ["ctimeSec", true, N_CTIME], ["nlookup", true, N_NLOOKUP], ["parent", true, N_PARENT],
  ["atimeNsec", false, U_ATIME_NS], ["mtimeNsec", false, U_MTIME_NS], ["ctimeNsec", false, U_CTIME_NS],
  ["mode", false, U_MODE], ["nlink", false, U_NLINK], ["uid", false, U_UID], ["gid", false, U_GID], ["rdev", false, U_RDEV],
  ["opens", false, U_OPENS], ["writers", false, U_WRITERS], ["dir", false, U_DIR], ["chunks", false, U_CHUNKS],
  ["targetPtr", false, U_TARGET], ["xattrs", false, U_XATTRS],
];
for (const [name, wide, k] of FIELDS) {
  Object.defineProperty(Node.prototype, name, wide
    ? { get(this: Node) { return this.s.nf[this.f + k]; }, set(this: Node, v: number) { this.s.nf[this.f + k] = v; } }
    : { get(this: Node) { return this.s.nu[this.u + k]; }, set(this: Node, v: number) { this.s.nu[this.u + k] = v; } });
}

// ---------------------------------------------------------------------------------------------
// Clock: times are stamped the way the kernel stamps tmpfs (multigrain timestamps, Linux ≥ 6.13).
// A change is stamped with the coarse clock (CLOCK_REALTIME_COARSE, the time of the last timer
// tick, what current_time() returns), unless that would not move the node's ctime forward: then
// with the fine clock, which also raises a floor that later coarse stamps never go below (so times
// never run backwards). tmpfs takes the fine clock only when someone looked at the ctime since it
// last changed (stat marks it "queried"); a FUSE server cannot know that (the kernel answers most
// stats from its attribute cache), so memfs acts as if it always had been: a change always gets a
// time later than the one it replaces. Each node is stamped once per operation, with one time for
// every field the operation changes (like inode_set_ctime_current()). Accesses (atime) follow
// current_time(): the coarse time, or a fine one when the coarse time equals the ctime.
// The floor is shared (every thread's stamps are ordered); the rest is this op's, under the lock.

const coarse = { sec: 0, nsec: 0 };
const fine = { sec: 0, nsec: 0 };
/** This operation's time: the coarse clock when it started, or the floor if that is later. */
let nowSec = 0;
let nowNsec = 0;
/** Nodes stamped by this operation and their stamps (an operation stamps at most a few). */
const opNodes: Node[] = [];
const opSec: number[] = [];
const opNsec: number[] = [];
/** The stamp chosen by the last changeTime(). */
let tSec = 0;
let tNsec = 0;

/** Start an operation that changes nodes: read the coarse clock once. */
export function tick(s: MemfsState): void {
  sys.clockGettime(sys.CLOCK_REALTIME_COARSE, coarse);
  const floorSec = s.meta[M_FLOOR_SEC] as number;
  const floorNsec = s.meta[M_FLOOR_NSEC] as number;
  if (coarse.sec > floorSec || (coarse.sec === floorSec && coarse.nsec > floorNsec)) {
    nowSec = coarse.sec;
    nowNsec = coarse.nsec;
  } else {
    nowSec = floorSec;
    nowNsec = floorNsec;
  }
  opNodes.length = 0;
}

/** Pick the time `n` is stamped with by this operation (into tSec/tNsec). */
function changeTime(n: Node): void {
  const i = opNodes.indexOf(n);
  if (i >= 0) {
    tSec = opSec[i] as number;
    tNsec = opNsec[i] as number;
    return;
  }
  let s = nowSec;
  let ns = nowNsec;
  if (s < n.ctimeSec || (s === n.ctimeSec && ns <= n.ctimeNsec)) {
    sys.clockGettime(sys.CLOCK_REALTIME, fine);
    s = fine.sec;
    ns = fine.nsec;
    const m = n.s.meta;
    const floorSec = m[M_FLOOR_SEC] as number;
    if (s > floorSec || (s === floorSec && ns > (m[M_FLOOR_NSEC] as number))) {
      m[M_FLOOR_SEC] = nowSec = s;
      m[M_FLOOR_NSEC] = nowNsec = ns;
    }
  }
  opNodes.push(n);
  opSec[opNodes.length - 1] = s;
  opNsec[opNodes.length - 1] = ns;
  tSec = s;
  tNsec = ns;
}

/** setattr's UTIME_NOW: atime gets the time the node's change is stamped with. */
export function setAtime(n: Node): void {
  changeTime(n);
  n.atimeSec = tSec;
  n.atimeNsec = tNsec;
}
export function setCtime(n: Node): void {
  changeTime(n);
  n.ctimeSec = tSec;
  n.ctimeNsec = tNsec;
}
/** mtime and ctime: content changed (data, or a directory's entries). */
export function setMtime(n: Node): void {
  changeTime(n);
  n.mtimeSec = n.ctimeSec = tSec;
  n.mtimeNsec = n.ctimeNsec = tNsec;
}

/**
 * An access (read, readdir, readlink) under atime mode `mode` (for this node: the caller applies
 * nodiratime), as touch_atime: the mount's rule (furing's atimeNeedsUpdate), and only if the
 * current time differs from atime. Reads the clock only when the rule may update.
 */
export function accessed(n: Node, mode: AtimeMode): void {
  if (mode === "noatime") return;
  const a = n.atimeSec;
  const an = n.atimeNsec;
  if (atimeNeedsUpdate(mode, a, an, n.mtimeSec, n.mtimeNsec, n.ctimeSec, n.ctimeNsec, Date.now() / 1000)) {
    tick(n.s);
    let s = nowSec;
    let ns = nowNsec;
    // current_time(): fine-grained when the coarse time shows no change from ctime (and, unlike a
    // change, without raising the floor)
    if (ns === n.ctimeNsec) {
      sys.clockGettime(sys.CLOCK_REALTIME, fine);
      s = fine.sec;
      ns = fine.nsec;
    }
    if (s === a && ns === an) return;
    n.atimeSec = s;
    n.atimeNsec = ns;
  }
}

// ---------------------------------------------------------------------------------------------
// Table lookups.

/** The node with id `ino`; ENOENT if it is not in the table. */
export function getNode(state: MemfsState, ino: number): Node {
  const n = nodeById(state, ino);
  if (n === undefined) throw ENOENT;
  return n;
}

/**
 * Directory `ino`, for an operation on its entries: ENOENT if absent, ENOTDIR if not a
 * directory. `live`: also ENOENT if it was removed (creating in a deleted cwd).
 */
export function getDir(state: MemfsState, ino: number, live: boolean): Node {
  const n = nodeById(state, ino);
  if (n === undefined) throw ENOENT;
  if (!n.isDir) throw ENOTDIR;
  if (live && n.nlink === 0) throw ENOENT;
  return n;
}

/** Byte length of a name string (escaped bytes count one each; ASCII needs no encoding pass). */
export function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return nameByteLength(s);
  return s.length;
}

export function checkName(name: string): void {
  // A UTF-16 unit is at most 3 bytes: names of up to 85 units always fit.
  if (name.length > 85 && nameByteLength(name) > NAME_MAX) throw ENAMETOOLONG;
}

/**
 * `dir` has a cookie left for a new entry (ENOSPC): tmpfs reuses offsets cyclically; memfs never
 * reuses one, so a directory hands out 2^31 - 4 of them. Checked before anything changes.
 */
export function checkCookie(dir: Node): void {
  if ((dir.s.heap.f64[(dir.dir >>> 3) + D_NEXT_COOKIE_F64] as number) >= DIR_EOD - 1) throw ENOSPC;
}

/** Name must be new in `dir`: ENAMETOOLONG, EEXIST, ENOSPC (no cookie left). */
export function checkNewName(dir: Node, name: string): void {
  checkName(name);
  checkCookie(dir);
  if (name === "." || name === ".." || dirCookie(dir, name) >= 0) throw EEXIST;
}

// ---------------------------------------------------------------------------------------------
// Directories. A record of 32 bytes in the heap:
//   u32 [0] name table (StringMap name → cookie), [1] entry list, [2] list length (tombstones
//   included), [3] list capacity (entries), [4] tombstones, [5] live entries;
//   f64 [3] next cookie (1 and 2 are "." and "..").
// An entry: f64 cookie, f64 node id (0: removed), u32 name (UTF-16 units), u32 name length.

const D_NAMES = 0, D_LIST = 1, D_LEN = 2, D_CAP = 3, D_DEAD = 4, D_COUNT = 5;
const D_NEXT_COOKIE_F64 = 3;
const DIR_BYTES = 32;
const ENT_BYTES = 24;
const FIRST_CAP = 4;

function newDir(s: MemfsState): number {
  const h = s.heap;
  const d = h.alloc(DIR_BYTES);
  const w = d >>> 2;
  h.u32[w + D_NAMES] = s.names.create();
  h.u32[w + D_LIST] = h.alloc(FIRST_CAP * ENT_BYTES);
  h.u32[w + D_LEN] = 0;
  h.u32[w + D_CAP] = FIRST_CAP;
  h.u32[w + D_DEAD] = 0;
  h.u32[w + D_COUNT] = 0;
  h.f64[(d >>> 3) + D_NEXT_COOKIE_F64] = 3;
  return d;
}

function freeDir(s: MemfsState, d: number): void {
  const h = s.heap;
  const w = d >>> 2;
  s.names.at(h.u32[w + D_NAMES] as number).destroy();
  const list = h.u32[w + D_LIST] as number;
  const len = h.u32[w + D_LEN] as number;
  for (let i = 0; i < len; i++) h.free(h.u32[((list + i * ENT_BYTES) >>> 2) + 4] as number);
  h.free(list);
  h.free(d);
}

/** Live entries of directory `dir`. */
export function dirSize(dir: Node): number {
  return dir.s.heap.u32[(dir.dir >>> 2) + D_COUNT] as number;
}

/** The cookie of `name` in `dir`, or -1. */
export function dirCookie(dir: Node, name: string): number {
  const s = dir.s;
  const c = s.names.at(s.heap.u32[dir.dir >>> 2] as number).get(name);
  return c === undefined ? -1 : c;
}

/** The node `name` in `dir` names, or undefined. */
export function dirChild(dir: Node, name: string): Node | undefined {
  const c = dirCookie(dir, name);
  if (c < 0) return undefined;
  const s = dir.s;
  const h = s.heap;
  const list = h.u32[(dir.dir >>> 2) + D_LIST] as number;
  const i = indexBefore(dir, c);
  return nodeById(s, h.f64[((list + i * ENT_BYTES) >>> 3) + 1] as number);
}

/** Entries of `dir`'s list (live or not) before index `i`... see entry accessors below. */
export function listLength(dir: Node): number {
  return dir.s.heap.u32[(dir.dir >>> 2) + D_LEN] as number;
}
/** Cookie of list entry `i`. */
export function entryCookie(dir: Node, i: number): number {
  const h = dir.s.heap;
  return h.f64[((h.u32[(dir.dir >>> 2) + D_LIST] as number) + i * ENT_BYTES) >>> 3] as number;
}
/** Node id of list entry `i` (0: removed). */
export function entryNode(dir: Node, i: number): number {
  const h = dir.s.heap;
  return h.f64[(((h.u32[(dir.dir >>> 2) + D_LIST] as number) + i * ENT_BYTES) >>> 3) + 1] as number;
}
/** Name of list entry `i` (a new string). */
export function entryName(dir: Node, i: number): string {
  const h = dir.s.heap;
  const w = ((h.u32[(dir.dir >>> 2) + D_LIST] as number) + i * ENT_BYTES) >>> 2;
  return readUnits(h.u16, h.u32[w + 4] as number, h.u32[w + 5] as number);
}

/**
 * The directory offset that ends a listing: the offset after the last entry, as tmpfs's
 * DIR_OFFSET_EOD (S32_MAX, so 32-bit telldir can hold every offset). Cookies stay below it.
 */
export const DIR_EOD = 0x7fffffff;

/**
 * Where a listing resumes from offset `off`, as tmpfs: the end of the list (newest entry) for 0,
 * 1, 2 and any offset that is not a cookie above them all; after that, the entry whose cookie is
 * `off` (or the next older one, if it was removed): the kernel passes back the cookie of the
 * entry that was next. Nothing for DIR_EOD. Returns the index one past the first entry to list.
 */
export function listStart(dir: Node, off: number): number {
  if (off === DIR_EOD) return 0;
  return off < 3 ? listLength(dir) : indexBefore(dir, off + 1);
}

/** The live entry before index `i` (the next one a listing shows), or -1. */
export function prevLive(dir: Node, i: number): number {
  while (--i >= 0) if (entryNode(dir, i) !== 0) return i;
  return -1;
}

/** The offset a listing reports after entry... `i` (-1: none left): its cookie, or DIR_EOD. */
export function offsetOf(dir: Node, i: number): number {
  return i < 0 ? DIR_EOD : entryCookie(dir, i);
}

/** Number of entries in the list (live or not) whose cookie is less than `cookie`. */
export function indexBefore(dir: Node, cookie: number): number {
  const h = dir.s.heap;
  const w = dir.dir >>> 2;
  const list = (h.u32[w + D_LIST] as number) >>> 3;
  let lo = 0;
  let hi = h.u32[w + D_LEN] as number;
  const f = h.f64;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((f[list + mid * 3] as number) < cookie) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// Creating, linking and removing.

/** Reserve inode space for a node or an extra hard link (ENOSPC when exhausted). */
export function reserveInode(state: MemfsState): void {
  if (state.ispaceFree < INODE_SPACE) throw ENOSPC;
  state.ispaceFree -= INODE_SPACE;
}
export function releaseInode(state: MemfsState): void {
  state.ispaceFree += INODE_SPACE;
}

/** A slot for a new node: a freed one (next generation) or a fresh one. */
function takeSlot(s: MemfsState): number {
  const m = s.meta;
  const free = m[M_FREE_SLOT] as number;
  if (free !== 0) {
    m[M_FREE_SLOT] = s.nf[free * NODE_F64 + N_PARENT] as number;
    return free;
  }
  const slot = m[M_NEXT_SLOT] as number;
  if (slot >= SLOT_LIMIT) throw ENOSPC;
  const end = (slot + 1) * NODE_BYTES;
  const r = s.nodeRegion;
  if (end > r.byteLength) {
    if (end > r.maxByteLength) throw ENOSPC;
    r.grow(Math.min(r.maxByteLength, Math.max(end, r.byteLength * 2)));
  }
  m[M_NEXT_SLOT] = slot + 1;
  return slot;
}

/**
 * A new node in the table (not linked anywhere yet), stamped with the current tick. Reserves
 * its inode space: call only after every other check passed.
 */
export function newNode(state: MemfsState, mode: number, uid: number, gid: number): Node {
  reserveInode(state);
  const slot = takeSlot(state);
  const f = slot * NODE_F64;
  const u = slot * NODE_U32;
  const nf = state.nf;
  const nu = state.nu;
  const gen = nu[u + U_GEN] as number;
  nu.fill(0, u, u + NODE_U32);
  nf.fill(0, f + 1, f + NODE_F64);
  nf[f + N_ID] = slot + gen * SLOT_LIMIT;
  nu[u + U_GEN] = gen;
  nu[u + U_MODE] = mode;
  nu[u + U_NLINK] = 1;
  nu[u + U_UID] = uid;
  nu[u + U_GID] = gid;
  nf[f + N_ATIME] = nf[f + N_MTIME] = nf[f + N_CTIME] = nowSec;
  nu[u + U_ATIME_NS] = nu[u + U_MTIME_NS] = nu[u + U_CTIME_NS] = nowNsec;
  if ((mode & S_IFMT) === S_IFDIR) {
    nu[u + U_DIR] = newDir(state);
    nu[u + U_NLINK] = 2;
    nf[f + N_SIZE] = 2 * DIRENT_SIZE;
  }
  nu[u + N_LIVE_U32] = LIVE;
  state.meta[M_LIVE] = (state.meta[M_LIVE] as number) + 1;
  return state.views[slot] ?? viewOf(state, slot);
}

/** Let `link` give `n` (an O_TMPFILE node, nlink 0) its first name. */
export function markLinkable(n: Node): void {
  n.s.nu[n.u + N_LIVE_U32] = LIVE | LINKABLE;
}

/** Whether `n` may get its first name from `link`; it may not any more after this (it gets one). */
export function takeLinkable(n: Node): boolean {
  const nu = n.s.nu;
  if ((nu[n.u + N_LIVE_U32]! & LINKABLE) === 0) return false;
  nu[n.u + N_LIVE_U32] = LIVE;
  return true;
}

/** Add `name` → `node` at the end of `dir` (a new cookie). Adjusts dir size and link counts. */
export function addEntry(dir: Node, name: string, node: Node): void {
  const s = dir.s;
  const h = s.heap;
  const d = dir.dir;
  const w = d >>> 2;
  let len = h.u32[w + D_LEN] as number;
  const cap = h.u32[w + D_CAP] as number;
  let list = h.u32[w + D_LIST] as number;
  if (len === cap) {
    const live = h.u32[w + D_COUNT] as number;
    if ((h.u32[w + D_DEAD] as number) > 0 && live < cap >>> 1) {
      compact(dir);
      len = h.u32[w + D_LEN] as number;
      list = h.u32[w + D_LIST] as number;
    } else {
      const bigger = h.alloc(cap * 2 * ENT_BYTES);
      h.u8.copyWithin(bigger, list, list + len * ENT_BYTES);
      h.free(list);
      list = bigger;
      h.u32[w + D_LIST] = list;
      h.u32[w + D_CAP] = cap * 2;
    }
  }
  const cookie = h.f64[(d >>> 3) + D_NEXT_COOKIE_F64] as number;
  h.f64[(d >>> 3) + D_NEXT_COOKIE_F64] = cookie + 1;
  const e = list + len * ENT_BYTES;
  const np = h.alloc(name.length * 2);
  writeUnits(h.u16, np, name);
  h.f64[e >>> 3] = cookie;
  h.f64[(e >>> 3) + 1] = node.ino;
  h.u32[(e >>> 2) + 4] = np;
  h.u32[(e >>> 2) + 5] = name.length;
  h.u32[w + D_LEN] = len + 1;
  h.u32[w + D_COUNT] = (h.u32[w + D_COUNT] as number) + 1;
  s.names.at(h.u32[w + D_NAMES] as number).set(name, cookie);
  dir.size += DIRENT_SIZE;
  if (node.isDir) {
    dir.nlink++;
    node.parent = dir.ino;
  }
}

/** Drop the tombstones of `dir`'s list. */
function compact(dir: Node): void {
  const h = dir.s.heap;
  const w = dir.dir >>> 2;
  const list = h.u32[w + D_LIST] as number;
  const len = h.u32[w + D_LEN] as number;
  let out = 0;
  for (let i = 0; i < len; i++) {
    const e = list + i * ENT_BYTES;
    if (h.f64[(e >>> 3) + 1] === 0) continue;
    if (out !== i) h.u8.copyWithin(list + out * ENT_BYTES, e, e + ENT_BYTES);
    out++;
  }
  h.u32[w + D_LEN] = out;
  h.u32[w + D_DEAD] = 0;
}

/**
 * Take `name` (which must be there) out of `dir`; returns its node. Adjusts dir size and the
 * parent's link count; not the node's.
 */
export function removeEntry(dir: Node, name: string): Node {
  const s = dir.s;
  const h = s.heap;
  const w = dir.dir >>> 2;
  const names = s.names.at(h.u32[w + D_NAMES] as number);
  const cookie = names.get(name) as number;
  names.delete(name);
  const i = indexBefore(dir, cookie);
  const e = (h.u32[w + D_LIST] as number) + i * ENT_BYTES;
  const node = nodeById(s, h.f64[(e >>> 3) + 1] as number) as Node;
  h.f64[(e >>> 3) + 1] = 0;
  h.free(h.u32[(e >>> 2) + 4] as number);
  h.u32[(e >>> 2) + 4] = 0;
  h.u32[(e >>> 2) + 5] = 0;
  h.u32[w + D_COUNT] = (h.u32[w + D_COUNT] as number) - 1;
  const dead = (h.u32[w + D_DEAD] as number) + 1;
  h.u32[w + D_DEAD] = dead;
  dir.size -= DIRENT_SIZE;
  if (node.isDir) dir.nlink--;
  if (dead > 64 && dead > (h.u32[w + D_LEN] as number) >>> 1) compact(dir);
  return node;
}

/**
 * One name of `node` went away (unlink, rmdir, replaced by rename): drop its link count as
 * tmpfs does (a directory loses both its name and its "."), return the extra-link inode space,
 * stamp ctime, and free the node if nothing refers to it any more. Call after removeEntry.
 */
export function dropLink(state: MemfsState, node: Node): void {
  if (node.isDir) node.nlink = 0;
  else {
    if (node.nlink > 1) releaseInode(state);
    node.nlink--;
  }
  setCtime(node);
  maybeFree(state, node);
}

/** Is directory `a` the same as `d` or one of its ancestors? */
export function isAncestor(state: MemfsState, a: Node, d: Node): boolean {
  let cur: Node | undefined = d;
  while (cur !== undefined) {
    if (cur === a) return true;
    if (cur.ino === ROOT_ID) return false;
    cur = nodeById(state, cur.parent);
  }
  return false;
}

/** A symlink's target. */
export function targetOf(n: Node): string {
  const h = n.s.heap;
  const p = n.targetPtr;
  return readUnits(h.u16, p, h.sizeOf(p) >>> 1);
}

/** Store a symlink's target. */
export function setTarget(n: Node, target: string): void {
  const h = n.s.heap;
  const p = h.alloc(target.length * 2);
  writeUnits(h.u16, p, target);
  n.targetPtr = p;
}

// ---------------------------------------------------------------------------------------------
// Freeing.

/** Free `node` if nothing refers to it: no name, no kernel reference, no open handle. */
export function maybeFree(state: MemfsState, node: Node): void {
  if (node.nlink !== 0 || node.nlookup > 0 || node.opens > 0 || node.ino === ROOT_ID) return;
  const u = node.slot * NODE_U32;
  if (state.nu[u + N_LIVE_U32] === 0) return; // already freed
  releaseInode(state);
  freeData(state, node);
  if (node.blocks !== 0) {
    state.usedBytes -= node.blocks * 512;
    node.blocks = 0;
  }
  if (node.xattrs !== 0) freeXattrs(state, node);
  if (node.dir !== 0) freeDir(state, node.dir);
  state.heap.free(node.targetPtr);
  const nu = state.nu;
  nu[u + U_DIR] = nu[u + U_TARGET] = nu[u + U_CHUNKS] = nu[u + U_XATTRS] = 0;
  nu[u + N_LIVE_U32] = 0;
  // the next node in this slot gets a new id (generation + 1, wrapping before ids pass 2^53)
  nu[u + U_GEN] = ((nu[u + U_GEN] as number) + 1) % 2 ** 21;
  state.nf[node.slot * NODE_F64 + N_ID] = 0;
  state.nf[node.slot * NODE_F64 + N_PARENT] = state.meta[M_FREE_SLOT] as number;
  state.meta[M_FREE_SLOT] = node.slot;
  state.meta[M_LIVE] = (state.meta[M_LIVE] as number) - 1;
}

/** The kernel dropped `count` references to `ino`. */
export function forgetNode(state: MemfsState, ino: number, count: number): void {
  const n = nodeById(state, ino);
  if (n === undefined) return;
  let left = n.nlookup - count;
  if (left < 0) left = 0;
  n.nlookup = left;
  if (left === 0) maybeFree(state, n);
}
