/**
 * The high-level API: a filesystem as a tree of author-defined nodes, layered on the low-level
 * {@link Filesystem} (node ids) API. The author says what a node is and how to find, describe and
 * change it; this layer owns what every plugin otherwise rebuilds:
 * - node ids: a node's `key` (the node itself by default) maps to one kernel node id; a positive
 *   integer key is used as the id itself (and so as st_ino: stable across mounts); other keys get
 *   an id that they keep for the mount's life (objects weakly, other values such as paths for good);
 * - lookup counts and open counts: `forget(node)` is called once the kernel holds the node by no
 *   name and no open file (where an unlinked file's data may go). The counts are taken at the op
 *   and stay exact when a result never reaches the kernel (late after op_timeout, or not
 *   encodable): the runtime gives it back through this layer's `forget`/`release`/`releasedir`;
 * - directory listings: a snapshot per opendir (rewinddir takes a new one), `.` and `..`, cookies
 *   that stay valid for the handle and grow to the end (telldir/seekdir), READDIRPLUS;
 * - attribute defaults (owner = the mounting user, times = mount time, nlink, size) and Date/ns
 *   timestamps; O_TRUNC on open; SetAttr.mode reduced to the permission bits;
 * - `system.posix_acl_*` xattrs answered EOPNOTSUPP (the kernel would otherwise let them decide
 *   permissions), unless the tree says it implements ACLs.
 * The table lives in `ctx.keep`, so it survives hot reloads like any plugin state.
 */
import type { AttrReply, CreateReply, DirListPlus, Entry, Filesystem, OpenReply, Plugin, PluginContext, PluginOption, Request, StatFs, Timespec } from "./types.ts";
import { FuseError } from "./errno.ts";
import { O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, ROOT_ID, S_IFDIR, S_IFMT, S_IFREG } from "./constants.ts";
import { modeAfterKill } from "./privileges.ts";

/** A point in time: a Date, milliseconds since the epoch (number), nanoseconds (bigint) or a Timespec. */
export type Time = Date | number | bigint | Timespec;

/** What `stat` returns: only `mode` is required, the layer fills in the rest. */
export interface Stat {
  /** File type and permission bits (S_IFREG | 0o644). */
  mode: number;
  /** Bytes (default 0); a symlink's is the length of its target. */
  size?: number;
  /** Default: 2 for a directory, 1 otherwise. */
  nlink?: number;
  /** Default: the user who mounted (the daemon's uid/gid). */
  uid?: number;
  gid?: number;
  /** Default: when the filesystem was mounted. */
  atime?: Time;
  mtime?: Time;
  ctime?: Time;
  rdev?: number;
  blocks?: number;
  blksize?: number;
}

/**
 * What `setattr` is asked to change; absent = unchanged. Times are resolved ("now" → the clock).
 * It may be empty (chown(f, -1, -1)): then only ctime changes, to now.
 */
export interface Changes {
  /** Permission bits only (0o7777): the file type never changes. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** truncate/ftruncate, and open with O_TRUNC. */
  size?: number;
  atime?: Timespec;
  mtime?: Timespec;
  ctime?: Timespec;
}

/**
 * A filesystem as a tree of nodes of type `N` (any value: an object, a row id, a path), with open
 * files carrying a handle of type `H` (whatever `open` returns). Every op is optional except `root`,
 * `lookup` and `stat`; mutating ops that are absent answer EROFS. `req` (who asks) comes last.
 */
export interface Tree<N, H = unknown> {
  /** The root directory. */
  root: N;
  /** The node's identity (default: the node itself). Equal keys are the same node (hard links). */
  key?(node: N): unknown;
  /** The child `name` of directory `parent`, or undefined when there is none (ENOENT). */
  lookup(parent: N, name: string, req: Request): N | undefined | Promise<N | undefined>;
  stat(node: N, req: Request): Stat | Promise<Stat>;
  /** The entries of `dir`, without `.` and `..`, as [name, node] pairs. */
  readdir?(dir: N, req: Request): Iterable<[string, N]> | Promise<Iterable<[string, N]>>;
  readlink?(node: N, req: Request): string | Promise<string>;
  /** Bytes at `offset` (at most `size`; fewer = end of file). */
  read?(node: N, offset: number, size: number, handle: H, req: Request): Uint8Array | string | Promise<Uint8Array | string>;
  /** Store `data` (valid only until this returns: copy what you keep) at `offset`; return the count. */
  write?(node: N, offset: number, data: Uint8Array, handle: H, req: Request): number | Promise<number>;
  /** Open a file (not a directory): the value returned comes back as `handle`. O_TRUNC is already done. */
  open?(node: N, flags: number, req: Request): H | Promise<H>;
  /** The last descriptor of an open file is closed. */
  release?(node: N, handle: H, req: Request): void | Promise<void>;
  flush?(node: N, handle: H, req: Request): void | Promise<void>;
  fsync?(node: N, datasync: boolean, handle: H | undefined, req: Request): void | Promise<void>;
  /**
   * SEEK_DATA (3) / SEEK_HOLE (4): the next data / hole at or after `offset` (ENXIO past the end).
   * Absent: the kernel treats the whole file as data (a sparse file is read in full).
   */
  lseek?(node: N, offset: number, whence: number, handle: H, req: Request): number | Promise<number>;
  /** Apply `changes`; the reply is `stat` afterwards. */
  setattr?(node: N, changes: Changes, req: Request): void | Promise<void>;
  /** A regular file (also used for mknod of S_IFREG). `mode` has the umask applied. */
  create?(parent: N, name: string, mode: number, req: Request): N | Promise<N>;
  /** `mode` has the umask applied; includes S_IFDIR. */
  mkdir?(parent: N, name: string, mode: number, req: Request): N | Promise<N>;
  /** Fifos, sockets, devices (and regular files when there is no `create`). */
  mknod?(parent: N, name: string, mode: number, rdev: number, req: Request): N | Promise<N>;
  symlink?(parent: N, name: string, target: string, req: Request): N | Promise<N>;
  /** Another name for `node` (raise its nlink). */
  link?(node: N, parent: N, name: string, req: Request): void | Promise<void>;
  /** Remove a non-directory name; keep the node's data while it is open or known (see `forget`). */
  unlink?(parent: N, name: string, req: Request): void | Promise<void>;
  /** Remove an empty directory (ENOTEMPTY otherwise). */
  rmdir?(parent: N, name: string, req: Request): void | Promise<void>;
  /** `flags`: RENAME_NOREPLACE / RENAME_EXCHANGE (throw EINVAL for those you do not support). */
  rename?(parent: N, name: string, newParent: N, newName: string, flags: number, req: Request): void | Promise<void>;
  /** The value, or undefined when absent (ENODATA). */
  getxattr?(node: N, name: string, req: Request): Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>;
  setxattr?(node: N, name: string, value: Uint8Array, flags: number, req: Request): void | Promise<void>;
  listxattr?(node: N, req: Request): string[] | Promise<string[]>;
  removexattr?(node: N, name: string, req: Request): void | Promise<void>;
  /** Implements POSIX ACLs in `system.posix_acl_*` xattrs (else the layer answers EOPNOTSUPP). */
  posixAcl?: boolean;
  /**
   * Let the layer clear setuid/setgid by the kernel's rule (FUSE_HANDLE_KILLPRIV_V2), through
   * `setattr({ mode })`: on a write, truncate or chown by a caller without CAP_FSETID. Without it
   * the kernel does it with a SETATTR of its own, and keeps S_ISGID of a file that is not
   * group-executable even for a writer outside the file's group (unlike local filesystems).
   */
  killPrivileges?: boolean;
  statfs?(req: Request): Partial<StatFs> | Promise<Partial<StatFs>>;
  /**
   * The kernel no longer knows `node` (every lookup forgotten) and no file of it is open: a node
   * with no names left (nlink 0) can be freed now. Not called at unmount: free orphans at setup.
   */
  forget?(node: N): void | Promise<void>;
  init?(): void | Promise<void>;
  destroy?(): void | Promise<void>;
}

/** A tree plugin with options: `setup` builds the tree (and may use `ctx.keep`, `ctx.log`, ...). */
export interface TreePlugin<N, H, O> {
  name?: string;
  options?: Record<string, PluginOption>;
  setup(ctx: PluginContext<O>): Tree<N, H> | Promise<Tree<N, H>>;
}

/** `new Date()`-like helpers and conversions for {@link Time}. */
export function timespec(t: Time): Timespec {
  if (t instanceof Date) t = t.getTime();
  if (typeof t === "number") {
    const sec = Math.floor(t / 1000);
    return { sec, nsec: Math.round((t - sec * 1000) * 1e6) };
  }
  if (typeof t === "bigint") {
    const sec = t / 1_000_000_000n;
    const nsec = t - sec * 1_000_000_000n;
    return nsec < 0n ? { sec: Number(sec) - 1, nsec: Number(nsec) + 1e9 } : { sec: Number(sec), nsec: Number(nsec) };
  }
  return t;
}
/** Nanoseconds since the epoch. */
export function timeNs(t: Time): bigint {
  const ts = timespec(t);
  return BigInt(ts.sec) * 1_000_000_000n + BigInt(ts.nsec);
}
/** The clock now, with nanoseconds (Date has only milliseconds). */
export function now(): Timespec {
  const ms = performance.timeOrigin + performance.now();
  return timespec(ms);
}
/** Throw an errno: `fail("ENOENT")` (a {@link FuseError}). */
export function fail(code: ConstructorParameters<typeof FuseError>[0], message?: string): never {
  throw new FuseError(code, message);
}

/** One node the kernel knows. */
interface Slot {
  id: number;
  key: unknown;
  node: unknown;
  lookups: number;
  opens: number;
}
/** One open file or directory. */
interface Handle {
  slot: Slot;
  state: unknown;
  /** Directories: the listing taken at offset 0, [name, node]. */
  list?: [string, unknown][];
}
/** The layer's table, kept across hot reloads. */
interface Table {
  byKey: Map<unknown, Slot>;
  byId: Map<number, Slot>;
  handles: Map<number, Handle>;
  /** Ids of keys the kernel forgot, so a key keeps its id (and st_ino) for the mount's life. */
  idOfObject: WeakMap<object, number>;
  idOfValue: Map<unknown, number>;
  nextId: number;
  nextFh: number;
  born: Timespec;
}

const READ_ONLY_OPS = ["write", "setattr", "create", "mkdir", "mknod", "symlink", "link", "unlink", "rmdir", "rename", "setxattr", "removexattr"] as const;
const ACL = "system.posix_acl_";

/**
 * Serves a {@link Tree} (or a {@link TreePlugin} with options and setup) as a furing plugin:
 * `export default defineTree({ root, lookup, stat, ... })`.
 */
export function defineTree<N, H = unknown, O = Record<string, unknown>>(def: Tree<N, H> | TreePlugin<N, H, O>): Plugin<O> {
  const plugin = def as TreePlugin<N, H, O>;
  return {
    name: plugin.name,
    options: plugin.options,
    async setup(ctx) {
      const tree = typeof plugin.setup === "function" ? await plugin.setup(ctx) : (def as Tree<N, H>);
      const table = ctx.keep<Table>("furing:tree", () => ({ byKey: new Map(), byId: new Map(), handles: new Map(), idOfObject: new WeakMap(), idOfValue: new Map(), nextId: ROOT_ID + 1, nextFh: 1, born: now() }));
      return serveTree(tree, table);
    },
  };
}

function serveTree<N, H>(tree: Tree<N, H>, t: Table): Filesystem {
  const keyOf = tree.key ? (n: N) => tree.key!(n) : (n: N) => n as unknown;
  const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
  // The root is id 1 whatever its key; a new generation's root replaces the old one.
  const rootKey = keyOf(tree.root);
  const oldRoot = t.byId.get(ROOT_ID);
  if (oldRoot) t.byKey.delete(oldRoot.key);
  const root: Slot = oldRoot ?? { id: ROOT_ID, key: rootKey, node: tree.root, lookups: 1, opens: 0 };
  root.key = rootKey;
  root.node = tree.root;
  t.byId.set(ROOT_ID, root);
  t.byKey.set(rootKey, root);
  const readOnly = READ_ONLY_OPS.every((op) => tree[op] === undefined);

  const slot = (id: number): Slot => t.byId.get(id) ?? fail("ESTALE", `node ${id} is not known (forgotten)`);
  const node = (id: number) => slot(id).node as N;
  const handle = (fh: number): Handle => t.handles.get(fh) ?? fail("EBADF", `file handle ${fh} is not open`);
  const need = <K extends keyof Tree<N, H>>(op: K): NonNullable<Tree<N, H>[K]> => {
    const f = tree[op];
    if (f === undefined) fail(readOnly ? "EROFS" : "EOPNOTSUPP", `${String(op)} is not implemented by this tree`);
    return f as NonNullable<Tree<N, H>[K]>;
  };
  /** The slot of `n`, created (lookups 0) if the kernel does not know it yet. */
  const slotOf = (n: N): Slot => {
    const key = keyOf(n);
    let s = t.byKey.get(key);
    if (s === undefined) {
      const remembered = typeof key === "object" && key !== null ? t.idOfObject : t.idOfValue;
      let id = typeof key === "number" && Number.isSafeInteger(key) && key > 0 ? key : (remembered as Map<unknown, number>).get(key);
      if (id === undefined) {
        id = t.nextId++;
        if (typeof key === "object" && key !== null) t.idOfObject.set(key, id);
        else t.idOfValue.set(key, id); // strings (paths) are remembered for the mount's life
      }
      if (t.byId.has(id)) fail("EIO", `node key ${String(key)} collides with node id ${id}: use only positive integer keys (ids) or only other keys`);
      s = { id, key, node: n, lookups: 0, opens: 0 };
      t.byKey.set(key, s);
      t.byId.set(id, s);
    } else s.node = n; // the latest value (a new generation's object for the same key)
    return s;
  };
  /** Removes a slot nothing holds; `known`: the kernel had it, so tell the tree. */
  const drop = (s: Slot, known = true) => {
    if (s.lookups > 0 || s.opens > 0 || s.id === ROOT_ID) return;
    t.byKey.delete(s.key);
    t.byId.delete(s.id);
    if (!known) return;
    const r = tree.forget?.(s.node as N);
    if (r instanceof Promise) r.catch((e) => console.error(`furing tree: forget failed: ${(e as Error)?.stack ?? e}`));
  };

  const attr = (id: number, st: Stat): AttrReply => {
    const dflt = t.born;
    const a = st.atime === undefined ? dflt : timespec(st.atime);
    const m = st.mtime === undefined ? dflt : timespec(st.mtime);
    const c = st.ctime === undefined ? m : timespec(st.ctime);
    return {
      ino: id, mode: st.mode, size: st.size ?? 0, nlink: st.nlink ?? ((st.mode & S_IFMT) === S_IFDIR ? 2 : 1),
      uid: st.uid ?? uid, gid: st.gid ?? gid, rdev: st.rdev, blocks: st.blocks, blksize: st.blksize,
      atimeSec: a.sec, atimeNsec: a.nsec, mtimeSec: m.sec, mtimeNsec: m.nsec, ctimeSec: c.sec, ctimeNsec: c.nsec,
    };
  };
  /** An entry reply for `n`: counts one lookup. */
  const entry = async (n: N, req: Request): Promise<Entry> => {
    const st = await tree.stat(n, req);
    const s = slotOf(n);
    s.lookups++;
    return attr(s.id, st);
  };
  const made = async (n: N | Promise<N>, req: Request) => entry(await n, req);
  const newFh = (h: Handle) => {
    const fh = t.nextFh++;
    t.handles.set(fh, h);
    h.slot.opens++;
    return fh;
  };
  const closeFh = (fh: number) => {
    const h = t.handles.get(fh);
    if (!h) return;
    t.handles.delete(fh);
    h.slot.opens--;
    drop(h.slot);
  };
  /** The mode of `n` after the kernel's setuid/setgid kill rule, or undefined when it keeps both. */
  const killedMode = async (n: N, req: Request, capable: boolean, st?: Stat): Promise<number | undefined> => {
    st ??= await tree.stat(n, req);
    const m = modeAfterKill(req, st.mode, st.gid ?? gid, capable);
    return m === st.mode ? undefined : m & 0o7777;
  };
  const kill = async (n: N, req: Request) => {
    const mode = await killedMode(n, req, false);
    if (mode !== undefined) await need("setattr").call(tree, n, { mode }, req);
  };
  const openFile = async (s: Slot, flags: number, req: Request, killSuidgid = false): Promise<number> => {
    // atomic O_TRUNC is negotiated: the kernel leaves the truncation to us
    if ((flags & O_ACCMODE) !== O_RDONLY && tree.write === undefined) fail("EROFS");
    // open(O_TRUNC) stamps mtime and ctime even on an empty file (do_truncate with ATTR_MTIME|ATTR_CTIME)
    if (flags & O_TRUNC) await need("setattr").call(tree, s.node as N, { size: 0, mtime: now() }, req);
    if (killSuidgid && tree.killPrivileges) await kill(s.node as N, req);
    const state = await tree.open?.(s.node as N, flags, req);
    return newFh({ slot: s, state });
  };
  const aclGuard = (name: string) => {
    if (!tree.posixAcl && name.startsWith(ACL)) fail("EOPNOTSUPP", `${name}: POSIX ACLs are not implemented`);
  };

  return {
    killPrivileges: tree.killPrivileges === true,
    init: tree.init?.bind(tree),
    destroy: tree.destroy?.bind(tree),
    async lookup(req, parent, name) {
      const n = await tree.lookup(node(parent), name, req);
      if (n === undefined) fail("ENOENT");
      return entry(n, req);
    },
    forget(ino, nlookup) {
      const s = t.byId.get(ino);
      if (!s) return;
      s.lookups = Math.max(0, s.lookups - nlookup);
      drop(s);
    },
    async getattr(req, ino) {
      const s = slot(ino);
      return attr(s.id, await tree.stat(s.node as N, req));
    },
    async setattr(req, ino, ch) {
      const s = slot(ino);
      const n = s.node as N;
      const changes: Changes = {};
      // chmod passes the file type bits along with the new permissions (the kernel's ia_mode)
      if (ch.mode !== undefined) changes.mode = ch.mode & 0o7777;
      if (ch.uid !== undefined) changes.uid = ch.uid;
      if (ch.gid !== undefined) changes.gid = ch.gid;
      if (ch.size !== undefined) changes.size = ch.size;
      if (ch.atime !== undefined) changes.atime = ch.atime === "now" ? now() : ch.atime;
      if (ch.mtime !== undefined) changes.mtime = ch.mtime === "now" ? now() : ch.mtime;
      if (ch.ctime !== undefined) changes.ctime = ch.ctime;
      // ftruncate: the kernel leaves the times to the server, and a truncate through a descriptor
      // stamps them even at the same size (tmpfs, ext4); by path, only a new size does (the tree's call)
      if (ch.size !== undefined && ch.fh !== undefined && changes.mtime === undefined) changes.mtime = now();
      if (ch.killSuidgid && tree.killPrivileges && changes.mode === undefined) {
        // judged on the file as it was (a chown's old group). An empty request (the kernel's
        // file_remove_privs, or anyone's chown(f, -1, -1): FUSE cannot tell them apart) kills only
        // for the owner, root or while the file is open, as tmpfs's ownership check would allow
        const st = await tree.stat(n, req);
        const empty = Object.keys(changes).length === 0;
        if (!empty || req.uid === 0 || req.uid === (st.uid ?? uid) || s.opens > 0) {
          const mode = await killedMode(n, req, ch.size === undefined && req.uid === 0, st);
          if (mode !== undefined) changes.mode = mode;
        }
      }
      // nothing to change still sets ctime (chown(f, -1, -1)): a tree without setattr is left alone
      if (Object.keys(changes).length || tree.setattr) await need("setattr").call(tree, n, changes, req);
      return attr(s.id, await tree.stat(n, req));
    },
    async readlink(req, ino) {
      return need("readlink").call(tree, node(ino), req);
    },
    async mknod(req, parent, name, mode, rdev) {
      const p = node(parent);
      if ((mode & S_IFMT) === S_IFREG && tree.create && !tree.mknod) return made(tree.create(p, name, mode, req), req);
      return made(need("mknod").call(tree, p, name, mode, rdev, req), req);
    },
    async mkdir(req, parent, name, mode) {
      return made(need("mkdir").call(tree, node(parent), name, (mode & 0o7777) | S_IFDIR, req), req);
    },
    async symlink(req, parent, name, target) {
      return made(need("symlink").call(tree, node(parent), name, target, req), req);
    },
    async link(req, ino, newParent, newName) {
      const n = node(ino);
      await need("link").call(tree, n, node(newParent), newName, req);
      return entry(n, req);
    },
    async unlink(req, parent, name) {
      await need("unlink").call(tree, node(parent), name, req);
    },
    async rmdir(req, parent, name) {
      await need("rmdir").call(tree, node(parent), name, req);
    },
    async rename(req, parent, name, newParent, newName, flags) {
      await need("rename").call(tree, node(parent), name, node(newParent), newName, flags, req);
    },
    async create(req, parent, name, mode, flags, _umask, killSuidgid): Promise<CreateReply> {
      const dir = node(parent);
      let n: N, created = true;
      try {
        n = await need("create").call(tree, dir, name, (mode & 0o7777) | S_IFREG, req);
      } catch (err) {
        // the name appeared since the kernel's negative lookup: without O_EXCL, open(2) opens it
        const existing = (err as { code?: unknown })?.code === "EEXIST" && !(flags & O_EXCL) ? await tree.lookup(dir, name, req) : undefined;
        if (existing === undefined) throw err;
        const type = (await tree.stat(existing, req)).mode & S_IFMT;
        if (type === S_IFDIR) fail("EISDIR");
        if (type !== S_IFREG) throw err; // a symlink the kernel would have followed: let it retry
        n = existing;
        created = false;
      }
      const e = await entry(n, req);
      try {
        const s = slotOf(n);
        // a new file is empty: O_TRUNC matters only for one that was there
        return { entry: e, fh: created ? newFh({ slot: s, state: await tree.open?.(n, flags & ~O_TRUNC, req) }) : await openFile(s, flags, req, killSuidgid) };
      } catch (err) {
        const s = slotOf(n);
        s.lookups--; // the kernel never got the entry
        drop(s);
        throw err;
      }
    },
    async open(req, ino, flags, killSuidgid): Promise<OpenReply> {
      return { fh: await openFile(slot(ino), flags, req, killSuidgid) };
    },
    async read(req, _ino, fh, offset, size, dest) {
      const h = handle(fh);
      const r = await need("read").call(tree, h.slot.node as N, offset, size, h.state as H, req);
      const bytes = typeof r === "string" ? Buffer.from(r) : r;
      const n = Math.min(bytes.length, size);
      dest.set(bytes.length > n ? bytes.subarray(0, n) : bytes);
      return n;
    },
    async write(req, _ino, fh, offset, data, _flags, killSuidgid) {
      const h = handle(fh);
      if (killSuidgid && tree.killPrivileges) await kill(h.slot.node as N, req);
      return need("write").call(tree, h.slot.node as N, offset, data, h.state as H, req);
    },
    async flush(req, _ino, fh) {
      const h = handle(fh);
      await tree.flush?.(h.slot.node as N, h.state as H, req);
    },
    async release(req, _ino, fh) {
      const h = t.handles.get(fh);
      try {
        if (h) await tree.release?.(h.slot.node as N, h.state as H, req);
      } finally {
        closeFh(fh);
      }
    },
    async fsync(req, ino, fh, datasync) {
      await tree.fsync?.(node(ino), datasync, t.handles.get(fh)?.state as H | undefined, req);
    },
    // only when the tree has it: ENOSYS makes the kernel stop asking and treat files as all data
    lseek: tree.lseek && (async (req, _ino, fh, offset, whence) => {
      const h = handle(fh);
      return tree.lseek!(h.slot.node as N, offset, whence, h.state as H, req);
    }),
    async opendir(_req, ino) {
      return { fh: newFh({ slot: slot(ino), state: undefined }) };
    },
    async readdirplus(req, ino, fh, offset, out: DirListPlus) {
      const h = t.handles.get(fh) ?? { slot: slot(ino), state: undefined };
      const dir = h.slot.node as N;
      // offset 0 (opendir, rewinddir) takes a new snapshot; cookies index it: 1 ".", 2 "..", 3.. entries
      if (offset === 0 || h.list === undefined) {
        if (!tree.readdir) fail("ENOTDIR");
        h.list = [...(await tree.readdir(dir, req))];
      }
      const self = offset < 2 ? attr(h.slot.id, await tree.stat(dir, req)) : undefined;
      for (let i = offset; i < h.list.length + 2; i++) {
        if (i < 2) {
          if (!out.add(i === 0 ? "." : "..", self!, i + 1)) return;
          continue;
        }
        const [name, n] = h.list[i - 2]! as [string, N];
        let st: Stat;
        try {
          st = await tree.stat(n, req);
        } catch (e) {
          const code = (e as { code?: unknown })?.code;
          if (code === "ENOENT" || code === "ESTALE") continue; // gone since the snapshot
          throw e;
        }
        const s = slotOf(n);
        if (!out.add(name, attr(s.id, st), i + 1)) {
          drop(s, false); // did not fit: the kernel never saw it
          return;
        }
        s.lookups++;
      }
    },
    async releasedir(_req, _ino, fh) {
      closeFh(fh);
    },
    async fsyncdir(req, ino, _fh, datasync) {
      await tree.fsync?.(node(ino), datasync, undefined, req);
    },
    async statfs(req): Promise<StatFs> {
      const s = (await tree.statfs?.(req)) ?? {};
      return { blocks: 0, bfree: 0, bavail: 0, files: t.byId.size, ffree: 0, bsize: 4096, namelen: 255, ...s };
    },
    async getxattr(req, ino, name) {
      aclGuard(name);
      const v = tree.getxattr ? await tree.getxattr(node(ino), name, req) : undefined;
      if (v === undefined) fail("ENODATA");
      return v;
    },
    async setxattr(req, ino, name, value, flags) {
      aclGuard(name);
      await need("setxattr").call(tree, node(ino), name, value, flags, req);
    },
    async listxattr(req, ino) {
      return tree.listxattr ? tree.listxattr(node(ino), req) : [];
    },
    async removexattr(req, ino, name) {
      aclGuard(name);
      await need("removexattr").call(tree, node(ino), name, req);
    },
  };
}

/** Content of a {@link staticTree}: a string or bytes is a file, an object a directory. */
export interface StaticDir {
  [name: string]: string | Uint8Array | StaticDir;
}

/**
 * A read-only tree from a literal: `export default staticTree({ "hello.txt": "Hello!\n" })`.
 * Nodes are keyed by path, so a hot reload serves the new content under the same node ids.
 */
export function staticTree(content: StaticDir): Plugin {
  const files = new Map<string, Uint8Array | StaticDir>([["", content]]);
  const walk = (dir: StaticDir, path: string) => {
    for (const [name, v] of Object.entries(dir)) {
      if (name.includes("/") || name === "" || name === "." || name === "..") throw new Error(`staticTree: bad file name ${JSON.stringify(name)}`);
      const p = `${path}/${name}`;
      files.set(p, typeof v === "string" ? Buffer.from(v) : v);
      if (!(v instanceof Uint8Array) && typeof v !== "string") walk(v, p);
    }
  };
  walk(content, "");
  const get = (p: string) => files.get(p) ?? fail("ENOENT");
  return defineTree<string>({
    root: "",
    lookup: (dir, name) => (files.has(`${dir}/${name}`) ? `${dir}/${name}` : undefined),
    stat(p) {
      const v = get(p);
      return v instanceof Uint8Array ? { mode: S_IFREG | 0o444, size: v.length } : { mode: S_IFDIR | 0o555 };
    },
    readdir: (p) => Object.keys(get(p) as StaticDir).map((name): [string, string] => [name, `${p}/${name}`]),
    read: (p, offset, size) => (get(p) as Uint8Array).subarray(offset, offset + size),
  });
}
