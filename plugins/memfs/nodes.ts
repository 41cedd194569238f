/**
 * The node table: node objects, directory entries, lookup and link counting, freeing.
 *
 * A {@link Node} is at once the filesystem's inode and the `Entry`/`Attr` the runtime encodes,
 * so getattr and lookup answer with the node itself. Nodes, directories and entries are plain
 * data classes without methods: every rule lives in the functions below, which take the state
 * explicitly. That keeps a state object usable by a newer generation of this code (hot reload):
 * the new code reads the old objects' fields, never calls their old methods.
 *
 * Lifetime: a node is freed (removed from the table, its data and accounting released) when it
 * has no names (nlink 0), the kernel holds no references (nlookup 0: every entry reply adds one,
 * forget subtracts) and no open file or directory handle refers to it. Node ids are never reused,
 * so the generation is always 0.
 */
import { S_IFDIR, S_IFMT, ROOT_ID, type Entry } from "furing";
import * as sys from "furing/sys";
import { Buffer } from "node:buffer";
import { EEXIST, ENAMETOOLONG, ENOENT, ENOSPC, ENOTDIR } from "./errors.ts";
import type { MemfsState } from "./state.ts";
import { releaseChunk } from "./data.ts";
import { xattrSpace } from "./xattr.ts";

/** Size tmpfs reports per directory entry (BOGO_DIRENT_SIZE); an empty directory is 2 of them. */
export const DIRENT_SIZE = 20;
/** Inode-space cost of one node or extra hard link, as in tmpfs (BOGO_INODE_SIZE). */
export const INODE_SPACE = 1024;
/** Longest name, in UTF-8 bytes. */
export const NAME_MAX = 255;

/** One name in a directory. `node` is null once the name is removed (a tombstone in `Dir.list`). */
export class DirEnt {
  name: string;
  node: Node | null;
  /** readdir offset cookie: unique and increasing within the directory, never reused. */
  cookie: number;
  constructor(name: string, node: Node, cookie: number) {
    this.name = name;
    this.node = node;
    this.cookie = cookie;
  }
}

/**
 * A directory's entries: a name index and a list in cookie order (oldest first; readdir walks
 * it backwards), so a listing can resume from any cookie by binary search while entries come
 * and go. Removed entries stay in the list as tombstones until they outnumber the live ones,
 * then the list is compacted.
 */
export class Dir {
  names = new Map<string, DirEnt>();
  list: DirEnt[] = [];
  /** Tombstones in `list`. */
  dead = 0;
  /** Next cookie; 1 and 2 are "." and "..". */
  nextCookie = 3;
}

/** An inode. Implements `Entry` directly: all attribute fields are plain properties. */
export class Node implements Entry {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** 512-byte blocks allocated (data chunks, long symlink targets). */
  blocks: number;
  rdev: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  /** Entry replies the kernel has not forgotten yet. */
  nlookup: number;
  /** Open file and directory handles. */
  opens: number;
  /** Of those, handles open for writing. */
  writers: number;
  /** Directories: the containing directory's id (the root's is itself). */
  parent: number;
  /** Directories only. */
  dir: Dir | null;
  /** Regular files: data chunks by index (see data.ts); null while the file has none. */
  chunks: Map<number, Uint8Array> | null;
  /** Symlinks only. */
  target: string | null;
  /** Extended attributes; null until the first one is set. */
  xattrs: Map<string, Uint8Array> | null;

  constructor(ino: number, mode: number, uid: number, gid: number) {
    this.ino = ino;
    this.mode = mode;
    this.nlink = 1;
    this.uid = uid;
    this.gid = gid;
    this.size = 0;
    this.blocks = 0;
    this.rdev = 0;
    this.atimeSec = nowSec;
    this.atimeNsec = nowNsec;
    this.mtimeSec = nowSec;
    this.mtimeNsec = nowNsec;
    this.ctimeSec = nowSec;
    this.ctimeNsec = nowNsec;
    this.nlookup = 0;
    this.opens = 0;
    this.writers = 0;
    this.parent = 0;
    this.dir = null;
    this.chunks = null;
    this.target = null;
    this.xattrs = null;
  }
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

const coarse = { sec: 0, nsec: 0 };
const fine = { sec: 0, nsec: 0 };
/** This operation's time: the coarse clock when it started, or the floor if that is later. */
let nowSec = 0;
let nowNsec = 0;
/**
 * The latest fine-grained stamp handed out. It lives in the memfs state (`keepClockFloor`), so a
 * hot reload's new copy of this module does not start again below the stamps already given.
 */
let floor: ClockFloor = { sec: 0, nsec: 0 };

export interface ClockFloor {
  sec: number;
  nsec: number;
}

/** Use `f` (kept across generations) as the floor, raised to this module's if that is later. */
export function keepClockFloor(f: ClockFloor): void {
  if (floor.sec > f.sec || (floor.sec === f.sec && floor.nsec > f.nsec)) {
    f.sec = floor.sec;
    f.nsec = floor.nsec;
  }
  floor = f;
}
/** Nodes stamped by this operation and their stamps (an operation stamps at most a few). */
const opNodes: Node[] = [];
const opSec: number[] = [];
const opNsec: number[] = [];
/** The stamp chosen by the last changeTime(). */
let tSec = 0;
let tNsec = 0;

/** Start an operation that changes nodes: read the coarse clock once. */
export function tick(): void {
  sys.clockGettime(sys.CLOCK_REALTIME_COARSE, coarse);
  if (coarse.sec > floor.sec || (coarse.sec === floor.sec && coarse.nsec > floor.nsec)) {
    nowSec = coarse.sec;
    nowNsec = coarse.nsec;
  } else {
    nowSec = floor.sec;
    nowNsec = floor.nsec;
  }
  opNodes.length = 0;
}
tick();

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
    if (s > floor.sec || (s === floor.sec && ns > floor.nsec)) {
      floor.sec = nowSec = s;
      floor.nsec = nowNsec = ns;
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
 * An access (read, readdir, readlink), with relatime (tmpfs's default mount behaviour): atime is
 * updated when it is not newer than mtime or ctime, or is more than a day old, and only if the
 * current time differs from it (touch_atime). Reads the clock only when the rule may update.
 */
export function accessed(n: Node): void {
  const a = n.atimeSec;
  const an = n.atimeNsec;
  if (
    a < n.mtimeSec || (a === n.mtimeSec && an <= n.mtimeNsec) ||
    a < n.ctimeSec || (a === n.ctimeSec && an <= n.ctimeNsec) ||
    Date.now() / 1000 - a >= 86400
  ) {
    tick();
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
  const n = state.nodes.get(ino);
  if (n === undefined) throw ENOENT;
  return n;
}

/**
 * Directory `ino`, for an operation on its entries: ENOENT if absent, ENOTDIR if not a
 * directory. `live`: also ENOENT if it was removed (creating in a deleted cwd).
 */
export function getDir(state: MemfsState, ino: number, live: boolean): Node {
  const n = state.nodes.get(ino);
  if (n === undefined) throw ENOENT;
  if (n.dir === null) throw ENOTDIR;
  if (live && n.nlink === 0) throw ENOENT;
  return n;
}

/** UTF-8 length of a string (ASCII strings need no encoding pass). */
export function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, "utf8");
  return s.length;
}

export function checkName(name: string): void {
  // A UTF-16 unit is at most 3 UTF-8 bytes: names of up to 85 units always fit.
  if (name.length > 85 && Buffer.byteLength(name, "utf8") > NAME_MAX) throw ENAMETOOLONG;
}

/** Name must be new in `dir`: ENAMETOOLONG, EEXIST. */
export function checkNewName(dir: Node, name: string): void {
  checkName(name);
  if ((dir.dir as Dir).names.has(name) || name === "." || name === "..") throw EEXIST;
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

/**
 * A new node in the table (not linked anywhere yet), stamped with the current tick. Reserves
 * its inode space: call only after every other check passed.
 */
export function newNode(state: MemfsState, mode: number, uid: number, gid: number): Node {
  reserveInode(state);
  const n = new Node(state.nextIno++, mode, uid, gid);
  if ((mode & S_IFMT) === S_IFDIR) {
    n.dir = new Dir();
    n.nlink = 2;
    n.size = 2 * DIRENT_SIZE;
  }
  state.nodes.set(n.ino, n);
  return n;
}

/** Add `name` → `node` at the end of `dir` (a new cookie). Adjusts dir size and link counts. */
export function addEntry(dir: Node, name: string, node: Node): DirEnt {
  const d = dir.dir as Dir;
  const e = new DirEnt(name, node, d.nextCookie++);
  d.names.set(name, e);
  d.list.push(e);
  dir.size += DIRENT_SIZE;
  if (node.dir !== null) {
    dir.nlink++;
    node.parent = dir.ino;
  }
  return e;
}

/** Take entry `e` out of `dir`. Adjusts dir size and the parent's link count; not the node's. */
export function removeEntry(dir: Node, e: DirEnt): void {
  const d = dir.dir as Dir;
  const node = e.node as Node;
  d.names.delete(e.name);
  e.node = null;
  dir.size -= DIRENT_SIZE;
  if (node.dir !== null) dir.nlink--;
  if (++d.dead > 64 && d.dead > d.list.length >> 1) {
    const live: DirEnt[] = [];
    for (let i = 0; i < d.list.length; i++) {
      const x = d.list[i] as DirEnt;
      if (x.node !== null) live.push(x);
    }
    d.list = live;
    d.dead = 0;
  }
}

/**
 * One name of `node` went away (unlink, rmdir, replaced by rename): drop its link count as
 * tmpfs does (a directory loses both its name and its "."), return the extra-link inode space,
 * stamp ctime, and free the node if nothing refers to it any more. Call after removeEntry.
 */
export function dropLink(state: MemfsState, node: Node): void {
  if (node.dir !== null) node.nlink = 0;
  else {
    if (node.nlink > 1) releaseInode(state);
    node.nlink--;
  }
  setCtime(node);
  maybeFree(state, node);
}

/** Number of entries in `d.list` (live or not) whose cookie is less than `cookie`. */
export function indexBefore(d: Dir, cookie: number): number {
  const list = d.list;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as DirEnt).cookie < cookie) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Is directory `a` the same as `d` or one of its ancestors? */
export function isAncestor(state: MemfsState, a: Node, d: Node): boolean {
  let cur: Node | undefined = d;
  while (cur !== undefined) {
    if (cur === a) return true;
    if (cur.ino === ROOT_ID) return false;
    cur = state.nodes.get(cur.parent);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Freeing.

/** Free `node` if nothing refers to it: no name, no kernel reference, no open handle. */
export function maybeFree(state: MemfsState, node: Node): void {
  if (node.nlink !== 0 || node.nlookup > 0 || node.opens > 0 || node.ino === ROOT_ID) return;
  if (state.nodes.get(node.ino) !== node) return; // already freed
  state.nodes.delete(node.ino);
  releaseInode(state);
  if (node.blocks !== 0) {
    state.usedBytes -= node.blocks * 512;
    node.blocks = 0;
  }
  if (node.chunks !== null) for (const c of node.chunks.values()) releaseChunk(state, c);
  node.chunks = null;
  if (node.xattrs !== null) {
    state.ispaceFree += xattrSpace(node.xattrs);
    node.xattrs = null;
  }
  node.dir = null;
  node.target = null;
}

/** The kernel dropped `count` references to `ino`. */
export function forgetNode(state: MemfsState, ino: number, count: number): void {
  const n = state.nodes.get(ino);
  if (n === undefined) return;
  n.nlookup -= count;
  if (n.nlookup < 0) n.nlookup = 0;
  if (n.nlookup === 0) maybeFree(state, n);
}
