/**
 * The reactor: a JS thread's io_uring instance (the main thread's, or a reactor Worker's), driven
 * without ever blocking in the kernel. An eventfd registered with the ring is read through Bun's
 * epoll-driven file stream; each wake drains the CQ until empty, routes every completion to the
 * component that submitted it, and submits what the handlers queued. When that submit brings new
 * completions at once (a caller answered and already asking again), the drain reaps and submits
 * again, up to MAX_ROUNDS rounds before it yields to the event loop. Replies produced later
 * (async ops) schedule a single microtask flush, so the replies of one tick share one
 * io_uring_submit.
 */
import { Ring } from "../ffi/liburing.ts";
import { libc, errno, SyscallError, EFD_CLOEXEC, EFD_NONBLOCK } from "../ffi/libc.ts";
import { CallerCpuFollower } from "./affinity.ts";

/** Called for each completion of an SQE submitted with `sqe(kind, index)`. */
export type CompletionHandler = (index: number, res: number, flags: number) => void;

const KIND_SHIFT = 24;
/** Period of the lost-wake-up check. */
const RESCUE_MS = 50;
/** Reap/submit rounds per drain before yielding to the event loop (timers, other I/O). */
const MAX_ROUNDS = 64;
const INDEX_MASK = (1 << KIND_SHIFT) - 1;

export class Reactor {
  readonly ring: Ring;
  private readonly handlers: CompletionHandler[] = [];
  private efd = -1;
  private running = false;
  private flushQueued = false;
  private readonly flushFn = () => {
    this.flushQueued = false;
    this.serving(this.owes());
    this.submit();
  };
  /**
   * Set by a reactor Worker's owner, for the main thread's starvation guard (sched-class.ts).
   * Word 1 counts drain rounds (progress). Word 0 is 1 while this thread owes a request its reply:
   * from the first reap of a drain to the submit that hands the replies over, and while async ops
   * are unsettled. It is cleared before the submit: a caller the submit wakes on this CPU preempts
   * the thread on its way out of the kernel, and waiting for the CPU then, with nothing owed, is
   * not starving.
   */
  servingFlag: Int32Array | null = null;
  /** Whether requests wait on work outside this ring (the owner's unsettled async ops). */
  owes: () => boolean = () => false;
  private readonly onCqe = (ud: number, res: number, flags: number) => {
    const h = this.handlers[ud >>> KIND_SHIFT];
    if (h === undefined) throw new Error(`reactor: completion for unknown kind ${ud >>> KIND_SHIFT}`);
    h(ud & INDEX_MASK, res, flags);
  };
  /** Completions reaped since start (for status). */
  completions = 0;
  wakeups = 0;
  /**
   * Busy-poll window (µs): after a drain that found work, keep checking the CQ from macrotasks
   * (so promise continuations still run) for this long before sleeping on the eventfd again.
   * A caller on another CPU then finds the reactor awake instead of paying two cross-CPU wake-ups.
   */
  busyPollUs = 0;
  /**
   * Lost wake-ups found by the rescue check (every RESCUE_MS): completions that sat in the CQ for
   * a whole period with no wake-up. Should stay 0.
   */
  rescues = 0;
  private rescueTimer: ReturnType<typeof setInterval> | undefined;
  /** CQ tail seen by the last check while completions waited (-1: none waited). */
  private waitingTail = -1;
  private readonly rescueFn = () => {
    // completions that were already waiting at the previous check and are still not reaped have
    // waited a whole period: their wake-up was lost
    const lost = this.waitingTail !== -1 && ((this.waitingTail - this.ring.head()) | 0) > 0;
    if (lost) this.drain();
    this.waitingTail = this.ring.ready() ? this.ring.tail() : -1;
    if (lost && this.rescues++ === 0) {
      console.error(`furing: the reactor found work that no wake-up announced (served ${RESCUE_MS} ms late; counted as reactor.rescues in status)`);
    }
  };
  /** A reply since the last drain round went to a caller on this thread's CPU. */
  private replyWokeLocal = false;
  /** Moves this thread to the CPU its callers run on (`-o follow_cpu`); null: not following. */
  follower: CallerCpuFollower | null = null;
  /** The CPU this thread is pinned to from outside (a reactor Worker's one CPU), or -1. */
  pinnedCpu = -1;
  /** After replying to a caller on this thread's CPU, yield to it before sleeping (FURING_YIELD=0: off). */
  private readonly yieldToCaller = process.env.FURING_YIELD !== "0";
  private pollUntil = 0;
  private polling = false;
  polls = 0;
  private readonly pollFn = () => {
    const now = performance.now();
    if (this.ring.ready()) {
      this.drain();
      this.pollUntil = now + this.busyPollUs / 1000;
    }
    if (performance.now() < this.pollUntil && this.running) {
      this.polls++;
      setImmediate(this.pollFn);
    } else this.polling = false;
  };

  constructor(sqEntries: number) {
    const sq = 1 << Math.ceil(Math.log2(Math.max(64, sqEntries)));
    this.ring = new Ring(sq, sq * 4);
  }

  /** Follow the callers of `cpus` queues (qid = CPU) to their CPU when `enabled`. */
  followCallers(cpus: number, enabled: boolean): void {
    this.follower = new CallerCpuFollower(cpus, enabled);
  }

  /** A request arrived from a caller on `cpu` (its queue's id). Hot path: a counter. */
  requestFrom(cpu: number): void {
    if (this.follower !== null) this.follower.note(cpu);
  }

  /** A reply went to a caller on `cpu`: on this thread's CPU, the drain yields to it before sleeping. */
  repliedTo(cpu: number): void {
    if (this.yieldToCaller && (cpu === this.pinnedCpu || (this.follower !== null && cpu === this.follower.pinned))) this.replyWokeLocal = true;
  }

  /** Register a completion handler; returns the kind to pass to `sqe`. */
  addHandler(h: CompletionHandler): number {
    this.handlers.push(h);
    return this.handlers.length - 1;
  }

  /** Claim a zeroed SQE whose completion goes to handler `kind` with `index`; returns its offset. */
  sqe(kind: number, index: number): number {
    return this.ring.sqe(((kind << KIND_SHIFT) | index) >>> 0);
  }

  /** Submit now if anything is pending (used at the end of a drain). */
  submit(): void {
    const rc = this.ring.submit();
    if (rc < 0) throw new SyscallError("io_uring_submit", -rc);
  }

  /** Submit at the end of the current JS task (for replies produced outside a drain). */
  flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushFn);
  }

  private rounds = 0;
  private serving(v: boolean): void {
    const f = this.servingFlag;
    if (f === null) return;
    Atomics.store(f, 0, v ? 1 : 0);
    Atomics.store(f, 1, ++this.rounds); // progress, for the guard
  }

  /** Reap until the CQ is empty, then submit what the handlers queued. */
  drain(): void {
    let n: number, total = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      this.serving(true);
      do {
        n = this.ring.reap(this.onCqe);
        total += n;
      } while (n > 0 || this.ring.flushOverflow());
      this.serving(this.owes());
      if (this.ring.pending === 0) break;
      this.submit();
      // A submitted reply often brings the next request at once: the caller woke, asked again,
      // and its CQE was posted before io_uring_enter returned (task work runs on the way out).
      // Serving it now spares a round trip through the event loop and the eventfd.
      if (!this.ring.ready()) {
        if (!this.replyWokeLocal) break;
        // A caller on this CPU was woken by a reply and waits for the CPU: let it run until it
        // blocks on its next request, which is then here when sched_yield returns, instead of
        // sleeping on the eventfd and being woken through the event loop for almost every request
        // (figures: ARCHITECTURE.md, "Reactor details that matter under load").
        this.replyWokeLocal = false;
        libc.sched_yield();
        if (!this.ring.ready()) break;
      }
    }
    this.completions += total;
    if (total > 0 && this.busyPollUs > 0) {
      this.pollUntil = performance.now() + this.busyPollUs / 1000;
      if (!this.polling) {
        this.polling = true;
        setImmediate(this.pollFn);
      }
    }
  }

  /** Start waiting for completions without blocking the event loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.efd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.efd < 0) throw new SyscallError("eventfd", errno());
    this.ring.registerEventfd(this.efd);
    const reader = Bun.file(this.efd).stream().getReader();
    void (async () => {
      while (this.running) {
        const r = await reader.read();
        if (r.done) break;
        this.wakeups++;
        this.drain();
      }
    })().catch((e) => {
      console.error("furing: reactor failed:", e);
      process.exit(70);
    });
    this.drain();
    // A safety net, not a mechanism: a wake-up lost anywhere between the kernel and Bun's event
    // loop (eventfd → Bun's epoll-driven stream) would otherwise stall the mount for good. None
    // has been seen (what looked like one in a benchmark was its watchdog's misreading); the
    // counter in status says if one ever happens. Cheap: one timer, a few loads per period.
    this.rescueTimer = setInterval(this.rescueFn, RESCUE_MS);
  }

  stop(): void {
    this.running = false;
    if (this.rescueTimer !== undefined) clearInterval(this.rescueTimer);
  }
}
