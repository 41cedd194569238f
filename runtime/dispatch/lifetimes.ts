/**
 * Node lifetimes the runtime owns, for one dispatcher: what the kernel holds (entry replies minus
 * FORGETs) and has open (open/opendir/create/tmpfile replies minus RELEASE/RELEASEDIR), from which
 * the plugin gets `forgotten(ino)` and `ctx.isOpen(ino)`; and giving back what a result the kernel
 * never gets handed out (a late result after op_timeout, a reply that cannot be encoded).
 *
 * Counts are added just before the reply is written, so the kernel can never FORGET or RELEASE
 * what is not counted yet. With reactor Workers the counts live only in the table every reactor
 * shares (shared-counts.ts): a dispatcher's own would be partial (a lookup on a Worker, its FORGET
 * on the main thread), and a Worker's would only ever grow, one map entry per node it answered.
 */
import type { Filesystem, Request } from "../api/types.ts";
import { Op } from "../kernel/abi.ts";
import type { Call } from "./call.ts";
import { KernelNodes, OpenHandles } from "./kernel-nodes.ts";
import { forgotten, guarded, type OpConfig } from "./ops.ts";
import { SharedCounts } from "./shared-counts.ts";

export interface LifetimesConfig extends OpConfig {
  /** Counts are signed and partial (lookups and FORGETs of a node may reach different reactors). */
  signedNodeCounts?: boolean;
  /** With signed counts: the table every reactor shares. */
  sharedCounts?: SharedArrayBuffer;
}

/** The Request of a release the runtime makes itself (a dropped handle): kernel-internal, never aborted. */
const RUNTIME_REQUEST: Request = Object.freeze({ op: "release", uid: 0, gid: 0, pid: 0, signal: new AbortController().signal });

export class Lifetimes {
  /** Node ids the kernel holds (not kept with a shared table: ask it). */
  readonly nodes: KernelNodes;
  /** Open handles per node (not kept with a shared table). */
  readonly opens: OpenHandles;
  /** Lookups and handles summed over every reactor (reactor Workers), else null. */
  private readonly shared: SharedCounts | null;
  /** Lookups and handles given back for results the kernel never got. */
  compensated = 0;

  /** Hooks itself into `cfg` (onForget, onRelease: the handlers of FORGET and RELEASE call them). */
  constructor(private readonly cfg: LifetimesConfig) {
    const signed = cfg.signedNodeCounts === true;
    this.nodes = new KernelNodes(signed);
    this.opens = new OpenHandles(signed);
    this.shared = signed && cfg.sharedCounts !== undefined ? new SharedCounts(cfg.sharedCounts) : null;
    const shared = this.shared;
    cfg.onForget = shared === null ? (ino, n) => this.nodes.forget(ino, n) : (ino, n) => ino !== 1 && shared.forget(ino, n);
    cfg.onRelease = shared === null ? (ino) => this.opens.release(ino) : (ino) => shared.release(ino);
  }

  /** `c` is about to be answered with `value`: count the references and handles it gives the kernel. */
  replied(c: Call, value: unknown): void {
    switch (c.opcode) {
      case Op.LOOKUP: case Op.MKNOD: case Op.MKDIR: case Op.SYMLINK: case Op.LINK:
        return this.held((value as { ino: number }).ino);
      case Op.CREATE: case Op.TMPFILE: {
        const ino = (value as { entry: { ino: number } }).entry.ino;
        this.held(ino);
        return this.opened(ino);
      }
      case Op.READDIRPLUS: {
        const added = c.dirListPlus.added;
        for (let i = 0; i < added.length; i++) this.held(added[i]!);
        added.length = 0; // counted: a later failure of this Call must not give them back
        return;
      }
      case Op.OPEN: case Op.OPENDIR:
        return this.opened(c.nodeid);
    }
  }

  /** Whether `ino` has open handles (open/opendir/create/tmpfile replies not yet released). */
  isOpen(ino: number): boolean {
    if (this.shared !== null) return this.shared.opens(ino) > 0;
    if (this.cfg.signedNodeCounts === true) throw new Error("ctx.isOpen: this reactor's counts are partial and no shared table was given");
    return this.opens.count(ino) > 0;
  }

  /**
   * A result the kernel never gets: the plugin has counted the lookups and allocated the handle,
   * so give them back to `fs` (the serving generation: it holds the kept state; the retired one
   * may be destroyed) as the kernel would have: `release`/`releasedir` per handle, `forget(ino, 1)`
   * per entry (then `forgotten` if the kernel holds the node nowhere). Returns what was given
   * back, for the log line that reports the drop ("" when nothing).
   */
  dropped(c: Call, value: unknown, fs: Filesystem): string {
    switch (c.opcode) {
      case Op.LOOKUP: case Op.MKNOD: case Op.MKDIR: case Op.SYMLINK: case Op.LINK:
        return this.dropEntry(fs, inoOf(value));
      case Op.CREATE: case Op.TMPFILE: {
        const ino = inoOf(value !== null && typeof value === "object" ? (value as { entry?: unknown }).entry : undefined);
        if (ino === 0) return "";
        return joined(this.dropHandle(fs, c, "release", ino, value), this.dropEntry(fs, ino));
      }
      case Op.OPEN:
        return this.dropHandle(fs, c, "release", c.nodeid, value);
      case Op.OPENDIR:
        return this.dropHandle(fs, c, "releasedir", c.nodeid, value);
      case Op.READDIRPLUS: {
        let back = "";
        const added = c.dirListPlus.added;
        for (const ino of added) back = joined(back, this.dropEntry(fs, ino));
        added.length = 0;
        return back;
      }
    }
    return "";
  }

  /** The kernel is about to get a reference to `ino`. */
  private held(ino: number): void {
    if (this.shared === null) this.nodes.add(ino);
    else if (ino !== 1) this.shared.lookup(ino);
  }

  /** The kernel is about to get a handle on `ino`. */
  private opened(ino: number): void {
    if (this.shared === null) this.opens.open(ino);
    else this.shared.open(ino);
  }

  /** Whether the kernel holds no reference to `ino` (over every reactor); false when unknown. */
  private unheld(ino: number): boolean {
    if (this.shared !== null) return this.shared.lookups(ino) === 0;
    return this.cfg.signedNodeCounts !== true && this.nodes.count(ino) === 0;
  }

  private dropEntry(fs: Filesystem, ino: number): string {
    if (ino === 0 || ino === 1) return ""; // not a node id, or the root (never forgotten)
    this.compensated++;
    const f = fs.forget;
    if (f !== undefined) guarded(this.cfg, "forget", ino, () => f.call(fs, ino, 1));
    if (this.unheld(ino)) forgotten(fs, this.cfg, ino);
    return `forget(${ino}, 1)`;
  }

  private dropHandle(fs: Filesystem, c: Call, op: "release" | "releasedir", ino: number, value: unknown): string {
    // void/undefined is fh 0; anything else that is not an OpenReply names no handle
    if (value !== undefined && value !== null && typeof value !== "object") return "";
    const fh = (value as { fh?: unknown } | null | undefined)?.fh ?? 0;
    if (typeof fh !== "number") return "";
    this.compensated++;
    if (op === "release") {
      const f = fs.release;
      if (f !== undefined) guarded(this.cfg, op, ino, () => f.call(fs, RUNTIME_REQUEST, ino, fh, c.openFlags));
    } else {
      const f = fs.releasedir;
      if (f !== undefined) guarded(this.cfg, op, ino, () => f.call(fs, RUNTIME_REQUEST, ino, fh));
    }
    return `${op}(${ino}, fh ${fh})`;
  }
}

const joined = (a: string, b: string) => (a === "" ? b : b === "" ? a : `${a}, ${b}`);

/** An entry's node id, or 0 when `e` is not an entry. */
function inoOf(e: unknown): number {
  const ino = e !== null && typeof e === "object" ? (e as { ino?: unknown }).ino : undefined;
  return typeof ino === "number" && Number.isSafeInteger(ino) && ino > 0 ? ino : 0;
}
