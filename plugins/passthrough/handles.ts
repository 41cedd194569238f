/**
 * Open files and directories: each open (and opendir) gets its own descriptor of the source file
 * and a unique file handle, kept in the state (so they survive hot reloads) until release.
 *
 * An open file's descriptor is a real one (opened through /proc/self/fd/N of the node's O_PATH
 * descriptor), so it keeps working when the file is renamed or unlinked in the source; it carries
 * data I/O on the runtime's ring (ctx.io), fsync, fallocate, lseek, copy_file_range, and is the
 * backing file handed to the kernel for FUSE passthrough.
 *
 * The table is shared (state.ts): any reactor may serve any handle (see Handles).
 *
 * A directory stream reads the source directory with getdents64. Offsets ("cookies") are entry
 * indexes: the filesystem's own cookies (ext4 hash positions up to 2^63) do not fit a JS number.
 * Reading on from where the previous READDIR stopped (what the kernel does) costs nothing extra;
 * any other offset (seekdir, rewinddir) rescans from the start.
 */
import { FuseError } from "furing";
import * as sys from "furing/sys";
import { M_DAEMON_IO, M_HANDLES, type PassthroughState } from "./state.ts";

export interface OpenFile {
  kind: "file";
  fd: number;
  ino: number;
  /** open(2) flags the caller used. */
  flags: number;
  /**
   * Served by the daemon although the mount has kernel passthrough (the file had setuid/setgid
   * bits when opened: see ops.ts openReply). A word of the shared record, counted per node in
   * the shared table at M_DAEMON_IO, so opens on every reactor follow one another.
   */
  daemonIo?: boolean;
}

export interface OpenDir {
  kind: "dir";
  fh: number;
  fd: number;
  ino: number;
  /** Index of the entry `batch[pos]` (the next one the stream yields). */
  next: number;
  batch: sys.Dirent[];
  pos: number;
  /** The stream's shared serial when this thread last read or moved the descriptor. */
  serial: number;
}

export type Handle = OpenFile | OpenDir;

// A handle record in the heap: u32 kind (1 file, 2 directory), u32 flags, f64 fd, f64 node id,
// u32 serial (directories: bumped whenever any thread reads or seeks the shared descriptor),
// u32 daemon I/O (files: 1 when the kernel does not pass it through although it could).
const H_KIND = 0, H_FLAGS = 1, H_SERIAL = 6, H_DAEMON_IO = 7;
const H_FD = 1, H_INO = 2;
const HANDLE_BYTES = 32;

/**
 * One thread's code over the shared handle table (fh → record). Descriptors are process-wide, so
 * any thread serves any handle; each keeps its own handle objects (made once per handle) and, for
 * directories, its own batch of entries, used only while no other thread has moved the stream.
 */
export class Handles {
  private readonly local = new Map<number, Handle>();
  constructor(private readonly s: PassthroughState) {}

  private table() {
    return this.s.map.at(this.s.meta[M_HANDLES] as number);
  }

  private add(kind: 1 | 2, fd: number, ino: number, flags: number, daemonIo = false): number {
    const fh = this.s.nextFh;
    this.s.nextFh = fh + 1;
    const h = this.s.heap;
    const p = h.calloc(HANDLE_BYTES);
    h.u32[(p >>> 2) + H_KIND] = kind;
    h.u32[(p >>> 2) + H_FLAGS] = flags;
    h.u32[(p >>> 2) + H_DAEMON_IO] = daemonIo ? 1 : 0;
    h.f64[(p >>> 3) + H_FD] = fd;
    h.f64[(p >>> 3) + H_INO] = ino;
    this.table().set(fh, p);
    return fh;
  }

  addFile(fd: number, ino: number, flags: number, daemonIo = false): number {
    const fh = this.add(1, fd, ino, flags, daemonIo);
    if (daemonIo) {
      const s = this.s;
      if (s.meta[M_DAEMON_IO] === 0) s.meta[M_DAEMON_IO] = s.map.create();
      const m = s.map.at(s.meta[M_DAEMON_IO] as number);
      m.set(ino, (m.get(ino) ?? 0) + 1);
    }
    return fh;
  }

  /** Opens of `ino` (by any thread) the daemon serves although the mount has kernel passthrough. */
  daemonIo(ino: number): number {
    const t = this.s.meta[M_DAEMON_IO] as number;
    if (t === 0) return 0;
    const m = this.s.map.at(t);
    return m.size === 0 ? 0 : (m.get(ino) ?? 0);
  }

  /** Whether some open of `ino` (by any thread) passes through the kernel (a scan: only for rare opens). */
  passesThrough(ino: number): boolean {
    const t = this.table();
    const h = this.s.heap;
    for (let c = t.next(0); c >= 0; c = t.next(c)) {
      const p = t.valueAt(c);
      if (h.u32[(p >>> 2) + H_KIND] === 1 && h.f64[(p >>> 3) + H_INO] === ino && h.u32[(p >>> 2) + H_DAEMON_IO] === 0) return true;
    }
    return false;
  }

  addDir(fd: number, ino: number): number {
    return this.add(2, fd, ino, 0);
  }

  /** This thread's object for `fh`, or undefined if the table has no such handle. */
  private get(fh: number): Handle | undefined {
    const p = this.table().get(fh);
    if (p === undefined) {
      this.local.delete(fh);
      return undefined;
    }
    let o = this.local.get(fh);
    if (o === undefined) {
      const h = this.s.heap;
      const fd = h.f64[(p >>> 3) + H_FD] as number;
      const ino = h.f64[(p >>> 3) + H_INO] as number;
      o = h.u32[(p >>> 2) + H_KIND] === 1
        ? { kind: "file", fd, ino, flags: h.u32[(p >>> 2) + H_FLAGS] as number, daemonIo: h.u32[(p >>> 2) + H_DAEMON_IO] === 1 }
        : { kind: "dir", fh, fd, ino, next: -1, batch: [], pos: 0, serial: -1 };
      // handles released on other threads leave objects here: sweep now and then
      if (this.local.size > 64 && this.local.size > 2 * this.table().size) {
        for (const k of this.local.keys()) if (!this.table().has(k)) this.local.delete(k);
      }
      this.local.set(fh, o);
    }
    return o;
  }

  /** The open file `fh`; EBADF if there is none. */
  file(fh: number): OpenFile {
    const h = this.get(fh);
    if (h === undefined || h.kind !== "file") throw new FuseError("EBADF", `no open file with handle ${fh}`);
    return h;
  }

  /** The open file `fh`, or undefined (setattr/getattr may or may not come through one). */
  maybeFile(fh: number | undefined): OpenFile | undefined {
    if (fh === undefined || fh === 0) return undefined;
    const h = this.get(fh);
    return h !== undefined && h.kind === "file" ? h : undefined;
  }

  dir(fh: number): OpenDir {
    const h = this.get(fh);
    if (h === undefined || h.kind !== "dir") throw new FuseError("EBADF", `no open directory with handle ${fh}`);
    return h;
  }

  /** Close and forget `fh` (release, releasedir). */
  release(fh: number): void {
    const t = this.table();
    const p = t.get(fh);
    this.local.delete(fh);
    if (p === undefined) return;
    t.delete(fh);
    const h = this.s.heap;
    const fd = h.f64[(p >>> 3) + H_FD] as number;
    if (h.u32[(p >>> 2) + H_KIND] === 1 && h.u32[(p >>> 2) + H_DAEMON_IO] === 1) {
      const ino = h.f64[(p >>> 3) + H_INO] as number;
      const m = this.s.map.at(this.s.meta[M_DAEMON_IO] as number);
      const n = (m.get(ino) ?? 1) - 1;
      if (n > 0) m.set(ino, n);
      else m.delete(ino);
    }
    h.free(p);
    sys.close(fd);
  }

  get size(): number {
    return this.table().size;
  }

  /** The descriptor of some open file of node `ino` (any thread's), or -1 (a scan: only for rare requests). */
  fileFdOf(ino: number): number {
    const t = this.table();
    const h = this.s.heap;
    for (let c = t.next(0); c >= 0; c = t.next(c)) {
      const p = t.valueAt(c);
      if (h.u32[(p >>> 2) + H_KIND] === 1 && h.f64[(p >>> 3) + H_INO] === ino) return h.f64[(p >>> 3) + H_FD] as number;
    }
    return -1;
  }

  /** Node `ino` is open for writing through some handle (a scan: only for rare requests). */
  openForWriting(ino: number): boolean {
    const t = this.table();
    const h = this.s.heap;
    for (let c = t.next(0); c >= 0; c = t.next(c)) {
      const p = t.valueAt(c);
      if (h.u32[(p >>> 2) + H_KIND] === 1 && h.f64[(p >>> 3) + H_INO] === ino && ((h.u32[(p >>> 2) + H_FLAGS] as number) & sys.O_ACCMODE) !== sys.O_RDONLY) return true;
    }
    return false;
  }

  // ---- directory streams ----------------------------------------------------------------------

  /** The shared serial word of directory handle `d`'s record. */
  private serialIndex(d: OpenDir): number {
    return ((this.table().get(d.fh) as number) >>> 2) + H_SERIAL;
  }

  /** Position `d` so that `peek` yields the entry with index `offset`. */
  seek(d: OpenDir, offset: number): void {
    if (offset === d.next && (d.pos < d.batch.length || d.serial === this.s.heap.u32[this.serialIndex(d)])) return;
    this.rewindTo(d, offset);
  }

  /** Read the stream again from the start up to entry `offset`. */
  private rewindTo(d: OpenDir, offset: number): void {
    sys.lseek(d.fd, 0, sys.SEEK_SET);
    this.bump(d);
    d.next = 0;
    d.batch = [];
    d.pos = 0;
    while (d.next < offset && this.peek(d) !== null) this.advance(d);
  }

  /** Count a read or seek of the shared descriptor: other threads' batches are stale now. */
  private bump(d: OpenDir): void {
    const i = this.serialIndex(d);
    const u32 = this.s.heap.u32;
    u32[i] = ((u32[i] as number) + 1) >>> 0;
    d.serial = u32[i] as number;
  }

  /** The next entry, or null at the end of the directory. */
  peek(d: OpenDir): sys.Dirent | null {
    if (d.pos >= d.batch.length) {
      if (d.serial !== this.s.heap.u32[this.serialIndex(d)]) {
        // another thread moved the shared descriptor since this one read it: find our place again
        this.rewindTo(d, d.next);
        if (d.pos < d.batch.length) return d.batch[d.pos]!;
      }
      d.batch = sys.getdents(d.fd);
      this.bump(d);
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
