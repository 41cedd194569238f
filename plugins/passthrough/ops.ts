/**
 * The FUSE operations of passthrough, each mapped onto the source with the `*at` system calls of
 * `furing/sys` relative to node descriptors (nodes.ts), and onto open descriptors (handles.ts).
 *
 * - Names are single components resolved without following symlinks (AT_SYMLINK_NOFOLLOW,
 *   O_NOFOLLOW); the server never follows a symlink nor walks "..", so it stays inside the source
 *   (a LOOKUP of ".." for the kernel's export operations walks up only to check, nodes.ts).
 * - Creating ops (create, mknod, mkdir, symlink) run with umask 0 (the kernel has already applied
 *   the caller's) and, when a root daemon serves another user, hand the new node to the caller
 *   (fchownat to req.uid, and req.gid unless the parent directory is set-group-ID), restoring
 *   set-user/group-ID bits chown cleared.
 * - Data goes through the runtime's io_uring (ctx.io): reads land in the reply buffer and writes
 *   leave from the request buffer with no copy. When the mount has kernel passthrough, open and
 *   create return the descriptor as the backing file and the kernel does the I/O itself.
 * - setuid/setgid bits are cleared here (`killPrivileges`, FUSE_HANDLE_KILLPRIV_V2), when the
 *   kernel says so (`killSuidgid`): a root daemon's own writes and truncations would keep them
 *   (it has CAP_FSETID). Declaring it is also what lets kernel passthrough writes bypass the
 *   daemon: without it the kernel asks for security.capability (a GETXATTR) before every write.
 */
import { FuseError, Errno, lockOps, S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_ISUID, S_ISGID, callerInGroup, modeAfterKill, type Filesystem, type PluginContext, type StatFs } from "furing";
import * as sys from "furing/sys";
import { NodeTable, glibcDev, type PNode } from "./nodes.ts";
import { Handles } from "./handles.ts";
import type { PassthroughState } from "./state.ts";

/** Flags never passed on to the source open (creation is done separately; O_DIRECT would need aligned buffers). */
const OPEN_STRIP = sys.O_CREAT | sys.O_EXCL | sys.O_NOCTTY | sys.O_NOFOLLOW | sys.O_DIRECT;
const O_PATH_FLAGS = sys.O_PATH | sys.O_NOFOLLOW | sys.O_CLOEXEC;
const EMPTY_NOFOLLOW = sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW;
/** Largest copy_file_range done in one request: it runs synchronously on the reactor thread. */
const COPY_CHUNK = 64 << 20;
/** How often an idle thread closes its descriptors of nodes dropped by another (ms). */
const SWEEP_MS = 200;

const errnoOf = (e: unknown) => (e as { errno?: number }).errno ?? 0;

/**
 * copy_file_range(2) of regular files until `length` bytes are copied or the source ends (0).
 * A short count is not the end of the source: the splice behind a copy between files stops at a
 * pipe's worth (64 KiB) when a signal is pending, and the daemon's threads get the runtime's
 * (GC) signals, so under load one call returned 65,536 of 101,648 bytes where the caller's own
 * call copies everything. An error after some bytes were copied answers the count, as the
 * syscall does. `copy` is sys.copy_file_range (a parameter for the tests).
 */
export function copyFileRangeFully(copy: typeof sys.copy_file_range, fdIn: number, offIn: number, fdOut: number, offOut: number, length: number, flags: number): number {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = copy(fdIn, offIn + done, fdOut, offOut + done, length - done, flags);
    } catch (e) {
      if (done > 0) return done;
      throw e;
    }
    if (n <= 0) break;
    done += n;
  }
  return done;
}

/** Names the kernel sends are single components; refuse anything else outright. */
function checkName(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/")) throw new FuseError("EINVAL", `bad name ${JSON.stringify(name)}`);
}

export interface PassthroughFs extends Filesystem {
  /** The node table and handle table (tests, diagnostics). */
  readonly nodes: NodeTable;
  readonly handles: Handles;
}

export function createOps(s: PassthroughState, ctx: Pick<PluginContext, "io" | "passthrough"> & Partial<Pick<PluginContext, "reactor" | "onDestroy">>): PassthroughFs {
  // the descriptor budget is split between the instances (the main thread and each reactor)
  s.lock.lock();
  let nodes: NodeTable;
  try {
    nodes = new NodeTable(s, 1 + (ctx.reactor?.count ?? 0));
  } finally {
    s.lock.unlock();
  }
  const handles = new Handles(s);
  nodes.openFileOf = (ino) => handles.fileFdOf(ino);
  // descriptors of nodes forgotten through another thread are closed even while this one idles
  const sweep = setInterval(() => nodes.sweepDropped(), SWEEP_MS);
  sweep.unref();
  ctx.onDestroy?.(() => clearInterval(sweep));
  const st = nodes.st;
  const io = ctx.io;

  /** Run a creating syscall with umask 0: the kernel applied the caller's umask already. */
  function unmasked<T>(fn: () => T): T {
    const old = sys.umask(0);
    try {
      return fn();
    } finally {
      sys.umask(old);
    }
  }

  /** Root, the owner, or write permission by the mode bits (owner, then group, then other). */
  function mayWrite(req: { uid: number; gid: number; pid: number }, now: sys.Stat): boolean {
    if (req.uid === 0 || req.uid === now.uid) return true;
    if (callerInGroup(req, now.gid)) return (now.mode & 0o020) !== 0;
    return (now.mode & 0o002) !== 0;
  }

  /**
   * Clear setuid/setgid of the file behind `fd` by the Linux rule (setattr_should_drop_suidgid,
   * ≥ 6.2): S_ISUID goes; S_ISGID goes when the file is group-executable, or when the caller is
   * neither in the file's group (fsgid or supplementary groups) nor `capable` (CAP_FSETID).
   * Regular files only. `open`: `fd` is an open descriptor (else O_PATH). A daemon that is not
   * root may not be allowed to chmod; then its own write or truncate (made without CAP_FSETID)
   * has cleared the bits in the source already, by the same rule.
   */
  function killPrivileges(req: { uid: number; gid: number; pid: number }, fd: number, open: boolean, capable: boolean): void {
    const now = sys.fstat(fd, st);
    const m = now.mode;
    if ((m & S_IFMT) !== S_IFREG) return;
    const want = modeAfterKill(req, m, now.gid, capable) & 0o7777;
    if (want === (m & 0o7777)) return;
    try {
      if (open) sys.fchmod(fd, want);
      else sys.fchmodat(sys.AT_FDCWD, sys.procPath(fd), want, 0);
    } catch (e) {
      if (s.daemonUid === 0 || errnoOf(e) !== Errno.EPERM) throw e;
    }
  }

  /**
   * A root daemon serving another user makes the new node the caller's (go-fuse loopback does
   * the same). `fd` is a descriptor of the new node (O_PATH or real), `mode` what was asked.
   */
  function giveToCaller(req: { uid: number; gid: number }, parent: PNode, fd: number, mode: number): void {
    if (s.daemonUid !== 0) return;
    const uid = req.uid === s.daemonUid ? -1 : req.uid;
    // in a set-group-ID directory the new node already has the directory's group, as it should
    const gid = (parent.mode & S_ISGID) !== 0 || req.gid === s.daemonGid ? -1 : req.gid;
    if (uid === -1 && gid === -1) return;
    sys.fchownat(fd, "", uid, gid, EMPTY_NOFOLLOW);
    // chown clears set-user/group-ID bits of non-directories; put back what the caller may have
    const type = mode & S_IFMT;
    if ((mode & (S_ISUID | S_ISGID)) !== 0 && type !== S_IFDIR && type !== S_IFLNK) {
      const now = sys.fstat(fd, st);
      let want = (now.mode & 0o7777) | (mode & S_ISUID);
      if (now.gid === req.gid) want |= mode & S_ISGID;
      if (want !== (now.mode & 0o7777)) sys.fchmodat(sys.AT_FDCWD, sys.procPath(fd), want, 0);
    }
  }

  /** After mknod/mkdir/symlink created `name`: open it O_PATH, hand it over, return its entry. */
  function created(req: { uid: number; gid: number }, parent: PNode, pfd: number, name: string, mode: number): PNode {
    const fd = sys.openat(pfd, name, O_PATH_FLAGS);
    try {
      giveToCaller(req, parent, fd, mode);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return nodes.adopt(parent, name, fd, true);
  }

  /**
   * Flags for the descriptor of an open file. With kernel passthrough the descriptor becomes the
   * inode's backing file, which the kernel shares between all opens of the inode (it refuses a
   * second, different one): so it is opened read-write whatever this open asked for (the kernel
   * checks each open's own access mode), without O_APPEND/O_SYNC (those come from each open's
   * own I/O flags). Without passthrough, the caller's flags.
   */
  function fileFlags(flags: number): number {
    if (!ctx.passthrough()) return (flags & ~OPEN_STRIP) | sys.O_CLOEXEC;
    return sys.O_RDWR | sys.O_CLOEXEC | (flags & (sys.O_TRUNC | sys.O_LARGEFILE | sys.O_NOATIME));
  }

  /**
   * Open the file `name` relative to `dirfd` for an open (or create) with `flags`; `extra`: more
   * flags (O_NOFOLLOW). With kernel passthrough, when read-write is refused: an append-only file
   * (chattr +a, EPERM) is opened read-write with O_APPEND (every writer of it must append anyway,
   * and an open without O_APPEND for writing still fails below, as natively); anything else
   * (read-only filesystem, running executable, ...) gets the caller's own access mode, which is
   * what it gets natively.
   */
  function openFile(dirfd: number, name: string, flags: number, extra: number): number {
    try {
      return sys.openat(dirfd, name, fileFlags(flags) | extra);
    } catch (e) {
      if (!ctx.passthrough()) throw e;
      if (errnoOf(e) === Errno.EPERM && ((flags & sys.O_ACCMODE) === sys.O_RDONLY || (flags & sys.O_APPEND) !== 0)) {
        try {
          return sys.openat(dirfd, name, fileFlags(flags) | extra | sys.O_APPEND);
        } catch {}
      }
      return sys.openat(dirfd, name, (flags & ~(OPEN_STRIP | sys.O_APPEND)) | sys.O_CLOEXEC | extra);
    }
  }

  /**
   * The open file's handle, and its backing file when the kernel is to do the I/O. Not for a file
   * with setuid/setgid bits: kernel passthrough writes never reach the daemon, and the kernel
   * clears the bits before such a write only by its cached mode, which misses a chmod made on
   * the source within the attribute timeout (and a write by a root daemon keeps them). The
   * daemon's writes get `killSuidgid` and look at the source itself. The kernel wants every open
   * of an inode to agree (passthrough or not, else EINVAL / ETXTBSY), so while one is open the
   * others follow it. Left open: bits set on the source while a passthrough open is held are not
   * cleared by writes through it until the kernel refreshes its attributes (it never asks us).
   */
  function openReply(fd: number, ino: number, flags: number): { fh: number; backingFd?: number } {
    if (!ctx.passthrough()) return { fh: handles.addFile(fd, ino, flags) };
    const daemonIo = handles.daemonIo(ino) > 0 || ((sys.fstat(fd, st).mode & (S_ISUID | S_ISGID)) !== 0 && !handles.passesThrough(ino));
    const fh = handles.addFile(fd, ino, flags, daemonIo);
    return daemonIo ? { fh } : { fh, backingFd: fd };
  }

  const fs: PassthroughFs = lockOps(s.lock, {
    nodes,
    handles,
    killPrivileges: true,
    // file handles outlive the kernel's cache: forgotten nodes stay findable by id (nodes.ts)
    exportSupport: s.retiredMax > 0,

    lookup(_req, parent, name) {
      // "." by node id only comes from the kernel's export operations, for ids it may have forgotten
      if (name === ".") return nodes.byId(parent);
      return nodes.lookup(nodes.get(parent), name);
    },

    forget(ino, nlookup) {
      nodes.forget(ino, nlookup);
    },

    getattr(_req, ino, fh) {
      const node = nodes.get(ino);
      const f = handles.maybeFile(fh);
      if (f !== undefined) return nodes.fill(node, sys.fstat(f.fd, st));
      return nodes.refresh(node);
    },

    setattr(req, ino, ch) {
      const node = nodes.get(ino);
      const f = handles.maybeFile(ch.fh);
      const fd = f !== undefined ? f.fd : nodes.fd(node);
      // before a chown or truncate, on the attributes the file had; root chowning stands for
      // privileged (a truncate, and the empty SETATTR of the kernel's file_remove_privs, come
      // only from callers without CAP_FSETID)
      const bare = ch.mode === undefined && ch.uid === undefined && ch.gid === undefined && ch.size === undefined && ch.atime === undefined && ch.mtime === undefined;
      // A bare kill is anyone's chown(f, -1, -1) or the kernel's file_remove_privs before a
      // write-like change (FUSE cannot tell them apart): only root, the owner, someone who may
      // write the file, or while the file is open for writing (a write through a descriptor
      // someone else opened) gets it; natively a stranger's chown(f, -1, -1) of a setuid file
      // fails with EPERM and changes nothing.
      if (ch.killSuidgid === true && (!bare || mayWrite(req, sys.fstat(fd, st)) || handles.openForWriting(ino))) {
        killPrivileges(req, fd, f !== undefined, ch.size === undefined && req.uid === 0);
      }
      const mode = ch.mode;
      if (mode !== undefined) {
        if (f !== undefined) sys.fchmod(fd, mode & 0o7777);
        else sys.fchmodat(sys.AT_FDCWD, sys.procPath(fd), mode & 0o7777, 0);
      }
      if (ch.uid !== undefined || ch.gid !== undefined) sys.fchownat(fd, "", ch.uid ?? -1, ch.gid ?? -1, EMPTY_NOFOLLOW);
      if (ch.size !== undefined) {
        if (f !== undefined && (f.flags & sys.O_ACCMODE) !== sys.O_RDONLY) sys.ftruncate(fd, ch.size);
        else sys.truncate(sys.procPath(fd), ch.size);
      }
      if (ch.atime !== undefined || ch.mtime !== undefined) sys.utimensat(fd, "", ch.atime, ch.mtime, EMPTY_NOFOLLOW);
      else if ((ch.ctime !== undefined || ch.killSuidgid === true) && bare) {
        // a change of nothing but ctime (chown(-1, -1) arrives so, or as a bare kill of the
        // setuid/setgid bits): the same no-op chown on the source stamps its ctime, as natively.
        // Not on a non-directory that still has setuid/setgid bits: our (root) chown would strip
        // them, whoever the caller is; killPrivileges above decided what goes. A directory keeps
        // its bits through chown (its setgid bit is inheritance, not privilege), so it is stamped.
        const m = sys.fstat(fd, st).mode;
        if ((m & S_IFMT) === S_IFDIR || (m & (S_ISUID | S_ISGID)) === 0) sys.fchownat(fd, "", -1, -1, EMPTY_NOFOLLOW);
      }
      return nodes.fill(node, sys.fstat(fd, st));
    },

    readlink(_req, ino) {
      return sys.readlinkat(nodes.fd(nodes.get(ino)), "");
    },

    mknod(req, parent, name, mode, rdev) {
      checkName(name);
      const p = nodes.get(parent);
      const pfd = nodes.fd(p);
      unmasked(() => sys.mknodat(pfd, name, mode, glibcDev(rdev)));
      return created(req, p, pfd, name, mode);
    },

    mkdir(req, parent, name, mode) {
      checkName(name);
      const p = nodes.get(parent);
      const pfd = nodes.fd(p);
      unmasked(() => sys.mkdirat(pfd, name, mode & 0o7777));
      return created(req, p, pfd, name, S_IFDIR | (mode & 0o7777));
    },

    symlink(req, parent, name, target) {
      checkName(name);
      const p = nodes.get(parent);
      const pfd = nodes.fd(p);
      sys.symlinkat(target, pfd, name);
      return created(req, p, pfd, name, S_IFLNK | 0o777);
    },

    unlink(_req, parent, name) {
      checkName(name);
      sys.unlinkat(nodes.fd(nodes.get(parent)), name, 0);
    },

    rmdir(_req, parent, name) {
      checkName(name);
      sys.unlinkat(nodes.fd(nodes.get(parent)), name, sys.AT_REMOVEDIR);
    },

    rename(_req, parent, name, newParent, newName, flags) {
      checkName(name);
      checkName(newName);
      const pfd = nodes.fd(nodes.get(parent));
      const npfd = nodes.fd(nodes.get(newParent));
      sys.renameat2(pfd, name, npfd, newName, flags);
      // keep (parent, name) of the nodes involved current, for re-opening by name
      nodes.moved(npfd, newParent, newName);
      if ((flags & sys.RENAME_EXCHANGE) !== 0) nodes.moved(pfd, parent, name);
    },

    link(_req, ino, newParent, newName) {
      checkName(newName);
      const node = nodes.get(ino);
      const np = nodes.get(newParent);
      const fd = nodes.fd(node);
      const npfd = nodes.fd(np);
      if (s.daemonUid === 0) sys.linkat(fd, "", npfd, newName, sys.AT_EMPTY_PATH);
      else sys.linkat(sys.AT_FDCWD, sys.procPath(fd), npfd, newName, sys.AT_SYMLINK_FOLLOW);
      return nodes.lookup(np, newName, npfd);
    },

    open(req, ino, flags, killSuidgid) {
      const fd = openFile(sys.AT_FDCWD, sys.procPath(nodes.fd(nodes.get(ino))), flags, 0);
      // O_TRUNC by a caller without CAP_FSETID
      if (killSuidgid === true) {
        try {
          killPrivileges(req, fd, true, false);
        } catch (e) {
          sys.close(fd);
          throw e;
        }
      }
      return openReply(fd, ino, flags);
    },

    read(_req, _ino, fh, offset, _size, dest) {
      return io.read(handles.file(fh).fd, dest, offset);
    },

    write(req, _ino, fh, offset, data, _flags, killSuidgid) {
      const fd = handles.file(fh).fd;
      // the writer has no CAP_FSETID (every write of such a caller: one fstat, a chmod when the
      // file has the bits); as natively, before the data goes in
      if (killSuidgid === true) killPrivileges(req, fd, true, false);
      return io.write(fd, data, offset);
    },

    flush(_req, _ino, fh) {
      // like close(2) of a duplicate: lets the source filesystem flush (NFS and the like)
      sys.close(sys.dup(handles.file(fh).fd));
    },

    release(_req, _ino, fh) {
      handles.release(fh);
    },

    fsync(_req, _ino, fh, datasync) {
      return io.fsync(handles.file(fh).fd, datasync);
    },

    opendir(_req, ino) {
      const node = nodes.get(ino);
      const fd = sys.openat(nodes.fd(node), ".", sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
      return { fh: handles.addDir(fd, ino) };
    },

    readdir(_req, ino, fh, offset, out) {
      const d = handles.dir(fh);
      const node = nodes.get(ino);
      handles.seek(d, offset);
      for (let e = handles.peek(d); e !== null; e = handles.peek(d)) {
        if (nodes.isHidden(node, e.name)) {
          handles.advance(d);
          continue;
        }
        const id = e.name === "." ? node.ino : e.name === ".." ? (node.ino === 1 ? 1 : node.parent || 1) : nodes.dIno(node.dev, e.ino);
        if (!out.add(e.name, id, e.type << 12, d.next + 1)) break;
        handles.advance(d);
      }
    },

    readdirplus(_req, ino, fh, offset, out) {
      const d = handles.dir(fh);
      const node = nodes.get(ino);
      handles.seek(d, offset);
      for (let e = handles.peek(d); e !== null; e = handles.peek(d)) {
        if (e.name === "." || e.name === "..") {
          // the kernel takes no reference for these, but needs their ids (d_ino 0 hides an entry)
          const dot = e.name === "." || node.ino === 1 ? node : (nodes.find(node.parent) ?? nodes.root);
          if (!out.add(e.name, dot, d.next + 1)) break;
          handles.advance(d);
          continue;
        }
        if (nodes.isHidden(node, e.name)) {
          handles.advance(d);
          continue;
        }
        let child: PNode;
        try {
          child = nodes.lookup(node, e.name, d.fd);
        } catch (err) {
          if (errnoOf(err) !== Errno.ENOENT) throw err;
          handles.advance(d); // gone since getdents
          continue;
        }
        if (!out.add(e.name, child, d.next + 1)) {
          nodes.forget(child.ino, 1); // not sent: the kernel took no reference
          break;
        }
        handles.advance(d);
      }
    },

    releasedir(_req, _ino, fh) {
      handles.release(fh);
    },

    fsyncdir(_req, _ino, fh, datasync) {
      return io.fsync(handles.dir(fh).fd, datasync);
    },

    statfs(_req, ino): StatFs {
      const v = sys.fstatvfs(nodes.fd(nodes.get(ino)));
      return { blocks: v.blocks, bfree: v.bfree, bavail: v.bavail, files: v.files, ffree: v.ffree, bsize: v.bsize, frsize: v.frsize, namelen: v.namemax };
    },

    setxattr(_req, ino, name, value, flags) {
      sys.setxattr(sys.procPath(nodes.fd(nodes.get(ino))), name, value, flags);
    },

    getxattr(_req, ino, name) {
      return sys.getxattr(sys.procPath(nodes.fd(nodes.get(ino))), name);
    },

    listxattr(req, ino) {
      const names = sys.listxattr(sys.procPath(nodes.fd(nodes.get(ino))));
      // the kernel checks trusted.* get/set itself but passes the list on as the daemon (root) got
      // it: show those names to root callers only, as memfs does (tmpfs: CAP_SYS_ADMIN only)
      if (req.uid === 0) return names;
      for (const n of names) if (n.startsWith("trusted.")) return names.filter((x) => !x.startsWith("trusted."));
      return names;
    },

    removexattr(_req, ino, name) {
      sys.removexattr(sys.procPath(nodes.fd(nodes.get(ino))), name);
    },

    access(req, ino, mask) {
      // only sent with -o no_default_permissions: check the caller's rights from the mode bits
      const n = nodes.refresh(nodes.get(ino));
      if (mask === 0) return;
      const isDir = (n.mode & S_IFMT) === S_IFDIR;
      let bits: number;
      if (req.uid === 0) bits = 6 | (isDir || (n.mode & 0o111) !== 0 ? 1 : 0);
      else if (req.uid === n.uid) bits = (n.mode >> 6) & 7;
      else if (callerInGroup(req, n.gid)) bits = (n.mode >> 3) & 7;
      else bits = n.mode & 7;
      if ((mask & ~bits & 7) !== 0) throw new FuseError("EACCES");
    },

    create(req, parent, name, mode, flags, _umask, killSuidgid) {
      checkName(name);
      const p = nodes.get(parent);
      nodes.guard(p, name);
      const pfd = nodes.fd(p);
      const base = fileFlags(flags) | sys.O_NOFOLLOW;
      let isNew = true;
      const fd = unmasked(() => {
        try {
          return sys.openat(pfd, name, base | sys.O_CREAT | sys.O_EXCL, mode & 0o7777);
        } catch (e) {
          if (errnoOf(e) !== Errno.EEXIST || (flags & sys.O_EXCL) !== 0) throw e;
          isNew = false; // created meanwhile by someone else: open it, and it stays theirs
          return openFile(pfd, name, flags, sys.O_NOFOLLOW);
        }
      });
      let entry: PNode;
      try {
        if (isNew) giveToCaller(req, p, fd, S_IFREG | (mode & 0o7777));
        else if (killSuidgid === true) killPrivileges(req, fd, true, false); // an existing file opened with O_TRUNC
        entry = nodes.adopt(p, name, fd, false);
      } catch (e) {
        sys.close(fd);
        throw e;
      }
      return { entry, ...openReply(fd, entry.ino, flags) };
    },

    // The source's own O_TMPFILE in the source directory: the file lives (and is counted) on the
    // source's filesystem and has no name there either; O_EXCL keeps it unlinkable there too.
    // link (linkat of its pinned O_PATH descriptor) gives it its first name in the source.
    tmpfile(req, parent, mode, flags) {
      const p = nodes.get(parent);
      const pfd = nodes.fd(p);
      const open = fileFlags(flags & ~sys.O_TMPFILE) | sys.O_TMPFILE | (flags & sys.O_EXCL);
      const fd = unmasked(() => sys.openat(pfd, ".", open, mode & 0o7777));
      let entry: PNode;
      try {
        giveToCaller(req, p, fd, S_IFREG | (mode & 0o7777));
        entry = nodes.adoptUnnamed(fd);
      } catch (e) {
        sys.close(fd);
        throw e;
      }
      return { entry, ...openReply(fd, entry.ino, flags) };
    },

    fallocate(_req, _ino, fh, offset, length, mode) {
      sys.fallocate(handles.file(fh).fd, mode, offset, length);
    },

    lseek(_req, _ino, fh, offset, whence) {
      return sys.lseek(handles.file(fh).fd, offset, whence);
    },

    copyFileRange(_req, _inoIn, fhIn, offIn, _inoOut, fhOut, offOut, length, flags) {
      return copyFileRangeFully(sys.copy_file_range, handles.file(fhIn).fd, offIn, handles.file(fhOut).fd, offOut, Math.min(length, COPY_CHUNK), flags);
    },

    syncfs() {
      sys.syncfs(s.rootFd);
    },
  });
  return fs;
}
