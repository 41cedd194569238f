/**
 * Notifications (ctx.notify): a plugin whose data changes behind the kernel's back tells the
 * kernel, and cached readers see the change. test/fixtures/notify-fs.ts is mounted with long
 * cache timeouts and kernel_cache, so without a notification the kernel keeps serving what it
 * cached; each test first shows the stale answer, then sends the notification and shows the new
 * one. Commands go through the fixture's /ctl file (a write returns once its notification is done).
 * That the kernel's cache really changed is read from the daemon's own per-op counters (`furing
 * status --json`, over the control socket, never through the mount): a cached answer adds no
 * request, and the first access after the notification reaches the daemon.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, REPO, transports, waitFor, withMount, type Mount, type Transport } from "../helpers/mount.ts";
import { sh } from "../helpers/run.ts";
import { FdHolder } from "../fixtures/fd-holder.ts";

afterAll(cleanupAll);

const PLUGIN = join(REPO, "test/fixtures/notify-fs.ts");
const CACHING = ["attr_timeout=60", "entry_timeout=60", "kernel_cache"];

function withNotifyFs(transport: Transport, fn: (m: Mount) => Promise<void>): Promise<void> {
  return withMount({ plugin: PLUGIN, transport, options: CACHING, timeoutMs: 30_000 }, fn);
}

/** Read through the page cache, in a fresh process (`cat`). */
const cat = (m: Mount, name: string) => sh(["cat", join(m.dir, name)], { timeoutMs: 10_000 });
/** Runs a /ctl command; resolves once the plugin has done it (and sent its notification). */
const ctl = (m: Mount, cmd: string) => writeFile(join(m.dir, "ctl"), cmd);
/** READ requests that reached the plugin, per file. */
const reads = async (m: Mount): Promise<Record<string, number>> => JSON.parse(await cat(m, "reads"));
const errno = (p: Promise<unknown>) => p.then(() => "ok", (e: NodeJS.ErrnoException) => e.code);
/** Requests of `op` the daemon has served so far, by its own counters. */
const served = async (m: Mount, op: string): Promise<number> => (await m.status()).ops[op]?.count ?? 0;
/** How many `op` requests reached the daemon while `fn` ran (nothing else touches the mount meanwhile). */
async function requestsDuring(m: Mount, op: string, fn: () => Promise<unknown>): Promise<number> {
  const before = await served(m, op);
  await fn();
  return (await served(m, op)) - before;
}

for (const transport of transports()) {
  describe(`notifications over ${transport}`, () => {
    test("a cached reader keeps the old data until invalInode, then reads the new data", async () => {
      await withNotifyFs(transport, async (m) => {
        const { holder } = await FdHolder.open(join(m.dir, "data"));
        try {
          expect(await holder.ask("read 0 100")).toEqual({ ok: true, data: "one1" });
          expect(await cat(m, "data")).toBe("one1");
          expect((await reads(m)).data).toBe(1);

          await ctl(m, "set two2"); // behind the kernel's back
          const stale = await requestsDuring(m, "read", async () => {
            expect(await holder.ask("read 0 100")).toEqual({ ok: true, data: "one1" });
          });
          expect(stale, "a cached read sends no READ").toBe(0);
          expect(await cat(m, "data")).toBe("one1");
          expect((await reads(m)).data).toBe(1); // served from the page cache

          await ctl(m, "inval");
          const fresh = await requestsDuring(m, "read", async () => {
            expect(await holder.ask("read 0 100")).toEqual({ ok: true, data: "two2" });
          });
          expect(fresh, "after invalInode the next read reaches the daemon").toBeGreaterThan(0);
          expect(await cat(m, "data")).toBe("two2");
          expect((await reads(m)).data).toBe(2);
        } finally {
          await holder.close();
        }
      });
    }, 40_000);

    test("a change made by a plugin timer reaches cached readers through the timer's invalInode", async () => {
      await withNotifyFs(transport, async (m) => {
        expect(await cat(m, "data")).toBe("one1");
        await ctl(m, "timer 1000 thr3");
        expect(await cat(m, "data")).toBe("one1"); // the timer has not fired yet
        let seen = "";
        const fresh = await requestsDuring(m, "read", async () => {
          expect(await waitFor(async () => (seen = await cat(m, "data")) === "thr3", 5000, 20)).toBe(true);
        });
        expect(seen).toBe("thr3");
        expect(fresh, "after the timer's invalInode a read reaches the daemon").toBeGreaterThan(0);
        expect((await reads(m)).data).toBe(2);
      });
    }, 40_000);

    test("a renamed entry stays cached until invalEntry, then resolves to the new name", async () => {
      await withNotifyFs(transport, async (m) => {
        const before = await stat(join(m.dir, "dir/old"));
        await ctl(m, "rename old new");
        const cached = await requestsDuring(m, "lookup", async () => {
          expect((await stat(join(m.dir, "dir/old"))).ino).toBe(before.ino); // cached dentry
        });
        expect(cached, "a cached dentry sends no LOOKUP").toBe(0);
        await ctl(m, "inval-entry old");
        const looked = await requestsDuring(m, "lookup", async () => {
          expect(await errno(stat(join(m.dir, "dir/old")))).toBe("ENOENT");
        });
        expect(looked, "after invalEntry the next stat reaches the daemon").toBeGreaterThan(0);
        expect((await stat(join(m.dir, "dir/new"))).ino).toBe(before.ino);
        expect((await readdir(join(m.dir, "dir"))).sort()).toEqual(["gone", "new"]);
      });
    }, 40_000);

    test("a removed entry stays cached until delete, then is gone", async () => {
      await withNotifyFs(transport, async (m) => {
        const gone = join(m.dir, "dir/gone");
        expect(await cat(m, "dir/gone")).toBe("gone file\n");
        await ctl(m, "remove gone");
        const cached = await requestsDuring(m, "lookup", async () => {
          expect(await errno(stat(gone))).toBe("ok"); // cached dentry
        });
        expect(cached, "a cached dentry sends no LOOKUP").toBe(0);
        await ctl(m, "delete gone");
        const looked = await requestsDuring(m, "lookup", async () => {
          expect(await errno(stat(gone))).toBe("ENOENT");
        });
        expect(looked, "after delete the next stat reaches the daemon").toBeGreaterThan(0);
        expect(await errno(sh(["cat", gone], { timeoutMs: 10_000 }))).not.toBe("ok");
        expect((await readdir(join(m.dir, "dir"))).sort()).toEqual(["old"]);
      });
    }, 40_000);

    test("store puts data in the page cache (read back with no READ reaching the plugin) and retrieve returns the cached bytes", async () => {
      await withNotifyFs(transport, async (m) => {
        expect((await stat(join(m.dir, "stored"))).size).toBe(8); // the kernel now holds the node
        await ctl(m, "store BBBBBBBB");
        const stored = await requestsDuring(m, "read", async () => {
          expect(await cat(m, "stored")).toBe("BBBBBBBB");
          expect(await cat(m, "stored")).toBe("BBBBBBBB");
        });
        expect(stored, "stored pages are read with no READ reaching the daemon").toBe(0);
        expect((await reads(m)).stored).toBeUndefined(); // never a READ: it came from the cache

        await ctl(m, "retrieve stored 8");
        expect(await cat(m, "retrieved")).toBe("ok BBBBBBBB");

        // retrieve returns what the kernel caches, not what the plugin has now
        expect(await cat(m, "data")).toBe("one1");
        await ctl(m, "set two2");
        await ctl(m, "retrieve data 4");
        expect(await cat(m, "retrieved")).toBe("ok one1");
      });
    }, 40_000);

    test("retrieve for a node the kernel does not hold settles instead of hanging", async () => {
      await withNotifyFs(transport, async (m) => {
        // node 999 was never looked up: the kernel answers the RETRIEVE write with ENOENT and
        // sends no NOTIFY_REPLY, so the promise must settle on the write's result
        await ctl(m, "retrieve-ino 999 8");
        expect(await cat(m, "retrieved")).toMatch(/^(ok |error )/);
        expect(await cat(m, "data")).toBe("one1"); // and the mount still serves
      });
    }, 40_000);
  });
}
