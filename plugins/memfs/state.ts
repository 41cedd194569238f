/**
 * The whole state of one memfs instance, in one object: the node table and the counters.
 * Operations (ops.ts) are built around a state object and keep nothing else, so a new
 * generation of the plugin can be given the previous generation's state (hot reload) and carry
 * on with the same node ids, data and open files (memfs hands out no file handles; the per-node
 * `opens` count lives in the nodes).
 */
import { S_IFDIR, ROOT_ID } from "furing";
import { newNode, tick, INODE_SPACE, type ClockFloor, type Node } from "./nodes.ts";
import type { ChunkPool } from "./pool.ts";

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

export interface MemfsState {
  /** Identifies the object when handed to another generation of the code. */
  readonly kind: "memfs";
  /** Layout version of this object and of the node objects in it. */
  readonly version: 1;
  /** Every live node by id; the root is id 1. */
  readonly nodes: Map<number, Node>;
  /** Next node id to hand out (ids are never reused). */
  nextIno: number;
  maxBytes: number;
  /** Bytes of data allocated (chunks and long symlink targets): what statfs reports as used. */
  usedBytes: number;
  maxInodes: number;
  /**
   * Free inode space in bytes, tmpfs style: each node and each extra hard link costs
   * INODE_SPACE, user.* extended attributes cost their size. Infinity when unlimited.
   */
  ispaceFree: number;
  /** Reusable page memory for full data chunks (data.ts; made on first use). */
  pool?: ChunkPool;
  /**
   * O_TMPFILE nodes opened without O_EXCL and not linked yet: the only nodes with nlink 0 that
   * `link` may give a name (made on first use).
   */
  linkable?: Set<number>;
  /** The clock's floor (nodes.ts), kept here so it survives hot reloads (made on first use). */
  clockFloor?: ClockFloor;
}

export function createState(limits: MemfsLimits): MemfsState {
  const state: MemfsState = {
    kind: "memfs",
    version: 1,
    nodes: new Map(),
    nextIno: ROOT_ID,
    maxBytes: limits.maxBytes,
    usedBytes: 0,
    maxInodes: limits.maxInodes,
    ispaceFree: limits.maxInodes * INODE_SPACE,
  };
  tick();
  const root = newNode(state, S_IFDIR | (limits.rootMode & 0o7777), limits.uid, limits.gid);
  root.parent = ROOT_ID;
  root.nlookup = 1; // the kernel holds the root for the life of the mount
  return state;
}

/** Is `x` a memfs state object this code can use (for a hand-over from another generation)? */
export function isMemfsState(x: unknown): x is MemfsState {
  return typeof x === "object" && x !== null && (x as MemfsState).kind === "memfs" && (x as MemfsState).version === 1;
}
