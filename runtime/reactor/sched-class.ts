/**
 * Reactor Workers run in the SCHED_IDLE scheduling class, watched by a starvation guard.
 *
 * Why: a reply wakes its caller while the Worker that wrote it still runs on the caller's CPU, so
 * the scheduler puts the caller on an idle vCPU instead (select_idle_sibling). Its next request
 * then lands on that CPU's queue, whose Worker sleeps: an unpinned caller pays a cross-vCPU
 * wake-up (on a VM, an IPI and an exit from halt) for almost every request, and runs at half the
 * rate of a pinned one. The kernel counts a CPU that runs only SCHED_IDLE tasks as idle
 * (sched_idle_cpu), so with the Worker in that class the caller is woken where it was, preempts
 * the Worker at once and asks again on the same queue: the pinned caller's path, for every caller
 * (figures: ARCHITECTURE.md, "Keeping an unpinned caller on its CPU").
 *
 * The price: a SCHED_IDLE thread runs only when nothing else wants its CPU (against one busy
 * task it gets ~0.3% of it), and a caller waiting for a Worker behind such a task would wait with
 * it. So the main thread, which stays in the normal class and may run on any CPU, looks at every
 * watched Worker each CHECK_MS: one that is runnable (state R in /proc/self/task/TID/stat) and
 * has not finished a drain round since the last look is waiting for its CPU. Whether it has a
 * request cannot always be seen: a new request reaches a Worker as task work the kernel runs on
 * the Worker's own thread (fuse_uring_send_in_task), so its completion appears only once the
 * Worker runs. So a Worker that visibly owes a reply (its serving flag, kept by its Reactor, or
 * completions in its CQ) is moved to SCHED_OTHER after STARVED_MS of that, and any other after
 * STARVED_IDLE_MS (it was woken for something: a request's task work, a timer, a message). It is
 * held there FIRST_HOLD_MS, doubled while it starves again within one hold of going back (a
 * task that keeps the CPU busy), up to MAX_HOLD_MS. (The kernel's run_delay cannot say any of
 * this: it is added when a waiting task finally runs, so a starved thread's shows nothing until
 * the starving is over.) A Worker preempted by the caller its reply woke waits for the CPU too,
 * which is the point; it is moved only when that caller keeps the CPU STARVED_IDLE_MS.
 *
 * A thread or process a Worker starts inherits its class (SCHED_RESET_ON_FORK resets only the
 * real-time ones): the kernel's io-wq workers for its ring (iou-wrk-*), threads the runtime starts
 * on it, a plugin's child processes. The Worker may wait for them, asleep, where the guard cannot
 * see it starve; so every INHERIT_SCAN_MS the guard puts every other thread of the process and
 * every child of a Worker that it finds in SCHED_IDLE back in the normal class.
 *
 * Leaving SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE ≥ 20 (sched(7)): without them the Workers
 * stay in the normal class, and `status` says why.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { libc, errno, SyscallError } from "../ffi/libc.ts";
import { Arena } from "../ffi/memory.ts";
import type { CqWatch } from "../ffi/liburing.ts";

/** What tells the guard that a Worker has a request to serve and whether it gets on with it. */
export interface WorkerProbe {
  /** Reactor.servingFlag: word 0 = owes a reply, word 1 = drain rounds so far. */
  serving: Int32Array;
  cq: CqWatch;
}

const SCHED_OTHER = 0, SCHED_IDLE = 5;
/** A flag sched_getscheduler may add to the policy (set by another tool; it does not reset SCHED_IDLE). */
const SCHED_RESET_ON_FORK = 0x40000000;
const RLIMIT_NICE = 13;
const CAP_SYS_NICE = 23n;

/**
 * Time a Worker may owe a reply, runnable and without progress, before it is moved to the normal
 * class: above the few ms a JIT compile on its CPU takes when a new code path warms up (measured
 * 5-7 ms), so that does not move it; a CPU-bound task on its CPU does within 2-3 checks.
 */
export const STARVED_MS = 15;
/**
 * The same for a Worker with no request in sight: long enough that a caller computing a while
 * after its reply (the Worker preempted on its way to sleep) rarely moves it, short enough that a
 * request hidden in its task work waits at most this long, once per hold.
 */
export const STARVED_IDLE_MS = 30;
/** Check period while Workers run. */
const CHECK_MS = 10;
/** Check period once no Worker has made progress for QUIET_MS (an idle mount wakes the main thread less). */
const QUIET_CHECK_MS = 50;
const QUIET_MS = 1000;
export const FIRST_HOLD_MS = 1000;
/** How often inherited SCHED_IDLE is looked for (threads, child processes). */
const INHERIT_SCAN_MS = 100;
const MAX_HOLD_MS = 64_000;

let param: Arena | null = null;

/** Put thread `tid` of this process in `policy` (priority 0); returns 0 or errno. */
function setPolicy(tid: number, policy: number): number {
  param ??= new Arena(8); // struct sched_param { int sched_priority = 0 }
  return libc.sched_setscheduler(tid, policy, param.region.ptr as never) === 0 ? 0 : errno();
}

/** The calling thread's id (a reactor Worker reports it to the main thread). */
export function threadId(): number {
  return libc.gettid();
}

/** The scheduling policy of thread `tid` ("SCHED_IDLE", "SCHED_OTHER", …): for tests and status. */
export function policyOf(tid: number): string {
  const p = libc.sched_getscheduler(tid);
  if (p < 0) throw new SyscallError("sched_getscheduler", errno(), `(thread ${tid})`);
  return ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"][p & ~SCHED_RESET_ON_FORK] ?? `policy ${p}`;
}

/** Why Workers cannot use the idle class here, or null when they can. */
export function idleClassBlocker(): string | null {
  if (!existsSync("/proc/thread-self/stat")) return "no /proc/thread-self/stat, which the starvation guard reads";
  const caps = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
  if (caps !== null && (BigInt(`0x${caps[1]}`) >> CAP_SYS_NICE) & 1n) return null;
  const rl = new Arena(16);
  const v = new DataView(rl.region.buffer, 0, 16);
  const cur = libc.getrlimit(RLIMIT_NICE, rl.region.ptr as never) === 0 ? Number(v.getBigUint64(0, true)) : 0;
  if (cur >= 20) return null;
  return `leaving SCHED_IDLE when a Worker starves needs CAP_SYS_NICE or RLIMIT_NICE ≥ 20 (it is ${cur})`;
}

interface Watched {
  index: number;
  tid: number;
  probe: WorkerProbe;
  /** /proc/self/task/TID/stat, kept open (read again from offset 0). */
  fd: number;
  /** Drain rounds at the last look. */
  rounds: number;
  /** How long it has owed a reply, runnable and without progress (ms). */
  starving: number;
  idle: boolean;
  moves: number;
  holdMs: number;
  /** Normal class until then (performance.now()). */
  until: number;
  /** Back in the idle class since (performance.now()). */
  idleSince: number;
  longestWaitMs: number;
}

export interface SchedClassStatus {
  /** The Worker's thread id (`chrt -p`, `/proc/PID/task/TID`). */
  tid: number;
  policy: string;
  /** Times the guard moved this Worker to the normal class because it waited for its CPU. */
  starvedMoves: number;
  /** Longest it waited for its CPU in the idle class, as the guard saw it (ms, in CHECK_MS steps). */
  longestWaitMs: number;
  /** Why the Worker is not in the idle class (option, privileges, kernel), if it is not. */
  note?: string;
}

export class IdleClassGuard {
  private readonly watched: Watched[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastLook = performance.now();
  private lastProgress = performance.now();
  private readonly buf = Buffer.alloc(512);
  private lastScan = 0;
  private logged = false;

  constructor(private readonly log: (line: string) => void) {}

  /** Put reactor Worker `index` (thread `tid`) in the idle class and watch it; returns null or why not. */
  add(index: number, tid: number, probe: WorkerProbe): string | null {
    let fd: number;
    try {
      fd = openSync(`/proc/self/task/${tid}/stat`, "r");
    } catch (e) {
      return `cannot watch it: ${(e as Error).message}`;
    }
    const e = setPolicy(tid, SCHED_IDLE);
    if (e !== 0) {
      closeSync(fd);
      return `sched_setscheduler(SCHED_IDLE): ${new SyscallError("sched_setscheduler", e).message}`;
    }
    this.watched.push({ index, tid, probe, fd, rounds: Atomics.load(probe.serving, 1), starving: 0, idle: true, moves: 0, holdMs: FIRST_HOLD_MS, until: 0, idleSince: performance.now(), longestWaitMs: 0 });
    if (this.timer === undefined) {
      this.lastLook = performance.now();
      this.schedule(CHECK_MS);
    }
    return null;
  }

  status(index: number): SchedClassStatus | undefined {
    const w = this.watched.find((x) => x.index === index);
    if (w === undefined) return undefined;
    return { tid: w.tid, policy: w.idle ? "SCHED_IDLE" : "SCHED_OTHER", starvedMoves: w.moves, longestWaitMs: Math.round(w.longestWaitMs) };
  }

  /** Stop watching; every Worker still in the idle class goes back to the normal one (it is ending, unwatched). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watched.splice(0)) {
      if (w.idle) setPolicy(w.tid, SCHED_OTHER);
      closeSync(w.fd);
    }
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(this.check, ms);
    this.timer.unref?.();
  }

  /** The thread's state letter (R: running or runnable), or null when it is gone. */
  private state(w: Watched): string | null {
    let n: number;
    try {
      n = readSync(w.fd, this.buf, 0, this.buf.length, 0);
    } catch {
      return null;
    }
    // "tid (comm) S …": comm may hold spaces and parentheses, the state follows the last ')'
    const close = this.buf.lastIndexOf(0x29, n);
    return close < 0 || close + 2 >= n ? null : String.fromCharCode(this.buf[close + 2]!);
  }

  private readonly check = () => {
    const now = performance.now();
    const elapsed = now - this.lastLook;
    this.lastLook = now;
    for (let i = this.watched.length - 1; i >= 0; i--) {
      const w = this.watched[i]!;
      const rounds = Atomics.load(w.probe.serving, 1);
      const progressed = rounds !== w.rounds;
      w.rounds = rounds;
      if (progressed) this.lastProgress = now;
      let waiting = false;
      if (!progressed) {
        const st = this.state(w);
        if (st === null) {
          // the Worker ended (its pool is closing)
          closeSync(w.fd);
          this.watched.splice(i, 1);
          continue;
        }
        waiting = st === "R";
      }
      w.starving = waiting ? w.starving + elapsed : 0;
      const owes = waiting && (Atomics.load(w.probe.serving, 0) !== 0 || w.probe.cq.waiting());
      if (w.idle && w.starving > w.longestWaitMs) w.longestWaitMs = w.starving;
      if (w.idle && w.starving >= (owes ? STARVED_MS : STARVED_IDLE_MS)) this.toNormal(w, now, owes);
      else if (!w.idle && now >= w.until) this.toIdle(w, now);
    }
    if (now - this.lastScan >= INHERIT_SCAN_MS) {
      this.lastScan = now;
      this.resetInherited();
    }
    if (this.watched.length > 0) this.schedule(now - this.lastProgress > QUIET_MS ? QUIET_CHECK_MS : CHECK_MS);
    else this.timer = undefined;
  };

  /** Every SCHED_IDLE thread of the process but the Workers, and every SCHED_IDLE child of a Worker, to SCHED_OTHER. */
  private resetInherited(): void {
    const workers = new Set(this.watched.map((w) => w.tid));
    const ids: number[] = [];
    try {
      for (const t of readdirSync("/proc/self/task")) if (!workers.has(Number(t))) ids.push(Number(t));
      for (const w of this.watched) {
        let kids = "";
        try {
          kids = readFileSync(`/proc/self/task/${w.tid}/children`, "latin1");
        } catch {
          // no CONFIG_PROC_CHILDREN: threads only
        }
        for (const k of kids.split(" ")) if (k !== "" && k !== "\n") ids.push(Number(k));
      }
    } catch {
      return;
    }
    for (const id of ids) {
      if ((libc.sched_getscheduler(id) & ~SCHED_RESET_ON_FORK) === SCHED_IDLE) setPolicy(id, SCHED_OTHER);
    }
  }

  private toNormal(w: Watched, now: number, owes: boolean): void {
    const waited = w.starving.toFixed(0);
    const e = setPolicy(w.tid, SCHED_OTHER);
    if (e !== 0) {
      // cannot happen once idleClassBlocker() said yes; if it does, stop using the class at all
      this.log(`furing: reactor Worker ${w.index} waited ${waited} ms for its CPU and cannot leave SCHED_IDLE (${new SyscallError("sched_setscheduler", e).message}); the starvation guard stops`);
      this.stop();
      return;
    }
    w.idle = false;
    w.starving = 0;
    w.moves++;
    // starving again within one hold of going back: something keeps the CPU busy, hold longer
    w.holdMs = w.moves > 1 && now - w.idleSince < w.holdMs ? Math.min(MAX_HOLD_MS, w.holdMs * 2) : FIRST_HOLD_MS;
    w.until = now + w.holdMs;
    if (!this.logged) {
      this.logged = true;
      this.log(`furing: reactor Worker ${w.index} waited ${waited} ms for its CPU${owes ? " with a request to serve" : ""} (another task keeps the CPU busy): it runs in the normal scheduling class for ${w.holdMs / 1000} s, longer if it happens again (counted in status; not logged again)`);
    }
  }

  private toIdle(w: Watched, now: number): void {
    if (setPolicy(w.tid, SCHED_IDLE) !== 0) return; // stays normal: harmless
    w.idle = true;
    w.idleSince = now;
  }
}
