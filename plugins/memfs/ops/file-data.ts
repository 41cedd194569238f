/** File contents: read, write, fallocate, lseek (SEEK_DATA/SEEK_HOLE), copy_file_range, fsync. */
import { defineFilesystem, type AtimeMode, type Request, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, S_ISGID, S_ISUID, SEEK_DATA, SEEK_HOLE } from "furing";
import { EFBIG, EINVAL, EISDIR, ENODEV, ENOENT, ENOSPC, ENXIO, EOPNOTSUPP } from "../errors.ts";
import { accessed, getNode, setMtime, tick } from "../nodes.ts";
import { MAX_FILE_SIZE, allocate, copyRange, punch, readData, seekData, seekHole, writeData } from "../data.ts";
import { killPrivileges } from "../privileges.ts";
import { nodeById, type MemfsState } from "../state.ts";
import { NOATIME_FH, isReg } from "./common.ts";

/** `fileAtime`: the mount's atime mode for reads (atimeModeFor). */
export function fileDataOps(state: MemfsState, fileAtime: AtimeMode) {
  return defineFilesystem({
    read(_req: Request, ino: number, fh: number, offset: number, size: number, dest: Uint8Array): number {
      const n = nodeById(state, ino);
      if (n === undefined) throw ENOENT;
      if (n.isDir) throw EISDIR;
      const count = readData(n, offset, size, dest);
      if (fh !== NOATIME_FH) accessed(n, fileAtime);
      return count;
    },

    write(req: Request, ino: number, _fh: number, offset: number, data: Uint8Array, _flags: number, killSuidgid = false): number {
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

    fsync(): void {},

    fallocate(_req: Request, ino: number, _fh: number, offset: number, length: number, mode: number): void {
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

    lseek(_req: Request, ino: number, _fh: number, offset: number, whence: number): number {
      const n = getNode(state, ino);
      if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw EINVAL;
      if (offset < 0 || offset >= n.size) throw ENXIO;
      if (whence === SEEK_HOLE) return seekHole(n, offset);
      const at = seekData(n, offset);
      if (at < 0) throw ENXIO;
      return at;
    },

    copyFileRange(
      _req: Request,
      inoIn: number,
      _fhIn: number,
      offIn: number,
      inoOut: number,
      _fhOut: number,
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
  });
}
