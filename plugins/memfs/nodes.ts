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
import { Buffer } from "node:buffer";
import { EEXIST, ENAMETOOLONG, ENOENT, ENOSPC, ENOTDIR } from "./errors.ts";
import type { MemfsState } from "./state.ts";
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
    this.parent = 0;
    this.dir = null;
    this.chunks = null;
    this.target = null;
    this.xattrs = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Clock. `tick()` reads the time once per operation; the set* helpers stamp nodes with it, so
// every node an operation touches gets the same time (as in the kernel). Wall-clock seconds and
// milliseconds come from Date.now(); the sub-millisecond part from performance.now(), clamped so
// successive ticks never go backwards within a millisecond.

let nowSec = 0;
let nowNsec = 0;

export function tick(): void {
  const ms = Date.now();
  const sec = Math.floor(ms / 1000);
  let nsec = (ms - sec * 1000) * 1e6 + Math.floor((performance.now() % 1) * 1e6);
  if (sec === nowSec && nsec <= nowNsec && nowNsec - nsec < 1e6) {
    nsec = nowNsec + 1;
    if (nsec >= 1e9) nsec = 1e9 - 1;
  }
  nowSec = sec;
  nowNsec = nsec;
}
tick();

/** Seconds part of the last tick (for relatime's 24-hour rule). */
export function tickSec(): number {
  return nowSec;
}

export function setAtime(n: Node): void {
  n.atimeSec = nowSec;
  n.atimeNsec = nowNsec;
}
export function setCtime(n: Node): void {
  n.ctimeSec = nowSec;
  n.ctimeNsec = nowNsec;
}
/** mtime and ctime: content changed (data, or a directory's entries). */
export function setMtime(n: Node): void {
  n.mtimeSec = nowSec;
  n.mtimeNsec = nowNsec;
  n.ctimeSec = nowSec;
  n.ctimeNsec = nowNsec;
}

/**
 * relatime: update atime on access only when it is not newer than mtime or ctime, or is more
 * than a day old (tmpfs's default mount behaviour). Reads the clock only when it updates.
 */
export function accessed(n: Node): void {
  const a = n.atimeSec;
  if (
    a < n.mtimeSec || (a === n.mtimeSec && n.atimeNsec <= n.mtimeNsec) ||
    a < n.ctimeSec || (a === n.ctimeSec && n.atimeNsec <= n.ctimeNsec) ||
    Date.now() / 1000 - a >= 86400
  ) {
    tick();
    setAtime(n);
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
  if (node.chunks !== null && state.pool !== undefined) for (const c of node.chunks.values()) state.pool.give(c);
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
