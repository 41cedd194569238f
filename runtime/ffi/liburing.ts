/**
 * liburing (liburing.so.2) through bun:ffi, and the submission/completion rings driven from JS.
 *
 * liburing's `io_uring_prep_*`, `io_uring_get_sqe` fast path and CQ helpers are inline (absent from
 * the .so), so SQEs are claimed and CQEs reaped here over long-lived views of the mapped rings;
 * liburing only sets the ring up (queue_init_params), submits (io_uring_submit) and registers
 * resources. liburing ≥ 2.2 maps SQ array slots 1:1 to SQEs at init, so claiming an SQE is only
 * bumping `sq.sqe_tail` in `struct io_uring`, which io_uring_submit then publishes.
 */
import { dlopen, FFIType as T, toArrayBuffer, type Pointer } from "bun:ffi";
import { allocNative } from "./memory.ts";
import { SyscallError } from "./libc.ts";

const lib = dlopen("liburing.so.2", {
  io_uring_queue_init_params: { args: [T.u32, T.ptr, T.ptr], returns: T.i32 },
  io_uring_submit: { args: [T.ptr], returns: T.i32 },
  io_uring_get_events: { args: [T.ptr], returns: T.i32 },
  io_uring_register_eventfd: { args: [T.ptr, T.i32], returns: T.i32 },
  io_uring_unregister_eventfd: { args: [T.ptr], returns: T.i32 },
  io_uring_register_buffers: { args: [T.ptr, T.ptr, T.u32], returns: T.i32 },
});
const ur = lib.symbols;

// Setup flags (linux/io_uring.h)
export const IORING_SETUP_CQSIZE = 1 << 3;
export const IORING_SETUP_SUBMIT_ALL = 1 << 7;
export const IORING_SETUP_SQE128 = 1 << 10;

// Opcodes
export const IORING_OP_NOP = 0;
export const IORING_OP_FSYNC = 3;
export const IORING_OP_READ_FIXED = 4;
export const IORING_OP_WRITE_FIXED = 5;
export const IORING_OP_POLL_ADD = 6;
export const IORING_OP_READ = 22;
export const IORING_OP_WRITE = 23;
export const IORING_OP_URING_CMD = 46;

export const POLLIN = 0x001;
/** sq.kflags: completions are parked in the kernel's overflow list (the CQ was full). */
const IORING_SQ_CQ_OVERFLOW = 1 << 1;

// struct io_uring (liburing 2.3, x86-64) field offsets
const R_SQ_KHEAD = 0, R_SQ_KFLAGS = 32, R_SQ_SQES = 56, R_SQ_SQE_TAIL = 68, R_SQ_RING_MASK = 88, R_SQ_RING_ENTRIES = 92;
const R_CQ_KHEAD = 104, R_CQ_KTAIL = 112, R_CQ_CQES = 152, R_CQ_RING_MASK = 176, R_CQ_RING_ENTRIES = 180;
const R_FLAGS = 192;
const SIZEOF_IO_URING = 216, SIZEOF_PARAMS = 120;

export const SQE_SIZE = 128; // SQE128 slots
export const CQE_SIZE = 16;

function u32view(p: number): Uint32Array {
  return new Uint32Array(toArrayBuffer(p as Pointer, 0, 4));
}

/**
 * One io_uring instance with SQE128 slots. Not thread-safe: the reactor thread alone claims SQEs,
 * submits and reaps (the SQ is single-producer).
 */
export class Ring {
  /** Address of `struct io_uring`, the handle liburing calls take. */
  readonly handle: number;
  /** All SQE slots; `sqe()` returns a byte offset into these views. */
  readonly sqes: DataView;
  readonly sqeBytes: Uint8Array;
  readonly cqes: DataView;
  readonly sqEntries: number;
  readonly cqEntries: number;
  private readonly ringWords: Uint32Array; // struct io_uring as u32 words (for sqe_tail)
  private readonly sqKhead: Uint32Array;
  private readonly sqKflags: Uint32Array;
  private readonly cqKhead: Uint32Array;
  private readonly cqKtail: Uint32Array;
  private readonly sqMask: number;
  private readonly cqMask: number;
  /** SQEs claimed since the last submit. */
  pending = 0;
  /** Where the CQ's head and tail words are (another thread of the process may watch them: CqWatch). */
  readonly cqAddresses: { head: number; tail: number };

  constructor(entries: number, cqEntries: number) {
    const mem = allocNative(SIZEOF_IO_URING + SIZEOF_PARAMS + 64);
    const paramsOff = 256;
    const pv = new DataView(mem.buffer, paramsOff, SIZEOF_PARAMS);
    pv.setUint32(4, cqEntries, true);
    pv.setUint32(8, IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE, true);
    const rc = ur.io_uring_queue_init_params(entries, mem.ptr as Pointer, (mem.ptr + paramsOff) as Pointer);
    if (rc < 0) throw new SyscallError("io_uring_queue_init_params", -rc);
    this.handle = mem.ptr;
    const rv = new DataView(mem.buffer, 0, SIZEOF_IO_URING);
    const p64 = (off: number) => Number(rv.getBigUint64(off, true));
    this.ringWords = new Uint32Array(mem.buffer, 0, SIZEOF_IO_URING / 4);
    this.sqMask = rv.getUint32(R_SQ_RING_MASK, true);
    this.sqEntries = rv.getUint32(R_SQ_RING_ENTRIES, true);
    this.cqMask = rv.getUint32(R_CQ_RING_MASK, true);
    this.cqEntries = rv.getUint32(R_CQ_RING_ENTRIES, true);
    if ((rv.getUint32(R_FLAGS, true) & IORING_SETUP_SQE128) === 0) throw new Error("io_uring: SQE128 not in effect");
    this.sqKhead = u32view(p64(R_SQ_KHEAD));
    this.sqKflags = u32view(p64(R_SQ_KFLAGS));
    this.cqKhead = u32view(p64(R_CQ_KHEAD));
    this.cqKtail = u32view(p64(R_CQ_KTAIL));
    this.cqAddresses = { head: p64(R_CQ_KHEAD), tail: p64(R_CQ_KTAIL) };
    const sqesBuf = toArrayBuffer(p64(R_SQ_SQES) as Pointer, 0, this.sqEntries * SQE_SIZE);
    this.sqes = new DataView(sqesBuf);
    this.sqeBytes = new Uint8Array(sqesBuf);
    this.cqes = new DataView(toArrayBuffer(p64(R_CQ_CQES) as Pointer, 0, this.cqEntries * CQE_SIZE));
  }

  /**
   * Claim a zeroed SQE tagged with `userData` (low 32 bits); returns its byte offset in `sqes`.
   * Submits first when the SQ is full.
   */
  sqe(userData: number): number {
    let tail = this.ringWords[R_SQ_SQE_TAIL / 4]!;
    if (((tail - Atomics.load(this.sqKhead, 0)) >>> 0) >= this.sqEntries) {
      this.submit();
      tail = this.ringWords[R_SQ_SQE_TAIL / 4]!;
      if (((tail - Atomics.load(this.sqKhead, 0)) >>> 0) >= this.sqEntries) throw new Error("io_uring: submission queue stuck full");
    }
    const off = (tail & this.sqMask) * SQE_SIZE;
    this.ringWords[R_SQ_SQE_TAIL / 4] = (tail + 1) >>> 0;
    this.sqeBytes.fill(0, off, off + SQE_SIZE);
    this.sqes.setUint32(off + 32, userData, true);
    this.pending++;
    return off;
  }

  /** Publish claimed SQEs to the kernel; returns the number submitted (or -errno). */
  submit(): number {
    if (this.pending === 0) return 0;
    const n = ur.io_uring_submit(this.handle as Pointer);
    if (n >= 0) this.pending = 0;
    return n;
  }

  /**
   * Reap every ready CQE, calling `onCqe(userData, res, flags)` for each; returns the count.
   * The head is published after each CQE so handlers may submit and reap re-entrantly.
   */
  reap(onCqe: (userData: number, res: number, flags: number) => void): number {
    let n = 0;
    for (;;) {
      const head = this.cqKhead[0]!;
      if (head === Atomics.load(this.cqKtail, 0)) return n;
      const off = (head & this.cqMask) * CQE_SIZE;
      const ud = this.cqes.getUint32(off, true);
      const res = this.cqes.getInt32(off + 8, true);
      const flags = this.cqes.getUint32(off + 12, true);
      Atomics.store(this.cqKhead, 0, (head + 1) >>> 0);
      n++;
      onCqe(ud, res, flags);
    }
  }

  /**
   * When the CQ overflowed, the kernel parks completions until someone enters it with GETEVENTS:
   * flush them into the CQ. Returns true when it did (reap again).
   */
  flushOverflow(): boolean {
    if ((Atomics.load(this.sqKflags, 0) & IORING_SQ_CQ_OVERFLOW) === 0) return false;
    ur.io_uring_get_events(this.handle as Pointer);
    return true;
  }

  /** The CQ head (moves whenever completions are reaped). */
  head(): number {
    return this.cqKhead[0]!;
  }

  /** The CQ tail (moves whenever the kernel posts completions). */
  tail(): number {
    return Atomics.load(this.cqKtail, 0);
  }

  /** A CQE is waiting. */
  ready(): boolean {
    return this.cqKhead[0] !== Atomics.load(this.cqKtail, 0);
  }

  registerEventfd(fd: number): void {
    const rc = ur.io_uring_register_eventfd(this.handle as Pointer, fd);
    if (rc < 0) throw new SyscallError("io_uring_register_eventfd", -rc);
  }

  /** Stop signalling the eventfd (tests: a lost wake-up). */
  unregisterEventfd(): void {
    ur.io_uring_unregister_eventfd(this.handle as Pointer);
  }

  /** Register fixed buffers; `iovecs` points at `count` struct iovec. Returns 0 or -errno. */
  registerBuffers(iovecs: number, count: number): number {
    return ur.io_uring_register_buffers(this.handle as Pointer, iovecs as Pointer, count);
  }

}


/**
 * Another thread's view of a ring's CQ (from its `cqAddresses`): whether completions wait
 * unreaped. Read-only; the owning thread alone reaps.
 */
export class CqWatch {
  private readonly head: Uint32Array;
  private readonly tail: Uint32Array;
  constructor(at: { head: number; tail: number }) {
    this.head = u32view(at.head);
    this.tail = u32view(at.tail);
  }
  waiting(): boolean {
    return Atomics.load(this.head, 0) !== Atomics.load(this.tail, 0);
  }
}
