/** Node attributes (getattr, setattr, access) and the filesystem's own (statfs, syncfs). */
import { defineFilesystem, type Request, type SetAttr, type StatFs, S_IFMT, X_OK } from "furing";
import { EACCES, EFBIG, EINVAL, EISDIR, ENOENT } from "../errors.ts";
import { type Node, INODE_SPACE, getNode, setAtime, setCtime, setMtime, tick } from "../nodes.ts";
import { MAX_FILE_SIZE, PAGE, setSize } from "../data.ts";
import { killPrivileges } from "../privileges.ts";
import { nodeById, type MemfsState } from "../state.ts";
import { isReg } from "./common.ts";

/** A setattr that changes nothing itself (the kernel's file_remove_privs(), chown(f, -1, -1)). */
function emptySetattr(ch: SetAttr): boolean {
  return ch.size === undefined && ch.uid === undefined && ch.gid === undefined && ch.mode === undefined &&
    ch.atime === undefined && ch.mtime === undefined && ch.ctime === undefined;
}

export function attributeOps(state: MemfsState) {
  return defineFilesystem({
    getattr(_req: Request, ino: number): Node {
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

    syncfs(): void {},
  });
}
