/**
 * io_uring entry memory: sized to `-o ring_memory`, faulted in as used (an idle mount does not
 * hold its payload buffers resident), and registered (pinned) as a fixed buffer only once file I/O
 * first uses a payload. The daemon's /proc status says what is resident and pinned.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import { cleanupAll, cli, uringEnabled, withMount, withTempDir } from "../helpers/mount.ts";
import { run } from "../helpers/run.ts";

afterAll(cleanupAll);

const LIMIT = 60_000;

/** A field of /proc/PID/status in KiB. */
async function procKiB(pid: number, field: string): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(await readFile(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

describe.skipIf(!(await uringEnabled()))("io_uring entry memory", () => {
  test("payload buffers are not resident while idle: 64 MiB of entries cost far less than 64 MiB", async () => {
    // 2 possible CPUs here x 32 entries x 1 MiB = 64 MiB of payload buffers
    await withMount({ transport: "io_uring", options: ["io_uring_q_depth=32", "ring_memory=64M"] }, async (m) => {
      const st = await m.status();
      expect(st.depth * st.queues * (1 << 20)).toBeGreaterThanOrEqual(32 << 20);
      const anon = await procKiB(m.daemon.pid, "RssAnon");
      expect(anon).toBeLessThan(40 << 10);
      expect(await procKiB(m.daemon.pid, "VmPin")).toBe(0);
    });
  }, LIMIT);

  test("entries per queue follow -o ring_memory; fixed buffers are pinned on first file I/O, only then", async () => {
    await withTempDir(async (src) => {
      await writeFile(join(src, "f"), "x".repeat(100_000));
      const opts = ["ring_memory=4M", "no_passthrough"]; // reads go through ctx.io (READ_FIXED)
      // one ring, the main thread's (passthrough is served by reactor Workers by default, each
      // with a ring of its own queues: the next test)
      await withMount({ plugin: "passthrough", transport: "io_uring", reactors: 0, options: opts, args: ["--source", src] }, async (m) => {
        const st = await m.status();
        expect(st.depth).toBe(Math.max(1, Math.floor(4 / st.queues)));
        expect(String(st.fixedBuffers)).toMatch(/^not yet/);
        expect(await procKiB(m.daemon.pid, "VmPin")).toBe(0);
        expect((await readFile(join(m.dir, "f"), "utf8")).length).toBe(100_000);
        expect((await m.status()).fixedBuffers).toBe("registered");
        expect(await procKiB(m.daemon.pid, "VmPin")).toBe((st.depth * st.queues) << 10);
      });
    });
  }, LIMIT);

  test.skipIf(availableParallelism() < 2)("with reactor Workers, status reports every Worker's ring: fixed buffers pinned per Worker, on its own first file I/O", async () => {
    await withTempDir(async (src) => {
      for (const f of ["f0", "f1"]) await writeFile(join(src, f), f.repeat(50_000));
      await withMount({ plugin: "passthrough", transport: "io_uring", reactors: 2, options: ["ring_memory=4M", "no_passthrough"], args: ["--source", src, "--no-watch"] }, async (m) => {
        type W = { index: number; fixedBuffers: string };
        const workers = async () => ((await m.status()).reactors as { workers: W[] }).workers;
        const st = await m.status();
        expect(String(st.fixedBuffers)).toMatch(/^not yet/);
        for (const w of await workers()) expect(w.fixedBuffers).toMatch(/^not yet/);
        // a read from CPU 1 travels on queue 1: Worker 2's ctx.io pins its own ring's payloads
        const cat = async (cpu: number, f: string) => (await run(["taskset", "-c", String(cpu), "cat", join(m.dir, f)], { timeoutMs: 30_000 })).stdout.length;
        expect(await cat(1, "f1")).toBe(100_000);
        expect((await workers()).map((w) => [w.index, w.fixedBuffers.replace(/^not yet.*/, "not yet")])).toEqual([[1, "not yet"], [2, "registered"]]);
        const mixed = String((await m.status()).fixedBuffers);
        expect(mixed).toMatch(/^Worker 1: not yet .*; Worker 2: registered$/);
        expect((await cli(["status", m.dir])).stdout).toMatch(/Worker 2 on CPU 1, queue 1: .*; fixed buffers registered/);
        expect(await cat(0, "f0")).toBe(100_000);
        expect((await workers()).map((w) => w.fixedBuffers)).toEqual(["registered", "registered"]);
        expect((await m.status()).fixedBuffers).toBe("registered");
        expect(await procKiB(m.daemon.pid, "VmPin")).toBe((st.depth * st.queues) << 10);
      });
    });
  }, LIMIT);
});
