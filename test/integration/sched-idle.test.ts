/**
 * Reactor Workers in the SCHED_IDLE class (reactor/sched-class.ts): over io_uring memfs's Workers
 * run in it by default (as root), `-o no_sched_idle` keeps them normal, over classic they stay
 * normal (every Worker is woken for every request there), and the starvation
 * guard moves a Worker to the normal class when a CPU-bound task on its CPU keeps it from a
 * request, then back once the hold is over. Without the guard a caller pinned next to the busy
 * task waits on a Worker that gets ~0.3% of the CPU, and the stats below do not finish in the
 * test's time. A busy CPU does not move the other CPU's Worker.
 *
 * Needs root (SCHED_IDLE and back need CAP_SYS_NICE) and 2 online CPUs (skipped otherwise, saying
 * why). The unprivileged side (no CAP_SYS_NICE, RLIMIT_NICE 0: normal class, status says why) is
 * in unprivileged.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { cleanupAll, transports, waitFor, withMount, type Mount } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";
import { needsRoot } from "../helpers/skip.ts";

afterAll(cleanupAll);

const LIMIT = 90_000;
const SPAWNER = resolve(import.meta.dir, "../fixtures/spawner.ts");
const cpus = availableParallelism();
const skip = needsRoot("reactor Workers in SCHED_IDLE", "leaving SCHED_IDLE needs CAP_SYS_NICE") || (cpus < 2 ? "needs 2 online CPUs (one busy, one not)" : false);
if (cpus < 2) console.warn(`sched-idle.test.ts: skipped: needs 2 online CPUs, this machine has ${cpus}`);

interface Sched {
  policy: string;
  starvedMoves: number;
  longestWaitMs: number;
  note?: string;
}
interface WorkerRow {
  index: number;
  cpus: number[];
  sched: Sched;
}
const workersOf = async (m: Mount) => ((await m.status()).reactors as { workers: WorkerRow[] }).workers;

/** Every thread of `pid` whose policy is `policy` (from /proc/PID/task/TID/sched). */
async function threadsIn(pid: number, policy: number): Promise<number> {
  const r = await run(["sh", "-c", `grep -l '^policy *: *${policy}$' /proc/${pid}/task/*/sched 2>/dev/null | wc -l`], { timeoutMs: 10_000 });
  return Number(r.stdout.trim());
}

const hogs = new Set<Subprocess>();
afterAll(() => {
  for (const h of hogs) h.kill("SIGKILL");
});
/** A CPU-bound task in the normal class on `cpu`, until `stop`. */
function hog(cpu: number): { stop: () => Promise<void> } {
  const p = Bun.spawn(["taskset", "-c", String(cpu), "sh", "-c", "while :; do :; done"], { stdout: "ignore", stderr: "ignore" });
  hogs.add(p);
  return {
    stop: async () => {
      p.kill("SIGKILL");
      await p.exited;
      hogs.delete(p);
    },
  };
}

describe.skipIf(skip !== false)("reactor Workers in SCHED_IDLE", () => {
  test.skipIf(!transports().includes("classic"))("over classic /dev/fuse, where every Worker is woken for every request, Workers stay in the normal class and status says why", async () => {
    await withMount({ transport: "classic", args: ["--no-watch"] }, async (m) => {
      for (const w of await workersOf(m)) expect(w.sched).toMatchObject({ policy: "SCHED_OTHER", note: expect.stringContaining("classic /dev/fuse: every Worker is woken for every request") });
      expect(await threadsIn(m.daemon.pid, 5)).toBe(0);
    });
  }, LIMIT);

  for (const transport of transports().filter((t) => t === "io_uring")) {
    describe(`over ${transport}`, () => {
      test("memfs's Workers run in SCHED_IDLE by default (status and /proc agree); -o no_sched_idle keeps them normal", async () => {
        await withMount({ transport, args: ["--no-watch"] }, async (m) => {
          expect((await workersOf(m)).length).toBe(2);
          // (a JIT compile next to a Worker's first requests may move it for the 1 s hold)
          const idle = await waitFor(async () => (await workersOf(m)).every((w) => w.sched.policy === "SCHED_IDLE"), 5000);
          expect(idle, JSON.stringify(await workersOf(m))).toBe(true);
          expect(await threadsIn(m.daemon.pid, 5)).toBe(2);
          const text = await run([process.execPath, "runtime/cli/main.ts", "status", m.dir], { timeoutMs: 30_000 });
          // (the status command's own start is a CPU burst that may move a Worker woken meanwhile)
          expect(text.stdout).toMatch(/Worker 1 on CPU 0.*; SCHED_(IDLE|OTHER \(moved to the normal class \d+ times? while another task kept its CPU\))$/m);
        });
        await withMount({ transport, options: ["no_sched_idle"], args: ["--no-watch"] }, async (m) => {
          for (const w of await workersOf(m)) expect(w.sched).toMatchObject({ policy: "SCHED_OTHER", note: "-o no_sched_idle" });
          expect(await threadsIn(m.daemon.pid, 5)).toBe(0);
        });
      }, LIMIT);

      test("a CPU-bound task next to a waiting caller moves that CPU's Worker to the normal class, and it goes back afterwards", async () => {
        await withMount({ transport, options: ["attr_timeout=0", "entry_timeout=0"], args: ["--no-watch"] }, async (m) => {
          const files = Array.from({ length: 100 }, (_, i) => join(m.dir, `f${i}`));
          await Promise.all(files.map((f) => Bun.write(f, "x")));
          const busy = hog(0);
          try {
            await Bun.sleep(200);
            // 20 × 100 stats from CPU 0, each a LOOKUP and a GETATTR: over io_uring on queue 0,
            // whose Worker is on CPU 0 with the busy task (classic: whichever Worker reads first)
            const t0 = performance.now();
            const r = await run(["taskset", "-c", "0", "sh", "-c", `for i in $(seq 20); do stat -c %s ${files.join(" ")} > /dev/null || exit 1; done`], { timeoutMs: 60_000 });
            const ms = performance.now() - t0;
            expect(r.code, describeResult(r)).toBe(0);
            // Worker 1 (CPU 0, the busy one) must have been moved; Worker 2 may have been too, by a
            // CPU burst of this test process on CPU 1 while it was woken for a timer (harmless)
            const w1 = (await workersOf(m)).find((w) => w.index === 1)!;
            expect(w1.sched.starvedMoves).toBeGreaterThan(0);
            expect(w1.sched.policy).toBe("SCHED_OTHER");
            expect(w1.sched.longestWaitMs).toBeGreaterThanOrEqual(15);
            expect(m.log()).toMatch(/reactor Worker 1 waited \d+ ms for its CPU( with a request to serve)? \(another task keeps the CPU busy\): it runs in the normal scheduling class for 1 s/);
            console.log(`sched-idle.test.ts (${transport}): 2000 stats next to a busy task took ${ms.toFixed(0)} ms; Worker 1 waited at most ${w1.sched.longestWaitMs} ms before the move`);
          } finally {
            await busy.stop();
          }
          const t1 = performance.now();
          // the hold (1 s) ends and nothing starves it: back in SCHED_IDLE
          const back = await waitFor(async () => (await workersOf(m)).every((w) => w.sched.policy === "SCHED_IDLE"), 5000);
          expect(back, JSON.stringify(await workersOf(m))).toBe(true);
          console.log(`sched-idle.test.ts (${transport}): back in SCHED_IDLE ${(performance.now() - t1).toFixed(0)} ms after the busy task ended`);
        });
      }, LIMIT);

      test("a child process a plugin starts from a Worker does not keep the Worker's SCHED_IDLE", async () => {
        await withMount({ plugin: SPAWNER, transport, args: ["--no-watch"] }, async (m) => {
          for (const cpu of [0, 1]) {
            const r = await run(["taskset", "-c", String(cpu), "cat", join(m.dir, "child")], { timeoutMs: 30_000 });
            expect(r.code, describeResult(r)).toBe(0);
            const [reactor, pid] = r.stdout.trim().split(" ").map(Number);
            expect(reactor).toBe(cpu + 1); // started on the Worker of the caller's CPU, in SCHED_IDLE
            // inherited (SCHED_RESET_ON_FORK resets only real-time classes), then put back by the guard's scan
            const normal = await waitFor(async () => (await run(["sh", "-c", `grep '^policy' /proc/${pid}/sched`])).stdout.match(/:\s*0$/m) !== null, 3000);
            expect(normal, (await run(["cat", `/proc/${pid}/sched`])).stdout).toBe(true);
          }
          for (const w of await workersOf(m)) expect(w.sched.policy).toBe("SCHED_IDLE");
        });
      }, LIMIT);

      test("a CPU-bound task on one CPU leaves the other CPU's Worker in SCHED_IDLE, serving its callers", async () => {
        await withMount({ transport, options: ["attr_timeout=0", "entry_timeout=0"], args: ["--no-watch"] }, async (m) => {
          const f = join(m.dir, "f");
          await Bun.write(f, "x");
          const statsFromCpu1 = async () => {
            const r = await run(["taskset", "-c", "1", "sh", "-c", `end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do stat -c %s ${f} ${f} ${f} ${f} > /dev/null || exit 1; done`], { timeoutMs: 30_000 });
            expect(r.code, describeResult(r)).toBe(0);
          };
          // first without the busy task, so the JIT compiles of this path (which may take a
          // Worker's CPU long enough to move it once) are behind us, and any hold is over
          await statsFromCpu1();
          expect(await waitFor(async () => (await workersOf(m)).every((w) => w.sched.policy === "SCHED_IDLE"), 5000)).toBe(true);
          const before = (await workersOf(m)).find((w) => w.index === 2)!.sched.starvedMoves;
          const busy = hog(0);
          try {
            await statsFromCpu1();
          } finally {
            await busy.stop();
          }
          // (Worker 1, on the busy CPU, may be moved: woken by its timers, it waits there too)
          const w2 = (await workersOf(m)).find((w) => w.index === 2)!;
          expect([w2.sched.policy, w2.sched.starvedMoves - before]).toEqual(["SCHED_IDLE", 0]);
        });
      }, LIMIT);
    });
  }
});
