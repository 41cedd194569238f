/**
 * The whole state of one passthrough mount, in `ctx.shared` regions that every reactor sees and
 * that outlive the code (hot reload): the source's root descriptor, the node table and the table
 * of open files and directories. Each thread and generation wraps them in its own NodeTable /
 * Handles (nodes.ts, handles.ts), so node ids and file handles stay valid everywhere. The
 * descriptor cache is each thread's own (nodes.ts).
 *
 * Opening the source (first generation only) also validates `--source`: it must exist, be a
 * directory, and neither be the mountpoint nor lie inside it.
 */
import { statSync, realpathSync, lstatSync } from "node:fs";
import { resolve, dirname, basename } from "node:path";
import * as sys from "furing/sys";
import { Mutex, NumberMap, SharedHeap, readUnits, writeUnits } from "furing";

export interface PassthroughOptions {
  source: string;
  "fd-cache": number;
  "file-handles": boolean;
  "export-nodes"?: number;
}

const MAGIC = 0x50415353; // "PASS"
/** Layout version of the regions; a generation that finds another refuses to serve them. */
export const LAYOUT = 3;
// meta: Int32 words 0..3 (lock, magic, layout), then Float64 slots:
const M_ROOT_FD = 2, M_ROOT_DEV = 3, M_ROOT_INO = 4, M_USE_HANDLES = 5, M_ROOT_MOUNT_ID = 6, M_DAEMON_UID = 7, M_DAEMON_GID = 8;
const M_FD_CACHE_MAX = 9, M_HIDDEN_DEV = 10, M_HIDDEN_INO = 11, M_HIDDEN_NAME = 12, M_SOURCE = 13, M_REASON = 14;
export const M_NEXT_SYNTHETIC = 15, M_NEXT_FH = 16, M_NODES = 17, M_IDENTITY = 18, M_HANDLES = 19, M_NODE_GEN = 20;
const M_STATS = 21; // reopenByHandle, reopenByName, evictions, stale
/** Nodes dropped so far, and a ring of the last DROP_RING dropped ids (nodes.ts). */
export const M_DROPS = 25, M_DROP_RING = 26;
/**
 * Tables made on first use (0 until then), NumberMaps in the heap: node id → the O_PATH descriptor
 * pinned for a node with no name in the source (an O_TMPFILE file not linked yet: neither a file
 * handle nor a name can re-open it; descriptors are process-wide, so any thread may use it), and
 * node id → its open files the daemon serves under kernel passthrough (handles.ts).
 */
export const M_UNNAMED = 27, M_DAEMON_IO = 28;
/**
 * Export support (nodes.ts): node id → record of a node the kernel forgot but a file handle may
 * still name (a NumberMap), a ring of (id, retire number) pairs in retiring order, its size (the
 * bound) and the count of retirements so far.
 */
export const M_RETIRED = 29, M_RETIRED_RING = 30, M_RETIRED_MAX = 31, M_RETIRES = 32;
export const DROP_RING = 256;
const META_BYTES = 4096;

/** The counters kept for tests and diagnostics, in shared memory. */
class Stats {
  constructor(private readonly m: Float64Array) {}
  get reopenByHandle(): number { return this.m[M_STATS] as number; }
  set reopenByHandle(v: number) { this.m[M_STATS] = v; }
  get reopenByName(): number { return this.m[M_STATS + 1] as number; }
  set reopenByName(v: number) { this.m[M_STATS + 1] = v; }
  get evictions(): number { return this.m[M_STATS + 2] as number; }
  set evictions(v: number) { this.m[M_STATS + 2] = v; }
  get stale(): number { return this.m[M_STATS + 3] as number; }
  set stale(v: number) { this.m[M_STATS + 3] = v; }
}

/**
 * One thread's handle on a passthrough mount's shared state (regions "passthrough.meta" and
 * "passthrough.heap"): the source's root descriptor and identity (descriptors are process-wide),
 * the node table, the identity index and the open files, plus the lock every op holds. The
 * tables live in a SharedHeap (nodes.ts, handles.ts); node ids and file handles stay valid across
 * hot reloads and on every reactor.
 */
export class PassthroughState {
  readonly kind = "passthrough";
  readonly version = LAYOUT;
  readonly lock: Mutex;
  readonly meta: Float64Array;
  readonly heap: SharedHeap;
  /** Map objects to work on tables in the heap (see NumberMap.at). */
  readonly map: NumberMap;
  readonly stats: Stats;
  /** Real path of the source directory. */
  readonly source: string;
  /** Why file handles are not used ("" when they are). */
  readonly handlesReason: string;
  /**
   * The mountpoint, when it lies inside the source: its parent directory's identity and its name.
   * Looking it up would make the daemon stat its own mount and wait on itself, so it is hidden.
   */
  readonly hidden: { dev: number; ino: number; name: string } | null;

  constructor(regions: { meta: SharedArrayBuffer; heap: SharedArrayBuffer }) {
    const w = new Int32Array(regions.meta);
    if (w[1] !== MAGIC) throw new Error("passthrough: the shared state is not a passthrough mount's");
    if (w[2] !== LAYOUT) throw new Error(`passthrough: the shared state has an incompatible layout (${w[2]}; this code reads ${LAYOUT}); remount to upgrade`);
    this.lock = new Mutex(w, 0);
    this.meta = new Float64Array(regions.meta);
    this.heap = new SharedHeap(regions.heap);
    this.map = new NumberMap(this.heap);
    this.stats = new Stats(this.meta);
    const m = this.meta;
    this.source = this.str(M_SOURCE);
    this.handlesReason = this.str(M_REASON);
    this.hidden = m[M_HIDDEN_NAME] === 0 ? null : { dev: m[M_HIDDEN_DEV] as number, ino: m[M_HIDDEN_INO] as number, name: this.str(M_HIDDEN_NAME) };
  }

  private str(slot: number): string {
    const p = this.meta[slot] as number;
    return p === 0 ? "" : readUnits(this.heap.u16, p, this.heap.sizeOf(p) >>> 1);
  }

  /**
   * The source root, opened O_RDONLY|O_DIRECTORY (not O_PATH: open_by_handle_at needs a real
   * descriptor for its mount argument). Node 1's descriptor; never closed.
   */
  get rootFd(): number { return this.meta[M_ROOT_FD] as number; }
  /** Device and inode of the source root. */
  get rootDev(): number { return this.meta[M_ROOT_DEV] as number; }
  get rootIno(): number { return this.meta[M_ROOT_INO] as number; }
  /**
   * Nodes are re-opened from file handles (name_to_handle_at / open_by_handle_at: root only, on
   * filesystems that export handles) rather than by parent descriptor and name.
   */
  get useHandles(): boolean { return this.meta[M_USE_HANDLES] === 1; }
  /** Mount id of the source root; only nodes on this mount get file handles. */
  get rootMountId(): number { return this.meta[M_ROOT_MOUNT_ID] as number; }
  /** Effective ids of the daemon: new nodes are handed over to the caller when they differ. */
  get daemonUid(): number { return this.meta[M_DAEMON_UID] as number; }
  get daemonGid(): number { return this.meta[M_DAEMON_GID] as number; }
  /** Bound on the O_PATH descriptors kept open (all threads together). */
  get fdCacheMax(): number { return this.meta[M_FD_CACHE_MAX] as number; }
  /** Next node id for nodes whose inode number cannot serve as their id (>= 2^48). */
  get nextSynthetic(): number { return this.meta[M_NEXT_SYNTHETIC] as number; }
  set nextSynthetic(v: number) { this.meta[M_NEXT_SYNTHETIC] = v; }
  get nextFh(): number { return this.meta[M_NEXT_FH] as number; }
  set nextFh(v: number) { this.meta[M_NEXT_FH] = v; }
  /**
   * Forgotten nodes kept re-findable by node id (0: none). Nonzero only with file handles: the
   * kernel's file handles (open_by_handle_at, NFS) then outlive its inode cache (exportSupport).
   */
  get retiredMax(): number { return this.meta[M_RETIRED_MAX] as number; }
}

/** `ctx.shared`'s signature. */
export type SharedRegions = (key: string, byteLength: number, maxByteLength?: number) => SharedArrayBuffer;

/** First node id not derived from an inode number. */
export const SYNTHETIC_BASE = 2 ** 48;

export function isPassthroughState(v: unknown): v is PassthroughState {
  return v instanceof PassthroughState || (typeof v === "object" && v !== null && (v as PassthroughState).kind === "passthrough" && (v as PassthroughState).version === LAYOUT);
}

function describe(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === "ENOENT") return "does not exist";
  if (code === "EACCES") return "permission denied";
  if (code === "ENOTDIR") return "a path component is not a directory";
  return (e as Error).message;
}

/**
 * This thread's handle on the mount's shared state: the regions from `shared` (ctx.shared) when
 * an earlier run laid them out (a Worker, a later generation), else validate `--source` against
 * the mountpoint, open it and lay them out. The first run comes before the mount exists, so
 * statting the mountpoint here cannot wait on this daemon; later runs touch neither.
 */
export function openSource(opts: PassthroughOptions, mountpoint: string, log: (...a: unknown[]) => void, shared: SharedRegions): PassthroughState {
  const regions = { meta: shared("passthrough.meta", META_BYTES), heap: shared("passthrough.heap", 64 * 1024, 4 * 2 ** 30) };
  if (new Int32Array(regions.meta)[1] !== 0) return new PassthroughState(regions);
  if (typeof opts.source !== "string" || opts.source === "") throw new Error("passthrough needs --source <directory>");
  const given = resolve(opts.source);
  let st;
  try {
    st = statSync(given);
  } catch (e) {
    throw new Error(`--source ${given}: ${describe(e)}`);
  }
  if (!st.isDirectory()) throw new Error(`--source ${given}: not a directory`);
  const real = realpathSync(given);
  let mnt = resolve(mountpoint);
  try {
    mnt = realpathSync(mnt);
  } catch {}
  const inside = (child: string, parent: string) => parent === "/" || child.startsWith(parent + "/");
  if (real === mnt) throw new Error(`--source ${given} is the mountpoint itself (${mnt}): a filesystem cannot mirror itself`);
  if (inside(real, mnt)) throw new Error(`--source ${given} is inside the mountpoint ${mnt}: it would be hidden by the mount`);
  let hidden: { dev: number; ino: number; name: string } | null = null;
  if (inside(mnt, real)) {
    const p = lstatSync(dirname(mnt), { bigint: false });
    hidden = { dev: p.dev, ino: p.ino, name: basename(mnt) };
    log(`the mountpoint ${mnt} is inside --source ${real}: it is left out of listings and looking it up fails with EDEADLK (the daemon would wait on itself)`);
  }

  const rootFd = sys.openat(sys.AT_FDCWD, real, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
  const rs = sys.fstat(rootFd);
  const daemonUid = process.geteuid?.() ?? 0;
  const daemonGid = process.getegid?.() ?? 0;

  // File handles survive renames made behind our back and need no parent chain; they need
  // CAP_DAC_READ_SEARCH (open_by_handle_at) and a filesystem that exports them. Probe once.
  let useHandles = false, handlesReason = "", rootMountId = -1;
  if (opts["file-handles"] === false) handlesReason = "--file-handles=false";
  else if (daemonUid !== 0) handlesReason = "not root (open_by_handle_at needs CAP_DAC_READ_SEARCH)";
  else {
    try {
      const h = sys.name_to_handle_at(rootFd, "", sys.AT_EMPTY_PATH);
      const fd = sys.open_by_handle_at(rootFd, h.handle, sys.O_PATH | sys.O_CLOEXEC);
      const again = sys.fstat(fd);
      sys.close(fd);
      if (again.dev !== rs.dev || again.ino !== rs.ino) throw new Error("the handle opened another file");
      useHandles = true;
      rootMountId = h.mountId;
    } catch (e) {
      handlesReason = `file handles unavailable on ${real}: ${(e as Error).message}`;
    }
  }
  const cacheMax = Math.max(16, Math.min(Math.floor(Number(opts["fd-cache"]) || 4096), 16384));
  const exportNodes = Number(opts["export-nodes"] ?? 65536);
  if (!Number.isInteger(exportNodes) || exportNodes < 0 || exportNodes > 1 << 22) throw new Error(`--export-nodes ${opts["export-nodes"]}: must be an integer from 0 to ${1 << 22}`);
  const retiredMax = useHandles ? exportNodes : 0;
  log(
    `serving ${real}: nodes re-opened ${useHandles ? "from file handles" : `by parent and name (${handlesReason})`}, ` +
      `at most ${cacheMax} cached O_PATH descriptors, ` +
      (retiredMax > 0 ? `file handles of the mount outlive the kernel's cache for the last ${retiredMax} forgotten nodes` : "no export support (it needs file handles and --export-nodes > 0)"),
  );
  const heap = SharedHeap.format(regions.heap);
  const m = new Float64Array(regions.meta);
  const str = (v: string) => {
    const p = heap.alloc(v.length * 2);
    writeUnits(heap.u16, p, v);
    return p;
  };
  m[M_ROOT_FD] = rootFd;
  m[M_ROOT_DEV] = rs.dev;
  m[M_ROOT_INO] = rs.ino;
  m[M_USE_HANDLES] = useHandles ? 1 : 0;
  m[M_ROOT_MOUNT_ID] = rootMountId;
  m[M_DAEMON_UID] = daemonUid;
  m[M_DAEMON_GID] = daemonGid;
  m[M_FD_CACHE_MAX] = cacheMax;
  m[M_SOURCE] = str(real);
  m[M_REASON] = str(handlesReason);
  if (hidden !== null) {
    m[M_HIDDEN_DEV] = hidden.dev;
    m[M_HIDDEN_INO] = hidden.ino;
    m[M_HIDDEN_NAME] = str(hidden.name);
  }
  m[M_NEXT_SYNTHETIC] = SYNTHETIC_BASE;
  m[M_NEXT_FH] = 1;
  const tables = new NumberMap(heap);
  m[M_NODES] = tables.create();
  m[M_IDENTITY] = tables.create();
  m[M_HANDLES] = tables.create();
  m[M_DROP_RING] = heap.calloc(DROP_RING * 8);
  // generations start at a random point, as tmpfs's are random: a file handle kept from an
  // earlier mount of the same source is unlikely to name a node of this one
  m[M_NODE_GEN] = Math.floor(Math.random() * 2 ** 32);
  m[M_RETIRED_MAX] = retiredMax;
  if (retiredMax > 0) {
    m[M_RETIRED] = tables.create();
    m[M_RETIRED_RING] = heap.calloc(retiredMax * 16);
  }
  const w = new Int32Array(regions.meta);
  w[2] = LAYOUT;
  Atomics.store(w, 1, MAGIC);
  return new PassthroughState(regions);
}
