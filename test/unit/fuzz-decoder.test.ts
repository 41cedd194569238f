/**
 * The request decoder under random and truncated messages: 100k seeded cases (FURING_FUZZ_CASES
 * to change) fed through the dispatcher into a real memfs, in both slot layouts. The runtime must
 * never throw, must answer every request exactly once (or not at all for FORGET-like opcodes),
 * and every reply must be well-formed: error in -511..0, payload size valid for the opcode.
 */
import { test, expect } from "bun:test";
import { Dispatcher } from "../../runtime/dispatch/dispatcher.ts";
import { createOps, createState } from "../../plugins/memfs/index.ts";
import { FakeTransport, makeSlot, writeRequest, LAYOUTS, REF } from "../helpers/fake-transport.ts";
import { OPCODES, VARIABLE, inSize, type OpInfo } from "../../runtime/kernel/opcodes.ts";
import type { Filesystem } from "../../runtime/api/types.ts";

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

// Sizes and kinds from the opcode table (pinned to the kernel's header by opcodes.test.ts).
const KNOWN = OPCODES.filter((r): r is OpInfo => r !== undefined);
const HEADER: Record<number, number> = Object.fromEntries(KNOWN.map((r) => [r.opcode, r.in]));
const NO_REPLY = new Set(KNOWN.filter((r) => !r.reply).map((r) => r.opcode));
/** Exact reply sizes of fixed-size replies (0: an empty reply). */
const FIXED: Record<number, number> = Object.fromEntries(KNOWN.filter((r) => r.out !== VARIABLE).map((r) => [r.opcode, r.out]));
const VARIABLE_OUT = new Set(KNOWN.filter((r) => r.out === VARIABLE).map((r) => r.opcode));
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
      const opcode = known ? KNOWN[Math.floor(r() * KNOWN.length)]!.opcode : Math.floor(r() * 5000);
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
        if (fixed !== undefined && len !== fixed) throw new Error(`case ${i} (opcode ${opcode}): reply of ${len} bytes, expected ${fixed}`);
        if (opcode === 5 && len > 4096) throw new Error(`case ${i}: readlink reply of ${len} bytes`);
        if (VARIABLE_OUT.has(opcode) && opcode !== 5) {
          const size = new DataView(op.buffer).getUint32(opcode === 22 || opcode === 23 ? 0 : 16, true);
          if ((opcode === 22 || opcode === 23) && size === 0) expect(len).toBe(8);
          else if (len > size) throw new Error(`case ${i} (opcode ${opcode}): ${len} reply bytes for a ${size}-byte request`);
        }
        if (fixed === undefined && !VARIABLE_OUT.has(opcode) && len !== 0) throw new Error(`case ${i} (opcode ${opcode}): unexpected ${len}-byte payload`);
      }
    }
    expect(d.inflight).toBe(0);
  }, 120_000);
}

/**
 * Every opcode of the table, cut at every length: a request shorter than its fixed input, its
 * names or its announced data is answered EIO (never answered, for the kinds the kernel does not
 * wait on) before any handler decodes it: the plugin is not called, and bytes past the cut
 * (poisoned with 0xEE, never NUL, as stale bytes of an earlier request would be) are never taken
 * for part of it. Each opcode's first malformed request is logged, the others are not.
 */
for (const layout of LAYOUTS) {
  test(`every opcode truncated at every length answers EIO before decoding (${layout} layout)`, async () => {
    const t = new FakeTransport(layout);
    const logs: string[] = [];
    const calls: string[] = [];
    const memfs = createOps(createState({ maxBytes: 1 << 24, maxNodes: 1000 } as never));
    // every plugin call is recorded: a truncated request must reach none
    const fs = new Proxy(memfs, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        return typeof v === "function" ? (...a: unknown[]) => (calls.push(String(prop)), v.apply(target, a)) : v;
      },
    }) as Filesystem;
    const d = new Dispatcher({ entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, log: (l) => logs.push(l) }, fs);
    const slot = makeSlot(t, layout, 8192);
    const hdrBytes = new Uint8Array(slot.hdr.buffer, slot.hdr.byteOffset, slot.hdr.byteLength);
    const enc = new TextEncoder();
    let unique = 2n, truncated = 0;
    const malformedOps = new Set<string>();
    for (const row of KNOWN) {
      // a complete request: op header (data sizes filled in), the fixed part after it, names, data
      const op = new Uint8Array(row.in).fill(1);
      const data = new Uint8Array(row.dataSizeAt >= 0 ? 5 : 0).fill(0x44);
      if (row.in >= 20) new DataView(op.buffer).setUint32(16, 100, true); // read/readdir sizes: small
      if (row.dataSizeAt >= 0) new DataView(op.buffer).setUint32(row.dataSizeAt, data.length, true);
      const after = new Uint8Array(row.after);
      const names = Array.from({ length: row.names }, (_, k) => enc.encode(`n${k}\0`));
      const rest = new Uint8Array(after.length + names.reduce((n, b) => n + b.length, 0) + data.length);
      let o = 0;
      for (const part of [after, ...names, data]) (rest.set(part, o), (o += part.length));
      const full = row.in + rest.length;
      // everything in these requests is required, except INIT's fields after flags (older kernels send 16 bytes)
      const minimal = inSize(row.opcode, 45, true) + rest.length;
      for (let len = 0; len <= full; len++) {
        // stale bytes everywhere first
        slot.dataBytes.fill(0xee);
        hdrBytes.fill(0xee);
        const headerPart = Math.min(len, row.in);
        writeRequest(slot, { opcode: row.opcode, nodeid: 1, unique: (unique += 2n), opHeader: op.subarray(0, headerPart), args: rest.subarray(0, len - headerPart) });
        if (layout === "classic") slot.dataBytes.fill(0xee, REF.IN_HEADER + len, REF.IN_HEADER + full + 64);
        const before = t.answered, callsBefore = calls.length, repliesBefore = t.replies.length;
        try {
          d.dispatch(slot);
        } catch (e) {
          throw new Error(`${row.name} cut at ${len} of ${full} bytes threw out of dispatch: ${(e as Error).stack}`);
        }
        if (t.answered === before) await t.waitAnswers(before + 1, 2000);
        expect(t.answered).toBe(before + 1);
        if (len < minimal) {
          truncated++;
          malformedOps.add(row.name.toUpperCase());
          if (calls.length !== callsBefore) throw new Error(`${row.name} cut at ${len} of ${full} bytes reached the plugin (${calls.slice(callsBefore).join(", ")})`);
          if (row.reply) {
            expect(t.replies.length).toBe(repliesBefore + 1);
            const r = t.replies[t.replies.length - 1]!;
            if (r.error !== -5) throw new Error(`${row.name} cut at ${len} of ${full} bytes answered ${r.error}, not EIO`);
          } else expect(t.replies.length).toBe(repliesBefore);
        } else if (d.malformed !== truncated) {
          throw new Error(`${row.name} complete at ${len} of ${full} bytes was refused as malformed: ${logs.at(-1)}`);
        } else if (t.replies.length > repliesBefore) {
          const r = t.replies[t.replies.length - 1]!;
          expect(r.error <= 0 && r.error >= -511).toBe(true);
        }
      }
    }
    expect(truncated).toBeGreaterThan(400);
    expect(d.malformed).toBe(truncated);
    // one line per opcode, however many of its requests were malformed
    const lines = logs.filter((l) => l.includes("malformed"));
    expect(lines.length).toBe(malformedOps.size);
    for (const name of malformedOps) expect(lines.filter((l) => l.includes(`malformed ${name} request`)).length).toBe(1);
    expect(d.inflight).toBe(0);
  }, 60_000);
}
