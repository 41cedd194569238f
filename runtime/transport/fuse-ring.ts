/**
 * The FUSE-over-io_uring transport. Every possible CPU's queue gets `depth` entries; each entry is
 * a 288-byte header buffer and a payload buffer in native memory, handed to the kernel with
 * FUSE_IO_URING_CMD_REGISTER. A completion means a request sits in the entry's buffers; the reply
 * is written in place and handed back with COMMIT_AND_FETCH, which also re-arms the entry.
 *
 * The payload buffers form one region, mapped without pre-faulting: a page becomes resident when
 * the kernel first copies a request (or the plugin a reply) into it, so an idle mount costs little
 * however many CPUs are possible. The region is registered with the ring as a fixed buffer (so
 * ctx.io moves file data with READ_FIXED/WRITE_FIXED straight into or out of a payload) only
 * when file I/O first uses it, and only when it fits `pinBudget`: registering pins every page.
 */
import { Arena, nativeBuffer, type LazyFixed } from "../ffi/memory.ts";
import { IORING_OP_URING_CMD } from "../ffi/liburing.ts";
import type { Reactor } from "../reactor/reactor.ts";
import {
  URING_HEADER_SIZE, URING_OP_IN, URING_COMMIT_ID, URING_PAYLOAD_SZ, OUT_HEADER_SIZE,
  FUSE_IO_URING_CMD_REGISTER, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, SQE_CMD_COMMIT_ID, SQE_CMD_QID,
} from "../kernel/abi.ts";
import { RequestSlot } from "./slot.ts";
import type { Transport, RequestSink } from "./transport.ts";

const EAGAIN = 11, EINTR = 4, ENOTCONN = 107, ECONNABORTED = 103, ECANCELED = 125, ENODEV = 19;
const HEADER_STRIDE = 512;

/** Possible CPUs (not online ones): the kernel makes one queue per possible CPU. */
export function possibleCpus(): number {
  const cpus = cpuList("possible");
  return cpus[cpus.length - 1]! + 1;
}

/** The CPUs of /sys/devices/system/cpu/`which` (possible, online), ascending. */
export function cpuList(which: "possible" | "online"): number[] {
  const path = `/sys/devices/system/cpu/${which}`;
  const text = require("node:fs").readFileSync(path, "utf8").trim() as string;
  const out: number[] = [];
  for (const part of text.split(",")) {
    const [a, b] = part.split("-");
    for (let c = Number(a); c <= Number(b ?? a); c++) out.push(c);
  }
  if (out.length === 0 || out.some((c) => !Number.isInteger(c) || c < 0)) throw new Error(`cannot parse ${path}: ${JSON.stringify(text)}`);
  return out;
}

export class UringTransport implements Transport {
  readonly name = "io_uring";
  requests = 0;
  readonly entries: RequestSlot[] = [];
  private readonly qids: Uint16Array;
  /** Per entry: fetched at least once (a retry must then be a COMMIT, not a REGISTER). */
  private readonly fetched: Uint8Array;
  private readonly iovPtr: number;
  private readonly kind: number;
  private readonly payloadArena: Arena;
  private dead = 0;
  private closed = false;
  /** First error that made an entry unusable (a failed REGISTER: the kernel fell back to /dev/fuse). */
  failure: string | null = null;
  /** The payload buffers' native region (fixed buffer 0 when registered). */
  get payloadRegion() {
    return this.payloadArena.region;
  }
  /** Fixed buffer registration: null = registered, else why not (or not yet). */
  fixedBuffers: string | null = "not yet (registered when file I/O first uses a payload)";
  /** -2: not attempted; 0: registered as fixed buffer 0; -1: not registered. */
  private fixedState = -2;
  private readonly lazyFixed: LazyFixed = { index: () => (this.fixedState === -2 ? this.registerFixedBuffer() : this.fixedState) };

  constructor(
    private readonly reactor: Reactor,
    private readonly fd: number,
    readonly queues: number,
    readonly depth: number,
    readonly payloadSize: number,
    private readonly sink: RequestSink,
    private readonly onClosed: (reason: string) => void,
    /** The first queue's qid: a reactor that serves one queue of several (scripts/queue-layout). */
    readonly firstQueue = 0,
    /** Largest payload region registered (pinned) as a fixed buffer; larger ones use plain READ/WRITE. */
    private readonly pinBudget = Infinity,
  ) {
    const n = queues * depth;
    this.qids = new Uint16Array(n);
    this.fetched = new Uint8Array(n);
    const hdrArena = new Arena(n * HEADER_STRIDE + n * 32);
    this.payloadArena = new Arena(n * payloadSize, false);
    const iovOff = hdrArena.take(n * 32, 64);
    this.iovPtr = hdrArena.region.ptr + iovOff;
    const iov = new DataView(hdrArena.region.buffer, iovOff, n * 32);
    for (let q = 0; q < queues; q++) {
      for (let d = 0; d < depth; d++) {
        const i = q * depth + d;
        const hOff = hdrArena.take(URING_HEADER_SIZE, HEADER_STRIDE);
        const pOff = this.payloadArena.take(payloadSize, 4096);
        const hdr = new DataView(hdrArena.region.buffer, hOff, URING_HEADER_SIZE);
        const payloadPtr = this.payloadArena.region.ptr + pOff;
        const data = new DataView(nativeBuffer(payloadPtr, payloadSize, -1, this.lazyFixed));
        this.entries.push(new RequestSlot(this, i, hdr, URING_OP_IN, data, payloadPtr, true, 0));
        this.qids[i] = firstQueue + q;
        setPtr(iov, i * 32, hdrArena.region.ptr + hOff);
        setPtr(iov, i * 32 + 8, URING_HEADER_SIZE);
        setPtr(iov, i * 32 + 16, payloadPtr);
        setPtr(iov, i * 32 + 24, payloadSize);
      }
    }
    this.kind = reactor.addHandler((i, res) => this.onCqe(i, res));
  }

  /** Register the payload region as fixed buffer 0 (needs CAP_IPC_LOCK or enough RLIMIT_MEMLOCK); returns its index or -1. */
  private registerFixedBuffer(): number {
    if (this.payloadArena.region.size > this.pinBudget) {
      this.fixedBuffers = `not registered: ${this.payloadArena.region.size >> 20} MiB of payloads exceed -o ring_memory (${Math.floor(this.pinBudget / 1048576)} MiB); file I/O uses plain READ/WRITE`;
      return (this.fixedState = -1);
    }
    const a = new Arena(16);
    const iov = new DataView(a.region.buffer, 0, 16);
    setPtr(iov, 0, this.payloadArena.region.ptr);
    setPtr(iov, 8, this.payloadArena.region.size);
    const rc = this.reactor.ring.registerBuffers(a.region.ptr, 1);
    this.fixedBuffers = rc === 0 ? null : rc === -12 ? "RLIMIT_MEMLOCK too small (ENOMEM)" : `error ${-rc}`;
    return (this.fixedState = rc === 0 ? 0 : -1);
  }

  /** Hand every entry to the kernel. Call after the INIT reply was written. */
  register(): void {
    for (let i = 0; i < this.entries.length; i++) this.submitCmd(i, FUSE_IO_URING_CMD_REGISTER);
  }

  private submitCmd(i: number, cmd: number): void {
    const r = this.reactor.ring;
    const o = this.reactor.sqe(this.kind, i);
    const s = r.sqes;
    s.setUint8(o, IORING_OP_URING_CMD);
    s.setInt32(o + 4, this.fd, true);
    s.setUint32(o + 8, cmd, true);
    if (cmd === FUSE_IO_URING_CMD_REGISTER) {
      setPtr(s, o + 16, this.iovPtr + i * 32);
      s.setUint32(o + 24, 2, true);
    } else {
      const h = this.entries[i]!.hdr;
      s.setUint32(o + SQE_CMD_COMMIT_ID, h.getUint32(URING_COMMIT_ID, true), true);
      s.setUint32(o + SQE_CMD_COMMIT_ID + 4, h.getUint32(URING_COMMIT_ID + 4, true), true);
    }
    s.setUint16(o + SQE_CMD_QID, this.qids[i]!, true);
  }

  private onCqe(i: number, res: number): void {
    if (res === 0) {
      const slot = this.entries[i]!;
      this.fetched[i] = 1;
      slot.payloadLen = slot.hdr.getUint32(URING_PAYLOAD_SZ, true);
      this.requests++;
      this.reactor.requestFrom(this.qids[i]!); // qid = the caller's CPU
      this.sink(slot);
      return;
    }
    if (res === -EAGAIN || res === -EINTR) {
      // INIT reply not processed yet (or a signal): the same command again, shortly
      const cmd = this.fetched[i] ? FUSE_IO_URING_CMD_COMMIT_AND_FETCH : FUSE_IO_URING_CMD_REGISTER;
      setTimeout(() => {
        this.submitCmd(i, cmd);
        this.reactor.flushSoon();
      }, 1);
      return;
    }
    this.dead++;
    if (res === -ENOTCONN || res === -ECONNABORTED || res === -ECANCELED || res === -ENODEV) {
      if (this.dead === this.entries.length && !this.closed) {
        this.closed = true;
        this.onClosed("unmounted");
      }
      return;
    }
    // What the kernel does then (fs/fuse/dev_uring.c, fuse_uring_cmd): a failed REGISTER clears
    // fc->io_uring, so while the ring is not yet ready requests keep coming through /dev/fuse. A
    // failed COMMIT_AND_FETCH changes nothing else: its entry is lost to the queue, whose requests
    // wait for the queue's other entries (with none left, until the connection is aborted).
    const committing = this.fetched[i];
    const why = `${committing ? "COMMIT_AND_FETCH" : "REGISTER"} on queue ${this.qids[i]} failed: errno ${-res}`;
    if (this.failure === null) {
      this.failure = why;
      const then = committing
        ? `that entry is lost to queue ${this.qids[i]}, which its other entries serve`
        : "the kernel keeps sending requests through /dev/fuse";
      console.error(`furing: io_uring ${why}; ${then}`);
    }
  }

  reply(slot: RequestSlot, error: number, payloadLen: number): void {
    const h = slot.hdr;
    const len = error === 0 ? payloadLen : 0;
    // unique stays at offset 8 from the in-header
    h.setUint32(0, OUT_HEADER_SIZE + len, true);
    h.setInt32(4, error, true);
    h.setUint32(URING_PAYLOAD_SZ, len, true);
    this.submitCmd(slot.index, FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
    this.reactor.repliedTo(this.qids[slot.index]!);
    this.reactor.flushSoon();
  }

  noReply(slot: RequestSlot): void {
    // Requests without a reply that still arrive on the ring (NOTIFY_REPLY) must be committed.
    this.reply(slot, 0, 0);
  }
}

function setPtr(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 4294967296), true);
}
