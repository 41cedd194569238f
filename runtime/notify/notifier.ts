/**
 * Notifications (server → kernel): invalidate inodes and entries, store and retrieve page-cache
 * data, bump the dentry epoch. Each is an IORING_OP_WRITE of a message to /dev/fuse forced onto an
 * io_uring worker (IOSQE_ASYNC): a notification can wait on kernel locks that a caller waiting on
 * this daemon holds (INVAL_ENTRY takes the directory lock), so it must never run on the reactor.
 */
import { Arena } from "../ffi/memory.ts";
import { IORING_OP_WRITE } from "../ffi/liburing.ts";
import type { Reactor } from "../reactor/reactor.ts";
import { Notify, OUT_HEADER_SIZE } from "../kernel/abi.ts";
import {
  encodeNotifyHeader, encodeInvalInodeOut, encodeInvalEntryOut, encodeDeleteOut, encodeStoreOut, encodeRetrieveOut,
} from "../kernel/codec.ts";
import { FuseError } from "../api/errno.ts";
import { nameByteLength, nameStringError } from "../api/names.ts";
import type { Notifier } from "../api/types.ts";

const IOSQE_ASYNC = 1 << 4;
const SLOT_SIZE = 4096 + 128;
const SLOTS = 64;
const ENOENT = 2;
/** Marks notify_unique values of RETRIEVE (kernel uniques never have this high word). */
const RETRIEVE_MARK = 0x40000000;

interface Pending {
  resolve: (res: number) => void;
  reject: (e: Error) => void;
  what: string;
}

export class KernelNotifier implements Notifier {
  private readonly arena = new Arena(SLOTS * SLOT_SIZE);
  private readonly views: DataView[] = [];
  private readonly bytes: Uint8Array[] = [];
  private readonly free: number[] = [];
  private readonly pending: (Pending | null)[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly kind: number;
  private retrieveSeq = 0;
  private readonly retrieves = new Map<number, { resolve: (b: Uint8Array) => void; size: number }>();
  /** Notifications sent and failed (status). */
  sent = 0;
  failed = 0;

  constructor(private readonly reactor: Reactor, private readonly fd: number, private readonly minor: number) {
    for (let i = 0; i < SLOTS; i++) {
      const off = this.arena.take(SLOT_SIZE, 64);
      this.views.push(new DataView(this.arena.region.buffer, off, SLOT_SIZE));
      this.bytes.push(new Uint8Array(this.arena.region.buffer, off, SLOT_SIZE));
      this.free.push(i);
      this.pending.push(null);
    }
    this.kind = reactor.addHandler((i, res) => this.onCqe(i, res));
  }

  private async slot(): Promise<number> {
    for (;;) {
      const i = this.free.pop();
      if (i !== undefined) return i;
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  /**
   * Send the message built in slot `i` (payload after the out-header, `len` total). Resolves with the write's result (≥ 0, or -ENOENT when the kernel has nothing cached). */
  private send(i: number, code: number, len: number, what: string): Promise<number> {
    const v = this.views[i]!;
    encodeNotifyHeader(v, 0, code, len);
    return new Promise<number>((resolve, reject) => {
      this.pending[i] = { resolve, reject, what };
      const r = this.reactor.ring;
      const o = this.reactor.sqe(this.kind, i);
      r.sqes.setUint8(o, IORING_OP_WRITE);
      r.sqes.setUint8(o + 1, IOSQE_ASYNC);
      r.sqes.setInt32(o + 4, this.fd, true);
      const p = this.arena.region.ptr + v.byteOffset;
      r.sqes.setUint32(o + 16, p >>> 0, true);
      r.sqes.setUint32(o + 20, Math.floor(p / 4294967296), true);
      r.sqes.setUint32(o + 24, len, true);
      this.reactor.flushSoon();
    });
  }

  private onCqe(i: number, res: number): void {
    const p = this.pending[i]!;
    this.pending[i] = null;
    this.free.push(i);
    this.waiting.shift()?.();
    this.sent++;
    // ENOENT: the kernel does not have that inode/entry cached: nothing to invalidate
    if (res >= 0 || res === -ENOENT) return p.resolve(res);
    this.failed++;
    p.reject(new FuseError(-res, `notify ${p.what} failed: errno ${-res}`));
  }

  async invalInode(ino: number, offset = 0, length = 0): Promise<void> {
    const i = await this.slot();
    const len = encodeInvalInodeOut(this.views[i]!, OUT_HEADER_SIZE, ino, offset, length);
    await this.send(i, Notify.INVAL_INODE, OUT_HEADER_SIZE + len, `inval_inode(${ino})`);
  }

  private async entryMessage(code: number, parent: number, child: number, name: string, expireOnly: boolean): Promise<void> {
    const nameLen = nameByteLength(name);
    if (nameLen < 0) throw new FuseError("EINVAL", nameStringError(name));
    if (nameLen === 0 || nameLen > 4000 || name.includes("/")) throw new FuseError("EINVAL", `invalid name ${JSON.stringify(name)}`);
    const i = await this.slot();
    const v = this.views[i]!;
    const b = this.bytes[i]!;
    const len = code === Notify.INVAL_ENTRY
      ? encodeInvalEntryOut(v, b, OUT_HEADER_SIZE, parent, name, nameLen, expireOnly)
      : encodeDeleteOut(v, b, OUT_HEADER_SIZE, parent, child, name, nameLen);
    await this.send(i, code, OUT_HEADER_SIZE + len, `${code === Notify.DELETE ? "delete" : "inval_entry"}(${parent}, ${JSON.stringify(name)})`);
  }

  invalEntry(parent: number, name: string, expireOnly = false): Promise<void> {
    return this.entryMessage(Notify.INVAL_ENTRY, parent, 0, name, expireOnly);
  }

  delete(parent: number, child: number, name: string): Promise<void> {
    return this.entryMessage(Notify.DELETE, parent, child, name, false);
  }

  async store(ino: number, offset: number, data: Uint8Array): Promise<void> {
    const chunk = 4096;
    const parts: Promise<number>[] = [];
    for (let pos = 0; pos < data.length || (pos === 0 && data.length === 0); pos += chunk) {
      const piece = data.subarray(pos, pos + chunk);
      const i = await this.slot();
      const len = encodeStoreOut(this.views[i]!, this.bytes[i]!, OUT_HEADER_SIZE, ino, offset + pos, piece);
      parts.push(this.send(i, Notify.STORE, OUT_HEADER_SIZE + len, `store(${ino})`));
      if (data.length === 0) break;
    }
    await Promise.all(parts);
  }

  async retrieve(ino: number, offset: number, size: number): Promise<Uint8Array> {
    const seq = (this.retrieveSeq = (this.retrieveSeq + 1) >>> 0);
    const got = new Promise<Uint8Array>((resolve) => this.retrieves.set(seq, { resolve, size }));
    const i = await this.slot();
    const len = encodeRetrieveOut(this.views[i]!, OUT_HEADER_SIZE, seq, RETRIEVE_MARK, ino, offset, size);
    let res: number;
    try {
      res = await this.send(i, Notify.RETRIEVE, OUT_HEADER_SIZE + len, `retrieve(${ino})`);
    } catch (e) {
      this.retrieves.delete(seq);
      throw e;
    }
    if (res === -ENOENT) {
      // the kernel does not hold the node: no NOTIFY_REPLY will come
      this.retrieves.delete(seq);
      return new Uint8Array(0);
    }
    return got;
  }

  /** A NOTIFY_REPLY arrived: is it ours? Delivers a copy of its data. */
  onNotifyReply(uniqueLo: number, uniqueHi: number, data: Uint8Array): boolean {
    if (uniqueHi !== RETRIEVE_MARK) return false;
    const r = this.retrieves.get(uniqueLo);
    if (r === undefined) return false;
    this.retrieves.delete(uniqueLo);
    r.resolve(data.slice(0, r.size));
    return true;
  }

  /** Invalidate every cached dentry (protocol ≥ 7.44); false when the kernel is too old. */
  async incEpoch(): Promise<boolean> {
    if (this.minor < 44) return false;
    const i = await this.slot();
    await this.send(i, Notify.INC_EPOCH, OUT_HEADER_SIZE, "inc_epoch");
    return true;
  }
}
