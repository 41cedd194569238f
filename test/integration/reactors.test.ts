/**
 * Reactor Workers: a plugin with `concurrency: "shared"` (test/fixtures/shared-counter.ts) served
 * with `-o reactors=2`, one Worker pinned to each CPU, over both transports. Callers are pinned
 * with taskset: over io_uring a caller's requests travel on its CPU's queue, so they must be
 * served by the Worker pinned there; over classic every Worker reads its own cloned /dev/fuse.
 *
 * Needs 2 online CPUs (skipped otherwise, saying why).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { cleanupAll, cli, isMounted, makeTempDir, removeTempDir, transports, waitFor, withMount, type Mount } from "../helpers/mount.ts";
import { run, describeResult } from "../helpers/run.ts";
import { killChildren, procState, spawnChild, waitingOnFuse } from "../load/children.ts";

afterAll(cleanupAll);
afterAll(killChildren);

const FIXTURE = resolve(import.meta.dir, "../fixtures/shared-counter.ts");
const READER = resolve(import.meta.dir, "../fixtures/interruptible-read.ts");
const EINTR = 4;
const LIMIT = 60_000;
const cpus = availableParallelism();
if (cpus < 2) console.warn(`reactors.test.ts: skipped: needs 2 online CPUs to pin one caller per Worker, this machine has ${cpus}`);

/** `cmd` pinned to `cpu`; its stdout (throws with the output if it fails). */
async function onCpu(cpu: number, cmd: string[]): Promise<string> {
  const r = await run(["taskset", "-c", String(cpu), ...cmd], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(describeResult(r));
  return r.stdout;
}
const cat = (cpu: number, file: string) => onCpu(cpu, ["cat", file]).then((s) => s.trim());
const size = (cpu: number, file: string) => onCpu(cpu, ["stat", "-c", "%s", file]).then((s) => Number(s.trim()));
/** `n` writes of one line to `file`, each opening it anew, from `cpu`. */
const writes = (cpu: number, file: string, n: number) => onCpu(cpu, ["sh", "-c", `i=0; while [ $i -lt ${n} ]; do echo x > '${file}'; i=$((i+1)); done`]);

interface WorkerRow {
  index: number;
  cpus: number[];
  queues: string;
  transport: string;
  generation: number;
  requests: { io_uring: number; classic: number };
}

const workersOf = async (m: Mount) => ((await m.status()).reactors as { count: number; workers: WorkerRow[] }).workers;

describe.skipIf(cpus < 2)("reactor Workers", () => {
  test("a first generation whose setup throws on one Worker is not mounted: one line names the Worker and where", async () => {
    const dir = await makeTempDir("shared-bad");
    try {
      const file = join(dir, "plugin.ts");
      await writeFile(file, (await readFile(FIXTURE, "utf8")).replace("const THROW_ON = 0", "const THROW_ON = 2"));
      const mnt = join(dir, "mnt");
      await mkdir(mnt);
      const r = await cli(["mount", file, mnt, "-o", "reactors=2"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`reactor Worker 2: plugin plugin: setup failed at ${file}:`);
      expect(r.stderr).toContain("setup refuses to run on Worker 2");
      expect(await isMounted(mnt)).toBe(false);
    } finally {
      await removeTempDir(dir);
    }
  }, LIMIT);

  for (const transport of transports()) {
    describe(`over ${transport}`, () => {
      const mount = (fn: (m: Mount) => Promise<void>, plugin = FIXTURE) => withMount({ plugin, transport, reactors: 2, args: ["--no-watch"] }, fn);

      test("setup runs on the main thread and on every Worker; each Worker serves requests", async () => {
        await mount(async (m) => {
          expect(m.ready).toContain("2 reactor Workers");
          expect(await cat(0, join(m.dir, "setups"))).toBe("3");
          // 40 reads from each CPU
          await Promise.all([0, 1].map((cpu) => onCpu(cpu, ["sh", "-c", `for i in $(seq 40); do cat '${join(m.dir, "reactor")}' > /dev/null; done`])));
          const ws = await workersOf(m);
          expect(ws.map((w) => w.index)).toEqual([1, 2]);
          expect(ws.map((w) => w.cpus)).toEqual([[0], [1]]);
          const text = await cli(["status", m.dir]);
          expect(text.stdout).toContain("Worker 1 on CPU 0");
          expect(text.stdout).toContain("Worker 2 on CPU 1");
          for (const w of ws) expect(w.transport).toBe(transport);
          for (const w of ws) expect(w.requests.io_uring + w.requests.classic).toBeGreaterThan(0);
          // classic: the main thread read INIT and then left /dev/fuse to the Workers' clones
          if (transport === "classic") expect(((await m.status()).reactors as { main: { requests: number } }).main.requests).toBe(1);
          if (transport === "io_uring") {
            expect(ws.map((w) => w.queues)).toEqual(["0", "1"]);
            // a caller's requests are served by the Worker pinned to its CPU, never by another
            for (const cpu of [0, 1]) {
              expect(await cat(cpu, join(m.dir, "reactor"))).toBe(`${cpu + 1} 2 false`);
              expect(await size(cpu, join(m.dir, "reactor"))).toBe(100 + cpu + 1);
            }
          }
        });
      }, LIMIT);

      test("state shared through ctx.shared + Atomics adds up over writers on both CPUs", async () => {
        await mount(async (m) => {
          const f = join(m.dir, "counter");
          await Promise.all([writes(0, f, 100), writes(1, f, 100)]);
          expect(await cat(0, f)).toBe("200");
          expect(await cat(1, f)).toBe("200");
        });
      }, LIMIT);

      test("a reload swaps in on every Worker or on none, keeping ctx.shared state", async () => {
        const dir = await makeTempDir("shared-plugin");
        try {
          const file = join(dir, "plugin.ts");
          await copyFile(FIXTURE, file);
          const src = await readFile(file, "utf8");
          const edit = (version: string, throwOn: number) => writeFile(file, src.replace('const VERSION = "A"', `const VERSION = "${version}"`).replace("const THROW_ON = 0", `const THROW_ON = ${throwOn}`));
          await withMount({ plugin: file, transport, reactors: 2 }, async (m) => {
            const counter = join(m.dir, "counter");
            await Promise.all([writes(0, counter, 5), writes(1, counter, 5)]);
            const versions = () => Promise.all([0, 1, 0, 1].map((cpu) => cat(cpu, join(m.dir, "version"))));
            expect(await versions()).toEqual(["A", "A", "A", "A"]);
            // setup throws on Worker 2 only: rejected everywhere, A keeps serving on both CPUs
            let from = m.log().length;
            await edit("B", 2);
            expect(await waitFor(() => /reload rejected/.test(m.log().slice(from)), 15_000)).toBe(true);
            expect(m.log().slice(from)).toContain("reactor Worker 2");
            expect(m.log().slice(from)).toContain("setup refuses to run on Worker 2");
            expect(await versions()).toEqual(["A", "A", "A", "A"]);
            // a good generation: every instance serves it, the shared counter survived
            from = m.log().length;
            const sent = ((await m.status()).notifications as { sent: number }).sent;
            const t0 = performance.now();
            await edit("C", 0);
            expect(await waitFor(async () => (await versions()).every((v) => v === "C"), 15_000, 5)).toBe(true);
            const ms = performance.now() - t0;
            console.log(`reactors.test.ts: ${transport}: save to serving on both CPUs: ${ms.toFixed(0)} ms; ${/reload took \d+ ms/.exec(m.log().slice(from))?.[0]}`);
            // the kernel's caches are invalidated for the nodes looked up on every instance (counter
            // and version at least, looked up by Workers): INC_EPOCH, the root, and those
            expect(await waitFor(async () => ((await m.status()).notifications as { sent: number }).sent >= sent + 4, 5000)).toBe(true);
            expect(await cat(0, join(m.dir, "setups"))).toBe("3");
            expect(await cat(1, counter)).toBe("10");
            const ws = await workersOf(m);
            expect(ws.map((w) => w.generation)).toEqual([(await m.status()).generation as number, (await m.status()).generation as number]);
          });
        } finally {
          await removeTempDir(dir);
        }
      }, LIMIT);

      test("an INTERRUPT reaches the Worker serving the request; a Worker's notification goes through the main thread", async () => {
        await mount(async (m) => {
          for (const cpu of [0, 1]) {
            const c = spawnChild(["taskset", "-c", String(cpu), process.execPath, READER, join(m.dir, "abortable"), "handle"]);
            await c.line((l) => l.ready === true);
            await waitingOnFuse(c.pid);
            c.proc.kill("SIGUSR1");
            expect(await c.line((l) => "errno" in l, 10_000)).toMatchObject({ n: -1, errno: EINTR });
            expect(await c.exited(5000)).toBe(true);
          }
          const sent = ((await m.status()).notifications as { sent: number }).sent;
          await Promise.all([0, 1].map((cpu) => onCpu(cpu, ["sh", "-c", `echo x > '${join(m.dir, "notify")}'`])));
          expect(((await m.status()).notifications as { sent: number }).sent).toBe(sent + 2);
          expect((await m.status()).inflight).toBe(0);
        });
      }, LIMIT);

      test("an error thrown outside any request on a Worker is logged and the Worker keeps serving", async () => {
        await mount(async (m) => {
          await onCpu(0, ["sh", "-c", `echo x > '${join(m.dir, "stray")}'`]);
          expect(await waitFor(() => /reactor \d: uncaught exception outside any request .*still serving: Error: stray timer on reactor \d/.test(m.log()), 5000)).toBe(true);
          for (const cpu of [0, 1]) expect(await cat(cpu, join(m.dir, "version"))).toBe("A");
          expect(m.daemon.alive()).toBe(true);
        });
      }, LIMIT);

      test("a Worker that dies while serving ends the daemon (its queues would hang their callers), with a log line", async () => {
        await mount(async (m) => {
          // the write that ends a Worker's thread fails; on classic the main thread may serve some first
          for (let i = 0; i < 20 && m.daemon.alive(); i++) {
            await run(["taskset", "-c", String(i % 2), "sh", "-c", `echo x > '${join(m.dir, "exit")}'`], { timeoutMs: 10_000 });
            await m.daemon.waitExit(300);
          }
          expect(await m.daemon.waitExit(5000)).toBe(true);
          expect(m.daemon.proc.exitCode).toBe(70);
          expect(m.log()).toMatch(/reactor Worker [12] exited \(code 3\) while serving; exiting/);
        });
      }, LIMIT);

      test("an op that blocks its Worker's thread stalls only that Worker", async () => {
        await mount(async (m) => {
          // the caller on CPU 0 blocks Worker 1 (io_uring: queue 0; classic: whoever read it)
          const staller = spawnChild(["taskset", "-c", "0", "cat", join(m.dir, "stall")]);
          await waitingOnFuse(staller.pid);
          await Bun.sleep(100); // the request reached a reactor, which now sleeps in Atomics.wait
          const t0 = performance.now();
          for (let i = 0; i < 20; i++) expect(await cat(1, join(m.dir, "version"))).toBe("A");
          expect(performance.now() - t0).toBeLessThan(5000);
          // still blocked: nothing released it yet
          expect((await procState(staller.pid)).wchan).toBe("request_wait_answer");
          await onCpu(1, ["sh", "-c", `echo go > '${join(m.dir, "release")}'`]);
          expect(await staller.proc.exited).toBe(0);
        });
      }, LIMIT);

      test("memfs: every unlinked file's FORGET reaches it (its data is freed, status's kernelNodes drops back); over io_uring the main thread reads them in batches", async () => {
        const zero = ["attr_timeout=0", "entry_timeout=0", "negative_timeout=0"];
        await withMount({ plugin: "memfs", transport, reactors: 2, options: zero, args: ["--no-watch", "--size", "64m"] }, async (m) => {
          const free = async () => Number((await onCpu(0, ["stat", "-f", "-c", "%f", m.dir])).trim());
          const start = await free();
          const mainReads = async () => ((await m.status()).reactors as { main: { requests: number } }).main.requests;
          const reads0 = await mainReads();
          const n = 1000;
          // 1000 files of one page each, created and closed by the shell itself, then one rm
          // unlinking them back to back: each unlink makes the kernel queue a FORGET
          await onCpu(1, ["sh", "-c", `cd '${m.dir}' && i=0; while [ $i -lt ${n} ]; do echo x > f$i; i=$((i+1)); done`]);
          expect(await free()).toBe(start - n);
          // status counts what the kernel holds over every reactor (the shared table)
          const held = async () => (await m.status()).kernelNodes as number;
          expect(await held()).toBeGreaterThanOrEqual(n);
          await onCpu(1, ["sh", "-c", `cd '${m.dir}' && rm -f f*`]);
          // memfs frees an unlinked file's page when the kernel forgets the node, not before
          expect(await waitFor(async () => (await free()) === start, 10_000)).toBe(true);
          expect(await held()).toBeLessThan(10);
          const reads = (await mainReads()) - reads0;
          if (transport === "classic") expect(reads).toBe(0); // the Workers' clones read them
          // read as they come, the 1000 FORGETs took 555-989 reads; let gather, 35
          else expect(reads).toBeLessThan(n / 5);
          const ops = (await m.status()).ops as Record<string, { count: number }>;
          expect((ops.forget?.count ?? 0) + (ops.batch_forget?.count ?? 0)).toBeGreaterThan(0);
        });
      }, LIMIT);
    });
  }
});
