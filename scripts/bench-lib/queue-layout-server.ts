/**
 * The server half of scripts/queue-layout: a filesystem with no state (a root directory and one
 * empty file "f", answers that never change) served over FUSE-over-io_uring in one of two layouts,
 * so that only the layout differs between them:
 *
 *   single     one reactor on the main thread serves every CPU's queue (furing's layout), with
 *              -o follow_cpu's follower moving it to its callers' CPU
 *   per-queue  one Worker per CPU, pinned there, with its own ring, serving that CPU's queue only
 *              (libfuse's layout; what furing would need for plugins whose state can be shared)
 *
 * Usage (as root): bun scripts/bench-lib/queue-layout-server.ts single|per-queue MOUNTPOINT
 * Prints "ready" once every queue's entries are registered; the caller unmounts, which ends it.
 * A measuring tool, not part of the runtime: it reuses the runtime's reactor and ring transport.
 */
import { Worker, isMainThread, workerData, parentPort } from "node:worker_threads";
import { libc, cstr, errno, SyscallError } from "../../runtime/ffi/libc.ts";
import { Reactor } from "../../runtime/reactor/reactor.ts";
import { UringTransport, possibleCpus } from "../../runtime/transport/fuse-ring.ts";
import type { RequestSlot } from "../../runtime/transport/slot.ts";
import { mountFuse } from "../../runtime/mount/mount.ts";
import { defaultMountOptions } from "../../runtime/mount/options.ts";
import { negotiate } from "../../runtime/session/init.ts";
import { pinThread } from "../../runtime/reactor/affinity.ts";
import { decodeInitIn, encodeInitOut, encodeAttrOut, encodeEntry } from "../../runtime/kernel/codec.ts";
import { Op, Init } from "../../runtime/kernel/abi.ts";
import type { Attr, Entry, Filesystem } from "../../runtime/api/types.ts";

const DEPTH = 8;
const O_RDWR = 2, O_CLOEXEC = 0o2000000;
const ENOENT = 2, ENOSYS = 38;

const now = Math.floor(Date.now() / 1000);
const times = { atimeSec: now, atimeNsec: 0, mtimeSec: now, mtimeNsec: 0, ctimeSec: now, ctimeNsec: 0 };
const ROOT: Attr = { ino: 1, mode: 0o40755, nlink: 2, uid: 0, gid: 0, size: 0, ...times };
const FILE: Entry = { ino: 2, mode: 0o100644, nlink: 1, uid: 0, gid: 0, size: 0, ...times };

/** Answers one request in place; the same code runs in every layout. */
function serve(t: UringTransport, slot: RequestSlot): void {
  const h = slot.hdr;
  const op = h.getUint32(4, true);
  const node = h.getUint32(16, true);
  const out = slot.data;
  switch (op) {
    case Op.GETATTR:
      return t.reply(slot, 0, encodeAttrOut(out, 0, node === 1 ? ROOT : FILE, 0));
    case Op.LOOKUP: {
      const isF = node === 1 && slot.payloadLen === 2 && out.getUint8(0) === 0x66 && out.getUint8(1) === 0;
      if (!isF) return t.reply(slot, -ENOENT, 0);
      return t.reply(slot, 0, encodeEntry(out, 0, FILE, 1, 0));
    }
    case Op.OPEN:
    case Op.OPENDIR:
      for (let i = 0; i < 16; i++) out.setUint8(i, 0);
      return t.reply(slot, 0, 16);
    case Op.RELEASE:
    case Op.RELEASEDIR:
    case Op.FLUSH:
    case Op.READDIR:
      return t.reply(slot, 0, 0);
    default:
      return t.reply(slot, -ENOSYS, 0);
  }
}

/** A reactor and ring transport for `queues` queues from `first`; resolves when unmounted. */
function startReactor(fd: number, payload: number, first: number, queues: number, follow: boolean, pinnedCpu: number, ready: () => void): Promise<string> {
  return new Promise((resolve) => {
    const reactor = new Reactor(queues * DEPTH + 64);
    reactor.followCallers(first + queues, follow);
    reactor.pinnedCpu = pinnedCpu;
    const t: UringTransport = new UringTransport(reactor, fd, queues, DEPTH, payload, (slot) => serve(t, slot), resolve, first);
    reactor.start();
    t.register();
    reactor.submit();
    ready();
  });
}

if (!isMainThread) {
  // per-queue: this Worker serves the queue of the CPU it is pinned to
  const { fd, cpu, payload } = workerData as { fd: number; cpu: number; payload: number };
  if (!pinThread(cpu)) throw new SyscallError("sched_setaffinity", errno());
  void startReactor(fd, payload, cpu, 1, false, cpu, () => parentPort!.postMessage("registered")).then(() => process.exit(0));
} else {
  const [layout, mountpoint] = process.argv.slice(2);
  if ((layout !== "single" && layout !== "per-queue") || !mountpoint) {
    console.error("usage: queue-layout-server.ts single|per-queue MOUNTPOINT");
    process.exit(2);
  }
  const fd = libc.open(cstr("/dev/fuse"), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("open /dev/fuse", errno());
  const o = defaultMountOptions();
  mountFuse(fd, mountpoint, o, `queue-layout-${layout}`);
  // INIT comes through /dev/fuse (blocking read here: nothing else to do before it)
  const buf = new ArrayBuffer(1 << 21);
  const dv = new DataView(buf);
  const n = Number(libc.read(fd, new Uint8Array(buf), buf.byteLength));
  if (n < 56 || dv.getUint32(4, true) !== Op.INIT) throw new Error(`expected INIT, read ${n} bytes`);
  // the runtime's own negotiation, for a filesystem with no optional ops and no kernel passthrough
  o.passthrough = false;
  const init = negotiate(decodeInitIn(dv, 40), {} as Filesystem, o);
  if (!init.uringOffered) throw new Error("the kernel does not offer FUSE-over-io_uring (scripts/setup turns it on)");
  init.out.flags2 |= 1 << (Init.OVER_IO_URING - 32);
  const rep = new ArrayBuffer(16 + 64);
  const rv = new DataView(rep);
  rv.setUint32(0, 80, true);
  rv.setUint32(8, dv.getUint32(8, true), true);
  rv.setUint32(12, dv.getUint32(12, true), true);
  encodeInitOut(rv, 16, init.out);
  if (Number(libc.write(fd, new Uint8Array(rep), 80)) !== 80) throw new SyscallError("write INIT reply", errno());
  const payload = init.payloadSize;
  const cpus = possibleCpus();
  if (layout === "single") {
    void startReactor(fd, payload, 0, cpus, true, -1, () => console.log("ready")).then(() => process.exit(0));
  } else {
    let registered = 0, exited = 0;
    for (let cpu = 0; cpu < cpus; cpu++) {
      const w = new Worker(import.meta.path, { workerData: { fd, cpu, payload } });
      w.on("message", () => {
        if (++registered === cpus) console.log("ready");
      });
      w.on("error", (e) => {
        console.error(`queue ${cpu}:`, e);
        process.exit(1);
      });
      w.on("exit", () => {
        if (++exited === cpus) process.exit(0);
      });
    }
  }
}
