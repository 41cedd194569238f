/**
 * The per-slot request context. One Call exists per request slot and is reused for every request
 * that slot carries, so serving a request allocates nothing here; its pre-bound `resolve` and
 * `reject` settle async ops without per-request closures.
 */
import type { Request, DirList, DirListPlus, Entry, Filesystem } from "../api/types.ts";
import type { RequestSlot } from "../transport/slot.ts";
import { encodeDirent, encodeDirentPlus, validateDirentName } from "../kernel/codec.ts";
import type { OpConfig } from "./ops.ts";

/** Encodes an op's result into the reply payload; returns the payload length. */
export type Encoder = (c: Call, value: any) => number;

export interface CallOwner {
  complete(c: Call, value: unknown): void;
  fail(c: Call, thrown: unknown): void;
}

export class Call implements Request {
  op = "";
  opcode = 0;
  nodeid = 0;
  uid = 0;
  gid = 0;
  pid = 0;
  /** Request unique as two u32 halves (for matching FUSE_INTERRUPT without BigInt). */
  uniqueLo = 0;
  uniqueHi = 0;
  /** A request is being served (between dispatch and reply). */
  busy = false;
  interrupted = false;
  /** Answered ETIMEDOUT; this Call is retired and only reports late results. */
  timedOut = false;
  /** Filesystem generation serving this request (hot reload swaps new requests only). */
  fs: Filesystem = {};
  gen: { inflight: number; retired: boolean; onIdle: (() => void) | null; destroy(log: (line: string) => void): Promise<void> } | null = null;
  /** open(2) flags of an open/create/tmpfile (a dropped handle's compensating release passes them). */
  openFlags = 0;
  enc: Encoder | null = null;
  /** The mount's reply parameters (set at dispatch; encoders of async ops read them later). */
  cfg!: OpConfig;
  /** Size bound the encoder checks (read size, write size, xattr buffer size). */
  limit = 0;
  /** start time (performance.now ms). */
  t0 = 0;
  /** Short description of the arguments for the -d trace (set only when tracing). */
  trace = "";
  private ac: AbortController | null = null;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly dirList: DirListImpl;
  readonly dirListPlus: DirListPlusImpl;

  constructor(owner: CallOwner, readonly slot: RequestSlot) {
    this.resolve = (v) => owner.complete(this, v);
    this.reject = (e) => owner.fail(this, e);
    this.dirList = new DirListImpl(slot);
    this.dirListPlus = new DirListPlusImpl(slot);
  }

  get signal(): AbortSignal {
    if (this.ac === null) {
      this.ac = new AbortController();
      if (this.interrupted) this.ac.abort(interruptReason());
    }
    return this.ac.signal;
  }

  /** Begin serving a new request in this slot. */
  reset(): void {
    this.ac = null;
    this.interrupted = false;
    this.busy = true;
    this.enc = null;
    this.trace = "";
  }

  /** The per-op timeout expired: abort the op and stop it writing into the slot's buffers. */
  timeout(): void {
    this.timedOut = true;
    this.dirList.end = 0;
    this.dirListPlus.end = 0;
    if (this.ac !== null && !this.ac.signal.aborted) this.ac.abort(abortReason("request timed out (op_timeout)", "ETIMEDOUT"));
    this.interrupted = true;
  }

  /** FUSE_INTERRUPT for this request: fire the signal (if anyone looked at it). */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.ac?.abort(interruptReason());
  }
}

function abortReason(message: string, code: string): Error {
  const e = new Error(message);
  e.name = "AbortError";
  (e as Error & { code: string }).code = code;
  return e;
}

function interruptReason(): Error {
  return abortReason("request interrupted (FUSE_INTERRUPT)", "EINTR");
}

/** readdir sink writing fuse_dirent records straight into the reply buffer. */
export class DirListImpl implements DirList {
  pos = 0;
  end = 0;
  count = 0;
  constructor(private readonly slot: RequestSlot) {}
  start(size: number): void {
    this.pos = this.slot.replyOff;
    this.end = this.slot.replyOff + Math.min(size, this.slot.replyCap);
    this.count = 0;
  }
  add(name: string, ino: number, mode: number, nextOffset: number): boolean {
    validateDirentName(name);
    const p = encodeDirent(this.slot.data, this.slot.dataText, this.pos, this.end, name, ino, mode, nextOffset);
    if (p < 0) return false;
    this.pos = p;
    this.count++;
    return true;
  }
  get length(): number {
    return this.pos - this.slot.replyOff;
  }
}

/** readdirplus sink writing fuse_direntplus records straight into the reply buffer. */
export class DirListPlusImpl implements DirListPlus {
  /** Node ids of entries added (except "." and ".."): the kernel takes a reference to each. */
  readonly added: number[] = [];
  pos = 0;
  end = 0;
  entryTimeout = 1;
  attrTimeout = 1;
  constructor(private readonly slot: RequestSlot) {}
  start(size: number, entryTimeout: number, attrTimeout: number): void {
    this.pos = this.slot.replyOff;
    this.end = this.slot.replyOff + Math.min(size, this.slot.replyCap);
    this.entryTimeout = entryTimeout;
    this.attrTimeout = attrTimeout;
    this.added.length = 0;
  }
  add(name: string, entry: Entry | null, nextOffset: number): boolean {
    validateDirentName(name);
    const p = encodeDirentPlus(this.slot.data, this.slot.dataText, this.pos, this.end, name, entry, nextOffset, this.entryTimeout, this.attrTimeout);
    if (p < 0) return false;
    this.pos = p;
    if (entry !== null && name !== "." && name !== "..") this.added.push(entry.ino);
    return true;
  }
  get length(): number {
    return this.pos - this.slot.replyOff;
  }
}
