/**
 * Ops that answer later (a promise), and INTERRUPT of them.
 *
 * The dispatcher on byte buffers, no kernel: requests are laid out by hand in RequestSlots over
 * plain ArrayBuffers, in both layouts (classic /dev/fuse and FUSE-over-io_uring), and a fake
 * Transport records the replies (the rig: test/helpers/dispatch-rig.ts). Offsets and opcodes are
 * the reference's (shared/reference/fuse-protocol.md §1.2, §1.5-1.8, §2.7), written out here.
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher } from "../../runtime/dispatch/dispatcher.ts";
import type { Entry, Request } from "../../runtime/api/types.ts";
import { FuseError } from "../../runtime/api/errno.ts";
import {
  FakeTransport, LAYOUTS, makeSlot, writeRequest, cstr, rwIn, u64,
} from "../helpers/fake-transport.ts";
import {
  OP, EACCES, EINTR, baseCfg, rig, attr, tick, getattrIn, interruptIn,
} from "../helpers/dispatch-rig.ts";

describe.each(LAYOUTS)("%s layout", (layout) => {
  describe("async ops", () => {
    test("the reply is sent only after the promise settles", async () => {
      const p = Promise.withResolvers<Entry>();
      const { t, d, send } = rig(layout, { lookup: () => p.promise });
      send({ opcode: OP.LOOKUP, args: cstr("slow") });
      await tick();
      expect(t.answered).toBe(0);
      expect(d.inflight).toBe(1);
      p.resolve(attr(77));
      await t.waitAnswers(1);
      const r = t.only();
      expect(r.error).toBe(0);
      expect(r.len).toBe(128);
      expect(u64(r.dv, 0)).toBe(77);
      expect(d.inflight).toBe(0);
    });

    test("a rejected promise is answered after it settles", async () => {
      const p = Promise.withResolvers<Entry>();
      const { t, send } = rig(layout, { lookup: () => p.promise });
      send({ opcode: OP.LOOKUP, args: cstr("slow") });
      await tick();
      expect(t.answered).toBe(0);
      p.reject(new FuseError("EACCES"));
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-EACCES);
    });

    test("independent slots complete out of order, each with its own reply", async () => {
      const waits = new Map<string, PromiseWithResolvers<Entry>>();
      const t = new FakeTransport();
      const d = new Dispatcher(baseCfg(), {
        lookup: (_r, _p, name) => {
          const w = Promise.withResolvers<Entry>();
          waits.set(name, w);
          return w.promise;
        },
      });
      const s1 = makeSlot(t, layout, 4096, 0), s2 = makeSlot(t, layout, 4096, 1);
      writeRequest(s1, { opcode: OP.LOOKUP, unique: 10n, args: cstr("one") });
      d.dispatch(s1);
      writeRequest(s2, { opcode: OP.LOOKUP, unique: 12n, args: cstr("two") });
      d.dispatch(s2);
      expect(d.inflight).toBe(2);
      waits.get("two")!.resolve(attr(2));
      await t.waitAnswers(1);
      waits.get("one")!.resolve(attr(1));
      await t.waitAnswers(2);
      expect(t.replies.map((r) => [r.slot.index, u64(r.dv, 0)])).toEqual([[1, 2], [0, 1]]);
    });
  });

  describe("INTERRUPT", () => {
    test("fires the AbortSignal of the in-flight request with the matching unique", async () => {
      const reqs: Request[] = [];
      const t = new FakeTransport(layout);
      const dev = new FakeTransport("classic");
      const d = new Dispatcher(baseCfg(), {
        getattr: (r) => {
          reqs.push(r);
          return new Promise<never>(() => {}); // never settles
        },
      });
      const target = makeSlot(t, layout, 4096, 0);
      const other = makeSlot(t, layout, 4096, 1);
      const intr = makeSlot(dev, "classic", 4096, 0); // INTERRUPT always comes through /dev/fuse
      writeRequest(target, { opcode: OP.GETATTR, unique: 0x5_0000_0010n, opHeader: getattrIn() });
      d.dispatch(target);
      writeRequest(other, { opcode: OP.GETATTR, unique: 0x6_0000_0010n, opHeader: getattrIn() });
      d.dispatch(other);
      const [req, otherReq] = reqs;

      // an INTERRUPT naming an unknown unique (same low half) aborts nothing
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 0x7_0000_0011n, opHeader: interruptIn(0x7_0000_0010n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(false);
      expect(otherReq!.signal.aborted).toBe(false);

      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 0x5_0000_0011n, opHeader: interruptIn(0x5_0000_0010n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(true);
      expect((req!.signal.reason as { code?: string }).code).toBe("EINTR");
      expect(otherReq!.signal.aborted).toBe(false);
      // INTERRUPT itself is never answered; the target is still being served
      expect(dev.replies.length).toBe(0);
      expect(dev.noReplies.length).toBe(2);
      await tick();
      expect(t.answered).toBe(0);
      expect(d.inflight).toBe(2);
    });

    test("a listener on the signal fires; rejecting with its reason answers -EINTR", async () => {
      const t = new FakeTransport(layout);
      const d = new Dispatcher(baseCfg(), {
        read: (r) => new Promise<number>((_res, rej) => r.signal.addEventListener("abort", () => rej(r.signal.reason))),
      });
      const target = makeSlot(t, layout, 4096, 0);
      const intr = makeSlot(new FakeTransport("classic"), "classic", 4096, 0);
      writeRequest(target, { opcode: OP.READ, unique: 42n, opHeader: rwIn(1, 0, 10) });
      d.dispatch(target);
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 43n, opHeader: interruptIn(42n) });
      d.dispatch(intr);
      await t.waitAnswers(1);
      expect(t.only().error).toBe(-EINTR);
    });

    test("an INTERRUPT for a request already answered does nothing", () => {
      let req: Request | null = null;
      const t = new FakeTransport(layout);
      const d = new Dispatcher(baseCfg(), { getattr: (r, ino) => ((req = r), attr(ino)) });
      const target = makeSlot(t, layout, 4096, 0);
      const intr = makeSlot(new FakeTransport("classic"), "classic", 4096, 0);
      writeRequest(target, { opcode: OP.GETATTR, unique: 100n, opHeader: getattrIn() });
      d.dispatch(target);
      expect(t.only().error).toBe(0);
      writeRequest(intr, { opcode: OP.INTERRUPT, unique: 101n, opHeader: interruptIn(100n) });
      d.dispatch(intr);
      expect(req!.signal.aborted).toBe(false);
      expect(t.replies.length).toBe(1);
    });
  });
});
