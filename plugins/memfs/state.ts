/**
 * The whole state of one memfs instance lives in three shared regions (`ctx.shared`), the same
 * memory on every reactor Worker and in every generation of the code (hot reload):
 *
 * - "memfs.meta": the namespace lock, the counters and limits, the clock floor, the chunk pool's
 *   lists (see the M_* indexes below).
 * - "memfs.nodes": the node table, one fixed record per slot (nodes.ts).
 * - "memfs.heap": a SharedHeap holding directories, names, symlink targets, extended attributes
 *   and each file's chunk table. File data itself is page memory outside the JS heap (pool.ts),
 *   whose addresses are process-wide.
 *
 * A {@link MemfsState} object is one thread's handle on those regions: views, the lock and a
 * cache of node views. Every op runs with the namespace lock held (ops.ts), so nothing here
 * locks again. Ops hold no other state, so a new generation carries on with the same node ids,
 * data and open files (memfs hands out no file handles; the per-node `opens` count is shared).
 */
import { S_IFDIR, ROOT_ID, Mutex, NumberMap, SharedHeap, StringMap } from "furing";
import { newNode, tick, INODE_SPACE, Node, NODE_F64, NODE_U32, N_ID, N_LIVE_U32, SLOT_LIMIT } from "./nodes.ts";
import { ChunkPool } from "./pool.ts";
import { M_FREE_SLOT, M_ISPACE, M_LIVE, M_MAX_BYTES, M_MAX_INODES, M_NEXT_SLOT, M_USED } from "./layout.ts";

export interface MemfsLimits {
  /** Data size limit in bytes (page multiple); Infinity = unlimited (tmpfs size=0). */
  maxBytes: number;
  /** Node limit (tmpfs nr_inodes); Infinity = unlimited. */
  maxInodes: number;
  /** Permission bits of the root directory (tmpfs mode=). */
  rootMode: number;
  /** Owner of the root directory. */
  uid: number;
  gid: number;
}

/** `ctx.shared`'s signature: the region under `key`, created on first ask. */
export type SharedRegions = (key: string, byteLength: number, maxByteLength?: number) => SharedArrayBuffer;

const MAGIC = 0x4d454d46; // "MEMF"
/** Layout version of the regions; a generation that finds another refuses to serve them. */
export const LAYOUT = 2;

// meta: Int32 words
const W_LOCK = 0, W_MAGIC = 1, W_LAYOUT = 2;
// meta: Float64 slots: layout.ts
const META_BYTES = 4096;

/** Most bytes a region may reserve (JSC's limit for a growable SharedArrayBuffer). */
const REGION_MAX = 4 * 2 ** 30;

export class MemfsState {
  /** Identifies the object when handed to another generation of the code. */
  readonly kind = "memfs";
  readonly version = LAYOUT;
  /** The namespace lock: held for the whole of every op. */
  readonly lock: Mutex;
  readonly meta: Float64Array;
  readonly heap: SharedHeap;
  /** The node table's views (record fields: nodes.ts). */
  readonly nf: Float64Array;
  readonly nu: Uint32Array;
  readonly nodeRegion: SharedArrayBuffer;
  /** This thread's view object per slot (so an op answers the same object for the same node). */
  readonly views: (Node | undefined)[] = [];
  /** Map objects to work on tables in the heap (see StringMap.at). */
  readonly names: StringMap;
  readonly numbers: NumberMap;
  readonly pool: ChunkPool;
  /** The node table as a read-only map from id to node (tests and tools). */
  readonly nodes: { get(ino: number): Node | undefined; has(ino: number): boolean; readonly size: number };

  constructor(readonly regions: { meta: SharedArrayBuffer; nodes: SharedArrayBuffer; heap: SharedArrayBuffer }) {
    const w = new Int32Array(regions.meta);
    if (w[W_MAGIC] !== MAGIC) throw new Error("memfs: the shared state is not a memfs tree");
    if (w[W_LAYOUT] !== LAYOUT) throw new Error(`memfs: the shared state has an incompatible layout (${w[W_LAYOUT]}; this code reads ${LAYOUT}); remount to upgrade`);
    this.lock = new Mutex(w, W_LOCK);
    this.meta = new Float64Array(regions.meta);
    this.heap = new SharedHeap(regions.heap);
    this.nodeRegion = regions.nodes;
    this.nf = new Float64Array(regions.nodes);
    this.nu = new Uint32Array(regions.nodes);
    this.names = new StringMap(this.heap);
    this.numbers = new NumberMap(this.heap);
    this.pool = new ChunkPool(this);
    const self = this;
    this.nodes = {
      get: (ino) => nodeById(self, ino),
      has: (ino) => nodeById(self, ino) !== undefined,
      get size() {
        return self.meta[M_LIVE] as number;
      },
    };
  }

  get usedBytes(): number {
    return this.meta[M_USED] as number;
  }
  set usedBytes(v: number) {
    this.meta[M_USED] = v;
  }
  /**
   * Free inode space in bytes, tmpfs style: each node and each extra hard link costs
   * INODE_SPACE, user.* extended attributes cost their size. Infinity when unlimited.
   */
  get ispaceFree(): number {
    return this.meta[M_ISPACE] as number;
  }
  set ispaceFree(v: number) {
    this.meta[M_ISPACE] = v;
  }
  get maxBytes(): number {
    return this.meta[M_MAX_BYTES] as number;
  }
  get maxInodes(): number {
    return this.meta[M_MAX_INODES] as number;
  }
}

/** The live node `ino`, or undefined. Ids are slot + generation × 2^32 (nodes.ts). */
export function nodeById(s: MemfsState, ino: number): Node | undefined {
  const slot = ino % SLOT_LIMIT;
  if (!(slot > 0) || slot >= (s.meta[M_NEXT_SLOT] as number) || !Number.isInteger(ino)) return undefined;
  if (s.nf[slot * NODE_F64 + N_ID] !== ino || s.nu[slot * NODE_U32 + N_LIVE_U32] === 0) return undefined;
  return s.views[slot] ?? viewOf(s, slot);
}

/** This thread's view of `slot`, made once (the array is kept dense: a sparse one is slow). */
export function viewOf(s: MemfsState, slot: number): Node {
  const views = s.views;
  while (views.length <= slot) views.push(undefined);
  const v = new Node(s, slot);
  views[slot] = v;
  return v;
}

/** Private regions for a state nobody else shares (unit tests, tools). */
function localRegions(): SharedRegions {
  const m = new Map<string, SharedArrayBuffer>();
  return (key, bytes, max) => {
    let r = m.get(key);
    if (r === undefined) m.set(key, (r = max === undefined ? new SharedArrayBuffer(bytes) : new SharedArrayBuffer(bytes, { maxByteLength: max })));
    return r;
  };
}

/**
 * This thread's handle on memfs's shared state: the regions from `shared` (ctx.shared; private
 * ones when omitted), laid out with `limits` and a root directory when they are new (the first
 * run, on the main thread); otherwise the tree they hold, whatever `limits` say.
 */
export function createState(limits: MemfsLimits, shared: SharedRegions = localRegions()): MemfsState {
  const regions = {
    meta: shared("memfs.meta", META_BYTES),
    nodes: shared("memfs.nodes", 64 * 1024, REGION_MAX),
    heap: shared("memfs.heap", 64 * 1024, REGION_MAX),
  };
  const w = new Int32Array(regions.meta);
  if (w[W_MAGIC] !== 0) return new MemfsState(regions);
  const m = new Float64Array(regions.meta);
  m[M_NEXT_SLOT] = 1; // slot 0 is never used: ids start at ROOT_ID
  m[M_FREE_SLOT] = 0;
  m[M_USED] = 0;
  m[M_ISPACE] = limits.maxInodes * INODE_SPACE;
  m[M_MAX_BYTES] = limits.maxBytes;
  m[M_MAX_INODES] = limits.maxInodes;
  SharedHeap.format(regions.heap);
  w[W_LAYOUT] = LAYOUT;
  Atomics.store(w, W_MAGIC, MAGIC);
  const state = new MemfsState(regions);
  state.lock.lock();
  try {
    tick(state);
    const root = newNode(state, S_IFDIR | (limits.rootMode & 0o7777), limits.uid, limits.gid);
    if (root.ino !== ROOT_ID) throw new Error("memfs: the root did not get id 1");
    root.parent = ROOT_ID;
    root.nlookup = 1; // the kernel holds the root for the life of the mount
  } finally {
    state.lock.unlock();
  }
  return state;
}

/** Is `x` a memfs state object this code can use? */
export function isMemfsState(x: unknown): x is MemfsState {
  return x instanceof MemfsState || (typeof x === "object" && x !== null && (x as MemfsState).kind === "memfs" && (x as MemfsState).version === LAYOUT);
}
