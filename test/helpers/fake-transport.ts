/**
 * Driving the dispatcher without a kernel: a Transport that records replies, request slots over
 * plain ArrayBuffers in both layouts, and a request writer that lays bytes out by hand at the
 * offsets of shared/reference/fuse-protocol.md (§1.2 in-header, §1.6 structs, §2.7 ring header).
 *
 * Nothing here imports struct sizes or offsets from runtime/: the tests must not agree with the
 * runtime merely because both read the same (possibly wrong) constant.
 */
import type { Transport } from "../../runtime/transport/transport.ts";
import { RequestSlot } from "../../runtime/transport/slot.ts";

/** One reply the dispatcher sent, with a copy of the payload bytes taken at reply time. */
export interface Reply {
  slot: RequestSlot;
  error: number;
  len: number;
  /** `len` bytes copied from the reply payload area (empty when error ≠ 0). */
  bytes: Uint8Array;
  dv: DataView;
  /** Bytes [0, 16) of the header region at reply time (classic: where the out-header goes). */
  hdrHead: Uint8Array;
}

export class FakeTransport implements Transport {
  readonly name: string;
  requests = 0;
  readonly replies: Reply[] = [];
  readonly noReplies: RequestSlot[] = [];
  private waiters: (() => void)[] = [];

  constructor(name = "fake") {
    this.name = name;
  }

  reply(slot: RequestSlot, error: number, len: number): void {
    const bytes = error === 0 ? slot.dataBytes.slice(slot.replyOff, slot.replyOff + len) : new Uint8Array(0);
    const hdrHead = new Uint8Array(slot.hdr.buffer, slot.hdr.byteOffset, 16).slice();
    this.replies.push({ slot, error, len, bytes, dv: new DataView(bytes.buffer), hdrHead });
    this.wake();
  }

  noReply(slot: RequestSlot): void {
    this.noReplies.push(slot);
    this.wake();
  }

  /** Total answers (replies + no-replies) so far. */
  get answered(): number {
    return this.replies.length + this.noReplies.length;
  }

  /** Resolves once at least `n` answers were given (fails after `ms`). */
  async waitAnswers(n: number, ms = 1000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.answered < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} answers (have ${this.answered})`);
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 10);
      });
    }
  }

  /** The single reply expected so far. */
  only(): Reply {
    if (this.replies.length !== 1 || this.noReplies.length !== 0) {
      throw new Error(`expected exactly one reply, got ${this.replies.length} replies and ${this.noReplies.length} no-replies`);
    }
    return this.replies[0]!;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export type Layout = "classic" | "uring";
export const LAYOUTS: Layout[] = ["classic", "uring"];

/** Offsets from the reference, written out here on purpose (see the file comment). */
export const REF = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  URING_HEADER: 288,
  URING_OP_IN: 128,
  URING_PAYLOAD_SZ: 272,
} as const;

/**
 * A slot in the given layout.
 * classic: one buffer; in-header @0, op header @40, args after it, reply payload @16.
 * uring: 288-byte header buffer (op header @128) + payload buffer (args @0, reply @0).
 */
export function makeSlot(t: FakeTransport, layout: Layout, size = 8192, index = 0): RequestSlot {
  if (layout === "classic") {
    const dv = new DataView(new ArrayBuffer(size));
    return new RequestSlot(t, index, dv, REF.IN_HEADER, dv, 0, false, REF.OUT_HEADER);
  }
  const hdr = new DataView(new ArrayBuffer(REF.URING_HEADER));
  const data = new DataView(new ArrayBuffer(size));
  return new RequestSlot(t, index, hdr, REF.URING_OP_IN, data, 0, true, 0);
}

export interface RequestSpec {
  opcode: number;
  unique?: bigint;
  nodeid?: number;
  uid?: number;
  gid?: number;
  pid?: number;
  /** The op header (first argument): classic → @40, ring → op_in @128. Must have its reference size. */
  opHeader?: Uint8Array;
  /** The remaining arguments: classic → right after the op header, ring → payload @0. */
  args?: Uint8Array;
}

/**
 * Write a request into `slot` as the transport would have received it. Returns where the args
 * start in `slot.data` (for checking that views point at the right bytes).
 */
export function writeRequest(slot: RequestSlot, r: RequestSpec): number {
  const h = slot.hdr;
  const op = r.opHeader ?? new Uint8Array(0);
  const args = r.args ?? new Uint8Array(0);
  const len = REF.IN_HEADER + op.length + args.length;
  // fuse_in_header (§1.2)
  h.setUint32(0, len, true);
  h.setUint32(4, r.opcode, true);
  h.setBigUint64(8, r.unique ?? 2n, true);
  h.setBigUint64(16, BigInt(r.nodeid ?? 1), true);
  h.setUint32(24, r.uid ?? 1000, true);
  h.setUint32(28, r.gid ?? 1000, true);
  h.setUint32(32, r.pid ?? 4242, true);
  h.setUint16(36, 0, true);
  h.setUint16(38, 0, true);
  const hb = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  if (slot.ringLayout) {
    hb.set(op, REF.URING_OP_IN);
    slot.dataBytes.set(args, 0);
    h.setUint32(REF.URING_PAYLOAD_SZ, args.length, true);
    slot.payloadLen = args.length;
    return 0;
  }
  hb.set(op, REF.IN_HEADER);
  hb.set(args, REF.IN_HEADER + op.length);
  slot.payloadLen = len - REF.IN_HEADER;
  return REF.IN_HEADER + op.length;
}

// ---- argument builders (offsets from reference §1.6) -------------------------------------

const enc = new TextEncoder();

/** Concatenate byte arrays. */
export function cat(...parts: (Uint8Array | string)[]): Uint8Array {
  const bs = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p));
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of bs) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

/** A NUL-terminated string argument. */
export function cstr(s: string): Uint8Array {
  return cat(s, new Uint8Array([0]));
}

/** `size` zero bytes plus a DataView to fill them. */
export function struct(size: number, fill: (dv: DataView) => void = () => {}): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  return b;
}

/** fuse_read_in / fuse_write_in (40): fh@0 offset@8 size@16 rw_flags@20 lock_owner@24 flags@32. */
export function rwIn(fh: number, offset: number, size: number, flags = 0): Uint8Array {
  return struct(40, (d) => {
    d.setBigUint64(0, BigInt(fh), true);
    d.setBigUint64(8, BigInt(offset), true);
    d.setUint32(16, size, true);
    d.setUint32(32, flags, true);
  });
}

/** A u64 read the slow, obviously-right way. */
export function u64(dv: DataView, off: number): number {
  return Number(dv.getBigUint64(off, true));
}
