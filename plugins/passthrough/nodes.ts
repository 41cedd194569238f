/**
 * The node table: which source file each node id stands for, and how to get a descriptor of it.
 *
 * Identity. A node is a source inode, identified by (st_dev, st_ino); hard links share a node.
 * Its node id (what the kernel sees, and st_ino through the mount) is the source's inode number
 * when the file is on the source root's device and that number is in 2..2^48, so `ls -i` agrees
 * with the source; otherwise (other devices below the source, odd numbers) an id counted from
 * 2^48. The root is node 1.
 *
 * Descriptors. RLIMIT_NOFILE is 20000 and cannot be raised, so nodes do not each pin a
 * descriptor (passthrough_hp does; a tree of 100k files would run out). Instead a bounded LRU
 * cache holds O_PATH descriptors of recently used nodes, and a node that is not cached is
 * re-opened:
 *   - from its file handle (name_to_handle_at at first lookup; open_by_handle_at(rootFd, ...)),
 *     when the daemon is root and the source's filesystem exports handles: this survives renames
 *     made in the source behind our back, at any depth;
 *   - otherwise (or when the handle is stale) by its parent's descriptor and its last known
 *     name, with O_PATH|O_NOFOLLOW. Each node keeps a reference on its parent for this; renames
 *     through the mount and every lookup update (parent, name).
 * Either way the re-opened file's (st_dev, st_ino) must match the node's, or the op fails with
 * ESTALE (never another file). Evicted descriptors are closed in a microtask, after the
 * synchronous op that may still be using them has finished (ops never hold a cached descriptor
 * across an await); at most GRAVE_MAX wait, so the process stays far below the limit.
 *
 * Lookup counts. Every entry reply counts one lookup; `forget` returns them. A node is dropped
 * when the kernel has forgotten it and no child node refers to it. With file handles a dropped
 * node is retired, not freed (export support, below): the kernel's own file handles of the mount
 * then still open it, and its generation stays the same while its source file exists.
 *
 * Sharing. Node records live in the shared heap (state.ts): a table from node id to record, and
 * an identity index (st_dev → st_ino → node id); a PNode is a thread's view of a record. The
 * descriptor cache is per thread: a thread closes only descriptors it opened, so no thread can
 * close one another is using; each cached descriptor remembers the record's incarnation
 * (`gen`), so a node id reused for another file is never served from a stale descriptor. Dropped
 * nodes are announced in a shared ring, and each thread closes its descriptors of them at its
 * next descriptor lookup (an O_PATH descriptor of an unlinked file would keep its space in use).
 * Every call here runs under the state's lock (ops.ts).
 *
 * Safety. Names come from the kernel one component at a time and are resolved with
 * AT_SYMLINK_NOFOLLOW / O_NOFOLLOW relative to a directory descriptor: the server never follows a
 * symlink and never walks "..", so nothing outside the source is reached by name. The one
 * exception, a LOOKUP of ".." (parentOf), walks up to the source root first and answers ENOENT
 * if it is not above.
 */
import { FuseError, S_IFMT, S_IFDIR, readUnits, writeUnits, type Entry } from "furing";
import * as sys from "furing/sys";
import { DROP_RING, M_DROPS, M_DROP_RING, M_IDENTITY, M_NEXT_SYNTHETIC, M_NODES, M_NODE_GEN, M_RETIRED, M_RETIRED_RING, M_RETIRES, M_UNNAMED, SYNTHETIC_BASE, type PassthroughState } from "./state.ts";

// A node record in the heap: Float64 slots, then Uint32 words from U0.
const F_ID = 0, F_SIZE = 1, F_BLOCKS = 2, F_ATIME = 3, F_MTIME = 4, F_CTIME = 5, F_DEV = 6, F_SINO = 7, F_PARENT = 8, F_NLOOKUP = 9, F_CHILDREN = 10, F_GEN = 11;
/** Retire number while the record is retired (export support), else 0. */
const F_RETIRE = 12;
const U0 = 26;
const U_MODE = 0, U_NLINK = 1, U_UID = 2, U_GID = 3, U_BLKSIZE = 4, U_RDEV = 5, U_ATIME_NS = 6, U_MTIME_NS = 7, U_CTIME_NS = 8;
const U_NAME = 9, U_NAME_LEN = 10, U_HANDLE = 11, U_HANDLE_LEN = 12;
const RECORD_BYTES = (U0 + 13) * 4;

/**
 * A node: the attributes the kernel sees (it is returned as the Entry/Attr itself) plus
 * bookkeeping; a thread's view of a shared record (accessors installed from FIELDS).
 */
export class PNode implements Entry {
  declare readonly ino: number;
  declare mode: number;
  declare nlink: number;
  declare uid: number;
  declare gid: number;
  declare size: number;
  declare blocks: number;
  declare blksize: number;
  declare rdev: number;
  declare atimeSec: number;
  declare atimeNsec: number;
  declare mtimeSec: number;
  declare mtimeNsec: number;
  declare ctimeSec: number;
  declare ctimeNsec: number;
  /** Source identity. */
  declare dev: number;
  declare sino: number;
  /** Parent node id of the last known link (0: none, the root). */
  declare parent: number;
  /** Lookups the kernel holds. */
  declare nlookup: number;
  /** Nodes whose `parent` is this one. */
  declare children: number;
  /**
   * Incarnation of the record (ids can come back for another file), below 2^32: the FUSE
   * generation, so a kernel file handle (node id, generation) never opens a later file of the id.
   */
  declare readonly gen: number;
  readonly f: number;
  readonly u: number;
  constructor(
    readonly s: PassthroughState,
    /** The record's offset in the heap. */
    readonly ptr: number,
  ) {
    this.f = ptr >>> 3;
    this.u = (ptr >>> 2) + U0;
  }
  /** The FUSE generation: the record's incarnation; the root's is 0, as the kernel made it at mount. */
  get generation(): number {
    return this.ino === 1 ? 0 : this.gen;
  }
  /** Name of the last known link. */
  get name(): string {
    const h = this.s.heap;
    return readUnits(h.u16, h.u32[this.u + U_NAME] as number, h.u32[this.u + U_NAME_LEN] as number);
  }
  set name(v: string) {
    const h = this.s.heap;
    h.free(h.u32[this.u + U_NAME] as number);
    const p = h.alloc(v.length * 2);
    writeUnits(h.u16, p, v);
    h.u32[this.u + U_NAME] = p;
    h.u32[this.u + U_NAME_LEN] = v.length;
  }
  /** struct file_handle bytes (a view of the shared copy), or null (re-open by parent and name). */
  get handle(): Uint8Array | null {
    const h = this.s.heap;
    const len = h.u32[this.u + U_HANDLE_LEN] as number;
    if (len === 0) return null;
    const p = h.u32[this.u + U_HANDLE] as number;
    return h.u8.subarray(p, p + len - 1);
  }
  set handle(v: Uint8Array | null) {
    const h = this.s.heap;
    h.free(h.u32[this.u + U_HANDLE] as number);
    h.u32[this.u + U_HANDLE] = 0;
    h.u32[this.u + U_HANDLE_LEN] = 0;
    if (v === null) return;
    const p = h.alloc(v.length);
    h.u8.set(v, p);
    h.u32[this.u + U_HANDLE] = p;
    h.u32[this.u + U_HANDLE_LEN] = v.length + 1;
  }
}

const FIELDS: [string, boolean, number][] = [
  ["ino", true, F_ID], ["size", true, F_SIZE], ["blocks", true, F_BLOCKS], ["atimeSec", true, F_ATIME], ["mtimeSec", true, F_MTIME],
  ["ctimeSec", true, F_CTIME], ["dev", true, F_DEV], ["sino", true, F_SINO], ["parent", true, F_PARENT], ["nlookup", true, F_NLOOKUP],
  ["children", true, F_CHILDREN], ["gen", true, F_GEN],
  ["mode", false, U_MODE], ["nlink", false, U_NLINK], ["uid", false, U_UID], ["gid", false, U_GID], ["blksize", false, U_BLKSIZE],
  ["rdev", false, U_RDEV], ["atimeNsec", false, U_ATIME_NS], ["mtimeNsec", false, U_MTIME_NS], ["ctimeNsec", false, U_CTIME_NS],
];
for (const [name, wide, k] of FIELDS) {
  Object.defineProperty(PNode.prototype, name, wide
    ? { get(this: PNode) { return this.s.heap.f64[this.f + k]; }, set(this: PNode, v: number) { this.s.heap.f64[this.f + k] = v; } }
    : { get(this: PNode) { return this.s.heap.u32[this.u + k]; }, set(this: PNode, v: number) { this.s.heap.u32[this.u + k] = v; } });
}

const O_PATH_FLAGS = sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC;
/** Evicted descriptors waiting to be closed, at most. */
const GRAVE_MAX = 512;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** FUSE device numbers are the kernel's new_encode_dev form; stat's are glibc makedev. */
export function fuseDev(glibcDev: number): number {
  const maj = sys.major(glibcDev), min = sys.minor(glibcDev);
  return ((min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xff) << 12)) >>> 0;
}
export function glibcDev(fuse: number): number {
  return sys.makedev((fuse & 0xfff00) >>> 8, (fuse & 0xff) | ((fuse >>> 12) & 0xfff00));
}

/** One thread's code over the shared node table. */
export class NodeTable {
  /** Scratch stat buffer: every fstat/fstatat decodes into it (no allocation). */
  readonly st = sys.newStat();
  private readonly graveyard: number[] = [];
  private readonly flushGraveyard = () => {
    for (const fd of this.graveyard) {
      try {
        sys.close(fd);
      } catch {}
    }
    this.graveyard.length = 0;
  };
  /** This thread's O_PATH descriptors by node id, least recently used first, and the incarnation each belongs to. */
  private readonly fdCache = new Map<number, number>();
  private readonly fdGen = new Map<number, number>();
  /** This thread's share of the descriptor budget. */
  private readonly fdCacheMax: number;
  /** This thread's view objects by node id. */
  private readonly views = new Map<number, PNode>();
  /** Drops announced so far that this thread has acted on. */
  private seenDrops: number;

  constructor(
    readonly s: PassthroughState,
    /** Instances sharing the table (the descriptor budget is split between them). */
    instances = 1,
  ) {
    this.fdCacheMax = Math.max(16, Math.floor(s.fdCacheMax / instances));
    this.seenDrops = s.meta[M_DROPS] as number;
    if (!this.nodes().has(1)) {
      const st = sys.fstat(s.rootFd, this.st);
      const root = this.newNode(1, st, 0, "");
      root.nlookup = 1; // the kernel never forgets the root
      this.nodes().set(1, root.ptr);
      this.identitySet(st.dev, st.ino, 1);
    }
  }

  /** The shared node table (the state's map object pointed at it). */
  private nodes() {
    return this.s.map.at(this.s.meta[M_NODES] as number);
  }

  /** The node with id `id`, or undefined. */
  find(id: number): PNode | undefined {
    const ptr = this.nodes().get(id);
    if (ptr === undefined) return undefined;
    let v = this.views.get(id);
    if (v === undefined || v.ptr !== ptr) {
      v = new PNode(this.s, ptr);
      this.views.set(id, v);
    }
    return v;
  }

  /** The node with id `id`; ESTALE if the kernel names one we do not know. */
  get(id: number): PNode {
    const n = this.find(id);
    if (n === undefined) throw new FuseError("ESTALE", `unknown node ${id}`);
    return n;
  }

  get root(): PNode {
    return this.find(1)!;
  }

  get size(): number {
    return this.nodes().size;
  }

  // ---- descriptors ---------------------------------------------------------------------------

  /**
   * An O_PATH descriptor of `node` (the root's is a real directory descriptor). Valid until the
   * current synchronous op ends: do not keep it across an await.
   */
  fd(node: PNode): number {
    if (node.ino === 1) return this.s.rootFd;
    if (this.seenDrops !== this.s.meta[M_DROPS]) this.closeDropped();
    const cache = this.fdCache;
    const cached = cache.get(node.ino);
    if (cached !== undefined) {
      if (this.fdGen.get(node.ino) === node.gen) {
        cache.delete(node.ino); // most recently used goes last
        cache.set(node.ino, cached);
        return cached;
      }
      this.dropFd(node.ino); // the id now names another file
    }
    const pinned = this.pinned(node.ino);
    if (pinned >= 0) return pinned;
    let fd: number;
    try {
      fd = this.reopen(node);
    } catch (e) {
      // gone from the source (unlinked while open): the thread that opened it had a cached
      // descriptor, this one has none; any open file of it will do (descriptors are process-wide)
      fd = (e as FuseError).errno === 116 ? this.viaOpenFile(node) : -1;
      if (fd < 0) throw e;
    }
    this.cacheFd(node, fd);
    return fd;
  }

  /** The descriptor of an open file of a node (shared handle table, handles.ts), or -1. */
  openFileOf: (ino: number) => number = () => -1;

  /** An O_PATH descriptor of `node` through one of its open files, or -1 if none is open. */
  private viaOpenFile(node: PNode): number {
    const ofd = this.openFileOf(node.ino);
    if (ofd < 0) return -1;
    // not O_NOFOLLOW: that would open the /proc magic link itself
    const fd = sys.openat(sys.AT_FDCWD, sys.procPath(ofd), sys.O_PATH | sys.O_CLOEXEC);
    const st = sys.fstat(fd, this.st);
    if (st.dev !== node.dev || st.ino !== node.sino) {
      sys.close(fd);
      return -1;
    }
    return fd;
  }

  /**
   * The O_PATH descriptor pinned for nameless node `id` (shared: the thread serving LINK may not
   * be the one that served TMPFILE), or -1.
   */
  private pinned(id: number): number {
    const t = this.s.meta[M_UNNAMED] as number;
    if (t === 0) return -1;
    const m = this.s.map.at(t);
    return m.size === 0 ? -1 : (m.get(id) ?? -1);
  }

  /**
   * Take node `id`'s pin out of the shared table and close it after this op (it got a name, or
   * was dropped). Only here, under the lock: no other thread can hold the descriptor past its op.
   */
  private unpin(id: number): void {
    const fd = this.pinned(id);
    if (fd < 0) return;
    this.s.map.at(this.s.meta[M_UNNAMED] as number).delete(id);
    this.closeLater(fd);
  }

  /** Close this thread's descriptors of nodes dropped (by any thread) since it last looked. */
  private closeDropped(): void {
    const drops = this.s.meta[M_DROPS] as number;
    if (drops - this.seenDrops > DROP_RING) {
      for (const id of [...this.fdCache.keys()]) this.dropFd(id);
    } else {
      const ring = (this.s.meta[M_DROP_RING] as number) >>> 3;
      const f64 = this.s.heap.f64;
      for (let k = this.seenDrops; k < drops; k++) this.dropFd(f64[ring + (k % DROP_RING)] as number);
    }
    this.seenDrops = drops;
  }

  /**
   * Between ops (a timer): close this thread's descriptors of nodes another thread dropped. A
   * FORGET reaches one thread (over io_uring the main thread, which reads them from /dev/fuse);
   * the others would keep their descriptors of those nodes, unlinked files' space included,
   * until their next op. The lock is only tried: a busy table is swept by the next op or tick.
   */
  sweepDropped(): void {
    if (this.seenDrops === this.s.meta[M_DROPS] || !this.s.lock.tryLock()) return;
    try {
      this.closeDropped();
    } finally {
      this.s.lock.unlock();
    }
  }

  /** Whether `node` has a descriptor cached by this thread (tests, diagnostics). */
  isCached(id: number): boolean {
    return this.fdCache.has(id);
  }

  private cacheFd(node: PNode, fd: number): void {
    const cache = this.fdCache;
    while (cache.size >= this.fdCacheMax) {
      const oldest = cache.keys().next().value as number;
      this.closeLater(cache.get(oldest)!);
      cache.delete(oldest);
      this.fdGen.delete(oldest);
      this.s.stats.evictions++;
    }
    cache.set(node.ino, fd);
    this.fdGen.set(node.ino, node.gen);
  }

  /**
   * Close `fd` once the current synchronous op is over (it may still hold it: a descriptor it got
   * a moment ago can be evicted by the next one it asks for). Ops that make many lookups in one
   * go (readdirplus) would pile up descriptors, so past GRAVE_MAX the oldest are closed at once:
   * an op only uses descriptors it obtained a few evictions ago.
   */
  closeLater(fd: number): void {
    const g = this.graveyard;
    if (g.length === 0) queueMicrotask(this.flushGraveyard);
    g.push(fd);
    if (g.length >= GRAVE_MAX) {
      const n = GRAVE_MAX >> 1;
      for (let i = 0; i < n; i++) {
        try {
          sys.close(g[i]!);
        } catch {}
      }
      g.splice(0, n);
    }
  }

  private dropFd(id: number): void {
    const fd = this.fdCache.get(id);
    if (fd === undefined) return;
    this.fdCache.delete(id);
    this.fdGen.delete(id);
    this.closeLater(fd);
  }

  /** Open `node` again (O_PATH): from its file handle, else by parent and name; verify identity. */
  private reopen(node: PNode): number {
    const s = this.s;
    if (node.handle !== null) {
      let fd = -1;
      try {
        fd = sys.open_by_handle_at(s.rootFd, node.handle, O_PATH_FLAGS);
      } catch (e) {
        // ESTALE: that inode is gone (its number may since belong to a new file: try the name)
        if ((e as FuseError).errno !== 116) throw e;
      }
      if (fd >= 0) {
        const st = sys.fstat(fd, this.st);
        if (st.dev === node.dev && st.ino === node.sino) {
          s.stats.reopenByHandle++;
          return fd;
        }
        sys.close(fd);
      }
    }
    if (node.parent === 0) throw this.stale(node);
    const parent = this.find(node.parent);
    if (parent === undefined) throw this.stale(node);
    const pfd = this.fd(parent);
    let fd: number;
    try {
      fd = sys.openat(pfd, node.name, O_PATH_FLAGS);
    } catch (e) {
      if ((e as FuseError).errno === 2) throw this.stale(node);
      throw e;
    }
    const st = sys.fstat(fd, this.st);
    if (st.dev !== node.dev || st.ino !== node.sino) {
      sys.close(fd);
      throw this.stale(node);
    }
    s.stats.reopenByName++;
    if (node.handle !== null) this.takeHandle(node, fd); // the old handle was stale
    return fd;
  }

  private stale(node: PNode): FuseError {
    this.s.stats.stale++;
    return new FuseError("ESTALE", `node ${node.ino} (${JSON.stringify(node.name)}) is no longer in the source`);
  }

  private takeHandle(node: PNode, fd: number): void {
    try {
      const h = sys.name_to_handle_at(fd, "", sys.AT_EMPTY_PATH);
      node.handle = h.mountId === this.s.rootMountId ? h.handle : null;
    } catch {
      node.handle = null;
    }
  }

  // ---- identity and attributes ------------------------------------------------------------------

  /** The node id of source inode (dev, ino), or undefined. */
  private identityGet(dev: number, ino: number): number | undefined {
    const m = this.s.map;
    const t = m.at(this.s.meta[M_IDENTITY] as number).get(dev);
    return t === undefined ? undefined : m.at(t).get(ino);
  }

  private identitySet(dev: number, ino: number, id: number): void {
    const m = this.s.map;
    const top = this.s.meta[M_IDENTITY] as number;
    let t = m.at(top).get(dev);
    if (t === undefined) {
      t = m.create();
      m.at(top).set(dev, t);
    }
    m.at(t).set(ino, id);
  }

  private identityDelete(dev: number, ino: number, id: number): void {
    const m = this.s.map;
    const top = this.s.meta[M_IDENTITY] as number;
    const t = m.at(top).get(dev);
    if (t === undefined || m.at(t).get(ino) !== id) return;
    m.delete(ino);
    if (m.size === 0) {
      m.destroy();
      m.at(top).delete(dev);
    }
  }

  /** The node of source inode (dev, ino), if the table has one. */
  byIdentity(dev: number, ino: number): PNode | undefined {
    const id = this.identityGet(dev, ino);
    return id === undefined ? undefined : this.find(id);
  }

  /** d_ino to report for a directory entry on `dev`: the node id it has or would get. */
  dIno(dev: number, ino: number): number {
    const n = this.byIdentity(dev, ino);
    return n !== undefined ? n.ino : ino;
  }

  private newId(dev: number, ino: number): number {
    const s = this.s;
    if (dev === s.rootDev && ino > 1 && ino < SYNTHETIC_BASE && !this.nodes().has(ino)) return ino;
    const id = s.nextSynthetic;
    s.meta[M_NEXT_SYNTHETIC] = id + 1;
    return id;
  }

  /** A new record (not in the table yet). */
  private newNode(id: number, st: sys.Stat, parent: number, name: string): PNode {
    const h = this.s.heap;
    const ptr = h.calloc(RECORD_BYTES);
    const n = new PNode(this.s, ptr);
    h.f64[n.f + F_ID] = id;
    // the kernel keeps 32 bits of a generation; 0 is skipped (a handle of gen 0 is no one's)
    const gen = ((this.s.meta[M_NODE_GEN] as number) + 1) % 2 ** 32 || 1;
    this.s.meta[M_NODE_GEN] = gen;
    h.f64[n.f + F_GEN] = gen;
    n.dev = st.dev;
    n.sino = st.ino;
    n.parent = parent;
    n.name = name;
    this.fill(n, st);
    this.views.set(id, n);
    return n;
  }

  /** Copy stat results into the node's attributes. */
  fill(n: PNode, st: sys.Stat): PNode {
    n.mode = st.mode;
    n.nlink = st.nlink;
    n.uid = st.uid;
    n.gid = st.gid;
    n.size = st.size;
    n.blocks = st.blocks;
    n.blksize = st.blksize;
    n.rdev = st.rdev === 0 ? 0 : fuseDev(st.rdev);
    n.atimeSec = st.atimeSec;
    n.atimeNsec = st.atimeNsec;
    n.mtimeSec = st.mtimeSec;
    n.mtimeNsec = st.mtimeNsec;
    n.ctimeSec = st.ctimeSec;
    n.ctimeNsec = st.ctimeNsec;
    return n;
  }

  /** Fresh attributes of `node` (fstat of its descriptor). */
  refresh(node: PNode): PNode {
    return this.fill(node, sys.fstat(this.fd(node), this.st));
  }

  // ---- names ------------------------------------------------------------------------------------

  /** Whether `name` in `parent` is this filesystem's own mountpoint (inside the source). */
  isHidden(parent: PNode, name: string): boolean {
    const h = this.s.hidden;
    return h !== null && name === h.name && parent.sino === h.ino && parent.dev === h.dev;
  }

  /** Refuse the mountpoint's own name: statting it would wait on this daemon. */
  guard(parent: PNode, name: string): void {
    if (this.isHidden(parent, name)) throw new FuseError("EDEADLK", `${name} is this filesystem's own mountpoint`);
  }

  /**
   * Find `name` in directory `parent` (one lookup counted on the result). `pfd`: a descriptor of
   * the parent already at hand (an open directory), else the parent's own.
   */
  lookup(parent: PNode, name: string, pfd = -1): PNode {
    if (name === ".") {
      parent.nlookup++;
      return parent;
    }
    if (name === "..") return this.parentOf(parent);
    if (name === "" || name.includes("/")) throw new FuseError("EINVAL", `bad name ${JSON.stringify(name)}`);
    this.guard(parent, name);
    if (pfd < 0) pfd = this.fd(parent);
    const st = sys.fstatat(pfd, name, sys.AT_SYMLINK_NOFOLLOW, this.st);
    const known = this.byIdentity(st.dev, st.ino);
    if (known !== undefined) return this.found(known, parent, name, st);
    if (!this.s.useHandles) return this.insert(st, parent, name, -1);
    // a new node gets a file handle; take it from an O_PATH descriptor so the handle, the identity
    // and the attributes all describe the same file even if the name changes meanwhile
    return this.adopt(parent, name, sys.openat(pfd, name, O_PATH_FLAGS), true);
  }

  /**
   * The node for a descriptor just opened or created as `name` in `parent` (one lookup counted).
   * `own`: `fd` is an O_PATH descriptor the table may keep (cache) or close; otherwise the caller
   * keeps it.
   */
  adopt(parent: PNode, name: string, fd: number, own: boolean): PNode {
    let st: sys.Stat;
    try {
      st = sys.fstat(fd, this.st);
    } catch (e) {
      if (own) sys.close(fd);
      throw e;
    }
    const known = this.byIdentity(st.dev, st.ino);
    if (known !== undefined) {
      if (own) {
        if (known.ino === 1 || this.fdCache.has(known.ino)) this.closeLater(fd);
        else this.cacheFd(known, fd);
      }
      return this.found(known, parent, name, st);
    }
    return this.insert(st, parent, name, fd, own);
  }

  /**
   * The node for `fd`, a file opened with O_TMPFILE (one lookup counted): no parent, no name
   * (the table does not keep `fd`). It keeps an O_PATH descriptor of its own pinned until a
   * link names it (relink) or it is dropped.
   */
  adoptUnnamed(fd: number): PNode {
    const s = this.s;
    const st = sys.fstat(fd, this.st);
    // not O_NOFOLLOW: that would open the /proc magic link itself
    const pin = sys.openat(sys.AT_FDCWD, sys.procPath(fd), sys.O_PATH | sys.O_CLOEXEC);
    const dev = st.dev, sino = st.ino;
    const n = this.newNode(this.newId(dev, sino), st, 0, "");
    n.nlookup = 1;
    this.nodes().set(n.ino, n.ptr);
    this.identitySet(dev, sino, n.ino);
    if (s.meta[M_UNNAMED] === 0) s.meta[M_UNNAMED] = s.map.create();
    s.map.at(s.meta[M_UNNAMED] as number).set(n.ino, pin);
    return n;
  }

  private found(n: PNode, parent: PNode, name: string, st: sys.Stat): PNode {
    n.nlookup++;
    if (n.ino !== 1) this.relink(n, parent.ino, name);
    return this.fill(n, st);
  }

  /** A node for source file `st` not in the table (`parent` null: none known, found by ".."). */
  private insert(st: sys.Stat, parent: PNode | null, name: string, fd: number, own = false): PNode {
    const s = this.s;
    const dev = st.dev, sino = st.ino;
    const id = this.newId(dev, sino);
    // the same file forgotten earlier keeps its generation: the kernel's handles of it still work
    let n = this.revived(id, dev, sino, fd);
    if (n === undefined) {
      n = this.newNode(id, st, parent?.ino ?? 0, name);
      if (fd >= 0 && s.useHandles) this.takeHandle(n, fd);
    } else {
      n.parent = parent?.ino ?? 0;
      n.name = name;
      this.fill(n, st);
      this.views.set(id, n);
    }
    n.nlookup = 1;
    if (parent !== null) parent.children++;
    this.nodes().set(n.ino, n.ptr);
    this.identitySet(dev, sino, n.ino);
    if (fd >= 0 && own) this.cacheFd(n, fd);
    return n;
  }

  /** `node` is now known as `name` in `parentId` (after a lookup or a rename). */
  relink(node: PNode, parentId: number, name: string): void {
    if (node.parent === parentId) {
      node.name = name;
      return;
    }
    const np = this.find(parentId);
    if (np === undefined) return;
    node.name = name;
    // an O_TMPFILE node got its first name: re-opened like any other node from now on (the
    // pinned descriptor still names the unlinked dentry, "#ino (deleted)")
    if (node.parent === 0) this.unpin(node.ino);
    np.children++;
    const old = this.find(node.parent);
    node.parent = parentId;
    if (old !== undefined) {
      old.children--;
      this.maybeDrop(old);
    }
  }

  /** Move the node now found as `name` in `dirfd` (parent `parentId`) there, if the table has it. */
  moved(dirfd: number, parentId: number, name: string): void {
    try {
      const st = sys.fstatat(dirfd, name, sys.AT_SYMLINK_NOFOLLOW, this.st);
      const n = this.byIdentity(st.dev, st.ino);
      if (n !== undefined && n.ino !== 1) this.relink(n, parentId, name);
    } catch {}
  }

  /** The kernel dropped `count` lookups of `id`. */
  forget(id: number, count: number): void {
    const n = this.find(id);
    if (n === undefined || id === 1) return;
    n.nlookup = Math.max(0, n.nlookup - count);
    this.maybeDrop(n);
  }

  private maybeDrop(n: PNode): void {
    const h = this.s.heap;
    while (n.ino !== 1 && n.nlookup === 0 && n.children === 0) {
      const id = n.ino;
      const parent = n.parent;
      this.nodes().delete(id);
      this.identityDelete(n.dev, n.sino, id);
      this.dropFd(id);
      this.unpin(id); // an O_TMPFILE node closed and forgotten without a name
      this.views.delete(id);
      const drops = this.s.meta[M_DROPS] as number;
      h.f64[((this.s.meta[M_DROP_RING] as number) >>> 3) + (drops % DROP_RING)] = id;
      this.s.meta[M_DROPS] = drops + 1;
      if (this.s.retiredMax > 0 && h.u32[n.u + U_HANDLE_LEN] !== 0) this.retire(n);
      else this.freeRecord(n.ptr);
      const p = this.find(parent);
      if (p === undefined) return;
      p.children--;
      n = p;
    }
  }

  private freeRecord(ptr: number): void {
    const h = this.s.heap;
    const u = (ptr >>> 2) + U0;
    h.free(h.u32[u + U_NAME] as number);
    h.free(h.u32[u + U_HANDLE] as number);
    h.free(ptr);
  }

  // ---- export support ---------------------------------------------------------------------------
  //
  // The kernel's file handles of this mount are (node id, generation). To open one whose inode it
  // no longer caches it asks LOOKUP "." on the id (and ".." to reconnect a directory), then
  // compares generations. So a node the kernel forgot is not freed but retired: its record (file
  // handle in the source, source identity, generation) stays findable by id, up to
  // `retiredMax` of them (the oldest go first; their handles then answer ESTALE). A retired
  // record comes back with its generation when "." names it and its source file still exists,
  // or when a lookup by name finds the same source file (same source file handle: the source's
  // handles carry its own inode generation, so a reused inode number is another file). Any other
  // node gets a new generation: one (id, generation) never names two files.

  /** The table of retired records by node id (the state's map object pointed at it). */
  private retired() {
    return this.s.map.at(this.s.meta[M_RETIRED] as number);
  }

  /** Keep dropped node `n` findable by id; the oldest retired record goes when the ring is full. */
  private retire(n: PNode): void {
    const s = this.s, h = s.heap;
    const seq = (s.meta[M_RETIRES] as number) + 1;
    s.meta[M_RETIRES] = seq;
    const k = ((s.meta[M_RETIRED_RING] as number) >>> 3) + (seq % s.retiredMax) * 2;
    if (h.f64[k + 1] !== 0) this.evict(h.f64[k] as number, h.f64[k + 1] as number);
    h.f64[k] = n.ino;
    h.f64[k + 1] = seq;
    // the parent may be dropped and its id reused: a revived node is placed by the next lookup
    h.free(h.u32[n.u + U_NAME] as number);
    h.u32[n.u + U_NAME] = 0;
    h.u32[n.u + U_NAME_LEN] = 0;
    n.parent = 0;
    h.f64[n.f + F_RETIRE] = seq;
    this.retired().set(n.ino, n.ptr);
  }

  /** Free retired record `id` if it is still the one retired as number `seq`. */
  private evict(id: number, seq: number): void {
    const m = this.retired();
    const ptr = m.get(id);
    if (ptr === undefined || this.s.heap.f64[(ptr >>> 3) + F_RETIRE] !== seq) return;
    m.delete(id);
    this.freeRecord(ptr);
  }

  /** Take retired record `id` out of the table (not live yet), or undefined. */
  private unretire(id: number): PNode | undefined {
    if (this.s.retiredMax === 0) return undefined;
    const m = this.retired();
    const ptr = m.get(id);
    if (ptr === undefined) return undefined;
    m.delete(id);
    this.s.heap.f64[(ptr >>> 3) + F_RETIRE] = 0;
    return new PNode(this.s, ptr);
  }

  /**
   * The retired record of `id` if it stands for the file open as `fd` (found again by name), else
   * undefined; a record of another file under the id is freed (that file is gone: inode numbers
   * are unique among live files, and the source's handles tell a reused one apart).
   */
  private revived(id: number, dev: number, sino: number, fd: number): PNode | undefined {
    const n = this.unretire(id);
    if (n === undefined) return undefined;
    if (fd >= 0 && n.dev === dev && n.sino === sino) {
      let h: sys.FileHandle | null = null;
      try {
        h = sys.name_to_handle_at(fd, "", sys.AT_EMPTY_PATH);
      } catch {}
      const old = n.handle;
      if (h !== null && old !== null && h.mountId === this.s.rootMountId && sameBytes(h.handle, old)) return n;
    }
    this.freeRecord(n.ptr);
    return undefined;
  }

  /**
   * Node `id` for a LOOKUP of "." on an id the kernel may have forgotten (one lookup counted):
   * live, or retired with its source file still there (re-opened from its source file handle).
   * ENOENT (the kernel answers ESTALE) for an id unknown, retired too long ago, or whose file is
   * gone. The generation decides whether it is the file the kernel's handle meant.
   */
  byId(id: number): PNode {
    const live = this.find(id);
    if (live !== undefined) {
      live.nlookup++;
      return live;
    }
    const gone = () => new FuseError("ENOENT", `node ${id} is gone (or was forgotten too long ago)`);
    if (this.s.retiredMax === 0) throw gone();
    const ptr = this.retired().get(id);
    if (ptr === undefined) throw gone();
    const rec = new PNode(this.s, ptr);
    let fd: number;
    try {
      fd = sys.open_by_handle_at(this.s.rootFd, rec.handle!, O_PATH_FLAGS);
    } catch (e) {
      if ((e as FuseError).errno !== 116) throw e; // not ESTALE: it may work next time
      this.freeRecord(this.unretire(id)!.ptr);
      throw gone();
    }
    const st = sys.fstat(fd, this.st);
    // Unlinked (a source handle still opens an inode some descriptor holds, ours included):
    // deleted for good, as on the source. Else the same source inode, not under another id (a
    // synthetic one given meanwhile).
    const unlinked = st.nlink === 0;
    if (unlinked || st.dev !== rec.dev || st.ino !== rec.sino || this.identityGet(st.dev, st.ino) !== undefined) {
      sys.close(fd);
      if (unlinked) this.freeRecord(this.unretire(id)!.ptr);
      throw gone();
    }
    const n = this.unretire(id)!;
    this.fill(n, st);
    n.nlookup = 1;
    this.nodes().set(id, ptr);
    this.identitySet(n.dev, n.sino, id);
    this.views.set(id, n);
    this.cacheFd(n, fd);
    return n;
  }

  /**
   * The source directory that contains directory `node`, for a LOOKUP of ".." (one lookup
   * counted): the kernel asks it to reconnect a directory it opened from a file handle. Found by
   * the source's own "..", and only if the source root is above it (a directory moved out of
   * the source behind our back has no parent here: ENOENT); the root's parent is the root.
   */
  parentOf(node: PNode): PNode {
    if (node.ino === 1) {
      node.nlookup++;
      return node;
    }
    if (!NodeTable.isDir(node)) throw new FuseError("ENOTDIR", `node ${node.ino} is not a directory`);
    const s = this.s;
    const fd = sys.openat(this.fd(node), "..", O_PATH_FLAGS | sys.O_DIRECTORY);
    let st = sys.fstat(fd, this.st);
    const dev = st.dev, ino = st.ino;
    // walk up to the source root, or to the filesystem's root (its ".." is itself): outside
    let cur = -1;
    try {
      let d = dev, i = ino;
      for (let depth = 0; !(d === s.rootDev && i === s.rootIno); depth++) {
        const up = sys.openat(cur < 0 ? fd : cur, "..", O_PATH_FLAGS | sys.O_DIRECTORY);
        if (cur >= 0) sys.close(cur);
        cur = up;
        const u = sys.fstat(cur, this.st);
        if ((u.dev === d && u.ino === i) || depth > 4096) throw new FuseError("ENOENT", `node ${node.ino} is no longer inside the source`);
        d = u.dev;
        i = u.ino;
      }
    } catch (e) {
      sys.close(fd);
      throw e;
    } finally {
      if (cur >= 0) sys.close(cur);
    }
    st = sys.fstat(fd, this.st);
    if (dev === s.rootDev && ino === s.rootIno) {
      sys.close(fd);
      const root = this.root;
      root.nlookup++;
      return root;
    }
    const known = this.byIdentity(dev, ino);
    if (known !== undefined) {
      if (this.fdCache.has(known.ino)) this.closeLater(fd);
      else this.cacheFd(known, fd);
      known.nlookup++;
      return this.fill(known, st);
    }
    return this.insert(st, null, "", fd, true);
  }

  /** Whether `node` is a directory (by its last known attributes). */
  static isDir(node: PNode): boolean {
    return (node.mode & S_IFMT) === S_IFDIR;
  }
}
