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
 * - directory listings: a snapshot per opendir (rewinddir takes a new one), `.` and `..`, and
 *   directory cookies as tmpfs's (see `listing` below), READDIRPLUS;
 * - access times by the mount's atime mode (ctx.atime, ctx.nodiratime), as memfs (see `touchAtime`);
 * - attribute defaults (owner = the mounting user, times = mount time, nlink, size) and Date/ns
 *   timestamps; O_TRUNC on open; SetAttr.mode reduced to the permission bits;
 * - `system.posix_acl_*` xattrs answered EOPNOTSUPP (the kernel would otherwise let them decide
 *   permissions), unless the tree says it implements ACLs.
 * The table lives in `ctx.keep`, so it survives hot reloads like any plugin state.
 */
import type { AttrReply, CreateReply, DirListPlus, Entry, Filesystem, OpenReply, Plugin, PluginContext, PluginOption, Request, StatFs, Timespec } from "./types.ts";
import { RENAME_EXCHANGE } from "./types.ts";
import { FuseError } from "./errno.ts";
import { O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, ROOT_ID, S_IFDIR, S_IFMT, S_IFREG } from "./constants.ts";
import { atimeModeFor, atimeNeedsUpdate } from "./atime.ts";
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
  /**
   * Export support (FUSE_EXPORT_SUPPORT: the kernel's file handles of the mount, for
   * open_by_handle_at and NFS, outlive its inode cache), for a tree whose keys are positive
   * integers (so the key is the node id) that are never reused for another node over the
   * filesystem's life: the node whose key is `id`, or undefined when it no longer exists (its
   * handles then answer ESTALE). Declared together with `parent`.
   */
  find?(id: number, req: Request): N | undefined | Promise<N | undefined>;
  /** The directory that contains directory `dir` (the root's is the root): for export support. */
  parent?(dir: N, req: Request): N | Promise<N>;
  /** Implements POSIX ACLs in `system.posix_acl_*` xattrs (else the layer answers EOPNOTSUPP). */
  posixAcl?: boolean;
  /**
   * Access times. The layer applies the mount's atime mode (`-o relatime` (default), `noatime`,
   * `strictatime`, `nodiratime`) as tmpfs does: a read (not through an O_NOATIME open), a readdir
   * or a readlink updates atime when the rule says so, judged on `stat`'s times. This is called
   * with the new atime to store (then report it from `stat`). Absent, the layer remembers it
   * itself, by key for the mount's life, and reports it while it is newer than `stat`'s atime (a
   * setattr of atime forgets it). `false`: atime is `stat`'s alone, whatever the mount's mode.
   */
  touchAtime?: ((node: N, atime: Timespec, req: Request) => void | Promise<void>) | false;
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
  /** Directories listed while known: their entries' cookies. */
  dir?: DirCookies;
}
/** A directory's cookies: name → cookie (and the key it was seen with), and the next cookie. */
interface DirCookies {
  names: Map<string, { cookie: number; key: unknown }>;
  next: number;
}
/** One entry of a listing snapshot. */
interface Listed {
  cookie: number;
  name: string;
  node: unknown;
}
/** One open file or directory. */
interface Handle {
  slot: Slot;
  state: unknown;
  /** Directories: the listing taken at offset 0, newest cookie first. */
  list?: Listed[];
  /** Opened with O_NOATIME: reads leave atime alone. */
  noatime?: boolean;
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
  /** Access times the layer keeps (no `touchAtime`), by key. */
  atimeOfObject?: WeakMap<object, Timespec>;
  atimeOfValue?: Map<unknown, Timespec>;
}

/**
 * The directory offset that ends a listing, as tmpfs's DIR_OFFSET_EOD (S32_MAX, so a 32-bit
 * telldir holds every offset): above every cookie.
 */
const DIR_EOD = 0x7fffffff;

const READ_ONLY_OPS = ["write", "setattr", "create", "mkdir", "mknod", "symlink", "link", "unlink", "rmdir", "rename", "setxattr", "removexattr"] as const;
const ACL = "system.posix_acl_";
/** open(2)'s O_NOATIME (not among the furing constants). */
const O_NOATIME = 0o1000000;

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
      return serveTree(tree, table, ctx);
    },
  };
}

function serveTree<N, H>(tree: Tree<N, H>, t: Table, mount: Pick<PluginContext, "atime" | "nodiratime">): Filesystem {
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

  // ---- access times (the mount's atime mode) ----
  const fileAtime = atimeModeFor(mount.atime, mount.nodiratime, false);
  const dirAtime = atimeModeFor(mount.atime, mount.nodiratime, true);
  const atimeOfObject = (t.atimeOfObject ??= new WeakMap());
  const atimeOfValue = (t.atimeOfValue ??= new Map());
  const isObject = (key: unknown): key is object => (typeof key === "object" && key !== null) || typeof key === "function";
  /** The atime to report: `stat`'s, or the one the layer kept if newer. */
  const atimeOf = (key: unknown, st: Stat): Timespec => {
    const own = st.atime === undefined ? t.born : timespec(st.atime);
    const kept = isObject(key) ? atimeOfObject.get(key) : atimeOfValue.size === 0 ? undefined : atimeOfValue.get(key);
    return kept !== undefined && (kept.sec > own.sec || (kept.sec === own.sec && kept.nsec > own.nsec)) ? kept : own;
  };
  const forgetAtime = (key: unknown) => {
    if (isObject(key)) atimeOfObject.delete(key);
    else atimeOfValue.delete(key);
  };
  /** A read, readdir or readlink of `s`: update its atime if the mount's rule says so (as touch_atime). */
  const accessed = async (s: Slot, dir: boolean, req: Request): Promise<void> => {
    const mode = dir ? dirAtime : fileAtime;
    if (mode === "noatime" || tree.touchAtime === false) return;
    const st = await tree.stat(s.node as N, req);
    const a = atimeOf(s.key, st);
    const m = st.mtime === undefined ? t.born : timespec(st.mtime);
    const c = st.ctime === undefined ? m : timespec(st.ctime);
    const at = now();
    if (!atimeNeedsUpdate(mode, a.sec, a.nsec, m.sec, m.nsec, c.sec, c.nsec, at.sec) || (at.sec === a.sec && at.nsec === a.nsec)) return;
    if (tree.touchAtime !== undefined) await tree.touchAtime(s.node as N, at, req);
    else if (isObject(s.key)) atimeOfObject.set(s.key, at);
    else atimeOfValue.set(s.key, at);
  };

  // ---- listings: directory cookies as tmpfs's (Linux 6.14 and later) ----
  // Every entry of a directory the layer has listed gets a cookie, increasing as entries appear
  // (created, linked or renamed in through the mount, or first seen in a listing: the names one
  // listing sees first are numbered from its end, so they come out in the tree's order). A
  // listing shows the newest cookie first; an entry's offset is the next entry's cookie (DIR_EOD
  // after the last), and resuming from an offset lists the entries whose cookies are at most it:
  // a seekdir to a telldir position goes on with the entry that was next (or the next older one
  // if it was removed), a value that was never a cookie never ends a listing early, entries
  // removed through the mount are not listed after their removal and entries added meanwhile not
  // before a rewind. Cookies live while the kernel knows the directory.

  /** A name that appears in directory `parentId` (created, linked, renamed in): the newest entry. */
  const added = (parentId: number, name: string, key: unknown) => {
    const d = t.byId.get(parentId)?.dir;
    if (d === undefined) return;
    // cookies used up (2^31 - 4 entries): numbered afresh; listings in progress may skip or repeat
    if (d.next >= DIR_EOD - 1) {
      d.names.clear();
      d.next = 3;
    }
    d.names.set(name, { cookie: d.next++, key });
  };
  const removed = (parentId: number, name: string) => {
    t.byId.get(parentId)?.dir?.names.delete(name);
  };
  /** A new snapshot of directory `s`, newest cookie first. */
  const snapshot = async (s: Slot, req: Request): Promise<Listed[]> => {
    if (!tree.readdir) fail("ENOTDIR");
    const got = [...(await tree.readdir(s.node as N, req))] as [string, N][];
    let d = s.dir;
    if (d === undefined || d.next + got.length >= DIR_EOD - 1) d = s.dir = { names: new Map(), next: 3 };
    const list: Listed[] = new Array(got.length);
    for (let i = got.length - 1; i >= 0; i--) {
      const [name, n] = got[i]!;
      const key = keyOf(n);
      let e = d.names.get(name);
      // another node under a known name (replaced behind the layer's back) is a new entry
      if (e === undefined || (e.key !== undefined && e.key !== key)) d.names.set(name, (e = { cookie: d.next++, key }));
      else e.key = key;
      list[i] = { cookie: e.cookie, name, node: n };
    }
    // names gone from the tree are forgotten: one that comes back is a new entry
    if (d.names.size > got.length) {
      const present = new Set(got.map((g) => g[0]));
      for (const name of d.names.keys()) if (!present.has(name)) d.names.delete(name);
    }
    return list.sort((a, b) => b.cookie - a.cookie);
  };
  /** Index of the first entry of `list` (newest first) whose cookie is at most `off`. */
  const firstAtMost = (list: Listed[], off: number): number => {
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.cookie > off) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const attr = (s: Slot, st: Stat): AttrReply => {
    const dflt = t.born;
    const a = atimeOf(s.key, st);
    const m = st.mtime === undefined ? dflt : timespec(st.mtime);
    const c = st.ctime === undefined ? m : timespec(st.ctime);
    return {
      ino: s.id, mode: st.mode, size: st.size ?? 0, nlink: st.nlink ?? ((st.mode & S_IFMT) === S_IFDIR ? 2 : 1),
      uid: st.uid ?? uid, gid: st.gid ?? gid, rdev: st.rdev, blocks: st.blocks, blksize: st.blksize,
      atimeSec: a.sec, atimeNsec: a.nsec, mtimeSec: m.sec, mtimeNsec: m.nsec, ctimeSec: c.sec, ctimeNsec: c.nsec,
    };
  };
  /** An entry reply for `n`: counts one lookup. */
  const entry = async (n: N, req: Request): Promise<Entry> => {
    const st = await tree.stat(n, req);
    const s = slotOf(n);
    s.lookups++;
    return attr(s, st);
  };
  /** The entry of node `n` just made as `name` in `parent`, the directory's newest. */
  const made = async (parent: number, name: string, n: N | Promise<N>, req: Request) => {
    const e = await entry(await n, req);
    added(parent, name, t.byId.get(e.ino)?.key);
    return e;
  };
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
    return newFh({ slot: s, state, noatime: (flags & O_NOATIME) !== 0 });
  };
  const aclGuard = (name: string) => {
    if (!tree.posixAcl && name.startsWith(ACL)) fail("EOPNOTSUPP", `${name}: POSIX ACLs are not implemented`);
  };

  const exportable = tree.find !== undefined && tree.parent !== undefined;
  return {
    killPrivileges: tree.killPrivileges === true,
    init: tree.init?.bind(tree),
    destroy: tree.destroy?.bind(tree),
    exportSupport: exportable,
    async lookup(req, parent, name) {
      // "." and ".." by node id: only the kernel's export operations ask, for ids it may have forgotten
      if (exportable && (name === "." || name === "..")) {
        let n = t.byId.get(parent)?.node as N | undefined;
        if (n === undefined) {
          n = await tree.find!(parent, req);
          if (n === undefined || keyOf(n) !== parent) fail("ENOENT", `node ${parent} no longer exists`);
        }
        return entry(name === "." || parent === ROOT_ID ? n : await tree.parent!(n, req), req);
      }
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
      return attr(s, await tree.stat(s.node as N, req));
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
      if (changes.atime !== undefined) forgetAtime(s.key); // the tree's atime counts again
      return attr(s, await tree.stat(n, req));
    },
    async readlink(req, ino) {
      const s = slot(ino);
      const target = await need("readlink").call(tree, s.node as N, req);
      await accessed(s, false, req);
      return target;
    },
    async mknod(req, parent, name, mode, rdev) {
      const p = node(parent);
      if ((mode & S_IFMT) === S_IFREG && tree.create && !tree.mknod) return made(parent, name, tree.create(p, name, mode, req), req);
      return made(parent, name, need("mknod").call(tree, p, name, mode, rdev, req), req);
    },
    async mkdir(req, parent, name, mode) {
      return made(parent, name, need("mkdir").call(tree, node(parent), name, (mode & 0o7777) | S_IFDIR, req), req);
    },
    async symlink(req, parent, name, target) {
      return made(parent, name, need("symlink").call(tree, node(parent), name, target, req), req);
    },
    async link(req, ino, newParent, newName) {
      const n = node(ino);
      await need("link").call(tree, n, node(newParent), newName, req);
      return made(newParent, newName, n, req);
    },
    async unlink(req, parent, name) {
      await need("unlink").call(tree, node(parent), name, req);
      removed(parent, name);
    },
    async rmdir(req, parent, name) {
      await need("rmdir").call(tree, node(parent), name, req);
      removed(parent, name);
    },
    async rename(req, parent, name, newParent, newName, flags) {
      await need("rename").call(tree, node(parent), name, node(newParent), newName, flags, req);
      // the names moved list as the newest entries (both for an exchange, the new name first), as on tmpfs
      const from = t.byId.get(parent)?.dir?.names.get(name)?.key;
      const to = t.byId.get(newParent)?.dir?.names.get(newName)?.key;
      removed(parent, name);
      removed(newParent, newName);
      if (flags & RENAME_EXCHANGE) added(parent, name, to);
      added(newParent, newName, from);
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
        if (created) added(parent, name, s.key);
        return { entry: e, fh: created ? newFh({ slot: s, state: await tree.open?.(n, flags & ~O_TRUNC, req), noatime: (flags & O_NOATIME) !== 0 }) : await openFile(s, flags, req, killSuidgid) };
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
      if (h.noatime !== true) await accessed(h.slot, false, req);
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
      const ds = h.slot;
      const dir = ds.node as N;
      // offset 0 (opendir, rewinddir) takes a new snapshot
      if (offset === 0 || h.list === undefined) h.list = await snapshot(ds, req);
      await accessed(ds, true, req);
      const list = h.list;
      const names = ds.dir!.names;
      // an entry still there (not removed or replaced through the mount since the snapshot)
      const nextLive = (i: number) => {
        while (i < list.length && names.get(list[i]!.name)?.cookie !== list[i]!.cookie) i++;
        return i;
      };
      const offsetAt = (i: number) => (i < list.length ? list[i]!.cookie : DIR_EOD);
      // "." is 1, ".." the first entry's cookie; 0, 1 and 2 start at the newest entry
      let i = nextLive(offset === DIR_EOD ? list.length : offset < 3 ? 0 : firstAtMost(list, offset));
      const self = offset < 2 ? attr(ds, await tree.stat(dir, req)) : undefined;
      if (offset < 1 && !out.add(".", self!, 1)) return;
      if (offset < 2 && !out.add("..", self!, offsetAt(i))) return;
      while (i < list.length) {
        const e = list[i]!;
        const next = nextLive(i + 1);
        let st: Stat;
        try {
          st = await tree.stat(e.node as N, req);
        } catch (err) {
          const code = (err as { code?: unknown })?.code;
          if (code === "ENOENT" || code === "ESTALE") {
            i = next; // gone since the snapshot, behind the layer's back
            continue;
          }
          throw err;
        }
        const s = slotOf(e.node as N);
        if (!out.add(e.name, attr(s, st), offsetAt(next))) {
          drop(s, false); // did not fit: the kernel never saw it
          return;
        }
        s.lookups++;
        i = next;
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
