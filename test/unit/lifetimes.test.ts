/**
 * The runtime owns node lifetimes: the dispatcher counts what the kernel holds (entry replies
 * minus FORGETs) and which nodes are open (open/opendir/create replies minus RELEASE/RELEASEDIR),
 * tells the plugin when a node is forgotten entirely (`forgotten`), and gives back what a dropped
 * result handed out (late after op_timeout, or a reply that cannot be encoded): forget(ino, 1)
 * per entry, release/releasedir per handle. Driven on byte buffers in both slot layouts.
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher, type DispatchConfig } from "../../runtime/dispatch/dispatcher.ts";
import type { Filesystem, Entry, Attr, DirListPlus, OpenReply, PluginContext, Request } from "../../runtime/api/types.ts";
import { defineTree } from "../../runtime/api/tree.ts";
import { createSharedCounts } from "../../runtime/dispatch/shared-counts.ts";
import { S_IFDIR, S_IFREG } from "../../runtime/api/constants.ts";
import { FakeTransport, LAYOUTS, makeSlot, writeRequest, cstr, struct, rwIn, type Layout, type RequestSpec } from "../helpers/fake-transport.ts";
import type { RequestSlot } from "../../runtime/transport/slot.ts";

// opcodes (reference §1.5)
const OP = { LOOKUP: 1, FORGET: 2, OPEN: 14, RELEASE: 18, OPENDIR: 27, RELEASEDIR: 29, CREATE: 35, BATCH_FORGET: 42, READDIRPLUS: 44 } as const;
const EIO = 5, ETIMEDOUT = 110;

const baseCfg = (): DispatchConfig => ({
  entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, denyOthers: -1, log: () => {},
});

function attr(ino: number, over: Partial<Attr> = {}): Attr {
  return { ino, mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, size: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ...over };
}

/** What the runtime told the plugin, in order. */
type Event = [string, ...unknown[]];

function rig(layout: Layout, fs: Filesystem, cfg: Partial<DispatchConfig> = {}) {
  const t = new FakeTransport(layout === "classic" ? "classic" : "io_uring");
  const logs: string[] = [];
  const d = new Dispatcher({ ...baseCfg(), log: (l) => logs.push(l), ...cfg }, fs);
  const slots = [0, 1, 2, 3].map((i) => makeSlot(t, layout, 8192, i));
  const send = (spec: RequestSpec, s: RequestSlot = slots[0]!) => {
    writeRequest(s, spec);
    d.dispatch(s);
  };
  return { t, d, logs, slots, send };
}

const openIn = (flags: number) => struct(8, (d) => d.setUint32(0, flags, true));
const createIn = (flags: number, mode: number) => struct(16, (d) => {
  d.setUint32(0, flags, true);
  d.setUint32(4, mode, true);
});
const releaseIn = (fh: number) => struct(24, (d) => d.setBigUint64(0, BigInt(fh), true));
const forgetIn = (n: number) => struct(8, (d) => d.setBigUint64(0, BigInt(n), true));
const batchForget = (pairs: [number, number][]) => ({
  opHeader: struct(8, (d) => d.setUint32(0, pairs.length, true)),
  args: struct(16 * pairs.length, (d) => pairs.forEach(([ino, n], i) => {
    d.setBigUint64(16 * i, BigInt(ino), true);
    d.setBigUint64(16 * i + 8, BigInt(n), true);
  })),
});

/** A promise settled from outside (the plugin's op that is "slow"). */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
}

/** Wait until the sweeper answered ETIMEDOUT `n` times. */
async function timedOut(t: FakeTransport, n: number): Promise<void> {
  const end = Date.now() + 2000;
  while (t.replies.filter((r) => r.error === -ETIMEDOUT).length < n) {
    if (Date.now() > end) throw new Error("no ETIMEDOUT reply");
    await Bun.sleep(5);
  }
}
const flush = () => Bun.sleep(1);

/** A plugin recording every lifetime call; `slow` ops wait for the test to settle them. */
function recorder() {
  const events: Event[] = [];
  const fs: Filesystem = {
    forget: (ino, n) => void events.push(["forget", ino, n]),
    forgotten: (ino) => void events.push(["forgotten", ino]),
    release: (req, ino, fh, flags) => void events.push(["release", ino, fh, flags, req.pid]),
    releasedir: (_req, ino, fh) => void events.push(["releasedir", ino, fh]),
  };
  return { events, fs };
}

for (const layout of LAYOUTS) {
  describe(`dropped results are given back [${layout}]`, () => {
    test("a lookup that settles after op_timeout gets forget(ino, 1), then forgotten (the kernel never held it)", async () => {
      const { events, fs } = recorder();
      const slow = deferred<Entry>();
      fs.lookup = () => slow.p;
      const { t, d, logs, send } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cstr("late") });
      await timedOut(t, 1);
      expect(events).toEqual([]); // nothing to give back before the result exists
      slow.resolve(attr(7));
      await flush();
      expect(events).toEqual([["forget", 7, 1], ["forgotten", 7]]);
      expect(d.nodes.count(7)).toBe(0);
      expect(d.lifetimes.compensated).toBe(1);
      expect(t.replies.length).toBe(1); // the late result is never sent
      expect(logs.some((l) => l.includes("forget(7, 1) given back"))).toBe(true);
      d.close();
    });

    test("a late lookup of a node the kernel still holds gets forget(ino, 1) but no forgotten", async () => {
      const { events, fs } = recorder();
      const slow = deferred<Entry>();
      let n = 0;
      fs.lookup = () => (n++ === 0 ? attr(7) : slow.p);
      const { t, d, send, slots } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.LOOKUP, args: cstr("x") }, slots[0]);
      expect(t.replies[0]!.error).toBe(0);
      send({ opcode: OP.LOOKUP, args: cstr("x") }, slots[1]);
      await timedOut(t, 1);
      slow.resolve(attr(7));
      await flush();
      expect(events).toEqual([["forget", 7, 1]]);
      expect(d.nodes.count(7)).toBe(1);
      d.close();
    });

    test("an open that settles after op_timeout gets release(ino, fh, flags) with the open's flags", async () => {
      const { events, fs } = recorder();
      const slow = deferred<OpenReply>();
      fs.open = () => slow.p;
      const { t, d, send } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.OPEN, nodeid: 9, opHeader: openIn(0o2 | 0o2000) });
      await timedOut(t, 1);
      slow.resolve({ fh: 55 });
      await flush();
      expect(events).toEqual([["release", 9, 55, 0o2 | 0o2000, 0]]);
      expect(d.isOpen(9)).toBe(false);
      d.close();
    });

    test("an opendir that settles after op_timeout gets releasedir(ino, fh)", async () => {
      const { events, fs } = recorder();
      const slow = deferred<OpenReply>();
      fs.opendir = () => slow.p;
      const { t, d, send } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.OPENDIR, nodeid: 4, opHeader: openIn(0) });
      await timedOut(t, 1);
      slow.resolve({ fh: 3 });
      await flush();
      expect(events).toEqual([["releasedir", 4, 3]]);
      d.close();
    });

    test("a create whose reply cannot be encoded is answered EIO and gets release, then forget and forgotten", () => {
      const { events, fs } = recorder();
      fs.create = () => ({ entry: attr(12, { size: -1 }) as Entry, fh: 8 });
      const { t, d, logs, send } = rig(layout, fs);
      send({ opcode: OP.CREATE, nodeid: 1, opHeader: createIn(0o1 | 0o100, S_IFREG | 0o600), args: cstr("bad") });
      expect(t.only().error).toBe(-EIO);
      expect(events).toEqual([["release", 12, 8, 0o1 | 0o100, 0], ["forget", 12, 1], ["forgotten", 12]]);
      expect(d.isOpen(12)).toBe(false);
      expect(d.nodes.count(12)).toBe(0);
      expect(logs.some((l) => l.includes("answered EIO"))).toBe(true);
    });

    test("a lookup whose entry cannot be encoded gets forget(ino, 1); an open whose reply cannot be encoded gets release", async () => {
      const { events, fs } = recorder();
      fs.lookup = async () => attr(5, { mode: 0o644 }); // no file type: the kernel would refuse it
      fs.open = () => ({ fh: 2, backingFd: -3 });
      const { t, send } = rig(layout, fs, { backing: { open: () => 1, release: () => {} } });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      await flush();
      send({ opcode: OP.OPEN, nodeid: 6, opHeader: openIn(0) });
      expect(t.replies.map((r) => r.error)).toEqual([-EIO, -EIO]);
      expect(events).toEqual([["forget", 5, 1], ["forgotten", 5], ["release", 6, 2, 0, 0]]);
    });

    test("readdirplus entries added before the op failed get forget(ino, 1) each", async () => {
      const { events, fs } = recorder();
      fs.readdirplus = async (_r, _ino, _fh, _off, out: DirListPlus) => {
        out.add(".", attr(1, { mode: S_IFDIR | 0o755 }), 1);
        out.add("a", attr(20), 2);
        out.add("b", attr(21), 3);
        throw new Error("disk on fire");
      };
      const { t, send } = rig(layout, fs);
      send({ opcode: OP.READDIRPLUS, nodeid: 1, opHeader: rwIn(0, 0, 4096) });
      await flush();
      expect(t.only().error).toBe(-EIO);
      expect(events).toEqual([["forget", 20, 1], ["forgotten", 20], ["forget", 21, 1], ["forgotten", 21]]);
    });

    test("a readdirplus that settles after op_timeout gives back the entries it had added", async () => {
      const { events, fs } = recorder();
      const slow = deferred<void>();
      fs.readdirplus = async (_r, _ino, _fh, _off, out: DirListPlus) => {
        out.add("a", attr(30), 1);
        await slow.p;
        expect(out.add("b", attr(31), 2)).toBe(false); // the retired sink takes nothing more
      };
      const { t, d, send } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.READDIRPLUS, nodeid: 1, opHeader: rwIn(0, 0, 4096) });
      await timedOut(t, 1);
      slow.resolve();
      await flush();
      expect(events).toEqual([["forget", 30, 1], ["forgotten", 30]]);
      d.close();
    });

    test("a late failure gives nothing back; a plugin without the ops is fine", async () => {
      let rejectIt!: (e: unknown) => void;
      const p = new Promise<Entry>((_, rej) => (rejectIt = rej));
      const { t, d, send, logs } = rig(layout, { lookup: () => p, open: () => new Promise<OpenReply>((r) => setTimeout(() => r({ fh: 1 }), 60)) }, { opTimeout: 0.02 });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      await timedOut(t, 1);
      rejectIt(Object.assign(new Error("gone"), { code: "ENOENT" }));
      await flush();
      expect(d.lifetimes.compensated).toBe(0);
      send({ opcode: OP.OPEN, nodeid: 2, opHeader: openIn(0) });
      await timedOut(t, 2);
      await Bun.sleep(80);
      expect(d.lifetimes.compensated).toBe(1); // counted and logged even with no release to call
      expect(logs.filter((l) => l.includes("given back")).length).toBe(1);
      d.close();
    });
  });

  describe(`forgotten and isOpen [${layout}]`, () => {
    test("forgotten runs once the kernel's count reaches 0, not before (FORGET and BATCH_FORGET)", async () => {
      const { events, fs } = recorder();
      fs.lookup = (_r, _p, name) => attr(name === "a" ? 40 : 41);
      const { d, send } = rig(layout, fs);
      for (const name of ["a", "a", "a", "b"]) send({ opcode: OP.LOOKUP, args: cstr(name) });
      send({ opcode: OP.FORGET, nodeid: 40, opHeader: forgetIn(2) });
      expect(events).toEqual([["forget", 40, 2]]);
      expect(d.nodes.count(40)).toBe(1);
      send({ opcode: OP.BATCH_FORGET, ...batchForget([[40, 1], [41, 1]]) });
      expect(events).toEqual([["forget", 40, 2], ["forget", 40, 1], ["forgotten", 40], ["forget", 41, 1], ["forgotten", 41]]);
      // a new lookup starts a new count
      send({ opcode: OP.LOOKUP, args: cstr("a") });
      send({ opcode: OP.FORGET, nodeid: 40, opHeader: forgetIn(1) });
      expect(events.filter((e) => e[0] === "forgotten" && e[1] === 40).length).toBe(2);
    });

    test("forgotten works without forget, and a throwing forgotten is only logged", () => {
      const seen: number[] = [];
      const { t, logs, send } = rig(layout, {
        lookup: () => attr(50),
        forgotten(ino) {
          seen.push(ino);
          throw new Error("boom");
        },
      });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      send({ opcode: OP.FORGET, nodeid: 50, opHeader: forgetIn(1) });
      expect(seen).toEqual([50]);
      expect(t.noReplies.length).toBe(1);
      expect(logs.some((l) => l.includes("forgotten (node 50) threw"))).toBe(true);
    });

    test("isOpen counts open/opendir/create replies minus RELEASE/RELEASEDIR; inside release the handle no longer counts", () => {
      let seenInRelease: boolean[] = [];
      let d!: Dispatcher;
      const r = rig(layout, {
        open: () => ({ fh: 1 }),
        create: () => ({ entry: attr(61) as Entry, fh: 2 }),
        release: (_req, ino) => void seenInRelease.push(d.isOpen(ino)),
      });
      d = r.d;
      const send = r.send;
      expect(d.isOpen(60)).toBe(false);
      send({ opcode: OP.OPEN, nodeid: 60, opHeader: openIn(0) });
      send({ opcode: OP.OPEN, nodeid: 60, opHeader: openIn(0) });
      expect(d.isOpen(60)).toBe(true);
      send({ opcode: OP.RELEASE, nodeid: 60, opHeader: releaseIn(1) });
      expect(d.isOpen(60)).toBe(true);
      send({ opcode: OP.RELEASE, nodeid: 60, opHeader: releaseIn(1) });
      expect(d.isOpen(60)).toBe(false);
      expect(seenInRelease).toEqual([true, false]);
      send({ opcode: OP.CREATE, nodeid: 1, opHeader: createIn(0o1, S_IFREG | 0o644), args: cstr("n") });
      expect(d.isOpen(61)).toBe(true);
      send({ opcode: OP.OPENDIR, nodeid: 62, opHeader: openIn(0) });
      expect(d.isOpen(62)).toBe(true);
      send({ opcode: OP.RELEASEDIR, nodeid: 62, opHeader: releaseIn(0) });
      expect(d.isOpen(62)).toBe(false);
      // a failed open is no handle
      seenInRelease = [];
      const f = rig(layout, { open: () => { throw Object.assign(new Error("no"), { code: "EACCES" }); } });
      f.send({ opcode: OP.OPEN, nodeid: 63, opHeader: openIn(0) });
      expect(f.d.isOpen(63)).toBe(false);
    });

    test("reactors sharing one count table: forgotten runs where the sum reaches 0, isOpen sees every reactor's opens", () => {
      const table = createSharedCounts();
      const a = recorder(), b = recorder();
      a.fs.lookup = () => attr(70);
      a.fs.open = () => ({ fh: 1 });
      const w = rig(layout, a.fs, { signedNodeCounts: true, sharedCounts: table }); // a Worker: lookups, opens
      const m = rig(layout, b.fs, { signedNodeCounts: true, sharedCounts: table }); // the main thread: FORGETs
      w.send({ opcode: OP.LOOKUP, args: cstr("x") });
      w.send({ opcode: OP.LOOKUP, args: cstr("x") });
      m.send({ opcode: OP.FORGET, nodeid: 70, opHeader: forgetIn(1) });
      expect(b.events).toEqual([["forget", 70, 1]]); // one reference left (on another reactor)
      w.send({ opcode: OP.OPEN, nodeid: 70, opHeader: openIn(0) });
      expect([w.d.isOpen(70), m.d.isOpen(70)]).toEqual([true, true]);
      m.send({ opcode: OP.RELEASE, nodeid: 70, opHeader: releaseIn(1) });
      expect([w.d.isOpen(70), m.d.isOpen(70)]).toEqual([false, false]);
      m.send({ opcode: OP.FORGET, nodeid: 70, opHeader: forgetIn(1) });
      expect(b.events).toEqual([["forget", 70, 1], ["release", 70, 1, 0, 4242], ["forget", 70, 1], ["forgotten", 70]]);
      expect(a.events).toEqual([]);
      // no counts of their own (a Worker's would only grow, one entry per node it answered)
      expect([w.d.nodes.size, m.d.nodes.size]).toEqual([0, 0]);
    });

    test("signed counts without a shared table: forgotten is not called and isOpen refuses to guess", () => {
      const { events, fs } = recorder();
      fs.lookup = () => attr(71);
      const { d, send } = rig(layout, fs, { signedNodeCounts: true });
      send({ opcode: OP.LOOKUP, args: cstr("x") });
      send({ opcode: OP.FORGET, nodeid: 71, opHeader: forgetIn(1) });
      expect(events).toEqual([["forget", 71, 1]]);
      expect(() => d.isOpen(71)).toThrow(/partial/);
    });
  });

  describe(`defineTree over dropped results [${layout}]`, () => {
    /** A tree of files whose `lookup` of "slow" waits for the test; `forget` records freed nodes. */
    async function treeRig() {
      const freed: string[] = [];
      const gate = deferred<void>();
      const files = new Map<string, { name: string }>([["f", { name: "f" }], ["slow", { name: "slow" }]]);
      const root = { name: "/" };
      const plugin = defineTree<{ name: string }>({
        root,
        async lookup(_dir, name) {
          if (name === "slow") await gate.p;
          return files.get(name);
        },
        stat: (n) => ({ mode: n === root ? S_IFDIR | 0o755 : S_IFREG | 0o644 }),
        open: () => ({}),
        forget: (n) => void freed.push(n.name),
      });
      const kept = new Map<string, unknown>();
      const ctx = {
        options: {}, mountpoint: "/m", generation: 1, log() {}, isOpen: () => false, atime: "relatime", nodiratime: false,
        keep<T>(key: string, init: () => T): T {
          if (!kept.has(key)) kept.set(key, init());
          return kept.get(key) as T;
        },
        notify: {} as PluginContext["notify"], io: {} as PluginContext["io"],
        shared: () => new SharedArrayBuffer(0), reactor: { index: 0, count: 0, primary: true },
        passthrough: () => false, onDestroy() {},
      } satisfies PluginContext;
      const fs = await plugin.setup(ctx);
      return { fs, freed, gate };
    }

    test("a tree node whose lookup came after op_timeout is freed (its slot dropped, tree.forget called)", async () => {
      const { fs, freed, gate } = await treeRig();
      const { t, d, send } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cstr("slow") });
      await timedOut(t, 1);
      gate.resolve();
      await Bun.sleep(5);
      expect(freed).toEqual(["slow"]);
      d.close();
    });

    test("a tree open whose result came after op_timeout is released, so the forgotten node is freed", async () => {
      const { fs, freed } = await treeRig();
      const gate = deferred<void>();
      const open = fs.open!;
      fs.open = async (...a) => {
        await gate.p;
        return open.apply(fs, a);
      };
      const { t, d, send, slots } = rig(layout, fs, { opTimeout: 0.02 });
      send({ opcode: OP.LOOKUP, nodeid: 1, args: cstr("f") }, slots[0]);
      await Bun.sleep(2);
      const ino = new DataView(t.replies[0]!.bytes.buffer).getUint32(0, true);
      send({ opcode: OP.OPEN, nodeid: ino, opHeader: openIn(0) }, slots[1]);
      await timedOut(t, 1);
      gate.resolve();
      await Bun.sleep(5);
      send({ opcode: OP.FORGET, nodeid: ino, opHeader: forgetIn(1) }, slots[2]);
      await Bun.sleep(2);
      expect(freed).toEqual(["f"]); // without the release the handle would pin it forever
      d.close();
    });
  });
}

// The Request a compensating release receives.
test("a compensating release gets a kernel-internal request (pid 0) whose signal never aborts", async () => {
  let req: Request | null = null;
  const slow = deferred<OpenReply>();
  const { t, d, send } = rig("classic", { open: () => slow.p, release: (r) => void (req = r) }, { opTimeout: 0.02 });
  send({ opcode: OP.OPEN, nodeid: 3, opHeader: openIn(0) });
  await timedOut(t, 1);
  slow.resolve({ fh: 1 });
  await flush();
  expect(req).not.toBeNull();
  expect([req!.op, req!.pid, req!.uid, req!.signal.aborted]).toEqual(["release", 0, 0, false]);
  d.close();
});
