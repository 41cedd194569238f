/**
 * The request decoder under random and truncated messages: 100k seeded cases (FURING_FUZZ_CASES
 * to change) fed through the dispatcher into a real memfs, in both slot layouts. The runtime must
 * never throw, must answer every request exactly once (or not at all for FORGET-like opcodes),
 * and every reply must be well-formed: error in -511..0, payload size valid for the opcode.
 */
import { test, expect } from "bun:test";
import { Dispatcher } from "../../runtime/dispatch/dispatcher.ts";
import { createOps, createState } from "../../plugins/memfs/index.ts";
import { FakeTransport, makeSlot, writeRequest, LAYOUTS } from "../helpers/fake-transport.ts";

const CASES = Number(process.env.FURING_FUZZ_CASES ?? 100_000);

/** xorshift32: reproducible from the seed printed on failure. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

// Op header sizes from the reference (§1.7), for building plausible messages.
const HEADER: Record<number, number> = {
  1: 0, 2: 8, 3: 16, 4: 88, 5: 0, 6: 0, 8: 16, 9: 8, 10: 0, 11: 0, 12: 8, 13: 8, 14: 8, 15: 40, 16: 40,
  17: 0, 18: 24, 20: 16, 21: 16, 22: 8, 23: 8, 24: 0, 25: 24, 27: 8, 28: 40, 29: 24, 30: 16, 31: 48,
  32: 48, 33: 48, 34: 8, 35: 16, 36: 8, 37: 16, 38: 0, 39: 32, 40: 24, 41: 0, 42: 8, 43: 32, 44: 40,
  45: 16, 46: 24, 47: 56, 48: 0, 49: 0, 50: 8, 51: 16, 52: 24, 53: 56,
};
const NO_REPLY = new Set([2, 36, 41, 42]);
/** Exact reply sizes of fixed-size replies (opcodes not listed reply 0 bytes or variable data). */
const FIXED: Record<number, number> = { 1: 128, 3: 104, 4: 104, 6: 128, 8: 128, 9: 128, 13: 128, 14: 16, 16: 8, 17: 80, 27: 16, 31: 24, 35: 144, 46: 8, 47: 8, 51: 144, 53: 8 };
const VARIABLE = new Set([5, 15, 22, 23, 28, 44]);
const NAMES = ["a", "b", "dir", "x".repeat(255), "x".repeat(300), ".", "..", "ü", "a/b", ""];

for (const layout of LAYOUTS) {
  test(`${CASES} random and truncated requests (${layout} layout) never crash or produce a malformed reply`, async () => {
    const t = new FakeTransport(layout);
    const logs: string[] = [];
    const fs = createOps(createState({ maxBytes: 1 << 24, maxNodes: 1000 } as never));
    const d = new Dispatcher({ entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, log: (l) => logs.push(l) }, fs);
    const slot = makeSlot(t, layout, 1 << 16);
    const r = rng(layout === "classic" ? 12345 : 54321);
    const enc = new TextEncoder();
    let seen = 0;
    for (let i = 0; i < CASES; i++) {
      const known = r() < 0.9;
      const opcode = known ? [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 38, 41, 42, 43, 44, 45, 46, 47, 50, 51, 52, 53][Math.floor(r() * 45)]! : Math.floor(r() * 5000);
      const hsize = HEADER[opcode] ?? Math.floor(r() * 64);
      const op = new Uint8Array(hsize);
      for (let k = 0; k < hsize; k++) op[k] = r() < 0.5 ? 0 : Math.floor(r() * 256);
      // sizes that matter (read/readdir/xattr size fields) kept plausible half the time
      if (hsize >= 20 && r() < 0.5) new DataView(op.buffer).setUint32(16, Math.floor(r() * 70000), true);
      let args: Uint8Array;
      const shape = r();
      if (shape < 0.5) {
        const name = NAMES[Math.floor(r() * NAMES.length)]!;
        const second = NAMES[Math.floor(r() * NAMES.length)]!;
        args = enc.encode(`${name}\0${second}\0` + "v".repeat(Math.floor(r() * 64)));
      } else if (shape < 0.8) {
        args = new Uint8Array(Math.floor(r() * 256));
        for (let k = 0; k < args.length; k++) args[k] = Math.floor(r() * 256);
      } else args = new Uint8Array(0);
      writeRequest(slot, { opcode, nodeid: Math.floor(r() * 8), unique: BigInt(2 * (i + 1)), opHeader: op, args });
      // truncation: the message claims less than it carries
      if (r() < 0.2) slot.payloadLen = Math.floor(r() * slot.payloadLen);
      const before = t.answered;
      try {
        d.dispatch(slot);
      } catch (e) {
        throw new Error(`case ${i} (opcode ${opcode}) threw out of dispatch: ${(e as Error).stack}`);
      }
      if (t.answered === before) await t.waitAnswers(before + 1, 2000);
      expect(t.answered).toBe(before + 1);
      const last = t.replies[t.replies.length - 1];
      if (NO_REPLY.has(opcode)) {
        if (t.noReplies.length > 0 && t.noReplies[t.noReplies.length - 1] === slot && (last === undefined || t.replies.length === seen)) {
          seen = t.replies.length;
          continue;
        }
      }
      expect(last).toBeDefined();
      seen = t.replies.length;
      const { error, len } = last!;
      if (!(error <= 0 && error >= -511)) throw new Error(`case ${i} (opcode ${opcode}): error ${error} out of range`);
      if (error === 0) {
        const fixed = FIXED[opcode];
        if (fixed !== undefined && len !== fixed && !((opcode === 22 || opcode === 23) && len === 8)) throw new Error(`case ${i} (opcode ${opcode}): reply of ${len} bytes, expected ${fixed}`);
        if (opcode === 5 && len > 4096) throw new Error(`case ${i}: readlink reply of ${len} bytes`);
        if (VARIABLE.has(opcode) && opcode !== 5) {
          const size = new DataView(op.buffer).getUint32(opcode === 22 || opcode === 23 ? 0 : 16, true);
          if ((opcode === 22 || opcode === 23) && size === 0) expect(len).toBe(8);
          else if (len > size) throw new Error(`case ${i} (opcode ${opcode}): ${len} reply bytes for a ${size}-byte request`);
        }
        if (fixed === undefined && !VARIABLE.has(opcode) && len !== 0) throw new Error(`case ${i} (opcode ${opcode}): unexpected ${len}-byte payload`);
      }
    }
    expect(d.inflight).toBe(0);
  }, 120_000);
}
