/**
 * A reactor Worker (see reactors.ts): pinned to its queue group's CPUs, it owns a Reactor, its own
 * transport slots (io_uring entries of its queues, or a cloned /dev/fuse descriptor in classic
 * mode), a Dispatcher and its plugin instance. It fills its own SQEs and reaps its own CQEs and
 * sleeps on its ring's eventfd; nothing here waits on the mount. What must stay single goes to the
 * main thread: notifications, NOTIFY_REPLY data, INTERRUPTs of requests it does not hold.
 */
import { parentPort, workerData } from "node:worker_threads";
import { importBundle, bundlesInRegistry } from "./bundle.ts"; // also binds `furing` and `furing/sys` for bundled plugins on this thread
import type { Notifier } from "../api/types.ts";
import { FuseError } from "../api/errno.ts";
import { pluginFromModule, parsePluginOptions, instantiate } from "./loader.ts";
import { EMBEDDED_PLUGINS } from "./builtin.ts";
import { pluginContext } from "./context.ts";
import { registerSourceMap, unregisterSourceMap, sourceMapCount, mapStack, SOURCE_MAPPED_STACKS } from "./sourcemap.ts";
import { Reactor } from "../reactor/reactor.ts";
import { RingFileIO } from "../io/file-io.ts";
import { Dispatcher, Generation, destroyFilesystem } from "../dispatch/dispatcher.ts";
import { UringTransport } from "../transport/fuse-ring.ts";
import { DevTransport } from "../transport/fuse-dev.ts";
import { pinThreadTo } from "../reactor/affinity.ts";
import { threadId } from "../reactor/sched-class.ts";
import { libc, errno, cstr, SyscallError, O_RDWR, O_CLOEXEC, O_NONBLOCK } from "../ffi/libc.ts";
import { Arena } from "../ffi/memory.ts";
import { BackingFiles } from "../session/backing.ts";
import { dispatchConfig, DESTROY_GRACE_MS } from "../session/session.ts";
import type { WorkerSetup, ToWorker, FromWorker, TransportPlan, WorkerStatus } from "../session/reactors.ts";

/** ioctl FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t): attach a new /dev/fuse descriptor to a session. */
const FUSE_DEV_IOC_CLONE = 0x8004e500;

const setup = workerData as WorkerSetup;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const log = (line: string) => console.error(line);
const prefix = `reactor ${setup.index}`;

if (setup.cpus.length > 0 && !pinThreadTo(setup.cpus)) log(`furing: ${prefix}: cannot pin to CPU ${setup.cpus.join(",")}: ${new SyscallError("sched_setaffinity", errno()).message}`);

const reactor = new Reactor(setup.queues * setup.options.queueDepth + Math.max(4, setup.options.queueDepth) + 64);
const fileIO = new RingFileIO(reactor);
// what the main thread's starvation guard reads (session/reactors.ts, reactor/sched-class.ts)
const serving = new SharedArrayBuffer(8);
reactor.servingFlag = new Int32Array(serving);
reactor.owes = () => ((dispatcher as Dispatcher | undefined)?.inflight ?? 0) > 0;

/** Regions from the main thread; a key keeps its first buffer object here across generations. */
const shared = new Map<string, SharedArrayBuffer>();
const adopt = (m: Map<string, SharedArrayBuffer>) => {
  for (const [k, v] of m) if (!shared.has(k)) shared.set(k, v);
};
const kept = new Map<string, unknown>();
let passthrough = false;

/** Notifications travel to the main thread, which owns the kernel notifier; results come back. */
let notifySeq = 0;
const notifyWaiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const forward = (method: keyof Notifier) => (...args: unknown[]) =>
  new Promise<never>((resolve, reject) => {
    const id = ++notifySeq;
    notifyWaiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    post({ t: "notify", id, method, args });
  });
const notify: Notifier = {
  invalInode: forward("invalInode"),
  invalEntry: forward("invalEntry"),
  delete: forward("delete"),
  store: forward("store"),
  retrieve: forward("retrieve"),
};

/** Generated file of each generation alive on this Worker (its source map goes when it is destroyed). */
const files = new Map<Generation, string>();

/** Destroy a generation of this Worker, then forget its source map (its error lines were logged by then). */
async function destroyGeneration(g: Generation): Promise<void> {
  await g.destroy(log);
  const file = files.get(g);
  files.delete(g);
  if (file !== undefined) unregisterSourceMap(file);
}

/** Import generation `n` and run its setup for this Worker (a failed setup runs its ctx.onDestroy releases). */
async function loadGeneration(n: number, file: string): Promise<Generation> {
  // a built-in of the furing binary (entry "embedded:NAME"): its module is embedded, no file
  const builtin = setup.entry.startsWith("embedded:") ? EMBEDDED_PLUGINS[setup.entry.slice("embedded:".length)] : undefined;
  if (builtin === undefined) registerSourceMap(file, await Bun.file(file).text());
  const plugin = pluginFromModule(await (builtin?.() ?? importBundle(file)), setup.entry);
  const { ctx, cleanups } = pluginContext({
    options: parsePluginOptions(setup.name, plugin.options, setup.pluginArgs),
    mountpoint: setup.mountpoint,
    generation: n,
    notify,
    io: fileIO,
    passthrough: () => passthrough,
    isOpen: (ino: number) => dispatcher?.isOpen(ino) ?? false,
    logName: `${setup.name} ${prefix}`,
    log,
    kept,
    regions: shared,
    reactor: { index: setup.index, count: setup.count, primary: false },
    atime: setup.options.atime,
    nodiratime: setup.options.nodiratime,
  });
  try {
    const g = new Generation(n, await instantiate({ name: setup.name, entry: setup.entry, plugin }, ctx));
    g.cleanups.push(...cleanups);
    files.set(g, file);
    return g;
  } catch (e) {
    await destroyFilesystem(null, cleanups, `the failed setup of generation ${n} on ${prefix}`, log);
    throw e;
  }
}

let dispatcher: Dispatcher;
reactor.start(); // here: its first drain asks owes(), which reads `dispatcher`
let uring: UringTransport | null = null;
let dev: DevTransport | null = null;
const prepared = new Map<number, Generation>();

function describe(e: unknown): string {
  return mapStack((e as Error)?.message ?? String(e));
}

/** Allocate this Worker's transport for what INIT negotiated. */
function allocate(plan: TransportPlan): void {
  const cfg = dispatcher.cfg;
  cfg.minor = plan.minor;
  cfg.setxattrExt = plan.setxattrExt;
  cfg.killPriv = plan.killPriv;
  passthrough = plan.passthrough;
  if (plan.passthrough) cfg.backing = new BackingFiles(plan.fd, log, plan.backing);
  const sink = (s: Parameters<Dispatcher["dispatch"]>[0]) => dispatcher.dispatch(s);
  const closed = (reason: string) => post({ t: "closed", reason });
  if (plan.mode === "io_uring") {
    reactor.pinnedCpu = setup.cpus.length === 1 ? setup.cpus[0]! : -1; // its callers there get the yield
    uring = new UringTransport(reactor, plan.fd, setup.queues, plan.depth, plan.payloadSize, sink, closed, setup.firstQueue, plan.pinBudget * setup.queues);
    return;
  }
  // io_uring setup failed on some Worker: entries allocated here stay unused (never registered)
  uring = null;
  // classic: a descriptor of our own on the same session, read by this Worker alone (libfuse's
  // multi-threaded loop); the kernel hands each request to one reader
  const fd = libc.open(cstr("/dev/fuse"), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) throw new SyscallError("open /dev/fuse", errno());
  const arg = new Arena(8);
  new DataView(arg.region.buffer).setUint32(0, plan.fd, true);
  if (libc.ioctl(fd, FUSE_DEV_IOC_CLONE, arg.region.ptr as never) !== 0) {
    const e = errno();
    libc.close(fd);
    throw new SyscallError("ioctl FUSE_DEV_IOC_CLONE", e);
  }
  dev = new DevTransport(reactor, fd, plan.devSlots, plan.bufSize, sink, closed);
  dev.start();
  reactor.submit();
}

function status(): WorkerStatus {
  return {
    index: setup.index,
    cpus: setup.cpus,
    queues: setup.queues === 1 ? `${setup.firstQueue}` : `${setup.firstQueue}-${setup.firstQueue + setup.queues - 1}`,
    transport: uring !== null ? "io_uring" : dev !== null ? "classic" : "none",
    fixedBuffers: uring === null ? "n/a" : (uring.fixedBuffers ?? "registered"),
    generation: dispatcher.gen.id,
    requests: { io_uring: uring?.requests ?? 0, classic: dev?.requests ?? 0 },
    inflight: dispatcher.inflight,
    timedOut: dispatcher.timedOut,
    reactor: { wakeups: reactor.wakeups, completions: reactor.completions, rescues: reactor.rescues },
    memory: { heap_kib: Math.round(process.memoryUsage().heapUsed / 1024) },
    generationsHeld: { modules: bundlesInRegistry(), sourceMaps: sourceMapCount() },
    stats: dispatcher.stats.raw(),
  };
}

async function onMessage(msg: ToWorker): Promise<void> {
  switch (msg.t) {
    case "allocate":
      try {
        allocate(msg.plan);
        post({ t: "reply", id: msg.id });
      } catch (e) {
        post({ t: "reply", id: msg.id, error: describe(e) });
      }
      return;
    case "register":
      uring?.register();
      reactor.submit();
      return;
    case "interrupt":
      dispatcher.interruptUnique(msg.lo, msg.hi);
      return;
    case "prepare":
      adopt(msg.shared);
      try {
        prepared.set(msg.n, await loadGeneration(msg.n, msg.file));
        post({ t: "reply", id: msg.id });
      } catch (e) {
        post({ t: "reply", id: msg.id, error: describe(e) });
        unregisterSourceMap(msg.file); // mapped into the reply first
      }
      return;
    case "commit": {
      const g = prepared.get(msg.n);
      if (g === undefined) return;
      prepared.delete(msg.n);
      dispatcher.swap(g, (old) => void destroyGeneration(old));
      return;
    }
    case "discard": {
      const g = prepared.get(msg.n);
      prepared.delete(msg.n);
      if (g !== undefined) void destroyGeneration(g);
      return;
    }
    case "status":
      post({ t: "reply", id: msg.id, value: status() });
      return;
    case "gc":
      Bun.gc(true);
      post({ t: "reply", id: msg.id });
      return;
    case "close":
      reactor.stop();
      dispatcher.close();
      // every generation still alive on this Worker, each once, the serving one last
      await dispatcher.destroyGenerations(DESTROY_GRACE_MS);
      post({ t: "reply", id: msg.id });
      return;
    case "notified": {
      const p = notifyWaiting.get(msg.id);
      if (p === undefined) return;
      notifyWaiting.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(msg.errno !== undefined ? new FuseError(msg.errno, msg.error) : new Error(msg.error));
      return;
    }
  }
}

// a plugin's timer or stray promise failing must not take the reactor down
const stray = (kind: string) => (e: unknown) => log(`furing: ${prefix}: ${kind} outside any request (a plugin timer or stray promise?), still serving: ${e instanceof Error ? mapStack(e.stack ?? e.message) : String(e)}`);
process.on("uncaughtException", stray("uncaught exception"));
process.on("unhandledRejection", stray("unhandled rejection"));

try {
  adopt(setup.shared);
  const first = await loadGeneration(setup.generation, setup.file);
  const cfg = dispatchConfig(setup.options, setup.debug, log, true);
  cfg.sharedCounts = setup.nodeCounts;
  cfg.stacks = SOURCE_MAPPED_STACKS;
  cfg.onInterruptMiss = (lo, hi) => post({ t: "interrupt", lo, hi });
  cfg.onNotifyReply = (lo, hi, data) => post({ t: "notifyReply", lo, hi, data: data.slice() });
  dispatcher = new Dispatcher(cfg, first.fs);
  dispatcher.gen = first;
  port.on("message", (m: ToWorker) => void onMessage(m));
  post({ t: "started", tid: threadId(), serving, cq: reactor.ring.cqAddresses });
} catch (e) {
  post({ t: "failed", error: describe(e) });
}
