/**
 * The dispatcher shows a plugin's stacks through the StackFormat its config hands in (the plugin
 * host's source maps on a real mount), so the dispatcher imports nothing of the host: a thrown
 * error goes through `fold`, an invalid reply through `pluginFrames`, a forget's throw (nobody
 * awaits it) through `fold` too; with none given, stacks are logged as thrown.
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher, type DispatchConfig } from "../../runtime/dispatch/dispatcher.ts";
import type { StackFormat } from "../../runtime/dispatch/ops.ts";
import type { Filesystem } from "../../runtime/api/types.ts";
import { FakeTransport, LAYOUTS, makeSlot, writeRequest, cstr, struct } from "../helpers/fake-transport.ts";

const OP = { LOOKUP: 1, FORGET: 2, GETATTR: 3 } as const;
const EIO = 5;

function rig(layout: (typeof LAYOUTS)[number], fs: Filesystem, stacks?: StackFormat) {
  const t = new FakeTransport(layout === "classic" ? "classic" : "io_uring");
  const logs: string[] = [];
  const cfg: DispatchConfig = { entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, denyOthers: -1, log: (l) => logs.push(l) };
  if (stacks !== undefined) cfg.stacks = stacks;
  const d = new Dispatcher(cfg, fs);
  const slot = makeSlot(t, layout, 8192, 0);
  return { t, logs, send: (spec: Parameters<typeof writeRequest>[1]) => (writeRequest(slot, spec), d.dispatch(slot)) };
}

const marked: StackFormat = { fold: (s) => `FOLDED<${s.split("\n")[0]}>`, pluginFrames: () => "PLUGIN-FRAMES" };

describe.each(LAYOUTS)("stack format (%s)", (layout) => {
  test("a throw is logged through fold and answered EIO", () => {
    const { t, logs, send } = rig(layout, { getattr: () => { throw new Error("boom"); } }, marked);
    send({ opcode: OP.GETATTR, nodeid: 1, opHeader: struct(16) });
    expect(t.replies.at(-1)!.error).toBe(-EIO);
    expect(logs.join("\n")).toContain("threw: FOLDED<Error: boom>");
  });

  test("an invalid reply is logged with pluginFrames", () => {
    const { t, logs, send } = rig(layout, { lookup: () => ({ ino: "x" }) as never }, marked);
    send({ opcode: OP.LOOKUP, nodeid: 1, args: cstr("a") });
    expect(t.replies.at(-1)!.error).toBe(-EIO);
    expect(logs.join("\n")).toMatch(/returned an invalid reply: .*PLUGIN-FRAMES/s);
  });

  test("a forget that throws is logged through fold", () => {
    const { logs, send } = rig(layout, { forget: () => { throw new Error("gone"); } }, marked);
    send({ opcode: OP.FORGET, nodeid: 7, opHeader: struct(8, (d) => d.setBigUint64(0, 1n, true)) });
    expect(logs.join("\n")).toContain("forget (node 7) threw: FOLDED<Error: gone>");
  });

  test("without a format, the stack as thrown", () => {
    const { logs, send } = rig(layout, { getattr: () => { throw new Error("plain"); } });
    send({ opcode: OP.GETATTR, nodeid: 1, opHeader: struct(16) });
    expect(logs.join("\n")).toMatch(/threw: Error: plain\n\s+at /);
  });
});
