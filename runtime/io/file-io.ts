/**
 * File I/O for plugins on the reactor's io_uring: reads and writes complete as CQEs like
 * everything else, so the reactor never blocks and no thread pool is involved. A buffer inside the
 * registered payload region (a read op's `dest`, a write op's `data` on the io_uring transport)
 * moves with READ_FIXED/WRITE_FIXED: no copy, no page pinning per request. Buffers on the JS heap
 * are staged through native bounce buffers, because the GC may move them while the kernel works.
 */
import { ptr } from "bun:ffi";
import { Arena, nativeInfo, fixedIndexOf } from "../ffi/memory.ts";
import { IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_FSYNC } from "../ffi/liburing.ts";
import type { Reactor } from "../reactor/reactor.ts";
import { FuseError } from "../api/errno.ts";
import type { FileIO } from "../api/types.ts";

const IORING_FSYNC_DATASYNC = 1;
const MAX_OPS = 1 << 16;

export class RingFileIO implements FileIO {
  private readonly kind: number;
  private readonly resolvers: ((res: number) => void)[] = [];
  private readonly freeIds: number[] = [];
  private bounce: Arena | null = null;
  /** Operations submitted (status). */
  ops = 0;

  constructor(private readonly reactor: Reactor) {
    this.kind = reactor.addHandler((i, res) => {
      const r = this.resolvers[i]!;
      this.freeIds.push(i);
      r(res);
    });
  }


  private submit(op: number, fd: number, addr: number, len: number, offset: number, bufIndex: number, rwFlags: number): Promise<number> {
    let id = this.freeIds.pop();
    if (id === undefined) {
      if (this.resolvers.length >= MAX_OPS) return Promise.reject(new FuseError("EAGAIN", "too many file I/O operations in flight"));
      id = this.resolvers.length;
      this.resolvers.push(() => {});
    }
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
      this.resolvers[id!] = (res) => (res < 0 ? reject(new FuseError(-res)) : resolve(res));
    });
  }

  private staging(len: number): { buf: Uint8Array; addr: number } {
    // one bounce arena, grown as needed; concurrent staged ops get distinct slices
    if (this.bounce === null || this.bounceUsed + len > this.bounce.region.size) {
      this.bounce = new Arena(Math.max(1 << 22, len));
      this.bounceUsed = 0;
    }
    const off = this.bounceUsed;
    this.bounceUsed += (len + 4095) & ~4095;
    if (this.bounceUsed >= this.bounce.region.size) this.bounceUsed = 0;
    return { buf: new Uint8Array(this.bounce.region.buffer, off, len), addr: this.bounce.region.ptr + off };
  }
  private bounceUsed = 0;

  async read(fd: number, dest: Uint8Array, offset: number): Promise<number> {
    if (dest.length === 0) return 0;
    const r = nativeInfo(dest.buffer as ArrayBuffer);
    if (r !== undefined) {
      const addr = r.ptr + dest.byteOffset;
      const fixed = fixedIndexOf(r);
      return fixed >= 0
        ? this.submit(IORING_OP_READ_FIXED, fd, addr, dest.length, offset, fixed, 0)
        : this.submit(IORING_OP_READ, fd, addr, dest.length, offset, -1, 0);
    }
    if (dest.length > 1000 && dest.buffer.byteLength > 1000) {
      // large ArrayBuffers do not move; address them directly
      return this.submit(IORING_OP_READ, fd, ptr(dest), dest.length, offset, -1, 0);
    }
    const st = this.staging(dest.length);
    const n = await this.submit(IORING_OP_READ, fd, st.addr, dest.length, offset, -1, 0);
    dest.set(st.buf.subarray(0, n));
    return n;
  }

  async write(fd: number, src: Uint8Array, offset: number): Promise<number> {
    if (src.length === 0) return 0;
    const r = nativeInfo(src.buffer as ArrayBuffer);
    if (r !== undefined) {
      const addr = r.ptr + src.byteOffset;
      const fixed = fixedIndexOf(r);
      return fixed >= 0
        ? this.submit(IORING_OP_WRITE_FIXED, fd, addr, src.length, offset, fixed, 0)
        : this.submit(IORING_OP_WRITE, fd, addr, src.length, offset, -1, 0);
    }
    const st = this.staging(src.length);
    st.buf.set(src);
    return this.submit(IORING_OP_WRITE, fd, st.addr, src.length, offset, -1, 0);
  }

  async fsync(fd: number, datasync: boolean): Promise<void> {
    await this.submit(IORING_OP_FSYNC, fd, 0, 0, 0, -1, datasync ? IORING_FSYNC_DATASYNC : 0);
  }
}
