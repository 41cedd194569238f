/**
 * Reactor Workers for plugins with `concurrency: "shared"`: one Worker per group of CPU queues,
 * pinned to those CPUs, each with its own Reactor (ring, eventfd), its own transport slots and its
 * own Dispatcher + plugin instance. This is the main thread's side: it starts the Workers, tells
 * them what INIT negotiated, forwards what must stay single (notifications, INTERRUPTs of
 * requests it does not hold, hot reload's prepare/commit), and gathers their status.
 *
 * Queues are split into `count` contiguous groups of possible CPUs; a Worker is pinned to the
 * online CPUs of its group (a group with none runs where the scheduler puts it: its queues are
 * those of CPUs that are not there, whose entries must still exist or the mount hangs).
 */
import type { BackingTable } from "./backing.ts";
import { Worker } from "node:worker_threads";
import type { MountOptions } from "../mount/options.ts";
import type { Notifier } from "../api/types.ts";
import type { RawStats } from "../dispatch/stats.ts";
import { CqWatch } from "../ffi/liburing.ts";
import { IdleClassGuard, idleClassBlocker, policyOf, type SchedClassStatus, type WorkerProbe } from "../reactor/sched-class.ts";

/** What a Worker needs to start: its place, the mount's options and the plugin's first generation. */
export interface WorkerSetup {
  /** 1-based (0 is the main thread), as `ctx.reactor.index`. */
  index: number;
  count: number;
  /** CPUs the Worker is pinned to (the online ones of its queue group). */
  cpus: number[];
  firstQueue: number;
  queues: number;
  options: MountOptions;
  debug: boolean;
  pluginArgs: string[];
  mountpoint: string;
  name: string;
  entry: string;
  generation: number;
  /** The bundled module to import (deleted by the main thread once every Worker imported it). */
  file: string;
  shared: Map<string, SharedArrayBuffer>;
  /** The node counts every reactor shares (dispatch/shared-counts.ts), created by the main thread. */
  nodeCounts: SharedArrayBuffer;
}

/** INIT's outcome, for a Worker to allocate its transport. */
export interface TransportPlan {
  mode: "io_uring" | "classic";
  /** The session's /dev/fuse descriptor (io_uring: the ring commands' fd; classic: cloned). */
  fd: number;
  depth: number;
  payloadSize: number;
  /** Per queue: payload bytes that may be pinned as a fixed buffer (-o ring_memory's share). */
  pinBudget: number;
  /** classic: slots and their size. */
  devSlots: number;
  bufSize: number;
  /** The protocol minor INIT settled on (request sizes depend on it). */
  minor: number;
  setxattrExt: boolean;
  killPriv: boolean;
  passthrough: boolean;
  /** Kernel passthrough's backing-file table, shared by every thread serving the connection (backing.ts). */
  backing?: BackingTable;
}

/** Main → Worker. Messages with an `id` are answered with the same id. */
export type ToWorker =
  | { t: "allocate"; id: number; plan: TransportPlan }
  | { t: "register" }
  | { t: "interrupt"; lo: number; hi: number }
  | { t: "prepare"; id: number; n: number; file: string; shared: Map<string, SharedArrayBuffer> }
  | { t: "commit"; n: number }
  | { t: "discard"; n: number }
  | { t: "status"; id: number }
  | { t: "gc"; id: number }
  | { t: "close"; id: number }
  | { t: "notified"; id: number; ok: boolean; value?: unknown; error?: string; errno?: number };

/** Worker → main. */
export type FromWorker =
  | { t: "started"; tid: number; serving: SharedArrayBuffer; cq: { head: number; tail: number } }
  | { t: "failed"; error: string }
  | { t: "reply"; id: number; error?: string; value?: unknown }
  | { t: "notify"; id: number; method: keyof Notifier; args: unknown[] }
  | { t: "notifyReply"; lo: number; hi: number; data: Uint8Array }
  | { t: "interrupt"; lo: number; hi: number }
  | { t: "closed"; reason: string };

export interface WorkerStatus {
  index: number;
  cpus: number[];
  queues: string;
  transport: string;
  /** This Worker's ring: are its payload buffers registered as fixed buffers (as the main thread's `fixedBuffers`)? */
  fixedBuffers: string;
  generation: number;
  requests: { io_uring: number; classic: number };
  inflight: number;
  timedOut: number;
  reactor: { wakeups: number; completions: number; rescues: number };
  memory: { heap_kib: number };
  /** What this Worker holds of past generations: bundles in its module registry, source maps (1 each: the serving one). */
  generationsHeld: { modules: number; sourceMaps: number };
  /** `dispatcher.stats.raw()` of the Worker (summed into the main thread's status). */
  stats: RawStats;
  /** Its scheduling class (filled in by the main thread, which sets it). */
  sched?: SchedClassStatus;
}

/** Worker `w` of `count` serves possible CPUs [first, first + queues) and runs on the online ones. */
export function queueGroups(count: number, possible: number, online: readonly number[]): { firstQueue: number; queues: number; cpus: number[] }[] {
  const out = [];
  for (let w = 0; w < count; w++) {
    const first = Math.floor((w * possible) / count), end = Math.floor(((w + 1) * possible) / count);
    out.push({ firstQueue: first, queues: end - first, cpus: online.filter((c) => c >= first && c < end) });
  }
  return out;
}

/** A reactor Worker failed to start, import or set up a generation (one line, like a plugin's failure). */
export class ReactorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReactorError";
  }
}

interface PoolConfig {
  /** The Worker's program (the plugin host's `reactor-worker.ts`: it loads generations). */
  workerEntry: string;
  count: number;
  possible: number;
  online: readonly number[];
  base: Omit<WorkerSetup, "index" | "count" | "cpus" | "firstQueue" | "queues" | "file" | "generation" | "shared">;
  log: (line: string) => void;
  /** Notifications from Workers go through the main thread's notifier (it waits for INIT). */
  notify: Notifier;
  onNotifyReply: (lo: number, hi: number, data: Uint8Array) => void;
  /** An INTERRUPT a Worker read (classic) that it does not serve: try the main thread's requests. */
  onInterrupt: (lo: number, hi: number) => void;
  /**
   * A Worker ended while serving (its queues would hang every caller on its CPUs): the daemon
   * must end so the kernel fails those requests instead.
   */
  onWorkerLost: (index: number, why: string) => void;
}

interface Member {
  w: Worker;
  index: number;
  /** Its thread id (from "started"). */
  tid: number;
  /** Why it is not in the idle class, when it is not (undefined: not decided yet, or in it). */
  schedNote?: string;
  /** What the starvation guard reads of it (from "started"). */
  probe?: WorkerProbe;
  cpus: number[];
  firstQueue: number;
  queues: number;
  exited: Promise<void>;
}

export class ReactorPool {
  readonly members: Member[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closing = false;
  private started = false;
  private closedWorkers = 0;
  /** Every Worker's transport saw the connection end (classic with Workers: the main thread no longer reads). */
  onAllClosed: ((reason: string) => void) | null = null;

  /** Keeps the Workers in SCHED_IDLE and moves a starving one out (null: -o no_sched_idle, or not allowed). */
  private readonly guard: IdleClassGuard | null;
  private readonly schedNote: string | undefined;

  constructor(private readonly cfg: PoolConfig) {
    const blocker = cfg.base.options.schedIdle ? idleClassBlocker() : "-o no_sched_idle";
    this.guard = blocker === null ? new IdleClassGuard(cfg.log) : null;
    this.schedNote = blocker ?? undefined;
  }

  get count(): number {
    return this.cfg.count;
  }

  /** Start every Worker with generation `generation` from `file`; rejects (all stopped) if any fails. */
  async start(file: string, generation: number, shared: Map<string, SharedArrayBuffer>): Promise<void> {
    const groups = queueGroups(this.cfg.count, this.cfg.possible, this.cfg.online);
    const started: Promise<void>[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      const setup: WorkerSetup = { ...this.cfg.base, index: i + 1, count: this.cfg.count, ...g, file, generation, shared };
      const w = new Worker(this.cfg.workerEntry, { workerData: setup });
      let code = 0;
      const exited = new Promise<void>((r) => w.on("exit", (c: number) => ((code = c), r())));
      const m: Member = { w, index: i + 1, tid: 0, cpus: g.cpus, firstQueue: g.firstQueue, queues: g.queues, exited };
      this.members.push(m);
      started.push(new Promise<void>((resolve, reject) => {
        w.on("message", (msg: FromWorker) => {
          if (msg.t === "started") {
            m.tid = msg.tid;
            m.probe = { serving: new Int32Array(msg.serving), cq: new CqWatch(msg.cq) };
            resolve();
          }
          else if (msg.t === "failed") reject(new ReactorError(`reactor Worker ${m.index}: ${msg.error}`));
          else this.onMessage(m, msg);
        });
        w.on("error", (e: Error) => {
          reject(new ReactorError(`reactor Worker ${m.index}: ${e.message}`));
          if (!this.closing) this.cfg.log(`furing: reactor Worker ${m.index} failed: ${e.stack ?? e.message}`);
        });
        void exited.then(() => {
          reject(new ReactorError(`reactor Worker ${m.index} exited before it started`));
          if (!this.closing && this.started) this.cfg.onWorkerLost(m.index, `exited (code ${code})`);
        });
      }));
    }
    try {
      await Promise.all(started);
      this.started = true;
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private onMessage(m: Member, msg: FromWorker): void {
    switch (msg.t) {
      case "reply": {
        const p = this.waiting.get(msg.id);
        if (p === undefined) return;
        this.waiting.delete(msg.id);
        if (msg.error !== undefined) p.reject(new Error(`reactor Worker ${m.index}: ${msg.error}`));
        else p.resolve(msg.value);
        return;
      }
      case "notify": {
        const n = this.cfg.notify as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
        n[msg.method]!(...msg.args).then(
          (value) => m.w.postMessage({ t: "notified", id: msg.id, ok: true, value } satisfies ToWorker),
          (e) => m.w.postMessage({ t: "notified", id: msg.id, ok: false, error: (e as Error)?.message ?? String(e), errno: (e as { errno?: number }).errno } satisfies ToWorker),
        );
        return;
      }
      case "notifyReply":
        return this.cfg.onNotifyReply(msg.lo, msg.hi, msg.data);
      case "interrupt":
        // the request may be on the main thread or on any other Worker
        this.cfg.onInterrupt(msg.lo, msg.hi);
        for (const o of this.members) if (o !== m) o.w.postMessage({ t: "interrupt", lo: msg.lo, hi: msg.hi } satisfies ToWorker);
        return;
      case "closed":
        if (++this.closedWorkers === this.members.length) this.onAllClosed?.(msg.reason);
        return;
    }
  }

  private ask<T>(m: Member, msg: ToWorker & { id: number }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(msg.id, { resolve: resolve as (v: unknown) => void, reject });
      m.w.postMessage(msg);
    });
  }

  /** Every Worker allocates its transport for `plan`; resolves with the first failure, or null. */
  async allocate(plan: TransportPlan): Promise<string | null> {
    const r = await Promise.allSettled(this.members.map((m) => this.ask(m, { t: "allocate", id: this.nextId++, plan })));
    const bad = r.find((x) => x.status === "rejected") as PromiseRejectedResult | undefined;
    if (bad === undefined) this.setSchedClass(plan.mode);
    return bad === undefined ? null : (bad.reason as Error).message;
  }

  /**
   * Workers serving io_uring queues go into SCHED_IDLE (reactor/sched-class.ts). Over classic
   * /dev/fuse every Worker's poll completes for every request, so a caller's next request is not
   * its CPU's Worker's any more than another's, and the class would only add waits.
   */
  private setSchedClass(mode: TransportPlan["mode"]): void {
    for (const m of this.members) {
      if (this.guard === null) m.schedNote = this.schedNote;
      else if (mode === "classic") m.schedNote = "classic /dev/fuse: every Worker is woken for every request, so the class would not keep callers on their CPU";
      else m.schedNote = this.guard.add(m.index, m.tid, m.probe!) ?? undefined;
    }
  }

  /** INIT was answered with FUSE_OVER_IO_URING: Workers hand their entries to the kernel. */
  register(): void {
    for (const m of this.members) m.w.postMessage({ t: "register" } satisfies ToWorker);
  }

  /** An INTERRUPT the main thread read for a request it does not serve. */
  interrupt(lo: number, hi: number): void {
    for (const m of this.members) m.w.postMessage({ t: "interrupt", lo, hi } satisfies ToWorker);
  }

  /**
   * Import and set up generation `n` on every Worker. If any fails, those that succeeded destroy
   * theirs and this throws, naming the Worker: a generation serves on every Worker or on none.
   */
  async prepare(n: number, file: string, shared: Map<string, SharedArrayBuffer>): Promise<void> {
    const r = await Promise.allSettled(this.members.map((m) => this.ask(m, { t: "prepare", id: this.nextId++, n, file, shared })));
    const bad = r.find((x) => x.status === "rejected") as PromiseRejectedResult | undefined;
    if (bad === undefined) return;
    for (const m of this.members) m.w.postMessage({ t: "discard", n } satisfies ToWorker);
    throw new ReactorError((bad.reason as Error).message);
  }

  /** Swap prepared generation `n` in on every Worker. */
  commit(n: number): void {
    for (const m of this.members) m.w.postMessage({ t: "commit", n } satisfies ToWorker);
  }

  /** Each Worker's status; one that does not answer within `ms` (an op blocks its thread) says so. */
  status(ms = 1000): Promise<(WorkerStatus | { index: number; cpus: number[]; error: string })[]> {
    return Promise.all(this.members.map((m) => {
      const id = this.nextId++;
      const late = Bun.sleep(ms).then(() => {
        this.waiting.delete(id);
        return { index: m.index, cpus: m.cpus, error: `no answer within ${ms} ms (an op is blocking its thread?)` };
      });
      const answer = this.ask<WorkerStatus>(m, { t: "status", id }).then((s) => ({ ...s, sched: this.schedOf(m) }));
      return Promise.race([answer, late]);
    }));
  }

  private schedOf(m: Member): SchedClassStatus {
    const watched = m.schedNote === undefined ? this.guard?.status(m.index) : undefined;
    // (before INIT the class is not set yet: the policy below says what it is)
    if (watched !== undefined) return watched;
    let policy = "unknown";
    try {
      if (m.tid > 0) policy = policyOf(m.tid);
    } catch {
      // the Worker's thread is gone (it is ending)
    }
    return { tid: m.tid, policy, starvedMoves: 0, longestWaitMs: 0, note: m.schedNote ?? "not in the idle class (set once INIT has chosen the transport; or the guard stopped)" };
  }

  /** A full garbage collection on every Worker (the control socket's `gc`): each has its own heap. */
  async gc(ms = 10_000): Promise<void> {
    await Promise.all(this.members.map((m) => {
      const id = this.nextId++;
      const late = Bun.sleep(ms).then(() => void this.waiting.delete(id));
      return Promise.race([this.ask(m, { t: "gc", id }).catch(() => {}), late]);
    }));
  }

  /** Workers destroy their instances and stop; any that does not within 2 s is terminated. */
  async close(): Promise<void> {
    this.closing = true;
    this.guard?.stop();
    await Promise.all(this.members.map(async (m) => {
      const said = this.ask(m, { t: "close", id: this.nextId++ }).catch(() => {});
      await Promise.race([said, m.exited, Bun.sleep(2000)]);
      await m.w.terminate();
    }));
  }
}
