/**
 * A mounted FUSE session: opens /dev/fuse, mounts, negotiates INIT, chooses the transport
 * (FUSE-over-io_uring when offered and set up, classic /dev/fuse otherwise, one log line saying
 * which and why), serves until the kernel ends the connection, and unmounts on SIGINT/SIGTERM.
 */
import { Init, Op, IN_HEADER_SIZE, IN_OPCODE, OUT_HEADER_SIZE, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE } from "../kernel/abi.ts";
import { decodeInitIn, encodeInitOut } from "../kernel/codec.ts";
import { COMPAT_INIT_IN } from "../kernel/opcodes.ts";
import { libc, errno, cstr, SyscallError, setNonBlocking, O_RDWR, O_CLOEXEC, O_NONBLOCK } from "../ffi/libc.ts";
import { Reactor } from "../reactor/reactor.ts";
import { DevTransport } from "../transport/fuse-dev.ts";
import { UringTransport, possibleCpus } from "../transport/fuse-ring.ts";
import type { RequestSlot } from "../transport/slot.ts";
import { Dispatcher, type DispatchConfig } from "../dispatch/dispatcher.ts";
import type { StackFormat } from "../dispatch/ops.ts";
import type { Filesystem } from "../api/types.ts";
import { entriesPerQueue, type MountOptions } from "../mount/options.ts";
import { mountFuse, unmountInChild, describeHolders, MountError, fusermountOptions } from "../mount/mount.ts";
import { mountWithFusermount } from "../mount/fusermount.ts";
import { negotiate, uringUnavailableReason } from "./init.ts";
import { KernelNotifier } from "../notify/notifier.ts";
import { BackingFiles } from "./backing.ts";
import { heapStats } from "bun:jsc";
import type { RingFileIO } from "../io/file-io.ts";
import type { ReactorPool, WorkerStatus } from "./reactors.ts";
import { Stats } from "../dispatch/stats.ts";
import { SharedCounts } from "../dispatch/shared-counts.ts";

/** The reactor a session over these options needs: SQ room for every ring entry's command, the /dev/fuse poll and a tick's replies. */
export function createReactor(o: MountOptions): Reactor {
  return new Reactor(possibleCpus() * o.queueDepth + 64);
}

/** The dispatcher's settings for a mount with these options (the same on every reactor). */
export function dispatchConfig(o: MountOptions, debug: boolean, log: (line: string) => void, shared: boolean): DispatchConfig {
  return {
    entryTimeout: o.entryTimeout,
    attrTimeout: o.attrTimeout,
    negativeTimeout: o.negativeTimeout,
    openDefaults: (o.directIo ? FOPEN_DIRECT_IO : 0) | (o.kernelCache ? FOPEN_KEEP_CACHE : 0),
    setxattrExt: false,
    trace: debug,
    log,
    // allow_root: the kernel lets everyone in (allow_other); only the owner and root get served
    denyOthers: o.allowRoot && !o.allowOther ? process.getuid!() : -1,
    opTimeout: o.opTimeout,
    signedNodeCounts: shared,
  };
}

export interface SessionConfig {
  /** The reactor (created first: plugins get file I/O on its ring before mounting). */
  reactor: Reactor;
  fileIO: RingFileIO;
  mountpoint: string;
  options: MountOptions;
  /** -d: trace every request. */
  debug: boolean;
  /** How error logs show plugin stacks (the plugin host's source maps). */
  stacks?: StackFormat;
  pluginName: string;
  fs: Filesystem;
  log: (line: string) => void;
  /** Reactor Workers serving the queues (a plugin with `concurrency: "shared"`); absent: this thread serves all. */
  pool?: ReactorPool;
  /** With a pool: the node counts the reactors share (the one passed to the Workers). */
  nodeCounts?: SharedArrayBuffer;
}

export interface SessionStatus {
  mountpoint: string;
  plugin: string;
  pid: number;
  state: string;
  transport: string;
  transportReason: string;
  queues: number;
  depth: number;
  fixedBuffers: string;
  uptime_s: number;
  requests: { io_uring: number; classic: number };
  inflight: number;
  timedOut: number;
  /** Requests refused by the opcode table's check (malformed: answered EIO or dropped). */
  malformed: number;
  reactor: { wakeups: number; completions: number; rescues: number; cpu: string; cpuMoves: number };
  kernelNodes: number;
  passthrough: string;
  notifications: { sent: number; failed: number };
  memory: ReturnType<typeof memoryFigures>;
  ops: Record<string, unknown>;
}

/**
 * With reactor Workers over io_uring, how long the main thread lets FORGETs gather after reading
 * some (DevTransport.forgetBatchMs): an unlink's FORGET woke it once per unlink, ~10 µs of daemon
 * CPU each (docs/benchmarks.md). `FURING_FORGET_BATCH_MS` overrides it (0: read each at once).
 */
export const FORGET_BATCH_MS = Number(process.env.FURING_FORGET_BATCH_MS ?? 2);

/** At unmount, how long the plugin's unsettled ops may keep their generation from being destroyed. */
export const DESTROY_GRACE_MS = 2000;

/** RSS and JS heap figures of this process (status, leak checks). */
function memoryFigures(): { rss_kib: number; heap_kib: number; heap_objects: number } {
  const h = heapStats();
  return { rss_kib: Math.round(process.memoryUsage.rss() / 1024), heap_kib: Math.round(h.heapSize / 1024), heap_objects: h.objectCount };
}

export class Session {
  readonly dispatcher: Dispatcher;
  private reactor!: Reactor;
  private dev!: DevTransport;
  private uring: UringTransport | null = null;
  /** Available once INIT is answered. */
  notifier: KernelNotifier | null = null;
  /** Kernel passthrough negotiated. */
  passthrough = false;
  private backing: BackingFiles | null = null;
  /** Extra status fields (the plugin host's generation and reloads). */
  extraStatus: () => Record<string, unknown> = () => ({});
  private fd = -1;
  private state: "starting" | "serving" | "unmounting" | "closed" = "starting";
  private transportReason = "";
  private readonly started = performance.now();
  private signals = 0;
  private finish!: (code: number) => void;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  /** Resolves when INIT is answered and the transport is serving. */
  readonly ready: Promise<void>;
  /** Resolves with the exit code when the mount is gone. */
  readonly done: Promise<number>;

  /** With reactor Workers: the node counts every reactor shares. */
  private readonly sharedCounts: SharedCounts | null;

  constructor(private readonly cfg: SessionConfig) {
    this.sharedCounts = cfg.nodeCounts === undefined ? null : new SharedCounts(cfg.nodeCounts);
    this.dispatcher = new Dispatcher({ ...dispatchConfig(cfg.options, cfg.debug, cfg.log, cfg.pool !== undefined), sharedCounts: cfg.nodeCounts, stacks: cfg.stacks }, cfg.fs);
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.done = new Promise((res) => (this.finish = res));
  }

  /**
   * Open /dev/fuse, mount, and start serving. Resolves once mounted (INIT may still be pending).
   * Root mounts with mount(2); a normal user through fusermount3.
   */
  async start(): Promise<void> {
    const o = this.cfg.options;
    const root = process.getuid!() === 0;
    if (root) {
      this.fd = libc.open(cstr("/dev/fuse"), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
      if (this.fd < 0) {
        const e = errno();
        if (e === 2) throw new MountError("/dev/fuse does not exist (load the fuse module: modprobe fuse)");
        throw new MountError(`cannot open /dev/fuse: ${new SyscallError("open", e).message}`);
      }
    } else {
      this.fd = await mountWithFusermount(this.cfg.mountpoint, fusermountOptions(o, this.cfg.pluginName));
      setNonBlocking(this.fd);
    }
    this.reactor = this.cfg.reactor;
    this.reactor.busyPollUs = Number(process.env.FURING_BUSY_POLL_US ?? 0);
    const devSlots = Math.max(4, o.queueDepth);
    this.dev = new DevTransport(this.reactor, this.fd, devSlots, Math.max(8192, o.maxWrite + 4096), (s) => this.onRequest(s), (r) => this.onClosed(r));
    if (root) mountFuse(this.fd, this.cfg.mountpoint, o, this.cfg.pluginName);
    this.reactor.start();
    this.dev.start();
    this.reactor.submit();
  }

  private onRequest(slot: RequestSlot): void {
    if (this.state === "starting" && slot.hdr.getUint32(IN_OPCODE, true) === Op.INIT) {
      const pool = this.cfg.pool;
      if (pool !== undefined) {
        this.handleInitShared(slot, pool).catch((e) => this.readyReject(e as Error));
        return;
      }
      try {
        this.handleInit(slot);
      } catch (e) {
        this.readyReject(e as Error);
      }
      return;
    }
    this.dispatcher.dispatch(slot);
  }

  /** INIT's request, checked: answered EIO and thrown when too short to be one. */
  private decodeInit(slot: RequestSlot): ReturnType<typeof decodeInitIn> {
    if (slot.payloadLen < COMPAT_INIT_IN) {
      this.dev.reply(slot, -5 /* EIO */, 0);
      throw new Error(`the kernel sent a malformed INIT (${slot.payloadLen} bytes after the in-header, fuse_init_in needs at least ${COMPAT_INIT_IN})`);
    }
    const init = decodeInitIn(slot.hdr, IN_HEADER_SIZE);
    // flags2 exists since 7.36 (64-byte fuse_init_in); before, those bytes are not the request's
    if (slot.payloadLen < COMPAT_INIT_IN + 4) init.flags2 = 0;
    return init;
  }

  private handleInit(slot: RequestSlot): void {
    const o = this.cfg.options;
    const init = this.decodeInit(slot);
    const queues = possibleCpus();
    const n = negotiate(init, this.cfg.fs, o, queues);
    this.dispatcher.cfg.minor = n.out.minor;
    this.dispatcher.cfg.setxattrExt = n.setxattrExt;
    this.dispatcher.cfg.killPriv = n.killPriv;
    if (n.passthrough) {
      this.passthrough = true;
      this.backing = new BackingFiles(this.fd, this.cfg.log);
      this.dispatcher.cfg.backing = this.backing;
    }
    if (n.uringOffered && o.ioUring) {
      try {
        this.reactor.followCallers(queues, o.followCpu);
        this.uring = new UringTransport(this.reactor, this.fd, queues, entriesPerQueue(o, queues, n.payloadSize), n.payloadSize, (s) => this.onRequest(s), (r) => this.onClosed(r), 0, o.ringMemory);
        n.out.flags2 |= 1 << (Init.OVER_IO_URING - 32); // INIT_EXT: negotiate() set it (flags2 needs it)
      } catch (e) {
        this.uring = null;
        this.transportReason = `io_uring setup failed: ${(e as Error).message}`;
      }
    } else {
      this.transportReason = o.ioUring ? uringUnavailableReason() : "-o io_uring=off";
    }
    // INIT always travels over /dev/fuse; its reply must reach the kernel before any REGISTER
    const len = encodeInitOut(slot.data, OUT_HEADER_SIZE, n.out);
    this.dev.reply(slot, 0, len);
    const notifier = new KernelNotifier(this.reactor, this.fd, n.out.minor);
    this.notifier = notifier;
    this.dispatcher.cfg.onNotifyReply = (lo, hi, data) => void notifier.onNotifyReply(lo, hi, data);
    const u = this.uring;
    if (u !== null) {
      u.register();
      this.reactor.submit();
      this.transportReason = `${u.queues} queues × ${u.depth} entries, ${u.payloadSize >> 10} KiB payloads (${(u.queues * u.depth * u.payloadSize) >> 20} MiB of -o ring_memory=${o.ringMemory >> 20}M, faulted in as used), fixed buffers registered when file I/O first uses them`;
      this.cfg.log(`furing: transport io_uring (${this.transportReason})`);
    } else {
      this.cfg.log(`furing: transport classic /dev/fuse (${this.transportReason})`);
    }
    this.state = "serving";
    void Promise.resolve(this.cfg.fs.init?.()).then(
      () => this.readyResolve(),
      (e) => this.readyReject(e as Error),
    );
  }

  /** Transport the reactor Workers serve (pool mode). */
  private workersTransport: "io_uring" | "classic" | null = null;
  private workersDepth = 0;

  /**
   * INIT with reactor Workers: each allocates its transport (ring entries of its queues, or a
   * cloned /dev/fuse descriptor) before the reply, which claims FUSE_OVER_IO_URING only when every
   * Worker's entries exist; then the Workers REGISTER them. This thread keeps /dev/fuse: INIT,
   * FORGET/BATCH_FORGET and INTERRUPT arrive here (classic: on any reader).
   */
  private async handleInitShared(slot: RequestSlot, pool: ReactorPool): Promise<void> {
    const o = this.cfg.options;
    const init = this.decodeInit(slot);
    const queues = possibleCpus();
    const n = negotiate(init, this.cfg.fs, o, queues);
    const depth = entriesPerQueue(o, queues, n.payloadSize);
    this.dispatcher.cfg.minor = n.out.minor;
    this.dispatcher.cfg.setxattrExt = n.setxattrExt;
    this.dispatcher.cfg.killPriv = n.killPriv;
    this.dispatcher.cfg.onInterruptMiss = (lo, hi) => pool.interrupt(lo, hi);
    if (n.passthrough) {
      this.passthrough = true;
      this.backing = new BackingFiles(this.fd, this.cfg.log);
      this.dispatcher.cfg.backing = this.backing;
    }
    const plan = {
      fd: this.fd, depth, payloadSize: n.payloadSize, pinBudget: Math.floor(o.ringMemory / queues), devSlots: Math.max(4, o.queueDepth), bufSize: Math.max(8192, o.maxWrite + 4096),
      minor: n.out.minor, setxattrExt: n.setxattrExt, killPriv: n.killPriv, passthrough: n.passthrough, backing: this.backing?.table,
    };
    let mode: "io_uring" | "classic" = "classic";
    if (n.uringOffered && o.ioUring) {
      const failed = await pool.allocate({ ...plan, mode: "io_uring" });
      if (failed === null) {
        mode = "io_uring";
        n.out.flags2 |= 1 << (Init.OVER_IO_URING - 32);
      } else this.transportReason = `io_uring setup failed: ${failed}`;
    } else {
      this.transportReason = o.ioUring ? uringUnavailableReason() : "-o io_uring=off";
    }
    if (mode === "classic") {
      const failed = await pool.allocate({ ...plan, mode: "classic" });
      if (failed !== null) throw new Error(`reactor Workers cannot serve /dev/fuse: ${failed}`);
      // every request now goes to the Workers' cloned descriptors: this thread stays free for
      // what is single (notifications, reloads, status) and learns of the end from them
      this.dev.stopReading();
      pool.onAllClosed = (reason) => this.onClosed(reason);
    }
    const len = encodeInitOut(slot.data, OUT_HEADER_SIZE, n.out);
    this.dev.reply(slot, 0, len);
    const notifier = new KernelNotifier(this.reactor, this.fd, n.out.minor);
    this.notifier = notifier;
    this.dispatcher.cfg.onNotifyReply = (lo, hi, data) => void notifier.onNotifyReply(lo, hi, data);
    this.workersTransport = mode;
    this.workersDepth = depth;
    const queuesOf = (m: ReactorPool["members"][number]) => (mode === "classic" ? "" : ` queue${m.queues > 1 ? `s ${m.firstQueue}-${m.firstQueue + m.queues - 1}` : ` ${m.firstQueue}`}`);
    const layout = pool.members.map((m) => `${m.index}:${queuesOf(m)} on CPU ${m.cpus.join(",") || "any"}`).join("; ");
    if (mode === "io_uring") {
      // only FORGET, BATCH_FORGET and INTERRUPT still come here: let FORGETs batch up
      this.dev.forgetBatchMs = FORGET_BATCH_MS;
      pool.register();
      this.transportReason = `${pool.count} reactor Workers (${layout}), ${depth} entries per queue, ${n.payloadSize >> 10} KiB payloads (${(queues * depth * n.payloadSize) >> 20} MiB of -o ring_memory=${o.ringMemory >> 20}M, faulted in as used)`;
      this.cfg.log(`furing: transport io_uring (${this.transportReason})`);
    } else {
      this.transportReason += `; ${pool.count} reactor Workers each reading a cloned /dev/fuse (${layout}), the main thread none`;
      this.cfg.log(`furing: transport classic /dev/fuse (${this.transportReason})`);
    }
    this.state = "serving";
    await this.cfg.fs.init?.();
    this.readyResolve();
  }

  private onClosed(reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.reactor.stop();
    this.reactor.follower?.release();
    this.readyReject(new Error(`the kernel closed the connection before INIT completed (${reason})`));
    // the Workers' instances first, then every main-thread generation still alive, each once,
    // the serving one last (not cfg.fs: that is the first)
    void Promise.resolve()
      .then(() => this.cfg.pool?.close())
      .catch((e) => this.cfg.log(`furing: closing the reactor Workers failed: ${(e as Error).message}`))
      .then(() => this.dispatcher.destroyGenerations(DESTROY_GRACE_MS))
      .finally(() => this.finish(0));
  }

  /** SIGINT/SIGTERM: unmount; busy → report and keep serving; a second signal detaches lazily. */
  async onSignal(sig: string): Promise<void> {
    if (this.state === "closed") return;
    this.signals++;
    const mnt = this.cfg.mountpoint;
    const lazy = this.signals > 1;
    this.state = "unmounting";
    const r = await unmountInChild(mnt, lazy);
    if (r.ok) {
      this.cfg.log(`furing: ${sig}: ${lazy ? "detached" : "unmounted"} ${mnt}`);
      // the kernel now ends the connection; make sure we exit even if it is slow to tell us
      setTimeout(() => this.onClosed("unmounted"), lazy ? 2 ** 31 - 1 : 5000).unref();
      return;
    }
    if ((this.state as string) === "closed") return;
    this.state = "serving";
    if (r.busy) this.cfg.log(`furing: ${sig}: ${mnt} is busy${describeHolders(mnt)}; still serving. Signal again to detach it lazily.`);
    else this.cfg.log(`furing: ${sig}: unmounting ${mnt} failed: ${r.message}; still serving`);
  }

  /**
   * Drop what earlier code put in the kernel's caches (after a hot reload): every cached dentry
   * (INC_EPOCH) and the attributes and pages of every node the kernel holds (INVAL_INODE).
   */
  invalidateCaches(): void {
    const n = this.notifier;
    if (n === null) return;
    const log = (e: unknown) => this.cfg.log(`furing: cache invalidation after reload: ${(e as Error).message}`);
    n.incEpoch().catch(log);
    const pool = this.cfg.pool;
    if (pool === undefined) {
      for (const ino of [1, ...this.dispatcher.nodes.ids()]) n.invalInode(ino, 0, 0).catch(log);
      return;
    }
    // a node's lookups and FORGETs may have reached different reactors: the shared table has the sums
    for (const ino of [1, ...this.sharedCounts!.heldIds()]) n.invalInode(ino, 0, 0).catch(log);
  }

  /** A full garbage collection on every reactor Worker (the main thread collects its own). */
  async gcWorkers(): Promise<void> {
    await this.cfg.pool?.gc();
  }

  /** `status` with the reactor Workers' figures (their requests, counts and op statistics summed in). */
  async statusWithWorkers(): Promise<SessionStatus & { reactors?: unknown }> {
    const s = this.status();
    const pool = this.cfg.pool;
    if (pool === undefined) return s;
    const answers = await pool.status();
    const workers = answers.filter((w): w is WorkerStatus => !("error" in w));
    const stats = new Stats();
    stats.add(this.dispatcher.stats.raw());
    for (const w of workers) {
      stats.add(w.stats);
      s.requests.io_uring += w.requests.io_uring;
      s.requests.classic += w.requests.classic;
      s.inflight += w.inflight;
      s.timedOut += w.timedOut;
    }
    s.ops = stats.snapshot();
    // the rings are the Workers': theirs is the answer (one value when they agree)
    if (this.workersTransport === "io_uring") s.fixedBuffers = summarizeFixedBuffers(answers);
    const reads = this.workersTransport === "classic" ? "INIT" : "INIT, FORGET and INTERRUPT from /dev/fuse";
    const main = { index: 0, thread: "main", serves: `${reads}, notifications, reloads, status`, requests: this.dev.requests };
    return {
      ...s,
      reactors: {
        count: pool.count,
        main,
        workers: answers.map((a) => {
          if ("error" in a) return a;
          const { stats: raw, ...w } = a;
          return { ...w, ops: Object.fromEntries(Object.entries(statsOf(raw)).map(([k, v]) => [k, v.count])) };
        }),
      },
    };
  }

  status(): SessionStatus {
    const u = this.uring;
    const f = u === null ? null : this.reactor.follower;
    return {
      mountpoint: this.cfg.mountpoint,
      plugin: this.cfg.pluginName,
      pid: process.pid,
      state: this.state,
      transport: this.workersTransport ?? (u !== null && u.failure === null ? "io_uring" : "classic"),
      transportReason: this.transportReason,
      queues: this.workersTransport === "io_uring" ? possibleCpus() : (u?.queues ?? 0),
      depth: this.workersTransport === "io_uring" ? this.workersDepth : (u?.depth ?? 0),
      fixedBuffers: u === null ? "n/a" : (u.fixedBuffers ?? "registered"),
      uptime_s: Math.round((performance.now() - this.started) / 1000),
      requests: { io_uring: u?.requests ?? 0, classic: this.dev.requests },
      inflight: this.dispatcher.inflight,
      timedOut: this.dispatcher.timedOut,
      malformed: this.dispatcher.malformed,
      reactor: {
        wakeups: this.reactor.wakeups,
        completions: this.reactor.completions,
        rescues: this.reactor.rescues,
        cpu: f === null || !f.enabled ? "scheduler" : f.allowed.length < 2 ? `fixed by its affinity mask (CPU ${f.allowed.join(",")})` : f.pinned === -1 ? "follows callers (unpinned)" : `follows callers (on CPU ${f.pinned})`,
        cpuMoves: f?.moves ?? 0,
      },
      kernelNodes: this.sharedCounts?.heldIds().length ?? this.dispatcher.nodes.size,
      passthrough: this.passthrough ? `on (${this.backing?.opened ?? 0} backing files opened)` : "off",
      notifications: { sent: this.notifier?.sent ?? 0, failed: this.notifier?.failed ?? 0 },
      ...this.extraStatus(),
      memory: memoryFigures(),
      ops: this.dispatcher.stats.snapshot(),
    };
  }
}

/** The Workers' fixed-buffer states: the one value when every Worker reports it, else each Worker's. */
export function summarizeFixedBuffers(answers: ({ index: number; fixedBuffers?: string } | { index: number; error: string })[]): string {
  const each = answers.map((a) => ({ index: a.index, v: "error" in a ? "no answer" : (a.fixedBuffers ?? "n/a") }));
  if (each.length > 0 && each.every((e) => e.v === each[0]!.v)) return each[0]!.v;
  return each.map((e) => `Worker ${e.index}: ${e.v}`).join("; ");
}

function statsOf(raw: ReturnType<Stats["raw"]>): ReturnType<Stats["snapshot"]> {
  const st = new Stats();
  st.add(raw);
  return st.snapshot();
}
