/**
 * The dispatcher: request slot → plugin op → reply. It owns error mapping (thrown errno → reply,
 * anything else → EIO with a log line naming the op), ENOSYS for missing ops, reply validation
 * (a reply that cannot be encoded becomes EIO, never a malformed message), FUSE_INTERRUPT, the
 * per-op statistics and the -d trace. It does not know which transport carried the request.
 */
import type { Filesystem } from "../api/types.ts";
import { errnoOf, errnoName, Errno } from "../api/errno.ts";
import { Op, opName, IN_OPCODE, IN_NODEID, IN_UID, IN_GID, IN_PID, IN_UNIQUE, FUSE_KERNEL_MINOR_VERSION } from "../kernel/abi.ts";
import { expectsReply, outSize, MAX_OPCODE } from "../kernel/opcodes.ts";
import { checkRequest, describeCheck, REQUEST_OK } from "./request-check.ts";
import { getU64, encodeNegativeEntry, ReplyError } from "../kernel/codec.ts";
import type { RequestSlot } from "../transport/slot.ts";
import { Call, type CallOwner } from "./call.ts";
import { runHandler, NOSYS, NO_REPLY, RAW_STACKS, type OpConfig } from "./ops.ts";
import { Stats } from "./stats.ts";
import type { KernelNodes } from "./kernel-nodes.ts";
import { Lifetimes } from "./lifetimes.ts";
import { describeReply } from "./trace.ts";

const withFrames = (frames: string) => (frames === "" ? "" : "\n" + frames);

/** Ops on already-open handles that allow_root never refuses (as libfuse). */
const OPEN_HANDLE_OPS = new Set<number>([Op.READ, Op.WRITE, Op.FSYNC, Op.RELEASE, Op.READDIR, Op.READDIRPLUS, Op.FSYNCDIR, Op.RELEASEDIR, Op.FORGET, Op.BATCH_FORGET, Op.NOTIFY_REPLY, Op.FLUSH]);

/** One generation of the plugin's code (hot reload swaps generations). */
export class Generation {
  /** Requests of this generation still being served. */
  inflight = 0;
  retired = false;
  /** Called once a retired generation has no request left. */
  onIdle: (() => void) | null = null;
  /** Releases its `setup` registered with `ctx.onDestroy`, run after the filesystem's `destroy`. */
  readonly cleanups: Array<() => unknown> = [];
  private destroying: Promise<void> | null = null;
  constructor(readonly id: number, readonly fs: Filesystem) {}

  /**
   * The plugin's `destroy`, then its `ctx.onDestroy` releases: once per generation, whoever asks
   * (drained after a reload, unmount, FUSE_DESTROY); later calls get the same promise.
   */
  destroy(log: (line: string) => void): Promise<void> {
    return (this.destroying ??= destroyFilesystem(this.fs, this.cleanups, `generation ${this.id}`, log));
  }
}

/**
 * `fs.destroy()`, then `cleanups` last registered first; each failure is logged (naming `what`),
 * never thrown, and does not stop the others. `fs` null: setup failed, only the releases run.
 */
export async function destroyFilesystem(fs: Filesystem | null, cleanups: ReadonlyArray<() => unknown>, what: string, log: (line: string) => void): Promise<void> {
  const why = (e: unknown) => (e instanceof Error ? e.message : String(e));
  try {
    await fs?.destroy?.();
  } catch (e) {
    log(`furing: destroy of ${what} failed: ${why(e)}`);
  }
  for (let i = cleanups.length - 1; i >= 0; i--) {
    try {
      await cleanups[i]!();
    } catch (e) {
      log(`furing: a release ${what} registered with ctx.onDestroy failed: ${why(e)}`);
    }
  }
}

export interface DispatchConfig extends OpConfig {
  negativeTimeout: number;
  /** allow_root: uid of the mount owner; requests of other non-root users get EACCES (-1: off). */
  denyOthers?: number;
  /** Seconds after which a request the plugin has not settled is answered ETIMEDOUT (0: never). */
  opTimeout?: number;
  /** Where errors and the trace go. */
  log: (line: string) => void;
  /**
   * An INTERRUPT named a request this dispatcher is not serving: with several reactors it may be
   * on another one (the main thread forwards it to every Worker). Unset: it is only remembered.
   */
  onInterruptMiss?: (uniqueLo: number, uniqueHi: number) => void;
  /** KernelNodes keep signed counts (lookups and FORGETs of a node may reach different reactors). */
  signedNodeCounts?: boolean;
  /** With signed counts: the table of counts every reactor shares, for `forgotten` and `isOpen`. */
  sharedCounts?: SharedArrayBuffer;
}

export class Dispatcher implements CallOwner {
  /** The generation new requests go to. */
  gen: Generation;
  readonly stats = new Stats();
  /** Node ids the kernel holds. */
  readonly nodes: KernelNodes;
  /** What the kernel holds and has open; what dropped results are given back. */
  readonly lifetimes: Lifetimes;
  /** Requests currently being served. */
  inflight = 0;
  private readonly calls: Call[] = [];
  /** Retired generations whose requests are not all done yet. */
  private readonly draining = new Set<Generation>();

  /** Requests that failed the opcode table's check (answered EIO, or dropped if unanswered). */
  malformed = 0;
  /** Opcodes whose malformed requests were logged already (one line per opcode, not per request). */
  private readonly malformedLogged = new Uint8Array(MAX_OPCODE + 1);

  /** Requests answered ETIMEDOUT, and late results discarded after that. */
  timedOut = 0;
  lateResults = 0;
  private sweeper: ReturnType<typeof setInterval> | null = null;

  constructor(readonly cfg: DispatchConfig, fs: Filesystem) {
    this.gen = new Generation(1, fs);
    this.lifetimes = new Lifetimes(cfg);
    this.nodes = this.lifetimes.nodes;
    const t = cfg.opTimeout ?? 0;
    if (t > 0) {
      this.sweeper = setInterval(() => this.sweep(t * 1000), Math.min(1000, Math.max(10, (t * 1000) / 4)));
      this.sweeper.unref();
    }
  }

  /**
   * Answer ETIMEDOUT for requests older than `ms`. The Call is retired (its slot gets a fresh one)
   * so a result that arrives later is discarded and logged, never sent for another request.
   */
  private sweep(ms: number): void {
    const now = performance.now();
    for (let i = 0; i < this.calls.length; i++) {
      const c = this.calls[i]!;
      if (!c.busy || now - c.t0 < ms) continue;
      c.timeout();
      // views the op still holds (read dest, write data) must not reach the slot's next request
      c.slot.revoke();
      const fresh = new Call(this, c.slot);
      c.slot.ctx = fresh;
      this.calls[i] = fresh;
      this.timedOut++;
      this.cfg.log(`furing: ${c.op} (node ${c.nodeid}${c.trace ? ", " + c.trace : ""}) did not settle within ${ms / 1000} s — answered ETIMEDOUT`);
      this.reply(c, -Errno.ETIMEDOUT, 0);
    }
  }

  /** Stop background work (the timeout sweeper). */
  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
  }

  /** The filesystem new requests go to. */
  get fs(): Filesystem {
    return this.gen.fs;
  }

  /**
   * Atomically route new requests to `next`; requests in flight finish on the old generation,
   * whose `onIdle` runs once the last of them has replied.
   */
  swap(next: Generation, onOldIdle: (old: Generation) => void): void {
    const old = this.gen;
    this.gen = next;
    old.retired = true;
    this.draining.add(old);
    old.onIdle = () => {
      this.draining.delete(old);
      onOldIdle(old);
    };
    if (old.inflight === 0) old.onIdle();
  }

  /**
   * The connection is gone (unmount): destroy each generation still alive, once, when its
   * requests are done (waiting at most `graceMs` for ops that have not settled): the retired ones
   * first, the serving one last.
   */
  async destroyGenerations(graceMs: number): Promise<void> {
    const serving = this.gen;
    const busy = () => serving.inflight > 0 || [...this.draining].some((g) => g.inflight > 0);
    const end = Date.now() + graceMs;
    while (busy() && Date.now() < end) await Bun.sleep(10);
    const last = [...this.draining, serving];
    this.draining.clear();
    for (const g of last) {
      if (g.inflight > 0) this.cfg.log(`furing: generation ${g.id} still has ${g.inflight} request(s) unsettled after ${graceMs} ms; destroying it anyway`);
      await g.destroy(this.cfg.log);
    }
  }

  /** Serve the request in `slot`. Never throws: every failure becomes that request's reply. */
  dispatch(slot: RequestSlot): void {
    let c = slot.ctx as Call | null;
    if (c === null) {
      c = new Call(this, slot);
      slot.ctx = c;
      this.calls.push(c);
    }
    const h = slot.hdr;
    const opcode = h.getUint32(IN_OPCODE, true);
    c.reset();
    c.opcode = opcode;
    c.op = opName(opcode);
    c.nodeid = getU64(h, IN_NODEID);
    c.uid = h.getUint32(IN_UID, true);
    c.gid = h.getUint32(IN_GID, true);
    c.pid = h.getUint32(IN_PID, true);
    c.uniqueLo = h.getUint32(IN_UNIQUE, true);
    c.uniqueHi = h.getUint32(IN_UNIQUE + 4, true);
    const gen = this.gen;
    c.gen = gen;
    c.fs = gen.fs;
    gen.inflight++;
    c.t0 = performance.now();
    this.inflight++;
    const minor = this.cfg.minor ?? FUSE_KERNEL_MINOR_VERSION;
    const check = checkRequest(slot, opcode, minor, this.cfg.setxattrExt);
    if (check !== REQUEST_OK) return this.reject(c, check, minor);
    if (opcode === Op.INTERRUPT) {
      this.interrupt(slot);
      this.noReply(c);
      return;
    }
    if (this.earlyInterrupts.length > 0) this.takeEarlyInterrupt(c);
    const deny = this.cfg.denyOthers ?? -1;
    if (deny >= 0 && c.uid !== deny && c.uid !== 0 && !OPEN_HANDLE_OPS.has(opcode)) {
      return this.reply(c, -Errno.EACCES, 0);
    }
    let r: unknown;
    try {
      r = runHandler(c, this.cfg);
    } catch (e) {
      this.fail(c, e);
      return;
    }
    if (r === NOSYS) return this.reply(c, -Errno.ENOSYS, 0);
    if (r === NO_REPLY) return this.noReply(c);
    if (r !== null && typeof r === "object" && typeof (r as PromiseLike<unknown>).then === "function") {
      (r as PromiseLike<unknown>).then(c.resolve, c.reject);
      return;
    }
    this.complete(c, r);
  }

  /** A request the table check refused: EIO (or nothing, for the unanswered kinds), logged once per opcode. */
  private reject(c: Call, check: number, minor: number): void {
    this.malformed++;
    if (this.malformedLogged[c.opcode] === 0) {
      this.malformedLogged[c.opcode] = 1;
      const what = describeCheck(check, c.slot, c.opcode, minor, this.cfg.setxattrExt);
      this.cfg.log(`furing: malformed ${c.op.toUpperCase()} request (node ${c.nodeid}): ${what} — ${expectsReply(c.opcode) ? "answered EIO" : "dropped"}; further malformed ${c.op.toUpperCase()} requests are not logged`);
    }
    if (expectsReply(c.opcode)) this.reply(c, -Errno.EIO, 0);
    else this.noReply(c);
  }

  complete(c: Call, value: unknown): void {
    if (!c.busy) return this.late(c, "result", c.timedOut ? this.dropped(c, value) : "");
    let len: number;
    try {
      len = c.enc === null ? 0 : c.enc(c, value);
    } catch (e) {
      this.fail(c, e, this.dropped(c, value));
      return;
    }
    const want = outSize(c.opcode);
    if (want >= 0 && len !== want) {
      this.fail(c, new ReplyError(`${c.op} reply of ${len} bytes, the kernel expects ${want}`), this.dropped(c, value));
      return;
    }
    this.lifetimes.replied(c, value);
    this.reply(c, 0, len);
  }

  /** Whether `ino` has open handles (over every reactor). */
  isOpen(ino: number): boolean {
    return this.lifetimes.isOpen(ino);
  }

  /** Give back what a result the kernel never gets handed out; returns what, for the log line. */
  private dropped(c: Call, value: unknown): string {
    return this.lifetimes.dropped(c, value, this.gen.fs);
  }

  /** `back`: what a dropped result gave back to the plugin (for the log line). */
  fail(c: Call, thrown: unknown, back = ""): void {
    // readdirplus entries added before the op failed (or timed out) never reach the kernel
    if (c.opcode === Op.READDIRPLUS && (c.busy || c.timedOut)) back = this.dropped(c, undefined);
    if (!c.busy) return this.late(c, `error (${(thrown as Error)?.message ?? String(thrown)})`, back);
    let errno = errnoOf(thrown);
    if (errno === 0) {
      errno = Errno.EIO;
      const stacks = this.cfg.stacks ?? RAW_STACKS;
      const what = thrown instanceof ReplyError ? `returned an invalid reply: ${thrown.message}${withFrames(stacks.pluginFrames(thrown.stack))}` : `threw: ${thrown instanceof Error ? stacks.fold(thrown.stack ?? thrown.message) : String(thrown)}`;
      this.cfg.log(`furing: ${c.op} (node ${c.nodeid}${c.trace ? ", " + c.trace : ""}) ${what} — answered EIO${back === "" ? "" : `; ${back} given back to the plugin`}`);
    }
    if (c.opcode === Op.LOOKUP && errno === Errno.ENOENT && this.cfg.negativeTimeout > 0) {
      // counted as the ENOENT it answers (status keeps it apart from failures)
      return this.reply(c, 0, encodeNegativeEntry(c.slot.data, c.slot.replyOff, this.cfg.negativeTimeout), -Errno.ENOENT);
    }
    this.reply(c, -errno, 0);
  }

  /** A result for a request already answered (timed out): discarded, logged (with what was given back). */
  private late(c: Call, what: string, back: string): void {
    if (!c.timedOut) return;
    this.lateResults++;
    this.cfg.log(`furing: ${c.op} (node ${c.nodeid}) settled after its timeout; its ${what} was discarded${back === "" ? "" : `; ${back} given back to the plugin`}`);
  }

  private done(c: Call): void {
    c.busy = false;
    this.inflight--;
    const g = c.gen!;
    if (--g.inflight === 0 && g.retired) g.onIdle?.();
  }

  /** `counted`: the errno the statistics record (a negative entry is a successful reply to ENOENT). */
  private reply(c: Call, error: number, len: number, counted = error): void {
    this.done(c);
    const us = (performance.now() - c.t0) * 1000;
    this.stats.record(c.opcode, counted, us);
    if (this.cfg.trace) this.traceLine(c, error, len, us);
    c.slot.transport.reply(c.slot, error, len);
  }

  private noReply(c: Call): void {
    this.done(c);
    this.stats.record(c.opcode, 0, (performance.now() - c.t0) * 1000);
    if (this.cfg.trace) this.traceLine(c, 0, -1, 0);
    c.slot.transport.noReply(c.slot);
  }

  /**
   * FUSE_INTERRUPT: fire the AbortSignal of the named request, if it is still being served. An
   * interrupt can overtake its request (the kernel queues interrupts first, and ring requests
   * travel apart from /dev/fuse): it is remembered briefly and applied when the request arrives.
   * One for a request already answered is simply dropped.
   */
  private interrupt(slot: RequestSlot): void {
    const lo = slot.hdr.getUint32(slot.opInOff, true), hi = slot.hdr.getUint32(slot.opInOff + 4, true);
    if (this.interruptUnique(lo, hi)) return;
    this.cfg.onInterruptMiss?.(lo, hi);
  }

  /**
   * Interrupt the request `unique` (two u32 halves) if this dispatcher serves it (true); else
   * remember it for when it arrives.
   */
  interruptUnique(lo: number, hi: number): boolean {
    for (const c of this.calls) {
      if (c.busy && c.uniqueLo === lo && c.uniqueHi === hi) {
        c.interrupt();
        return true;
      }
    }
    if (this.earlyInterrupts.length >= 128) this.earlyInterrupts.splice(0, 2);
    this.earlyInterrupts.push(lo, hi);
    return false;
  }

  /** Interrupts whose request had not arrived yet: (lo, hi) pairs of uniques. */
  private readonly earlyInterrupts: number[] = [];

  private takeEarlyInterrupt(c: Call): void {
    const e = this.earlyInterrupts;
    for (let i = 0; i < e.length; i += 2) {
      if (e[i] === c.uniqueLo && e[i + 1] === c.uniqueHi) {
        e.splice(i, 2);
        c.interrupt();
        return;
      }
    }
  }

  private traceLine(c: Call, error: number, len: number, us: number): void {
    const unique = c.uniqueLo + c.uniqueHi * 4294967296;
    let res = len < 0 ? "(no reply)" : error < 0 ? `-${errnoName(-error)}` : `OK ${len} bytes`;
    if (error === 0 && len > 0) {
      const d = describeReply(c.opcode, c.slot.data, c.slot.replyOff, len, c.limit);
      if (d !== "") res += ` {${d}}`;
    }
    this.cfg.log(`[${unique}] ${c.op.toUpperCase()} node=${c.nodeid}${c.trace ? " " + c.trace : ""} uid=${c.uid} pid=${c.pid} → ${res} ${us.toFixed(0)}µs [${c.slot.transport.name}]`);
  }
}
