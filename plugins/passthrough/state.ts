/**
 * The whole state of one passthrough mount, in one plain object kept across hot reloads
 * (`ctx.keep`): the source's root descriptor, the node table, the descriptor cache and the table
 * of open files and directories. Later generations of the code get this object and wrap it in
 * their own NodeTable / Handles (nodes.ts, handles.ts), so node ids and file handles stay valid.
 *
 * Opening the source (first generation only) also validates `--source`: it must exist, be a
 * directory, and neither be the mountpoint nor lie inside it.
 */
import { statSync, realpathSync, lstatSync } from "node:fs";
import { resolve, dirname, basename } from "node:path";
import * as sys from "furing/sys";
import type { PNode } from "./nodes.ts";
import type { Handle } from "./handles.ts";

export interface PassthroughOptions {
  source: string;
  "fd-cache": number;
  "file-handles": boolean;
}

export interface PassthroughState {
  /** Identifies the object when handed to another generation of the code. */
  readonly kind: "passthrough";
  /** Layout version of this object and of the node and handle objects in it. */
  readonly version: 1;
  /** Real path of the source directory. */
  readonly source: string;
  /**
   * The source root, opened O_RDONLY|O_DIRECTORY (not O_PATH: open_by_handle_at needs a real
   * descriptor for its mount argument). Node 1's descriptor; never closed.
   */
  readonly rootFd: number;
  /** Device and inode of the source root. */
  readonly rootDev: number;
  readonly rootIno: number;
  /**
   * Nodes are re-opened from file handles (name_to_handle_at / open_by_handle_at: root only, on
   * filesystems that export handles) rather than by parent descriptor and name.
   */
  readonly useHandles: boolean;
  /** Why file handles are not used ("" when they are). */
  readonly handlesReason: string;
  /** Mount id of the source root; only nodes on this mount get file handles. */
  readonly rootMountId: number;
  /**
   * The mountpoint, when it lies inside the source: its parent directory's identity and its name.
   * Looking it up would make the daemon stat its own mount and wait on itself, so it is hidden.
   */
  readonly hidden: { dev: number; ino: number; name: string } | null;
  /** Effective ids of the daemon: new nodes are handed over to the caller when they differ. */
  readonly daemonUid: number;
  readonly daemonGid: number;
  /** Every live node by node id; the root is 1. */
  readonly nodes: Map<number, PNode>;
  /** Nodes by source identity: st_dev → st_ino → node (hard links share a node). */
  readonly byIdentity: Map<number, Map<number, PNode>>;
  /** Next node id for nodes whose inode number cannot serve as their id (>= 2^48). */
  nextSynthetic: number;
  /** O_PATH descriptors of nodes, by node id, least recently used first. */
  readonly fdCache: Map<number, number>;
  /** Bound on fdCache's size. */
  readonly fdCacheMax: number;
  /**
   * O_PATH descriptors pinned for nodes that have no name in the source (O_TMPFILE files not
   * linked yet): neither a file handle nor a name can re-open them. Made on first use.
   */
  unnamed?: Map<number, number>;
  /** Open files and directories by file handle. */
  readonly handles: Map<number, Handle>;
  /** Per node, its open files served by the daemon under kernel passthrough (handles.ts). Made on first use. */
  daemonIo?: Map<number, number>;
  nextFh: number;
  /** Counters (for tests and diagnostics). */
  readonly stats: { reopenByHandle: number; reopenByName: number; evictions: number; stale: number };
}

/** First node id not derived from an inode number. */
export const SYNTHETIC_BASE = 2 ** 48;

export function isPassthroughState(v: unknown): v is PassthroughState {
  const s = v as PassthroughState | null;
  return typeof s === "object" && s !== null && s.kind === "passthrough" && s.version === 1;
}

function describe(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === "ENOENT") return "does not exist";
  if (code === "EACCES") return "permission denied";
  if (code === "ENOTDIR") return "a path component is not a directory";
  return (e as Error).message;
}

/**
 * Validate `--source` against the mountpoint and open it. Runs before the mount exists (first
 * generation), so statting the mountpoint here cannot wait on this daemon.
 */
export function openSource(opts: PassthroughOptions, mountpoint: string, log: (...a: unknown[]) => void): PassthroughState {
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
  let hidden: PassthroughState["hidden"] = null;
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
  log(
    `serving ${real}: nodes re-opened ${useHandles ? "from file handles" : `by parent and name (${handlesReason})`}, ` +
      `at most ${cacheMax} cached O_PATH descriptors`,
  );
  return {
    kind: "passthrough",
    version: 1,
    source: real,
    rootFd,
    rootDev: rs.dev,
    rootIno: rs.ino,
    useHandles,
    handlesReason,
    rootMountId,
    hidden,
    daemonUid,
    daemonGid,
    nodes: new Map(),
    byIdentity: new Map(),
    nextSynthetic: SYNTHETIC_BASE,
    fdCache: new Map(),
    fdCacheMax: cacheMax,
    handles: new Map(),
    nextFh: 1,
    stats: { reopenByHandle: 0, reopenByName: 0, evictions: 0, stale: 0 },
  };
}
