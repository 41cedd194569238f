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
 * when the kernel has forgotten it and no child node refers to it.
 *
 * Safety. Names come from the kernel one component at a time and are resolved with
 * AT_SYMLINK_NOFOLLOW / O_NOFOLLOW relative to a directory descriptor: the server never follows a
 * symlink and never walks "..", so nothing outside the source is reached by name.
 */
import { FuseError, S_IFMT, S_IFDIR, type Entry } from "furing";
import * as sys from "furing/sys";
import { SYNTHETIC_BASE, type PassthroughState } from "./state.ts";

/** A node: the attributes the kernel sees (it is returned as the Entry/Attr itself) plus bookkeeping. */
export interface PNode extends Entry {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  blksize: number;
  rdev: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  /** Source identity. */
  dev: number;
  sino: number;
  /** Parent node id and name of the last known link (parent 0: none, the root). */
  parent: number;
  name: string;
  /** Lookups the kernel holds. */
  nlookup: number;
  /** Nodes whose `parent` is this one. */
  children: number;
  /** struct file_handle bytes, or null (re-open by parent and name). */
  handle: Uint8Array | null;
}

const O_PATH_FLAGS = sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC;
/** Evicted descriptors waiting to be closed, at most. */
const GRAVE_MAX = 512;

/** FUSE device numbers are the kernel's new_encode_dev form; stat's are glibc makedev. */
export function fuseDev(glibcDev: number): number {
  const maj = sys.major(glibcDev), min = sys.minor(glibcDev);
  return ((min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xff) << 12)) >>> 0;
}
export function glibcDev(fuse: number): number {
  return sys.makedev((fuse & 0xfff00) >>> 8, (fuse & 0xff) | ((fuse >>> 12) & 0xfff00));
}

/** The per-generation code over the kept node state. */
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

  constructor(readonly s: PassthroughState) {
    if (!s.nodes.has(1)) {
      const st = sys.fstat(s.rootFd, this.st);
      const root = this.newNode(1, st, 0, "");
      root.nlookup = 1; // the kernel never forgets the root
      s.nodes.set(1, root);
      this.identityMap(st.dev).set(st.ino, root);
    }
  }

  /** The node with id `id`; ESTALE if the kernel names one we do not know. */
  get(id: number): PNode {
    const n = this.s.nodes.get(id);
    if (n === undefined) throw new FuseError("ESTALE", `unknown node ${id}`);
    return n;
  }

  get root(): PNode {
    return this.s.nodes.get(1)!;
  }

  get size(): number {
    return this.s.nodes.size;
  }

  // ---- descriptors ---------------------------------------------------------------------------

  /**
   * An O_PATH descriptor of `node` (the root's is a real directory descriptor). Valid until the
   * current synchronous op ends: do not keep it across an await.
   */
  fd(node: PNode): number {
    if (node.ino === 1) return this.s.rootFd;
    const cache = this.s.fdCache;
    const cached = cache.get(node.ino);
    if (cached !== undefined) {
      cache.delete(node.ino); // most recently used goes last
      cache.set(node.ino, cached);
      return cached;
    }
    const pinned = this.s.unnamed?.get(node.ino);
    if (pinned !== undefined) return pinned;
    const fd = this.reopen(node);
    this.cacheFd(node.ino, fd);
    return fd;
  }

  /** Whether `node` has a cached descriptor (tests, diagnostics). */
  isCached(id: number): boolean {
    return this.s.fdCache.has(id);
  }

  private cacheFd(id: number, fd: number): void {
    const cache = this.s.fdCache;
    while (cache.size >= this.s.fdCacheMax) {
      const oldest = cache.keys().next().value as number;
      this.closeLater(cache.get(oldest)!);
      cache.delete(oldest);
      this.s.stats.evictions++;
    }
    cache.set(id, fd);
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
    const pinned = this.s.unnamed?.get(id);
    if (pinned !== undefined) {
      this.s.unnamed!.delete(id);
      this.closeLater(pinned);
    }
    const fd = this.s.fdCache.get(id);
    if (fd === undefined) return;
    this.s.fdCache.delete(id);
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
    const parent = s.nodes.get(node.parent);
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

  private identityMap(dev: number): Map<number, PNode> {
    let m = this.s.byIdentity.get(dev);
    if (m === undefined) {
      m = new Map();
      this.s.byIdentity.set(dev, m);
    }
    return m;
  }

  /** The node of source inode (dev, ino), if the table has one. */
  byIdentity(dev: number, ino: number): PNode | undefined {
    return this.s.byIdentity.get(dev)?.get(ino);
  }

  /** d_ino to report for a directory entry on `dev`: the node id it has or would get. */
  dIno(dev: number, ino: number): number {
    const n = this.byIdentity(dev, ino);
    return n !== undefined ? n.ino : ino;
  }

  private newId(dev: number, ino: number): number {
    const s = this.s;
    if (dev === s.rootDev && ino > 1 && ino < SYNTHETIC_BASE && !s.nodes.has(ino)) return ino;
    return s.nextSynthetic++;
  }

  private newNode(id: number, st: sys.Stat, parent: number, name: string): PNode {
    const n: PNode = {
      ino: id, mode: 0, nlink: 0, uid: 0, gid: 0, size: 0, blocks: 0, blksize: 0, rdev: 0,
      atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
      dev: st.dev, sino: st.ino, parent, name, nlookup: 0, children: 0, handle: null,
    };
    this.fill(n, st);
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
    if (name === "." || name === "..") {
      const n = name === "." || parent.ino === 1 ? parent : (this.s.nodes.get(parent.parent) ?? this.root);
      n.nlookup++;
      return n;
    }
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
        if (known.ino === 1 || this.s.fdCache.has(known.ino)) this.closeLater(fd);
        else this.cacheFd(known.ino, fd);
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
    const n = this.newNode(this.newId(st.dev, st.ino), st, 0, "");
    n.nlookup = 1;
    s.nodes.set(n.ino, n);
    this.identityMap(n.dev).set(n.sino, n);
    (s.unnamed ??= new Map()).set(n.ino, pin);
    return n;
  }

  private found(n: PNode, parent: PNode, name: string, st: sys.Stat): PNode {
    n.nlookup++;
    if (n.ino !== 1) this.relink(n, parent.ino, name);
    return this.fill(n, st);
  }

  private insert(st: sys.Stat, parent: PNode, name: string, fd: number, own = false): PNode {
    const s = this.s;
    const n = this.newNode(this.newId(st.dev, st.ino), st, parent.ino, name);
    n.nlookup = 1;
    parent.children++;
    s.nodes.set(n.ino, n);
    this.identityMap(n.dev).set(n.sino, n);
    if (fd >= 0) {
      if (s.useHandles) this.takeHandle(n, fd);
      if (own) this.cacheFd(n.ino, fd);
    }
    return n;
  }

  /** `node` is now known as `name` in `parentId` (after a lookup or a rename). */
  relink(node: PNode, parentId: number, name: string): void {
    if (node.parent === parentId) {
      node.name = name;
      return;
    }
    const s = this.s;
    const np = s.nodes.get(parentId);
    if (np === undefined) return;
    node.name = name;
    const pinned = s.unnamed?.get(node.ino);
    if (pinned !== undefined) {
      // an O_TMPFILE node got its first name: re-opened like any other node from now on (the
      // pinned descriptor still names the unlinked dentry, "#ino (deleted)")
      s.unnamed!.delete(node.ino);
      this.closeLater(pinned);
    }
    np.children++;
    const old = s.nodes.get(node.parent);
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
    const n = this.s.nodes.get(id);
    if (n === undefined || id === 1) return;
    n.nlookup = Math.max(0, n.nlookup - count);
    this.maybeDrop(n);
  }

  private maybeDrop(n: PNode): void {
    const s = this.s;
    while (n.ino !== 1 && n.nlookup === 0 && n.children === 0) {
      s.nodes.delete(n.ino);
      const m = s.byIdentity.get(n.dev);
      if (m !== undefined && m.get(n.sino) === n) {
        m.delete(n.sino);
        if (m.size === 0) s.byIdentity.delete(n.dev);
      }
      this.dropFd(n.ino);
      const p = s.nodes.get(n.parent);
      if (p === undefined) return;
      p.children--;
      n = p;
    }
  }

  /** Whether `node` is a directory (by its last known attributes). */
  static isDir(node: PNode): boolean {
    return (node.mode & S_IFMT) === S_IFDIR;
  }
}
