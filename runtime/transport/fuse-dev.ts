/**
 * The classic transport: requests read from /dev/fuse, replies written back to it.
 *
 * The descriptor is non-blocking; a one-shot IORING_OP_POLL_ADD on the reactor's ring says when
 * requests are queued, and each is read with its own read(2) into a free slot (one read = one
 * request; Bun streams may merge reads, so none is used). The poll is re-armed only once reading
 * stopped at EAGAIN: a multishot poll posts a completion per wake-up, which under load floods the
 * CQ, and a poll armed while requests wait for a free slot would fire in a loop. Replies are write(2)s, which never wait
 * on anything in the kernel. In io_uring mode the same transport keeps serving what still comes
 * through /dev/fuse: INIT, FORGET, BATCH_FORGET, INTERRUPT, and requests queued before the ring
 * was ready. There, with reactor Workers serving the ring, `forgetBatchMs` lets FORGETs gather
 * in the kernel (it hands several over as one BATCH_FORGET) instead of waking this thread once
 * per unlinked or evicted node.
 */
import type { Pointer } from "bun:ffi";
import { libc, errno, SyscallError } from "../ffi/libc.ts";
import { Arena, nativeBuffer } from "../ffi/memory.ts";
import { IORING_OP_POLL_ADD, POLLIN } from "../ffi/liburing.ts";
import type { Reactor } from "../reactor/reactor.ts";
import { IN_HEADER_SIZE, IN_OPCODE, OUT_HEADER_SIZE } from "../kernel/abi.ts";
import { Op } from "../kernel/opcodes.ts";
import { RequestSlot } from "./slot.ts";
import type { Transport, RequestSink } from "./transport.ts";

const EAGAIN = 11, EINTR = 4, ENOENT = 2, ENODEV = 19;

export class DevTransport implements Transport {
  readonly name = "classic";
  requests = 0;
  readonly slots: RequestSlot[] = [];
  private readonly free: RequestSlot[] = [];
  private readonly kind: number;
  /** Requests may be waiting that we could not read for lack of a free slot. */
  private starved = false;
  private pumping = false;
  private closed = false;
  private pollArmed = false;
  /** Left to other readers of the session (cloned descriptors on reactor Workers): read no more. */
  private stopped = false;
  /**
   * After a read that found only FORGET/BATCH_FORGET, wait this long before polling again (0: at
   * once). The kernel never waits on a FORGET, and it queues the FORGETs that arrive meanwhile to
   * be read as one BATCH_FORGET; an INTERRUPT (read before any FORGET) waits at most this long.
   */
  forgetBatchMs = 0;
  private forgetTimer: ReturnType<typeof setTimeout> | null = null;
  /** Native memory of all slots. */
  readonly region: import("../ffi/memory.ts").NativeRegion;

  /**
   * @param bufSize per-slot buffer; must be ≥ max(8192, 80 + max_write) (kernel read-size rule)
   * @param onClosed called once when /dev/fuse reports the connection gone (ENODEV)
   */
  constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    slotCount: number,
    readonly bufSize: number,
    private readonly sink: RequestSink,
    private readonly onClosed: (reason: string) => void,
  ) {
    // faulted in as requests use them: in io_uring mode these only carry INIT, FORGET and INTERRUPT
    const arena = new Arena(slotCount * bufSize, false);
    this.region = arena.region;
    for (let i = 0; i < slotCount; i++) {
      const off = arena.take(bufSize, 4096);
      const dv = new DataView(nativeBuffer(arena.region.ptr + off, bufSize));
      const slot = new RequestSlot(this, i, dv, IN_HEADER_SIZE, dv, arena.region.ptr + off, false, OUT_HEADER_SIZE);
      this.slots.push(slot);
      this.free.push(slot);
    }
    this.kind = reactor.addHandler((_i, res, flags) => this.onPoll(res, flags));
  }

  /** Start watching /dev/fuse. */
  start(): void {
    this.armPoll();
  }

  /** Stop reading requests (a poll already armed fires once, harmlessly); replies still go out. */
  stopReading(): void {
    this.stopped = true;
  }

  private armPoll(): void {
    if (this.pollArmed || this.closed || this.stopped) return;
    this.pollArmed = true;
    const r = this.reactor.ring;
    const o = this.reactor.sqe(this.kind, 0);
    r.sqes.setUint8(o, IORING_OP_POLL_ADD);
    r.sqes.setInt32(o + 4, this.fd, true);
    r.sqes.setUint32(o + 28, POLLIN, true); // poll32_events
    this.reactor.flushSoon();
  }

  private onPoll(res: number, _flags: number): void {
    this.pollArmed = false;
    if (this.closed) return;
    if (res < 0 && res !== -EINTR) throw new SyscallError("poll /dev/fuse", -res);
    this.pump();
  }

  /** Poll again after `forgetBatchMs` (one timer, re-armed with refresh: nothing allocated per batch). */
  private armPollLater(): void {
    if (this.forgetTimer === null) {
      this.forgetTimer = setTimeout(() => this.armPoll(), this.forgetBatchMs);
      this.forgetTimer.unref();
    } else this.forgetTimer.refresh();
  }

  /** Read queued requests into free slots until none are queued or no slot is free. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    // FORGETs this pump read, and other requests (someone waits for those)
    let forgets = 0, others = 0;
    try {
      while (!this.closed && !this.stopped) {
        const slot = this.free.pop();
        if (slot === undefined) {
          this.starved = true;
          return;
        }
        const n = Number(libc.read(this.fd, slot.dataPtr as Pointer, this.bufSize));
        if (n < 0) {
          this.free.push(slot);
          const e = errno();
          if (e === EAGAIN) {
            this.starved = false;
            if (forgets > 0 && others === 0 && this.forgetBatchMs > 0) this.armPollLater();
            else this.armPoll();
            return;
          }
          if (e === EINTR || e === ENOENT) continue; // interrupted before we read it
          if (e === ENODEV) return this.close("unmounted");
          throw new SyscallError("read /dev/fuse", e);
        }
        if (n < IN_HEADER_SIZE) throw new Error(`read /dev/fuse: short request (${n} bytes)`);
        slot.payloadLen = n - IN_HEADER_SIZE;
        const op = slot.hdr.getUint32(IN_OPCODE, true);
        if (op === Op.FORGET || op === Op.BATCH_FORGET) forgets++;
        else others++;
        this.requests++;
        this.sink(slot);
      }
    } finally {
      this.pumping = false;
    }
  }

  private close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.forgetTimer !== null) clearTimeout(this.forgetTimer);
    this.onClosed(reason);
  }

  reply(slot: RequestSlot, error: number, payloadLen: number): void {
    const len = OUT_HEADER_SIZE + (error === 0 ? payloadLen : 0);
    const h = slot.hdr;
    // unique already sits at offset 8, where the in-header had it
    h.setUint32(0, len, true);
    h.setInt32(4, error, true);
    const n = Number(libc.write(this.fd, slot.dataPtr as Pointer, len));
    if (n < 0) {
      const e = errno();
      // ENOENT: the request was interrupted or aborted meanwhile; ENODEV: connection gone
      if (e !== ENOENT && e !== ENODEV) console.error(`furing: writing reply to /dev/fuse failed: ${new SyscallError("write", e).message}`);
    }
    this.release(slot);
  }

  noReply(slot: RequestSlot): void {
    this.release(slot);
  }

  private release(slot: RequestSlot): void {
    this.free.push(slot);
    if (this.starved) this.pump();
  }

}
