/**
 * The filesystem operations, built around a state object (state.ts) and holding no other state,
 * so a new generation of the code can serve an existing tree.
 *
 * Behaviour follows tmpfs, errno for errno, with the kernel's default_permissions doing the
 * mode checks (only `access` checks modes here, for mounts without default_permissions).
 * Notes:
 * - atime follows the mount's mode (ctx.atime, ctx.nodiratime) as tmpfs: read, readdir and
 *   readlink update it with relatime (the default) when it is not newer than mtime/ctime or is a
 *   day old, always with strictatime, never with noatime (nodiratime: never for directories).
 * - No file handles (fh 0): the per-node `opens` count is all the state an open needs; it keeps
 *   unlinked files alive until their last release. O_APPEND is left to the kernel, which sends
 *   appends at its i_size (exact, since memfs changes only through this mount). Repositioning
 *   writes here would be wrong with -o writeback_cache: the kernel flushes dirty pages through
 *   any writable handle of the file, an O_APPEND one included.
 * - Directory offsets are per-directory cookies (see nodes.ts): "." is 1, ".." is 2, entries
 *   get increasing cookies from 3 as they are added and never reuse them. Listings show "." and
 *   "..", then the newest entry first, as tmpfs does (Linux 6.14 and later); a renamed entry
 *   counts as new. As on tmpfs, an entry's offset is the cookie of the entry listed after it
 *   (DIR_EOD, 2^31 - 1, after the last), so the end is above every other offset; resuming from
 *   an offset lists the entries whose cookies are at most it, and an offset that was never a
 *   cookie (other than DIR_EOD) never ends a listing early. Entries present throughout are
 *   listed exactly once, entries added meanwhile are not.
 */
import {
  defineFilesystem,
  lockOps,
  type CreateReply,
  type DirList,
  type DirListPlus,
  type Filesystem,
  type Request,
  type OpenReply,
  type SetAttr,
  type StatFs,
  type AtimeMode,
  atimeModeFor,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  O_ACCMODE,
  O_EXCL,
  O_RDONLY,
  O_TRUNC,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  S_ISGID,
  S_ISUID,
  SEEK_DATA,
  SEEK_HOLE,
  X_OK,
} from "furing";
import {
  EACCES,
  EBUSY,
  EEXIST,
  EFBIG,
  EINVAL,
  EISDIR,
  ENAMETOOLONG,
  ENODEV,
  ENOENT,
  ENOSPC,
  ENOTDIR,
  ENOTEMPTY,
  ENXIO,
  EOPNOTSUPP,
  EPERM,
} from "./errors.ts";
import {
  type Node,
  INODE_SPACE,
  accessed,
  addEntry,
  checkName,
  checkNewName,
  checkCookie,
  listStart,
  prevLive,
  offsetOf,
  dirChild,
  dirSize,
  dropLink,
  entryCookie,
  entryName,
  entryNode,
  forgetNode,
  getDir,
  getNode,
  indexBefore,
  isAncestor,
  listLength,
  markLinkable,
  maybeFree,
  newNode,
  removeEntry,
  setAtime,
  setCtime,
  setMtime,
  setTarget,
  takeLinkable,
  targetOf,
  tick,
  utf8Length,
} from "./nodes.ts";
import {
  MAX_FILE_SIZE,
  PAGE,
  allocate,
  chargePage,
  copyRange,
  freeBytes,
  punch,
  readData,
  seekData,
  seekHole,
  setSize,
  writeData,
} from "./data.ts";
import { getXattr, listXattrs, removeXattr, setXattr } from "./xattr.ts";
import { killPrivileges } from "./privileges.ts";
import { nodeById, type MemfsState } from "./state.ts";

/** Symlink targets up to this length (with the NUL) live in the inode, longer ones take a page. */
const SHORT_SYMLINK_LEN = 128;

function isReg(n: Node): boolean {
  return (n.mode & S_IFMT) === S_IFREG;
}

/** A setattr that changes nothing itself (the kernel's file_remove_privs(), chown(f, -1, -1)). */
function emptySetattr(ch: SetAttr): boolean {
  return ch.size === undefined && ch.uid === undefined && ch.gid === undefined && ch.mode === undefined &&
    ch.atime === undefined && ch.mtime === undefined && ch.ctime === undefined;
}

/**
 * Create node `name` in directory `p` (already checked: live directory, new valid name) owned by
 * the caller; the group and, for directories, S_ISGID come from a set-group-ID parent.
 */
function make(state: MemfsState, req: Request, p: Node, name: string, mode: number): Node {
  let gid = req.gid;
  if ((p.mode & S_ISGID) !== 0) {
    gid = p.gid;
    if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID;
  }
  tick(state);
  const n = newNode(state, mode, req.uid, gid);
  addEntry(p, name, n);
  setMtime(p);
  return n;
}

/** open(2)'s O_NOATIME (not in the furing constants). */
const O_NOATIME = 0o1000000;
const NOATIME_FH = 1;
const NOATIME_OPEN: OpenReply = Object.freeze({ fh: NOATIME_FH });

/** The mount's atime mode (ctx.atime and ctx.nodiratime); relatime when not given. */
export interface AtimeOptions {
  atime?: AtimeMode;
  nodiratime?: boolean;
}

export function createOps(state: MemfsState, mount: AtimeOptions = {}): Filesystem {
  // atime mode for files, and for directories (nodiratime: never)
  const fileAtime = atimeModeFor(mount.atime ?? "relatime", false, false);
  const dirAtime = atimeModeFor(mount.atime ?? "relatime", mount.nodiratime === true, true);
  return lockOps(state.lock, defineFilesystem({
    // setuid/setgid are cleared here (privileges.ts), when the kernel says so (killSuidgid)
    killPrivileges: true,
    // node ids are never reused (slot + generation), and lookup answers "." and ".." by id
    exportSupport: true,

    lookup(req: Request, parent: number, name: string): Node {
      const p = nodeById(state, parent);
      if (p === undefined) throw ENOENT;
      // "." (any node) and ".." by node id: only the kernel's export operations ask them, to
      // re-find a node from a file handle; one with no name left is gone (ESTALE), as on tmpfs
      if (name === "." || name === "..") {
        if (name === ".." && !p.isDir) throw ENOTDIR;
        if (p.nlink === 0) throw ENOENT;
        const n = name === "." ? p : (nodeById(state, p.parent) ?? p);
        n.nlookup++;
        return n;
      }
      if (!p.isDir) throw ENOTDIR;
      const c = dirChild(p, name);
      if (c !== undefined) {
        c.nlookup++;
        return c;
      }
      checkName(name);
      throw ENOENT;
    },

    forget(ino: number, nlookup: number): void {
      forgetNode(state, ino, nlookup);
    },

    getattr(req: Request, ino: number): Node {
      const n = nodeById(state, ino);
      if (n === undefined) throw ENOENT;
      return n;
    },

    setattr(req: Request, ino: number, ch: SetAttr): Node {
      const n = getNode(state, ino);
      const size = ch.size;
      if (size !== undefined) {
        if (n.isDir) throw EISDIR;
        if (!isReg(n) || size < 0 || !Number.isInteger(size)) throw EINVAL;
        if (size > MAX_FILE_SIZE) throw EFBIG;
      }
      tick(state);
      let changed = false;
      // before a chown: the rule looks at the group the file had
      // (an empty request is the kernel's file_remove_privs() for a writer, or anyone's chown(f, -1, -1):
      // FUSE cannot tell them apart and skips tmpfs's ownership check, so only the owner, root, or
      // while the file is open for writing)
      if (ch.killSuidgid === true && (!emptySetattr(ch) || req.uid === 0 || req.uid === n.uid || n.writers > 0) && killPrivileges(req, n, size === undefined && req.uid === 0)) changed = true;
      if (size !== undefined) {
        // As shmem_setattr: a new size stamps mtime and ctime; so does the same size when the file
        // holds data (shmem_truncate_range runs, and frees what KEEP_SIZE allocated past EOF), and
        // any size through a descriptor (ftruncate: FATTR_FH, the kernel leaves the times to us).
        const stamps = size !== n.size || n.blocks !== 0 || ch.fh !== undefined;
        setSize(state, n, size);
        if (stamps) {
          setMtime(n);
          changed = true;
        }
      }
      if (ch.mode !== undefined) {
        n.mode = (n.mode & S_IFMT) | (ch.mode & 0o7777);
        changed = true;
      }
      if (ch.uid !== undefined || ch.gid !== undefined) {
        if (ch.uid !== undefined) n.uid = ch.uid;
        if (ch.gid !== undefined) n.gid = ch.gid;
        changed = true;
      }
      const at = ch.atime;
      if (at !== undefined) {
        if (at === "now") setAtime(n);
        else {
          n.atimeSec = at.sec;
          n.atimeNsec = at.nsec;
        }
        changed = true;
      }
      const mt = ch.mtime;
      if (mt !== undefined) {
        if (mt === "now") setMtime(n);
        else {
          n.mtimeSec = mt.sec;
          n.mtimeNsec = mt.nsec;
        }
        changed = true;
      }
      if (ch.ctime !== undefined) {
        n.ctimeSec = ch.ctime.sec;
        n.ctimeNsec = ch.ctime.nsec;
      } else if (changed || size === undefined) {
        // Any change stamps ctime. So does a request with nothing in it: that is what the kernel
        // sends for chown(f, -1, -1), which stamps ctime on tmpfs. Only a truncate(2) by path of a
        // file without data to the same size changes nothing.
        setCtime(n);
      }
      return n;
    },

    readlink(req: Request, ino: number): string {
      const n = getNode(state, ino);
      if (n.targetPtr === 0) throw EINVAL;
      accessed(n, fileAtime);
      return targetOf(n);
    },

    mknod(req: Request, parent: number, name: string, mode: number, rdev: number, umask: number): Node {
      let type = mode & S_IFMT;
      if (type === 0) type = S_IFREG;
      if (type === S_IFDIR) throw EPERM;
      if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFCHR && type !== S_IFBLK) throw EINVAL;
      const p = getDir(state, parent, true);
      checkNewName(p, name);
      const n = make(state, req, p, name, type | (mode & 0o7777 & ~umask));
      if (type === S_IFCHR || type === S_IFBLK) n.rdev = rdev;
      n.nlookup++;
      return n;
    },

    mkdir(req: Request, parent: number, name: string, mode: number, umask: number): Node {
      const p = getDir(state, parent, true);
      checkNewName(p, name);
      const n = make(state, req, p, name, S_IFDIR | (mode & 0o7777 & ~umask));
      n.nlookup++;
      return n;
    },

    unlink(req: Request, parent: number, name: string): void {
      const p = getDir(state, parent, false);
      const n = dirChild(p, name);
      if (n === undefined) {
        checkName(name);
        throw ENOENT;
      }
      if (n.isDir) throw EISDIR;
      tick(state);
      removeEntry(p, name);
      setMtime(p);
      dropLink(state, n);
    },

    rmdir(req: Request, parent: number, name: string): void {
      const p = getDir(state, parent, false);
      if (name === ".") throw EINVAL;
      if (name === "..") throw ENOTEMPTY;
      const n = dirChild(p, name);
      if (n === undefined) {
        checkName(name);
        throw ENOENT;
      }
      if (!n.isDir) throw ENOTDIR;
      if (dirSize(n) !== 0) throw ENOTEMPTY;
      tick(state);
      removeEntry(p, name);
      setMtime(p);
      dropLink(state, n);
    },

    symlink(req: Request, parent: number, name: string, target: string): Node {
      const p = getDir(state, parent, true);
      checkNewName(p, name);
      const len = utf8Length(target);
      if (len === 0) throw ENOENT;
      if (len + 1 > PAGE) throw ENAMETOOLONG;
      const long = len + 1 > SHORT_SYMLINK_LEN;
      if (long && freeBytes(state) < PAGE) throw ENOSPC;
      const n = make(state, req, p, name, S_IFLNK | 0o777);
      setTarget(n, target);
      n.size = len;
      if (long) chargePage(state, n);
      n.nlookup++;
      return n;
    },

    rename(req: Request, parent: number, name: string, newParent: number, newName: string, flags: number): void {
      if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) !== 0) throw EINVAL;
      const exchange = (flags & RENAME_EXCHANGE) !== 0;
      if (exchange && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)) !== 0) throw EINVAL;
      const op = getDir(state, parent, false);
      const np = getDir(state, newParent, false);
      if (name === "." || name === ".." || newName === "." || newName === "..") throw EBUSY;
      const src = dirChild(op, name);
      if (src === undefined) {
        checkName(name);
        throw ENOENT;
      }
      checkName(newName);
      const dst = dirChild(np, newName) ?? null;
      if (dst !== null && (flags & RENAME_NOREPLACE) !== 0) throw EEXIST;
      if (exchange && dst === null) throw ENOENT;
      // The checks the kernel makes with lock_rename's "trap", in its order.
      if (src.isDir && isAncestor(state, src, np)) throw EINVAL;
      if (dst !== null && dst.isDir && isAncestor(state, dst, op)) throw exchange ? EINVAL : ENOTEMPTY;
      if (src === dst) return; // two names of one node: nothing to do
      if (np.nlink === 0) throw ENOENT;
      checkCookie(np);
      if (exchange) checkCookie(op);

      if (exchange) {
        // Both names are re-added (they list as the newest entries, the new name first).
        const other = dst as Node;
        tick(state);
        removeEntry(op, name);
        removeEntry(np, newName);
        addEntry(op, name, other);
        addEntry(np, newName, src);
        setMtime(op);
        setMtime(np);
        setCtime(src);
        setCtime(other);
        return;
      }

      if (dst !== null) {
        if (src.isDir) {
          if (!dst.isDir) throw ENOTDIR;
          if (dirSize(dst) !== 0) throw ENOTEMPTY;
        } else if (dst.isDir) throw EISDIR;
      }
      const whiteout = (flags & RENAME_WHITEOUT) !== 0;
      if (whiteout && state.ispaceFree < INODE_SPACE) throw ENOSPC;

      tick(state);
      removeEntry(op, name);
      if (dst !== null) {
        removeEntry(np, newName);
        dropLink(state, dst);
      }
      // A whiteout is a 0/0 character device left at the old name (overlayfs).
      if (whiteout) make(state, req, op, name, S_IFCHR);
      addEntry(np, newName, src);
      setMtime(op);
      setMtime(np);
      setCtime(src);
    },

    link(req: Request, ino: number, newParent: number, newName: string): Node {
      const n = getNode(state, ino);
      const p = getDir(state, newParent, true);
      checkNewName(p, newName);
      if (n.isDir) throw EPERM;
      // an unlinked file stays so; an O_TMPFILE file gets its first name (charged as the node already)
      const first = n.nlink === 0;
      if (first && !takeLinkable(n)) throw ENOENT;
      if (!first) {
        if (state.ispaceFree < INODE_SPACE) throw ENOSPC;
        state.ispaceFree -= INODE_SPACE; // tmpfs charges every extra link like a node
      }
      tick(state);
      n.nlink++;
      addEntry(p, newName, n);
      setMtime(p);
      setCtime(n);
      n.nlookup++;
      return n;
    },

    open(req: Request, ino: number, flags: number, killSuidgid = false): OpenReply | undefined {
      const n = getNode(state, ino);
      if (n.isDir && (flags & O_ACCMODE) !== O_RDONLY) throw EISDIR;
      if ((flags & O_TRUNC) !== 0 && isReg(n)) {
        tick(state);
        if (killSuidgid) killPrivileges(req, n, false);
        setSize(state, n, 0);
        setMtime(n);
      }
      n.opens++;
      if ((flags & O_ACCMODE) !== O_RDONLY) n.writers = (n.writers | 0) + 1;
      // the file handle only remembers O_NOATIME: reads through it leave atime alone
      return (flags & O_NOATIME) !== 0 ? NOATIME_OPEN : undefined;
    },

    read(req: Request, ino: number, fh: number, offset: number, size: number, dest: Uint8Array): number {
      const n = nodeById(state, ino);
      if (n === undefined) throw ENOENT;
      if (n.isDir) throw EISDIR;
      const count = readData(n, offset, size, dest);
      if (fh !== NOATIME_FH) accessed(n, fileAtime);
      return count;
    },

    write(req: Request, ino: number, fh: number, offset: number, data: Uint8Array, flags: number, killSuidgid = false): number {
      const n = nodeById(state, ino);
      if (n === undefined) throw ENOENT;
      if (n.isDir) throw EISDIR;
      if (!isReg(n)) throw EINVAL;
      const len = data.length;
      if (offset < 0) throw EINVAL;
      if (offset + len > MAX_FILE_SIZE) throw EFBIG;
      if (len === 0) return 0;
      // as tmpfs: privileges go and the times change before the data goes in (even when none fits)
      if (killSuidgid && (n.mode & (S_ISUID | S_ISGID)) !== 0) killPrivileges(req, n, false);
      tick(state);
      setMtime(n);
      const written = writeData(state, n, offset, data, 0, len);
      if (written === 0) throw ENOSPC;
      return written;
    },

    // No flush: memfs has nothing to write back and no POSIX locks of its own, and without the
    // op the runtime answers ENOSYS once, after which the kernel stops sending FLUSH on every
    // close (one request fewer per create+close).

    release(req: Request, ino: number, fh: number, flags: number): void {
      const n = nodeById(state, ino);
      if (n === undefined) return;
      if (n.opens > 0) n.opens--;
      if ((flags & O_ACCMODE) !== O_RDONLY && n.writers > 0) n.writers--;
      maybeFree(state, n);
    },

    fsync(): void {},

    opendir(req: Request, ino: number): undefined {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      n.opens++;
      return undefined;
    },

    readdir(req: Request, ino: number, fh: number, offset: number, out: DirList): void {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      if (n.nlink === 0) return; // removed while open: no entries
      accessed(n, dirAtime);
      // Each entry's offset is where the listing goes on: the next entry's cookie (DIR_EOD after
      // the last), as tmpfs reports them; listStart maps it back.
      let i = prevLive(n, listStart(n, offset));
      if (offset < 1 && !out.add(".", n.ino, n.mode, 1)) return;
      if (offset < 2) {
        const up = nodeById(state, n.parent) ?? n;
        if (!out.add("..", up.ino, up.mode, offsetOf(n, i))) return;
      }
      while (i >= 0) {
        const c = entryNode(n, i);
        const next = prevLive(n, i);
        if (!out.add(entryName(n, i), c, (nodeById(state, c) as Node).mode, offsetOf(n, next))) return;
        i = next;
      }
    },

    readdirplus(req: Request, ino: number, fh: number, offset: number, out: DirListPlus): void {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      if (n.nlink === 0) return;
      accessed(n, dirAtime);
      // "." and ".." do not count as lookups.
      let i = prevLive(n, listStart(n, offset));
      if (offset < 1 && !out.add(".", n, 1)) return;
      if (offset < 2 && !out.add("..", nodeById(state, n.parent) ?? n, offsetOf(n, i))) return;
      while (i >= 0) {
        const c = nodeById(state, entryNode(n, i)) as Node;
        const next = prevLive(n, i);
        if (!out.add(entryName(n, i), c, offsetOf(n, next))) return;
        c.nlookup++;
        i = next;
      }
    },

    releasedir(req: Request, ino: number): void {
      const n = nodeById(state, ino);
      if (n === undefined) return;
      if (n.opens > 0) n.opens--;
      maybeFree(state, n);
    },

    fsyncdir(): void {},

    statfs(): StatFs {
      const sizeLimited = state.maxBytes !== Infinity;
      const nodesLimited = state.maxInodes !== Infinity;
      const blocks = sizeLimited ? Math.floor(state.maxBytes / PAGE) : 0;
      const bfree = sizeLimited ? Math.floor((state.maxBytes - state.usedBytes) / PAGE) : 0;
      return {
        blocks,
        bfree,
        bavail: bfree,
        files: nodesLimited ? state.maxInodes : 0,
        ffree: nodesLimited ? Math.floor(state.ispaceFree / INODE_SPACE) : 0,
        bsize: PAGE,
        frsize: PAGE,
        namelen: 255,
      };
    },

    setxattr(req: Request, ino: number, name: string, value: Uint8Array, flags: number): void {
      const n = getNode(state, ino);
      setXattr(state, n, name, value, flags);
      tick(state);
      setCtime(n);
    },

    getxattr(req: Request, ino: number, name: string): Uint8Array {
      return getXattr(state, getNode(state, ino), name);
    },

    listxattr(req: Request, ino: number): string[] {
      return listXattrs(state, getNode(state, ino), req.uid);
    },

    removexattr(req: Request, ino: number, name: string): void {
      const n = getNode(state, ino);
      removeXattr(state, n, name);
      tick(state);
      setCtime(n);
    },

    access(req: Request, ino: number, mask: number): void {
      const n = getNode(state, ino);
      mask &= 7;
      if (mask === 0) return;
      const m = n.mode;
      if (req.uid === 0) {
        // root may read and write anything, and execute what has an x bit (or is a directory).
        if ((mask & X_OK) !== 0 && !n.isDir && (m & 0o111) === 0) throw EACCES;
        return;
      }
      const bits = req.uid === n.uid ? (m >> 6) & 7 : req.gid === n.gid ? (m >> 3) & 7 : m & 7;
      if ((bits & mask) !== mask) throw EACCES;
    },

    create(req: Request, parent: number, name: string, mode: number, flags: number, umask: number, killSuidgid = false): CreateReply {
      const p = getDir(state, parent, true);
      const e = dirChild(p, name);
      let n: Node;
      if (e !== undefined) {
        // The kernel looks the name up first, so this is a race with another creator.
        if ((flags & O_EXCL) !== 0) throw EEXIST;
        n = e;
        if (n.isDir) throw EISDIR;
        if ((flags & O_TRUNC) !== 0 && isReg(n)) {
          tick(state);
          if (killSuidgid) killPrivileges(req, n, false);
          setSize(state, n, 0);
          setMtime(n);
        }
      } else {
        checkNewName(p, name);
        n = make(state, req, p, name, S_IFREG | (mode & 0o7777 & ~umask));
      }
      n.nlookup++;
      n.opens++;
      if ((flags & O_ACCMODE) !== O_RDONLY) n.writers = (n.writers | 0) + 1;
      // as open: the handle remembers O_NOATIME
      return (flags & O_NOATIME) !== 0 ? { entry: n, fh: NOATIME_FH } : { entry: n };
    },

    // A node with no name (nlink 0, as tmpfs's d_tmpfile leaves it): freed like an unlinked file
    // once closed and forgotten, unless `link` names it first. The parent directory is unchanged.
    tmpfile(req: Request, parent: number, mode: number, flags: number, umask: number): CreateReply {
      const p = getDir(state, parent, true);
      tick(state);
      const n = newNode(state, S_IFREG | (mode & 0o7777 & ~umask), req.uid, (p.mode & S_ISGID) !== 0 ? p.gid : req.gid);
      n.nlink = 0;
      if ((flags & O_EXCL) === 0) markLinkable(n);
      n.nlookup++;
      n.opens++;
      if ((flags & O_ACCMODE) !== O_RDONLY) n.writers = (n.writers | 0) + 1;
      return (flags & O_NOATIME) !== 0 ? { entry: n, fh: NOATIME_FH } : { entry: n };
    },

    fallocate(req: Request, ino: number, fh: number, offset: number, length: number, mode: number): void {
      const n = getNode(state, ino);
      if (n.isDir) throw EISDIR;
      if (!isReg(n)) throw ENODEV;
      if (offset < 0 || length <= 0) throw EINVAL;
      const end = offset + length;
      if (end > MAX_FILE_SIZE) throw EFBIG;
      // tmpfs supports allocation (with or without KEEP_SIZE) and PUNCH_HOLE|KEEP_SIZE only.
      if ((mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) !== 0) throw EOPNOTSUPP;
      if ((mode & FALLOC_FL_PUNCH_HOLE) !== 0) {
        if ((mode & FALLOC_FL_KEEP_SIZE) === 0) throw EOPNOTSUPP;
        punch(state, n, offset, end);
      } else {
        allocate(state, n, offset, end);
        if ((mode & FALLOC_FL_KEEP_SIZE) === 0 && end > n.size) n.size = end;
      }
      tick(state);
      setMtime(n);
    },

    lseek(req: Request, ino: number, fh: number, offset: number, whence: number): number {
      const n = getNode(state, ino);
      if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw EINVAL;
      if (offset < 0 || offset >= n.size) throw ENXIO;
      if (whence === SEEK_HOLE) return seekHole(n, offset);
      const at = seekData(n, offset);
      if (at < 0) throw ENXIO;
      return at;
    },

    copyFileRange(
      req: Request,
      inoIn: number,
      fhIn: number,
      offIn: number,
      inoOut: number,
      fhOut: number,
      offOut: number,
      length: number,
      flags: number,
    ): number {
      if (flags !== 0) throw EINVAL;
      const src = getNode(state, inoIn);
      const dst = getNode(state, inoOut);
      if (src.isDir || dst.isDir) throw EISDIR;
      if (!isReg(src) || !isReg(dst)) throw EINVAL;
      if (offIn < 0 || offOut < 0) throw EINVAL;
      let len = length;
      if (offIn >= src.size) len = 0;
      else if (len > src.size - offIn) len = src.size - offIn;
      if (len === 0) return 0;
      if (src === dst && offOut + len > offIn && offOut < offIn + len) throw EINVAL;
      if (offOut + len > MAX_FILE_SIZE) throw EFBIG;
      const copied = copyRange(state, src, offIn, dst, offOut, len);
      if (copied === 0) throw ENOSPC;
      tick(state);
      setMtime(dst);
      return copied;
    },

    syncfs(): void {},
  }));
}
