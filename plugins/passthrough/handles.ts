/**
 * Open files and directories: each open (and opendir) gets its own descriptor of the source file
 * and a unique file handle, kept in the state (so they survive hot reloads) until release.
 *
 * An open file's descriptor is a real one (opened through /proc/self/fd/N of the node's O_PATH
 * descriptor), so it keeps working when the file is renamed or unlinked in the source; it carries
 * data I/O on the runtime's ring (ctx.io), fsync, fallocate, lseek, copy_file_range, and is the
 * backing file handed to the kernel for FUSE passthrough.
 *
 * A directory stream reads the source directory with getdents64. Offsets ("cookies") are entry
 * indexes: the filesystem's own cookies (ext4 hash positions up to 2^63) do not fit a JS number.
 * Reading on from where the previous READDIR stopped (what the kernel does) costs nothing extra;
 * any other offset (seekdir, rewinddir) rescans from the start.
 */
import { FuseError } from "furing";
import * as sys from "furing/sys";
import type { PassthroughState } from "./state.ts";

export interface OpenFile {
  kind: "file";
  fd: number;
  ino: number;
  /** open(2) flags the caller used. */
  flags: number;
  /**
   * Served by the daemon although the mount has kernel passthrough (the file had setuid/setgid
   * bits when opened: see ops.ts openReply). Counted per node in `PassthroughState.daemonIo`.
   */
  daemonIo?: boolean;
}

export interface OpenDir {
  kind: "dir";
  fd: number;
  ino: number;
  /** Index of the entry `batch[pos]` (the next one the stream yields). */
  next: number;
  batch: sys.Dirent[];
  pos: number;
}

export type Handle = OpenFile | OpenDir;

/** The per-generation code over the kept handle table. */
export class Handles {
  constructor(private readonly s: PassthroughState) {}

  addFile(fd: number, ino: number, flags: number, daemonIo = false): number {
    const fh = this.s.nextFh++;
    this.s.handles.set(fh, daemonIo ? { kind: "file", fd, ino, flags, daemonIo } : { kind: "file", fd, ino, flags });
    if (daemonIo) {
      const m = (this.s.daemonIo ??= new Map());
      m.set(ino, (m.get(ino) ?? 0) + 1);
    }
    return fh;
  }

  /** Opens of `ino` the daemon serves although the mount has kernel passthrough. */
  daemonIo(ino: number): number {
    const m = this.s.daemonIo;
    return m === undefined || m.size === 0 ? 0 : (m.get(ino) ?? 0);
  }

  /** Whether some open of `ino` passes through the kernel (a scan: only for rare opens). */
  passesThrough(ino: number): boolean {
    for (const h of this.s.handles.values()) if (h.kind === "file" && h.ino === ino && h.daemonIo !== true) return true;
    return false;
  }

  addDir(fd: number, ino: number): number {
    const fh = this.s.nextFh++;
    this.s.handles.set(fh, { kind: "dir", fd, ino, next: 0, batch: [], pos: 0 });
    return fh;
  }

  /** The open file `fh`; EBADF if there is none. */
  file(fh: number): OpenFile {
    const h = this.s.handles.get(fh);
    if (h === undefined || h.kind !== "file") throw new FuseError("EBADF", `no open file with handle ${fh}`);
    return h;
  }

  /** The open file `fh`, or undefined (setattr/getattr may or may not come through one). */
  maybeFile(fh: number | undefined): OpenFile | undefined {
    if (fh === undefined || fh === 0) return undefined;
    const h = this.s.handles.get(fh);
    return h !== undefined && h.kind === "file" ? h : undefined;
  }

  dir(fh: number): OpenDir {
    const h = this.s.handles.get(fh);
    if (h === undefined || h.kind !== "dir") throw new FuseError("EBADF", `no open directory with handle ${fh}`);
    return h;
  }

  /** Close and forget `fh` (release, releasedir). */
  release(fh: number): void {
    const h = this.s.handles.get(fh);
    if (h === undefined) return;
    this.s.handles.delete(fh);
    sys.close(h.fd);
    if (h.kind === "file" && h.daemonIo === true) {
      const m = this.s.daemonIo!;
      const n = (m.get(h.ino) ?? 1) - 1;
      if (n > 0) m.set(h.ino, n);
      else m.delete(h.ino);
    }
  }

  get size(): number {
    return this.s.handles.size;
  }

  /** Node `ino` is open for writing through some handle (a scan: only for rare requests). */
  openForWriting(ino: number): boolean {
    for (const h of this.s.handles.values()) if (h.kind === "file" && h.ino === ino && (h.flags & sys.O_ACCMODE) !== sys.O_RDONLY) return true;
    return false;
  }

  // ---- directory streams ----------------------------------------------------------------------

  /** Position `d` so that `peek` yields the entry with index `offset`. */
  seek(d: OpenDir, offset: number): void {
    if (offset === d.next) return;
    sys.lseek(d.fd, 0, sys.SEEK_SET);
    d.next = 0;
    d.batch = [];
    d.pos = 0;
    while (d.next < offset && this.peek(d) !== null) this.advance(d);
  }

  /** The next entry, or null at the end of the directory. */
  peek(d: OpenDir): sys.Dirent | null {
    if (d.pos >= d.batch.length) {
      d.batch = sys.getdents(d.fd);
      d.pos = 0;
      if (d.batch.length === 0) return null;
    }
    return d.batch[d.pos]!;
  }

  advance(d: OpenDir): void {
    d.pos++;
    d.next++;
  }
}
