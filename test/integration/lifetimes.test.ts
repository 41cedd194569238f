/**
 * The runtime owns node lifetimes, through the real kernel over both transports: a result that
 * settles after `-o op_timeout` (the caller already got ETIMEDOUT) is given back to the plugin —
 * forget(ino, 1) for a late lookup, release/releasedir for a late open/opendir — so the plugin's
 * own counts end where the kernel's are; `forgotten` runs when the kernel forgets a node entirely;
 * `ctx.isOpen` follows open and close. Plugin: test/fixtures/lifetimes.ts (counts in /counts).
 * Then the same served by two reactor Workers (lifetimes-shared.ts), where lookups, FORGETs, opens
 * and releases of a node reach different reactors and only the shared count table is exact.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { open, readdir, readFile, stat, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cleanupAll, mountFs, transports, unmountFs, waitFor, type Mount } from "../helpers/mount.ts";

afterAll(cleanupAll);

const PLUGIN = resolve(import.meta.dir, "../fixtures/lifetimes.ts");
const SHARED = resolve(import.meta.dir, "../fixtures/lifetimes-shared.ts");
const LIMIT = 30_000;

interface Counts {
  lookups: Record<string, number>;
  handles: Record<string, number>;
  forgotten: number[];
  isOpen: Record<string, boolean>;
}

/** The error code a promise rejects with ("" if it resolves). */
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

for (const transport of transports()) {
  describe(`node lifetimes over ${transport} (lifetimes.ts, op_timeout=1)`, () => {
    let m: Mount;
    const counts = async (): Promise<Counts> => JSON.parse(await readFile(join(m.dir, "counts"), "utf8"));
    beforeAll(async () => {
      m = await mountFs({ plugin: PLUGIN, transport, options: ["op_timeout=1"], args: ["--delay-ms", "1600"] });
    }, LIMIT);
    afterAll(async () => {
      if (m) await unmountFs(m);
    }, LIMIT);

    test("a lookup that settles after op_timeout is given back: forget(2, 1), then forgotten(2)", async () => {
      expect(await code(stat(join(m.dir, "slow")))).toBe("ETIMEDOUT");
      expect(await waitFor(() => m.log().includes("lifetimes] forgotten 2"), 5000), m.log()).toBe(true);
      expect(m.log()).toContain("lifetimes] forget 2 1 -> 0");
      expect(m.log()).toContain("lookup (node 1) settled after its timeout; its result was discarded; forget(2, 1) given back to the plugin");
      const c = await counts();
      expect(c.lookups["2"]).toBeUndefined(); // the plugin's count is back where the kernel's is
      expect(c.forgotten).toContain(2);
    }, LIMIT);

    test("an open that settles after op_timeout is given back with release; the node is not left open", async () => {
      const before = Object.keys((await counts()).handles).length;
      expect(await code(open(join(m.dir, "slowopen")))).toBe("ETIMEDOUT");
      expect(await waitFor(() => /lifetimes\] release 3 fh \d+ \(isOpen false\)/.test(m.log()), 5000), m.log()).toBe(true);
      const c = await counts();
      expect(Object.values(c.handles)).not.toContain(3);
      expect(Object.keys(c.handles).length).toBe(before);
      expect(c.isOpen["3"]).toBe(false);
      expect(c.lookups["3"]).toBe(1); // the kernel still holds the name it looked up
    }, LIMIT);

    test("an opendir that settles after op_timeout is given back with releasedir", async () => {
      expect(await code(readdir(join(m.dir, "slowdir")))).toBe("ETIMEDOUT");
      expect(await waitFor(() => /lifetimes\] releasedir 5 fh \d+/.test(m.log()), 5000), m.log()).toBe(true);
      const c = await counts();
      expect(Object.values(c.handles)).not.toContain(5);
      expect(c.isOpen["5"]).toBe(false);
    }, LIMIT);

    test("isOpen follows open and close; an unlinked file is forgotten once closed, not before", async () => {
      const f = join(m.dir, "f");
      const h = await open(f, "r");
      try {
        expect((await counts()).isOpen["4"]).toBe(true);
        await unlink(f);
        await Bun.sleep(200);
        const c = await counts();
        expect(c.isOpen["4"]).toBe(true);
        expect(c.forgotten).not.toContain(4); // open: the kernel still holds it
      } finally {
        await h.close();
      }
      expect(await waitFor(async () => (await counts()).forgotten.includes(4), 5000), m.log()).toBe(true);
      const c = await counts();
      expect(c.isOpen["4"]).toBe(false);
      expect(c.lookups["4"]).toBeUndefined();
      expect(m.log()).toContain("lifetimes] forgotten 4 (isOpen false)");
    }, LIMIT);
  });
}

/** How many log lines of any plugin instance match `re` ("[lifetimes w1] forgotten 4 ..."). */
const lines = (log: string, re: RegExp) => log.split("\n").filter((l) => re.test(l)).length;

for (const transport of transports()) {
  describe(`node lifetimes with reactor Workers over ${transport} (lifetimes-shared.ts, reactors=2)`, () => {
    let m: Mount;
    const counts = async (): Promise<Counts> => JSON.parse(await readFile(join(m.dir, "counts"), "utf8"));
    beforeAll(async () => {
      m = await mountFs({ plugin: SHARED, transport, reactors: 2, options: ["op_timeout=1"], args: ["--delay-ms", "1600"] });
      expect(m.ready).toContain("reactor Workers");
    }, LIMIT);
    afterAll(async () => {
      if (m) await unmountFs(m);
    }, LIMIT);

    test("isOpen is exact over every reactor; an unlinked file is forgotten exactly once, after its close", async () => {
      const f = join(m.dir, "f");
      const h = await open(f, "r");
      try {
        for (let i = 0; i < 6; i++) expect((await counts()).isOpen["4"]).toBe(true); // whichever reactor serves the read
        await unlink(f);
        await Bun.sleep(200);
        expect(lines(m.log(), /lifetimes[^\]]*\] forgotten 4 /)).toBe(0);
      } finally {
        await h.close();
      }
      expect(await waitFor(() => lines(m.log(), /lifetimes[^\]]*\] forgotten 4 \(isOpen false\)/) === 1, 5000), m.log()).toBe(true);
      await Bun.sleep(200);
      expect(lines(m.log(), /lifetimes[^\]]*\] forgotten 4 /)).toBe(1);
      for (let i = 0; i < 6; i++) expect((await counts()).isOpen["4"]).toBe(false);
    }, LIMIT);

    test("a late lookup is given back and the node forgotten once", async () => {
      expect(await code(stat(join(m.dir, "slow")))).toBe("ETIMEDOUT");
      expect(await waitFor(() => lines(m.log(), /lifetimes[^\]]*\] forgotten 2 /) === 1, 5000), m.log()).toBe(true);
      expect(m.log()).toContain("forget(2, 1) given back to the plugin");
    }, LIMIT);
  });
}
