/**
 * The namespace: looking names up and forgetting them, making, linking, renaming and removing
 * names, and symlink targets.
 */
import {
  defineFilesystem,
  type AtimeMode,
  type Request,
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
} from "furing";
import { EBUSY, EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EPERM } from "../errors.ts";
import {
  type Node,
  INODE_SPACE,
  accessed,
  addEntry,
  checkCookie,
  checkName,
  checkNewName,
  dirChild,
  dirSize,
  dropLink,
  forgetNode,
  getDir,
  getNode,
  isAncestor,
  removeEntry,
  setCtime,
  setMtime,
  setTarget,
  takeLinkable,
  targetOf,
  tick,
  utf8Length,
} from "../nodes.ts";
import { PAGE, chargePage, freeBytes } from "../data.ts";
import { nodeById, type MemfsState } from "../state.ts";
import { make } from "./common.ts";

/** Symlink targets up to this length (with the NUL) live in the inode, longer ones take a page. */
const SHORT_SYMLINK_LEN = 128;

/** `fileAtime`: the mount's atime mode for readlink (atimeModeFor). */
export function nameOps(state: MemfsState, fileAtime: AtimeMode) {
  return defineFilesystem({
    lookup(_req: Request, parent: number, name: string): Node {
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

    unlink(_req: Request, parent: number, name: string): void {
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

    rmdir(_req: Request, parent: number, name: string): void {
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

    readlink(_req: Request, ino: number): string {
      const n = getNode(state, ino);
      if (n.targetPtr === 0) throw EINVAL;
      accessed(n, fileAtime);
      return targetOf(n);
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

    link(_req: Request, ino: number, newParent: number, newName: string): Node {
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
  });
}
