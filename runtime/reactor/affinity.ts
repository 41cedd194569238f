/**
 * The reactor follows its callers' CPU.
 *
 * FUSE-over-io_uring queues a request on the queue of the CPU its caller runs on (qid = CPU). When
 * the one JS thread that serves every queue runs on another vCPU, each request costs two cross-CPU
 * wake-ups: an IPI to run the request's task work on the reactor's CPU, and another to wake the
 * caller with the reply. On these VMs a wake-up across vCPUs is a VM exit, and the two of them
 * cost many times the request itself (figures: ARCHITECTURE.md, "Where the reactor runs").
 *
 * So the reactor thread moves itself (sched_setaffinity on its own thread) to the CPU whose queue
 * carried most of the last WINDOW requests, within the CPUs it was allowed at start (a `taskset`
 * by the user is respected). When no queue dominates (callers on several CPUs at once), it gives
 * the scheduler its original mask back. Moves are at least DWELL_MS apart, so a mixed load cannot
 * make it bounce. A mask set from outside later (`taskset -p`) wins: it becomes the allowed set.
 */
import { libc } from "../ffi/libc.ts";

/** Requests per decision. */
const WINDOW = 64;
/** Share of a window one queue must carry to pull the reactor to its CPU. */
const DOMINANT = 0.75;
/** Minimum time between two moves. */
const DWELL_MS = 20;
/** cpu_set_t size: 1024 CPUs, as glibc's. */
const MASK_BYTES = 128;

export class CallerCpuFollower {
  /** CPUs this thread may run on (its affinity when the follower was made). */
  allowed: readonly number[];
  /** The option is on (with one allowed CPU it has nothing to choose, until the mask changes). */
  readonly enabled: boolean;
  /** The CPU the reactor is pinned to, or -1 (its original mask). */
  pinned = -1;
  moves = 0;
  private readonly counts: Uint32Array;
  private n = 0;
  private lastMove = -Infinity;
  private readonly initialMask = new Uint8Array(MASK_BYTES);
  private readonly mask = new Uint8Array(MASK_BYTES);
  private readonly probe = new Uint8Array(MASK_BYTES);

  constructor(queues: number, wanted: boolean) {
    this.counts = new Uint32Array(queues);
    this.allowed = libc.sched_getaffinity(0, MASK_BYTES, this.initialMask) >= 0 ? this.cpusIn(this.initialMask) : [];
    this.enabled = wanted;
  }

  /** A request arrived on queue `qid`. Hot path: a counter, and every WINDOW requests a decision. */
  note(qid: number): void {
    if (!this.enabled) return;
    this.counts[qid]!++;
    if (++this.n >= WINDOW) this.decide();
  }

  private decide(): void {
    const c = this.counts;
    let best = 0;
    for (let q = 1; q < c.length; q++) if (c[q]! > c[best]!) best = q;
    const share = c[best]! / this.n;
    c.fill(0);
    this.n = 0;
    const now = performance.now();
    if (now - this.lastMove < DWELL_MS) return;
    if (this.changedOutside() || this.allowed.length < 2) return;
    if (share >= DOMINANT) {
      if (best !== this.pinned && this.allowed.includes(best)) this.pin(best, now);
    } else if (this.pinned !== -1) {
      this.unpin(now);
    }
  }

  /**
   * Someone else (a `taskset -p` on the running daemon) set this thread's mask since our last
   * move: that becomes the allowed set (a single CPU: nothing to follow until it changes again).
   */
  private changedOutside(): boolean {
    if (libc.sched_getaffinity(0, MASK_BYTES, this.probe) < 0) return false;
    const ours = this.pinned === -1 ? this.initialMask : this.mask;
    let same = true;
    for (let i = 0; i < MASK_BYTES; i++) if (this.probe[i] !== ours[i]) same = false;
    if (same) return false;
    this.initialMask.set(this.probe);
    this.allowed = this.cpusIn(this.probe);
    this.pinned = -1;
    return true;
  }

  /** The CPUs of `mask` that have a queue. */
  private cpusIn(mask: Uint8Array): number[] {
    const out: number[] = [];
    for (let cpu = 0; cpu < this.counts.length && cpu < MASK_BYTES * 8; cpu++) if (mask[cpu >> 3]! & (1 << (cpu & 7))) out.push(cpu);
    return out;
  }

  private pin(cpu: number, now: number): void {
    if (!pinThread(cpu, this.mask)) return;
    this.pinned = cpu;
    this.moves++;
    this.lastMove = now;
  }

  private unpin(now: number): void {
    if (libc.sched_setaffinity(0, MASK_BYTES, this.initialMask) !== 0) return;
    this.pinned = -1;
    this.lastMove = now;
  }

  /** Give the thread its original mask back (at close). */
  release(): void {
    if (this.pinned !== -1) this.unpin(performance.now());
  }
}

/** Pins the calling thread to `cpu` (`mask`: a cpu_set_t to fill, reused by callers that pin often). */
export function pinThread(cpu: number, mask = new Uint8Array(MASK_BYTES)): boolean {
  mask.fill(0);
  mask[cpu >> 3] = 1 << (cpu & 7);
  return libc.sched_setaffinity(0, MASK_BYTES, mask) === 0;
}

/** Pins the calling thread to the CPUs of `cpus` (a reactor Worker serving a group of queues). */
export function pinThreadTo(cpus: readonly number[]): boolean {
  const mask = new Uint8Array(MASK_BYTES);
  for (const cpu of cpus) mask[cpu >> 3]! |= 1 << (cpu & 7);
  return libc.sched_setaffinity(0, MASK_BYTES, mask) === 0;
}
