/**
 * Runtime bugs found while writing the dispatcher tests, one test each (each failed before its fix).
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import type { Entry } from "../../runtime/api/types.ts";
import { cat, cstr, struct, u64 } from "../helpers/fake-transport.ts";
import { OP, rig, attr, tick, forgetIn, batchForgetIn, forgetOne } from "../helpers/dispatch-rig.ts";

describe("runtime bugs", () => {
  // BUG (runtime/dispatch/ops.ts:182-190 encLk, via :445 lockArg / codec.ts getU64+setU64):
  // lock ranges are u64 on the wire but carried as doubles. A whole-file lock has
  // end = OFFSET_MAX = 0x7fffffffffffffff, which getU64 rounds to 2^63; a plugin that reports a
  // conflicting lock by returning the lock it was given (or end = Number.MAX_VALUE-ish values)
  // makes encLk write 0x8000000000000000, which the kernel's convert_fuse_file_lock() rejects
  // (end > OFFSET_MAX) → fcntl(F_GETLK) fails with EIO. Fix: saturate lock start/end at
  // OFFSET_MAX when encoding (values ≥ 2^63 → 0x7fffffff_ffffffff).
  test("GETLK: a whole-file lock (end = OFFSET_MAX) is echoed back without overflowing OFFSET_MAX", () => {
    const { t, send } = rig("classic", { getlk: (_r, _i, _fh, _owner, lock) => ({ ...lock, type: 1, pid: 99 }) });
    const lkIn = struct(48, (d) => {
      d.setBigUint64(0, 1n, true); // fh
      d.setBigUint64(8, 0xabcdn, true); // owner
      d.setBigUint64(16, 0n, true); // start
      d.setBigUint64(24, 0x7fff_ffff_ffff_ffffn, true); // end = OFFSET_MAX
      d.setUint32(32, 1, true); // F_WRLCK
      d.setUint32(36, 1234, true);
    });
    send({ opcode: OP.GETLK, opHeader: lkIn });
    const r = t.only();
    expect(r.error).toBe(0);
    expect(r.len).toBe(24);
    expect(r.dv.getBigUint64(8, true)).toBeLessThanOrEqual(0x7fff_ffff_ffff_ffffn);
  });

  // BUG (runtime/dispatch/ops.ts:211-229 FORGET / BATCH_FORGET + dispatcher.ts:105-109 catch):
  // a plugin `forget` that throws makes runHandler throw, and dispatch() answers the FORGET with
  // -EIO through transport.reply(): FORGET/BATCH_FORGET must never be answered (§1.3). For
  // BATCH_FORGET the throw also abandons the remaining pairs, so cfg.onForget (KernelNodes) and
  // the plugin never hear of them. Fix: in both handlers call the plugin's forget inside
  // try/catch per pair (log the error), always returning NO_REPLY.
  test("a throwing forget is logged but never answered, and the batch continues", () => {
    const calls: number[] = [];
    const { t, d, send, logs } = rig("classic", {
      lookup: (_r, _p, n) => attr(Number(n)),
      forget: (ino) => {
        calls.push(ino);
        if (ino === 10) throw new Error("plugin bug in forget");
      },
    });
    send({ opcode: OP.LOOKUP, args: cstr("10") });
    send({ opcode: OP.LOOKUP, args: cstr("11") });
    expect(d.nodes.size).toBe(2);
    send({ opcode: OP.FORGET, nodeid: 10, opHeader: forgetIn(1) });
    send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(2), args: cat(forgetOne(10, 1), forgetOne(11, 1)) });
    expect(t.replies.length).toBe(2); // the two lookups only
    expect(t.noReplies.length).toBe(2);
    expect(calls).toEqual([10, 10, 11]);
    expect(d.nodes.size).toBe(0);
    expect(logs.some((l) => l.includes("forget") && l.includes("plugin bug in forget"))).toBe(true);
  });

  // BUG (same handlers, runtime/dispatch/ops.ts:214 and :226): the value the plugin's
  // forget returns is dropped. `async forget() {...}` type-checks against the API (a
  // Promise-returning function is assignable to a void one), and if it rejects the rejection is
  // unhandled; with no unhandledRejection handler in the runtime, Bun then exits the daemon
  // (checked: `bun -e 'Promise.reject(new Error())'` exits 1). Fix: if forget returns a thenable,
  // attach a catch that logs.
  test("an async forget that rejects does not leave an unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const { t, send } = rig("classic", { forget: (async () => { throw new Error("async forget failure"); }) as () => void });
      send({ opcode: OP.FORGET, nodeid: 10, opHeader: forgetIn(1) });
      send({ opcode: OP.BATCH_FORGET, nodeid: 0, opHeader: batchForgetIn(1), args: forgetOne(11, 1) });
      await tick();
      await tick();
      expect(t.noReplies.length).toBe(2);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  // BUG (latent; runtime/dispatch/ops.ts:74 cfgRef, read at :79-95, set at :518): encoders read the mount config from
  // the module-level `cfgRef`, set by whichever Dispatcher ran a handler last. The comment says
  // "encoders run before the next dispatch", which is false for async ops: their encoder runs
  // when the promise settles. With two Dispatchers in one process (two mounts, or an embedder
  // and a test), an async reply is encoded with the other mount's entry/attr timeouts and
  // openDefaults, and an async open's backingFd is registered through the other mount's
  // `backing` (i.e. with the wrong kernel connection). Fix: read the config from the Call (e.g. c.cfg set in dispatch) instead of a
  // module global.
  test("an async lookup is encoded with its own dispatcher's entry_timeout", async () => {
    const p = Promise.withResolvers<Entry>();
    const a = rig("uring", { lookup: () => p.promise }, { entryTimeout: 5 });
    const b = rig("uring", { lookup: () => attr(2) }, { entryTimeout: 1 });
    a.send({ opcode: OP.LOOKUP, args: cstr("slow") });
    b.send({ opcode: OP.LOOKUP, args: cstr("fast") });
    expect(u64(b.t.only().dv, 16)).toBe(1);
    p.resolve(attr(3));
    await a.t.waitAnswers(1);
    expect(u64(a.t.only().dv, 16)).toBe(5);
  });
});
