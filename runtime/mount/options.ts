/**
 * Mount options in libfuse's vocabulary (`-o a,b=c`). Unknown options and bad values are usage
 * errors that list what is valid.
 */
import type { AtimeMode } from "../api/types.ts";
import { MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY, MS_NOATIME, MS_NODIRATIME, MS_SYNCHRONOUS, MS_DIRSYNC } from "../ffi/libc.ts";

export interface MountOptions {
  allowOther: boolean;
  allowRoot: boolean;
  defaultPermissions: boolean;
  /** Seconds (libfuse high-level defaults: 1, 1, 0). */
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  /** FOPEN_DIRECT_IO on every open. */
  directIo: boolean;
  /** FOPEN_KEEP_CACHE on every open. */
  kernelCache: boolean;
  /** Use FUSE-over-io_uring when the kernel offers it. */
  ioUring: boolean;
  /** Ring entries per queue (at most: `ringMemory` may allow fewer). */
  queueDepth: number;
  /**
   * Bytes of io_uring entry payload memory per mount, over every queue: entries per queue are
   * what fits (at least 1: every possible CPU's queue needs one or the mount hangs), and when even
   * one entry per queue does not fit, max_write shrinks (down to 128 KiB) so it does.
   */
  ringMemory: number;
  /** Move the reactor thread to the CPU whose io_uring queue carries most requests. */
  followCpu: boolean;
  /**
   * Reactor Workers for plugins with `concurrency: "shared"` (0: the main thread serves every
   * queue, as for single plugins; undefined: the default, {@link defaultReactorCount}).
   */
  reactors: number | undefined;
  /**
   * Reactor Workers run in the SCHED_IDLE class, under a starvation guard (reactor/sched-class.ts),
   * so a caller woken by a reply stays on its CPU.
   */
  schedIdle: boolean;
  /** Seconds before an unsettled op is answered ETIMEDOUT (0: never). */
  opTimeout: number;
  /** FUSE_REQUEST_TIMEOUT seconds (0: off); on expiry the kernel aborts the whole connection. */
  requestTimeout: number;
  /** Kernel write-back caching of writes (FUSE_WRITEBACK_CACHE). */
  writebackCache: boolean;
  /** Unmount when the daemon dies, even by SIGKILL. */
  autoUnmount: boolean;
  /** Offer kernel passthrough (FUSE_PASSTHROUGH) to the plugin when the kernel and privileges allow. */
  passthrough: boolean;
  fsname: string | undefined;
  subtype: string | undefined;
  maxRead: number | undefined;
  maxWrite: number;
  /** MS_* flags for mount(2). */
  mountFlags: number;
  /** Access-time mode, for the plugin (the kernel leaves atime to FUSE servers): from the flags, as the kernel derives it. */
  atime: AtimeMode;
  /** nodiratime: directories' atime never changes. */
  nodiratime: boolean;
  /** Options accepted for fstab compatibility but without effect here, kept for `status`. */
  ignored: string[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function defaultMountOptions(): MountOptions {
  return {
    allowOther: false, allowRoot: false, defaultPermissions: true, entryTimeout: 1, attrTimeout: 1,
    negativeTimeout: 0, directIo: false, kernelCache: false, ioUring: true, queueDepth: 8, ringMemory: DEFAULT_RING_MEMORY, followCpu: true, reactors: undefined, schedIdle: true, passthrough: true, writebackCache: false, autoUnmount: false, opTimeout: 0, requestTimeout: 0,
    fsname: undefined, subtype: undefined, maxRead: undefined, maxWrite: 1 << 20,
    mountFlags: MS_NOSUID | MS_NODEV, atime: "relatime", nodiratime: false, ignored: [],
  };
}

/** Default `-o ring_memory`: 8 entries of 1 MiB for each of 8 queues. */
export const DEFAULT_RING_MEMORY = 64 << 20;

/** Entries per queue for `queues` queues of `payloadSize`-byte entries within `o.ringMemory` (≥ 1). */
export function entriesPerQueue(o: MountOptions, queues: number, payloadSize: number): number {
  return Math.max(1, Math.min(o.queueDepth, Math.floor(o.ringMemory / (queues * payloadSize))));
}

/** Cap of the default Worker count (each Worker is a JS heap and a plugin instance). */
export const MAX_DEFAULT_REACTORS = 8;

/**
 * How many reactor Workers serve a shared plugin: `-o reactors=N`, else one per online CPU up to
 * {@link MAX_DEFAULT_REACTORS}; never more than there are queues (possible CPUs).
 */
export function reactorCount(o: MountOptions, onlineCpus: number, queues: number): number {
  const want = o.reactors ?? Math.min(onlineCpus, MAX_DEFAULT_REACTORS);
  return Math.min(want, queues);
}

type Setter = (o: MountOptions, value: string | undefined, name: string) => void;

const flag = (fn: (o: MountOptions) => void): Setter => (o, v, name) => {
  if (v !== undefined) throw new UsageError(`option '${name}' takes no value`);
  fn(o);
};
const seconds = (key: "entryTimeout" | "attrTimeout" | "negativeTimeout"): Setter => (o, v, name) => {
  const n = v === undefined || v === "" ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1e9) throw new UsageError(`option '${name}' needs a number of seconds ≥ 0 (got ${JSON.stringify(v ?? "")})`);
  o[key] = n;
};
const intIn = (min: number, max: number, set: (o: MountOptions, n: number) => void): Setter => (o, v, name) => {
  const n = v === undefined || v === "" ? NaN : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`option '${name}' needs an integer in ${min}..${max} (got ${JSON.stringify(v ?? "")})`);
  set(o, n);
};
const bytes = (min: number, set: (o: MountOptions, n: number) => void): Setter => (o, v, name) => {
  const m = /^(\d+)([KMG]?)$/i.exec(v ?? "");
  const n = m === null ? NaN : Number(m[1]) * 1024 ** " KMG".indexOf((m[2] || " ").toUpperCase());
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`option '${name}' needs a size of at least ${min >> 10}K, like 64M (got ${JSON.stringify(v ?? "")})`);
  set(o, n);
};
const str = (set: (o: MountOptions, s: string) => void): Setter => (o, v, name) => {
  if (v === undefined || v === "" || /[,\s]/.test(v)) throw new UsageError(`option '${name}' needs a value without spaces or commas`);
  set(o, v);
};
const msFlag = (set: number, clear = 0): Setter => flag((o) => {
  o.mountFlags = (o.mountFlags | set) & ~clear;
});
/** MS_STRICTATIME: the mount shows (and, for kernel filesystems, is) strictatime, not relatime. */
const MS_STRICTATIME = 1 << 24;
/**
 * An atime flag; the mode follows from the flags as the kernel derives it (path_mount):
 * strictatime overrides noatime, noatime overrides relatime (the default), whatever the order.
 */
const atimeFlag = (set: number, clear: number): Setter => flag((o) => {
  o.mountFlags = (o.mountFlags | set) & ~clear;
  o.atime = (o.mountFlags & MS_STRICTATIME) !== 0 ? "strictatime" : (o.mountFlags & MS_NOATIME) !== 0 ? "noatime" : "relatime";
});
const accepted: Setter = (o, v, name) => {
  o.ignored.push(v === undefined ? name : `${name}=${v}`);
};

const OPTIONS: Record<string, { set: Setter; help: string }> = {
  allow_other: { set: flag((o) => (o.allowOther = true)), help: "let other users access the mount" },
  allow_root: { set: flag((o) => (o.allowRoot = true)), help: "let root access the mount too" },
  default_permissions: { set: flag((o) => (o.defaultPermissions = true)), help: "kernel checks permissions (default)" },
  no_default_permissions: { set: flag((o) => (o.defaultPermissions = false)), help: "the filesystem checks permissions (access op)" },
  entry_timeout: { set: seconds("entryTimeout"), help: "=SEC name cache timeout (default 1)" },
  attr_timeout: { set: seconds("attrTimeout"), help: "=SEC attribute cache timeout (default 1)" },
  negative_timeout: { set: seconds("negativeTimeout"), help: "=SEC cache of failed lookups (default 0)" },
  direct_io: { set: flag((o) => (o.directIo = true)), help: "bypass the page cache for every file" },
  kernel_cache: { set: flag((o) => (o.kernelCache = true)), help: "keep the page cache across opens" },
  io_uring: {
    set: (o, v, name) => {
      if (v === undefined || v === "on") o.ioUring = true;
      else if (v === "off") o.ioUring = false;
      else throw new UsageError(`option '${name}' takes 'on' or 'off' (got ${JSON.stringify(v)})`);
    },
    help: "=on|off FUSE-over-io_uring transport (default on when the kernel offers it)",
  },
  io_uring_q_depth: { set: intIn(1, 1024, (o, n) => (o.queueDepth = n)), help: "=N ring entries per CPU queue, at most (default 8)" },
  ring_memory: { set: bytes(64 << 10, (o, n) => (o.ringMemory = n)), help: `=SIZE io_uring payload memory per mount over all CPU queues, faulted in as used (default ${DEFAULT_RING_MEMORY >> 20}M): fewer entries per queue (at least 1) and then a smaller max_write when many CPUs are possible` },
  follow_cpu: { set: flag((o) => (o.followCpu = true)), help: "io_uring: run the reactor on the CPU its callers run on (default)" },
  reactors: { set: intIn(0, 1024, (o, n) => (o.reactors = n)), help: `=N reactor Workers serving the CPU queues of a plugin with concurrency "shared" (default: one per online CPU, at most ${MAX_DEFAULT_REACTORS}; 0: the main thread serves everything)` },
  sched_idle: { set: flag((o) => (o.schedIdle = true)), help: "reactor Workers run in the SCHED_IDLE class, moved to the normal class while another task keeps their CPU from them, so callers stay on their CPU (default, with CAP_SYS_NICE or RLIMIT_NICE ≥ 20)" },
  no_sched_idle: { set: flag((o) => (o.schedIdle = false)), help: "reactor Workers run in the normal scheduling class" },
  no_follow_cpu: { set: flag((o) => (o.followCpu = false)), help: "io_uring: leave the reactor's CPU to the scheduler" },
  op_timeout: {
    set: (o, v, name) => {
      const n = v === undefined || v === "" ? NaN : Number(v);
      if (!Number.isFinite(n) || n < 0) throw new UsageError(`option '${name}' needs a number of seconds ≥ 0 (got ${JSON.stringify(v ?? "")})`);
      o.opTimeout = n;
    },
    help: "=SEC answer ETIMEDOUT when the plugin has not settled a request in SEC seconds (default 0: never)",
  },
  request_timeout: {
    set: intIn(0, 65535, (o, n) => (o.requestTimeout = n)),
    help: "=SEC kernel request timeout (FUSE_REQUEST_TIMEOUT): when ANY request waits longer, the KERNEL ABORTS THE WHOLE CONNECTION (the mount dies). Off by default",
  },
  writeback_cache: { set: flag((o) => (o.writebackCache = true)), help: "let the kernel cache writes (write-back)" },
  no_writeback_cache: { set: flag((o) => (o.writebackCache = false)), help: "write-through (default)" },
  auto_unmount: { set: flag((o) => (o.autoUnmount = true)), help: "unmount when the daemon dies, even killed" },
  passthrough: { set: flag((o) => (o.passthrough = true)), help: "kernel passthrough of open files when the plugin asks (default)" },
  no_passthrough: { set: flag((o) => (o.passthrough = false)), help: "never use kernel passthrough" },
  ro: { set: msFlag(MS_RDONLY), help: "read-only mount" },
  rw: { set: msFlag(0, MS_RDONLY), help: "read-write mount (default)" },
  fsname: { set: str((o, s) => (o.fsname = s)), help: "=NAME source shown in /proc/mounts" },
  subtype: { set: str((o, s) => (o.subtype = s)), help: "=TYPE filesystem type shown as fuse.TYPE" },
  max_read: { set: intIn(4096, 1 << 30, (o, n) => (o.maxRead = n)), help: "=N largest READ request" },
  max_write: { set: intIn(4096, 1 << 20, (o, n) => (o.maxWrite = n)), help: "=N largest WRITE request (default 1 MiB)" },
  nosuid: { set: msFlag(MS_NOSUID), help: "ignore setuid bits (default)" },
  suid: { set: msFlag(0, MS_NOSUID), help: "honour setuid bits (root only)" },
  nodev: { set: msFlag(MS_NODEV), help: "no device files (default)" },
  dev: { set: msFlag(0, MS_NODEV), help: "allow device files (root only)" },
  noexec: { set: msFlag(MS_NOEXEC), help: "no program execution" },
  exec: { set: msFlag(0, MS_NOEXEC), help: "allow program execution (default)" },
  noatime: { set: atimeFlag(MS_NOATIME, 0), help: "do not update access times (the plugin is told: ctx.atime)" },
  atime: { set: atimeFlag(0, MS_NOATIME), help: "update access times (undoes noatime)" },
  relatime: { set: atimeFlag(0, 0), help: "update access times when older than the last change or a day old (default; noatime overrides it)" },
  strictatime: { set: atimeFlag(MS_STRICTATIME, 0), help: "update access times on every access (overrides noatime)" },
  nodiratime: { set: flag((o) => ((o.nodiratime = true), (o.mountFlags |= MS_NODIRATIME))), help: "do not update directory access times" },
  sync: { set: msFlag(MS_SYNCHRONOUS), help: "synchronous writes" },
  async: { set: msFlag(0, MS_SYNCHRONOUS), help: "asynchronous writes (default)" },
  dirsync: { set: msFlag(MS_DIRSYNC), help: "synchronous directory changes" },
  defaults: { set: accepted, help: "accepted (fstab)" },
  auto: { set: accepted, help: "accepted (fstab)" },
  noauto: { set: accepted, help: "accepted (fstab)" },
  user: { set: accepted, help: "accepted (fstab)" },
  nouser: { set: accepted, help: "accepted (fstab)" },
  users: { set: accepted, help: "accepted (fstab)" },
  _netdev: { set: accepted, help: "accepted (fstab)" },
  nofail: { set: accepted, help: "accepted (fstab)" },
};

/** One line per valid option, for usage errors and --help. */
export function optionHelp(): string {
  return Object.entries(OPTIONS).map(([k, v]) => `  ${(k + (v.help.startsWith("=") ? v.help.split(" ")[0] : "")).padEnd(26)} ${v.help.replace(/^=\S+ /, "")}`).join("\n");
}

/** Apply comma-separated option strings (as given to -o, in order) onto `into`. */
export function parseMountOptions(lists: string[], into: MountOptions = defaultMountOptions()): MountOptions {
  for (const list of lists) {
    for (const item of list.split(",")) {
      if (item === "") continue;
      const eq = item.indexOf("=");
      const name = eq < 0 ? item : item.slice(0, eq);
      const value = eq < 0 ? undefined : item.slice(eq + 1);
      const opt = OPTIONS[name];
      if (opt === undefined) throw new UsageError(`unknown mount option '${name}'. Valid options:\n${optionHelp()}`);
      opt.set(into, value, name);
    }
  }
  return into;
}
