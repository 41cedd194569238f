/**
 * Opening and closing files: open, create, tmpfile, release.
 *
 * No file handles (fh 0): the per-node `opens` count is all the state an open needs; it keeps
 * unlinked files alive until their last release. O_APPEND is left to the kernel, which sends
 * appends at its i_size (exact, since memfs changes only through this mount). Repositioning
 * writes here would be wrong with -o writeback_cache: the kernel flushes dirty pages through
 * any writable handle of the file, an O_APPEND one included. The one exception is O_NOATIME,
 * remembered as fh NOATIME_FH (common.ts).
 */
import { defineFilesystem, type CreateReply, type OpenReply, type Request, O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, S_IFREG, S_ISGID } from "furing";
import { EEXIST, EISDIR } from "../errors.ts";
import { type Node, checkNewName, dirChild, getDir, getNode, markLinkable, maybeFree, newNode, setMtime, tick } from "../nodes.ts";
import { setSize } from "../data.ts";
import { killPrivileges } from "../privileges.ts";
import { nodeById, type MemfsState } from "../state.ts";
import { NOATIME_FH, NOATIME_OPEN, O_NOATIME, isReg, make } from "./common.ts";

export function handleOps(state: MemfsState) {
  return defineFilesystem({
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

    // No flush: memfs has nothing to write back and no POSIX locks of its own, and without the
    // op the runtime answers ENOSYS once, after which the kernel stops sending FLUSH on every
    // close (one request fewer per create+close).
    release(_req: Request, ino: number, _fh: number, flags: number): void {
      const n = nodeById(state, ino);
      if (n === undefined) return;
      if (n.opens > 0) n.opens--;
      if ((flags & O_ACCMODE) !== O_RDONLY && n.writers > 0) n.writers--;
      maybeFree(state, n);
    },
  });
}
