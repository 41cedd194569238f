/**
 * Crashes and stops under load.
 *
 * SIGKILL of the daemon: the kernel ends the connection; callers get ENOTCONN (new requests) or
 * ECONNABORTED (requests the daemon had read). Over io_uring, requests handed to a ring entry while
 * the daemon task is dying end with ECANCELED instead (fs/fuse/dev_uring.c,
 * fuse_uring_send_in_task with IO_URING_F_TASK_DEAD; it lasts until the kernel has torn the
 * queues down): accepted there. Every caller ends within a bound, then every new request gets
 * ENOTCONN, and `furing unmount` removes the dead mount.
 *
 * SIGTERM: with writers holding the mount busy, the daemon reports it busy and keeps serving (the
 * writers still make progress); a second SIGTERM detaches it lazily. Asserted: both steps, and no
 * write, fsync, read-back or close on a descriptor that opened ever fails or returns other bytes;
 * each writer's loop ends only at an open(2) that finds no file (ENOENT: the path now names the
 * empty directory underneath) or no connection (ENOTCONN); the daemon exits 0 once the last
 * descriptor is closed; nothing stays mounted.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { run } from "../helpers/run.ts";
import { cleanupAll, cli, isMounted, mountFs, transports, unmountFs, waitFor, type Mount, type MountOptions } from "../helpers/mount.ts";
import { cqOverflow, killChildren, spawnChild, waitingOnFuse, type Child } from "../load/children.ts";

afterAll(cleanupAll);
afterAll(killChildren);

const HAMMER = resolve(import.meta.dir, "../load/hammer.ts");
const READER = resolve(import.meta.dir, "../fixtures/interruptible-read.ts");
const STALL = resolve(import.meta.dir, "../fixtures/stall.ts");
const LIMIT = 60_000;

/** Mounts, runs `fn` (which may stop or kill the daemon), and always tears down what is left. */
async function withRawMount(opts: MountOptions, fn: (m: Mount) => Promise<void>): Promise<void> {
  const m = await mountFs(opts);
  try {
    await fn(m);
  } catch (e) {
    (e as Error).message += `\n--- daemon output ---\n${m.log().slice(-4000)}`;
    throw e;
  } finally {
    killChildren();
    await unmountFs(m);
  }
}

/** Waits (bounded) for `n` progress lines from every child; a stall names the daemon's parked CQEs. */
async function progress(m: Mount, children: Child[], n: number): Promise<void> {
  try {
    for (const c of children) await c.line((l) => (l.progress as number) >= n, 20_000);
  } catch (e) {
    const overflow = await cqOverflow(m.daemon.pid);
    throw new Error(`${(e as Error).message}\nthe daemon stopped serving? its CQ overflow list: ${overflow || "empty"}`);
  }
}

/** Waits (bounded) for every child to exit; fails naming the ones that hang. */
async function allExit(children: Child[], ms: number): Promise<void> {
  const hung: number[] = [];
  await Promise.all(children.map(async (c) => void (!(await c.exited(ms)) && hung.push(c.pid))));
  expect(hung, `callers still running ${ms} ms later (hung on the mount?)`).toEqual([]);
}

/** `furing unmount` on the dead mount: exit 0, nothing mounted, an empty directory left. */
async function recover(m: Mount): Promise<void> {
  expect(await isMounted(m.dir)).toBe(true);
  const r = await cli(["unmount", m.dir], 20_000);
  expect(r.code, r.stderr).toBe(0);
  expect(await isMounted(m.dir)).toBe(false);
  expect(await readdir(m.dir)).toEqual([]);
}

for (const transport of transports()) {
  const firstErrors = transport === "io_uring" ? ["ENOTCONN", "ECONNABORTED", "ECANCELED"] : ["ENOTCONN", "ECONNABORTED"];

  describe(`crashes over ${transport}`, () => {
    test("SIGKILL of the daemon under load: every caller fails with ENOTCONN or ECONNABORTED, none hangs, `furing unmount` recovers", async () => {
      await withRawMount({ transport }, async (m) => {
        const hammers = Array.from({ length: 4 }, (_, i) => spawnChild([process.execPath, HAMMER, "mixed", m.dir, String(i), "60"]));
        await progress(m, hammers, 100);
        m.daemon.signal("SIGKILL");
        expect(await m.daemon.waitExit(10_000)).toBe(true);
        await allExit(hammers, 15_000);
        for (const h of hammers) {
          const r = h.last()!;
          expect(r.ops as number).toBeGreaterThan(0);
          expect(firstErrors, `hammer ${h.pid} failed in ${r.op} with ${r.error}`).toContain(r.error as string);
          expect(firstErrors, "a new request right after the first error").toContain(r.after as string);
        }
        // once the kernel has torn the connection down, every new request gets ENOTCONN
        let last = "";
        const settled = await waitFor(async () => {
          const p = await run(["stat", join(m.dir, `probe-${Date.now()}`)], { timeoutMs: 5000 });
          last = p.stderr.trim();
          return /Transport endpoint is not connected/.test(last);
        }, 10_000, 100);
        expect(settled, `a new request should get ENOTCONN; stat said: ${last}`).toBe(true);
        await recover(m);
      });
    }, LIMIT);

    test("SIGKILL of the daemon while a caller waits on an op that never settles: the caller gets ECONNABORTED", async () => {
      await withRawMount({ plugin: STALL, transport }, async (m) => {
        const c = spawnChild([process.execPath, READER, join(m.dir, "stuck"), "handle"]);
        await c.line((l) => l.ready === true);
        await waitingOnFuse(c.pid);
        m.daemon.signal("SIGKILL");
        const r = await c.line((l) => "errno" in l, 15_000);
        expect(r).toMatchObject({ n: -1, errno: 103 }); // ECONNABORTED
        await allExit([c], 5000);
        await recover(m);
      });
    }, LIMIT);

    test("SIGTERM under load: requests in flight are answered, accepted writes never fail, then a clean unmount", async () => {
      await withRawMount({ transport }, async (m) => {
        const files = Array.from({ length: 4 }, (_, i) => join(m.dir, `w${i}`));
        for (const f of files) await writeFile(f, new Uint8Array(16 * 65536));
        const writers = files.map((f, i) => spawnChild([process.execPath, HAMMER, "writer", f, String(i), "60"]));
        await progress(m, writers, 50);
        const mark = m.log().length;
        m.daemon.signal("SIGTERM");
        // the writers hold files open, so the first SIGTERM must find the mount busy and keep serving
        const busyLine = `SIGTERM: ${m.dir} is busy`;
        await waitFor(() => !m.daemon.alive() || m.log().slice(mark).includes(busyLine), 15_000);
        expect(m.log().slice(mark), "the first SIGTERM reports the mount busy").toContain(busyLine);
        expect(m.daemon.alive(), "the daemon keeps serving a busy mount").toBe(true);
        expect(await isMounted(m.dir), "a busy mount stays mounted").toBe(true);
        const before = writers.map((w) => (w.last()?.progress as number) ?? 0);
        const moved = await waitFor(() => writers.every((w, i) => ((w.last()?.progress as number) ?? 0) > before[i]!), 10_000);
        expect(moved, "every writer makes progress after the first SIGTERM").toBe(true);
        for (const w of writers) expect(w.last()?.error, `writer ${w.pid} failed while the mount was busy`).toBeUndefined();
        m.daemon.signal("SIGTERM"); // the second one detaches lazily: gone from /proc/mounts while still held
        expect(await waitFor(async () => !(await isMounted(m.dir)), 10_000), "the second SIGTERM detaches the busy mount").toBe(true);
        await allExit(writers, 20_000);
        expect(await m.daemon.waitExit(20_000), "the daemon exits once the last descriptor is closed").toBe(true);
        expect(m.daemon.proc.signalCode).toBeNull();
        expect(m.daemon.proc.exitCode).toBe(0);
        console.log(`SIGTERM under load over ${transport}: busy, still serving; a second SIGTERM detached it; writers: ${writers.map((w) => JSON.stringify(w.last())).join(" ")}`);
        for (const w of writers) {
          const r = w.last()!;
          expect(r.error, `writer ${w.pid}: ${r.op} on an open descriptor failed with ${r.error}`).toBeUndefined();
          expect(r.mismatch).toBeUndefined();
          expect(["ENOENT", "ENOTCONN"]).toContain(r.openError as string);
          expect(r.ops as number).toBeGreaterThan(50);
        }
        expect(await isMounted(m.dir)).toBe(false);
        expect(await readdir(m.dir)).toEqual([]);
        expect(m.log()).not.toContain("answered EIO");
      });
    }, LIMIT);
  });
}
