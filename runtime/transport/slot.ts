/**
 * A request slot: one buffer set that holds a request from the kernel and then its reply, so the
 * dispatcher can decode and encode without knowing which transport filled it.
 *
 * io_uring entry: header buffer (in-header @0, op header in `op_in` @128) + payload buffer
 *   (remaining arguments @0; reply payload @0).
 * /dev/fuse read: one buffer (in-header @0, op header @40, remaining arguments right after it;
 *   reply: out-header @0, payload @16).
 * Replies are always written after every argument has been decoded, so sharing is safe.
 */
import type { Transport } from "./transport.ts";
import { nativeInfo, registerNative } from "../ffi/memory.ts";

export class RequestSlot {
  /** Header region: in-header at `hdrOff` (0), op header at `opInOff`. */
  hdr: DataView;
  readonly opInOff: number;
  /** Payload region (names, write data, reply payload). */
  data: DataView;
  dataBytes: Uint8Array;
  /** Same memory as `dataBytes`, for string decoding without creating views. */
  dataText: Buffer;
  /** The ring's layout: the op header and the remaining arguments live in separate buffers (io_uring). */
  readonly ringLayout: boolean;
  /** Where the reply payload starts in `data`. */
  readonly replyOff: number;
  /** Bytes available for the reply payload. */
  readonly replyCap: number;
  /** Number of request bytes in the payload region (ring: payload_sz; classic: len - 40). */
  payloadLen = 0;
  /** Transport that owns the slot, and the slot's index there. */
  readonly transport: Transport;
  readonly index: number;
  /** The dispatcher's per-slot context (created on the slot's first request). */
  ctx: unknown = null;
  /** Absolute address of `data` (for fixed-buffer I/O straight into the reply). */
  readonly dataPtr: number;

  /**
   * `data` should be the slot's own ArrayBuffer (not a window on a shared one) so `revoke` can
   * detach it without touching other slots. In the classic layout `hdr` views the same buffer.
   */
  constructor(t: Transport, index: number, hdr: DataView, opInOff: number, data: DataView, dataPtr: number, ringLayout: boolean, replyOff: number) {
    this.transport = t;
    this.index = index;
    this.hdr = hdr;
    this.opInOff = opInOff;
    this.data = data;
    this.dataBytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.dataText = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.ringLayout = ringLayout;
    this.replyOff = replyOff;
    this.replyCap = data.byteLength - replyOff;
    this.dataPtr = dataPtr;
  }

  /**
   * Invalidate every view handed out for the current request (a plugin op that outlived its
   * timeout still holds `dest`/`data`): the buffer is detached, so those views become empty and
   * writing through them fails, and the slot continues on a new ArrayBuffer over the same memory
   * (`transfer()` keeps the address, which the kernel holds).
   */
  revoke(): void {
    const oldBuf = this.data.buffer as ArrayBuffer;
    const off = this.data.byteOffset, len = this.data.byteLength;
    const sharedHdr = this.hdr.buffer === oldBuf;
    const hOff = this.hdr.byteOffset, hLen = this.hdr.byteLength;
    const info = nativeInfo(oldBuf);
    const fresh = oldBuf.transfer(); // read everything above first: the old views are now empty
    if (info !== undefined) registerNative(fresh, info.ptr, info.fixedIndex, info.lazy);
    this.data = new DataView(fresh, off, len);
    this.dataBytes = new Uint8Array(fresh, off, len);
    this.dataText = Buffer.from(fresh, off, len);
    if (sharedHdr) this.hdr = new DataView(fresh, hOff, hLen);
    this.readView = null;
    this.writeView = null;
  }

  // Cached exact-length views: repeated requests of one size (the common case) allocate nothing.
  private readView: Uint8Array | null = null;
  private writeView: Uint8Array | null = null;

  /** View of `size` reply bytes at the reply payload start. */
  replyBytes(size: number): Uint8Array {
    const v = this.readView;
    if (v !== null && v.length === size) return v;
    return (this.readView = this.dataBytes.subarray(this.replyOff, this.replyOff + size));
  }

  /** View of `size` request bytes at `off` in the payload region (write data). */
  requestBytes(off: number, size: number): Uint8Array {
    const v = this.writeView;
    if (v !== null && v.length === size && v.byteOffset === this.dataBytes.byteOffset + off) return v;
    return (this.writeView = this.dataBytes.subarray(off, off + size));
  }
}
