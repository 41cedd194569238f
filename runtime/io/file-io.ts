/**
 * File I/O for plugins on the reactor's io_uring: reads and writes complete as CQEs like
 * everything else, so the reactor never blocks and no thread pool is involved. A buffer inside the
 * registered payload region (a read op's `dest`, a write op's `data` on the io_uring transport)
 * moves with READ_FIXED/WRITE_FIXED: no copy, no page pinning per request.
 *
 * Buffers on the JS heap: the kernel keeps their address until the completion, so
 * - a read into a large one (> 1000 bytes, whose store never moves) goes straight into it, and
 *   the destination is held by the operation until its completion (the caller may drop it);
 * - small destinations (which the GC may move) and every write source are staged through native
 *   bounce memory: slices of one 4 MiB arena, each reused only after its operation completed
 *   (an operation waits while the arena is full), or a mapping of its own for an operation larger
 *   than the arena, unmapped at its completion.
 */
import { ptr } from "bun:ffi";
import { allocNative, freeNative, nativeInfo, fixedIndexOf, type NativeRegion } from "../ffi/memory.ts";
import { IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_FSYNC } from "../ffi/liburing.ts";
import type { Reactor } from "../reactor/reactor.ts";
import { FuseError } from "../api/errno.ts";
import type { FileIO } from "../api/types.ts";

const IORING_FSYNC_DATASYNC = 1;
const MAX_OPS = 1 << 16;
const PAGE = 4096;
/** Bounce arena size; a staged operation larger than this gets a mapping of its own. */
export const BOUNCE_ARENA_SIZE = 4 << 20;

/**
 * Page-granular slices of one native region, handed out next-fit from a cursor and returned at
 * completion (completions come in any order). Requests that do not fit wait in FIFO order, so a
 * stream of small operations cannot starve a large one.
 */
export class BounceArena {
  private region: NativeRegion | null = null;
  private readonly used: Uint8Array;
  private readonly pages: number;
  private cursor = 0;
  /** Pages handed out and not yet returned. */
  inUse = 0;
  private readonly waiting: { pages: number; resolve: (page: number) => void }[] = [];
  /** Operations that had to wait for room (status, tests). */
  waits = 0;

  constructor(readonly size = BOUNCE_ARENA_SIZE) {
    this.pages = size / PAGE;
    this.used = new Uint8Array(this.pages);
  }

  get buffer(): ArrayBuffer {
    return this.mapped().buffer;
  }
  get ptr(): number {
    return this.mapped().ptr;
  }
  private mapped(): NativeRegion {
    return (this.region ??= allocNative(this.size));
  }

  /** First page of a free run of `n` pages, claimed; -1 if none (or others already wait). */
  tryTake(n: number): number {
    if (this.waiting.length > 0 || this.inUse + n > this.pages) return -1;
    return this.find(n);
  }

  /** Like tryTake, but waits for room. */
  take(n: number): Promise<number> {
    const p = this.tryTake(n);
    if (p >= 0) return Promise.resolve(p);
    this.waits++;
    return new Promise((resolve) => this.waiting.push({ pages: n, resolve }));
  }

  release(page: number, n: number): void {
    this.used.fill(0, page, page + n);
    this.inUse -= n;
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (this.inUse + w.pages > this.pages) return;
      const p = this.find(w.pages);
      if (p < 0) return;
      this.waiting.shift();
      w.resolve(p);
    }
  }

  private find(n: number): number {
    const used = this.used, pages = this.pages;
    // two passes: from the cursor to the end, then from the start
    for (let pass = 0; pass < 2; pass++) {
      let p = pass === 0 ? this.cursor : 0;
      const end = pass === 0 ? pages : Math.min(pages, this.cursor + n);
      while (p + n <= end) {
        let q = p;
        while (q < p + n && used[q] === 0) q++;
        if (q === p + n) {
          used.fill(1, p, p + n);
          this.inUse += n;
          this.cursor = p + n === pages ? 0 : p + n;
          return p;
        }
        p = q + 1;
      }
    }
    return -1;
  }
}

export class RingFileIO implements FileIO {
  private readonly kind: number;
  private readonly resolvers: ((res: number) => void)[] = [];
  private readonly freeIds: number[] = [];
  // per operation id, until its completion:
  /** The caller's buffer the kernel addresses directly (kept alive for the GC's sake). */
  private readonly held: (Uint8Array | null)[] = [];
  /** Staged read: where the bytes go at completion. */
  private readonly copyTo: (Uint8Array | null)[] = [];
  /** Bounce pages (first page, count; count 0 = none). */
  private readonly stagePage: number[] = [];
  private readonly stagePages: number[] = [];
  /** A mapping of the operation's own (larger than the arena). */
  private readonly own: (NativeRegion | null)[] = [];
  readonly bounce = new BounceArena();
  /** Operations submitted (status). */
  ops = 0;
  /** Bounce mappings made for operations larger than the arena (status, tests). */
  ownMappings = 0;

  constructor(private readonly reactor: Reactor) {
    this.kind = reactor.addHandler((i, res) => this.complete(i, res));
  }

  private complete(i: number, res: number): void {
    const dest = this.copyTo[i];
    if (dest !== null && dest !== undefined && res > 0) {
      const own = this.own[i];
      const src = own !== null && own !== undefined ? new Uint8Array(own.buffer, 0, res) : new Uint8Array(this.bounce.buffer, this.stagePage[i]! * PAGE, res);
      // a destination revoked meanwhile (its op timed out) is empty: nothing to copy into
      if (dest.length >= res) dest.set(src);
    }
    this.copyTo[i] = null;
    this.held[i] = null;
    const r = this.resolvers[i]!;
    this.abandon(i); // the staging memory and the id are free again
    r(res);
  }

  /** Give back what operation `id` claimed when it fails before its submission. */
  private abandon(id: number): void {
    if (this.stagePages[id]! > 0) {
      this.bounce.release(this.stagePage[id]!, this.stagePages[id]!);
      this.stagePages[id] = 0;
    }
    const own = this.own[id];
    if (own !== null && own !== undefined) {
      this.own[id] = null;
      freeNative(own);
    }
    this.freeIds.push(id);
  }

  /** An operation id, or -1 when too many are in flight. */
  private claim(): number {
    let id = this.freeIds.pop();
    if (id === undefined) {
      if (this.resolvers.length >= MAX_OPS) return -1;
      id = this.resolvers.length;
      this.resolvers.push(() => {});
      this.held.push(null);
      this.copyTo.push(null);
      this.stagePage.push(0);
      this.stagePages.push(0);
      this.own.push(null);
    }
    return id;
  }

  private submit(id: number, op: number, fd: number, addr: number, len: number, offset: number, bufIndex: number, rwFlags: number): Promise<number> {
    this.ops++;
    const s = this.reactor.ring.sqes;
    const o = this.reactor.sqe(this.kind, id);
    s.setUint8(o, op);
    s.setInt32(o + 4, fd, true);
    s.setUint32(o + 8, offset >>> 0, true);
    s.setUint32(o + 12, Math.floor(offset / 4294967296), true);
    s.setUint32(o + 16, addr >>> 0, true);
    s.setUint32(o + 20, Math.floor(addr / 4294967296), true);
    s.setUint32(o + 24, len, true);
    s.setUint32(o + 28, rwFlags, true);
    if (bufIndex >= 0) s.setUint16(o + 40, bufIndex, true);
    this.reactor.flushSoon();
    return new Promise<number>((resolve, reject) => {
      this.resolvers[id] = (res) => (res < 0 ? reject(new FuseError(-res)) : resolve(res));
    });
  }

  /** Native memory for `len` staged bytes of operation `id`: its address (may wait for room). */
  private async stage(id: number, len: number): Promise<number> {
    if (len > this.bounce.size) {
      const r = allocNative(len);
      this.own[id] = r;
      this.ownMappings++;
      return r.ptr;
    }
    const n = Math.ceil(len / PAGE);
    let p = this.bounce.tryTake(n);
    if (p < 0) p = await this.bounce.take(n);
    this.stagePage[id] = p;
    this.stagePages[id] = n;
    return this.bounce.ptr + p * PAGE;
  }

  /** The staged bytes of operation `id` as a view (for filling a write). */
  private stagedView(id: number, len: number): Uint8Array {
    const own = this.own[id];
    return own !== null && own !== undefined ? new Uint8Array(own.buffer, 0, len) : new Uint8Array(this.bounce.buffer, this.stagePage[id]! * PAGE, len);
  }

  private tooMany(): Promise<number> {
    return Promise.reject(new FuseError("EAGAIN", "too many file I/O operations in flight"));
  }

  async read(fd: number, dest: Uint8Array, offset: number): Promise<number> {
    if (dest.length === 0) return 0;
    const r = nativeInfo(dest.buffer as ArrayBuffer);
    const id = this.claim();
    if (id < 0) return this.tooMany();
    if (r !== undefined) {
      // native memory stays mapped for the life of the process
      const addr = r.ptr + dest.byteOffset;
      const fixed = fixedIndexOf(r);
      return fixed >= 0
        ? this.submit(id, IORING_OP_READ_FIXED, fd, addr, dest.length, offset, fixed, 0)
        : this.submit(id, IORING_OP_READ, fd, addr, dest.length, offset, -1, 0);
    }
    if (dest.length > 1000 && dest.buffer.byteLength > 1000) {
      // large ArrayBuffers do not move, but the caller may drop `dest` before the kernel is done
      this.held[id] = dest;
      return this.submit(id, IORING_OP_READ, fd, ptr(dest), dest.length, offset, -1, 0);
    }
    let addr: number;
    try {
      addr = await this.stage(id, dest.length);
    } catch (e) {
      this.abandon(id);
      throw e;
    }
    this.copyTo[id] = dest;
    return this.submit(id, IORING_OP_READ, fd, addr, dest.length, offset, -1, 0);
  }

  async write(fd: number, src: Uint8Array, offset: number): Promise<number> {
    if (src.length === 0) return 0;
    const r = nativeInfo(src.buffer as ArrayBuffer);
    const id = this.claim();
    if (id < 0) return this.tooMany();
    if (r !== undefined) {
      const addr = r.ptr + src.byteOffset;
      const fixed = fixedIndexOf(r);
      return fixed >= 0
        ? this.submit(id, IORING_OP_WRITE_FIXED, fd, addr, src.length, offset, fixed, 0)
        : this.submit(id, IORING_OP_WRITE, fd, addr, src.length, offset, -1, 0);
    }
    let addr: number;
    try {
      addr = await this.stage(id, src.length);
      this.stagedView(id, src.length).set(src); // throws if the caller detached `src` meanwhile
    } catch (e) {
      this.abandon(id);
      throw e;
    }
    return this.submit(id, IORING_OP_WRITE, fd, addr, src.length, offset, -1, 0);
  }

  async fsync(fd: number, datasync: boolean): Promise<void> {
    const id = this.claim();
    if (id < 0) return void (await this.tooMany());
    await this.submit(id, IORING_OP_FSYNC, fd, 0, 0, 0, -1, datasync ? IORING_FSYNC_DATASYNC : 0);
  }
}
