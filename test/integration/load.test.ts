/**
 * Load: several processes doing mixed operations on one memfs mount at once lose nothing. The
 * fsx-style checker (test/load/) keeps a shadow model of every file and verifies every byte read
 * back, every size and link count, every directory listing, and the shared files' regions.
 *
 * CI profile: 4 workers for FURING_LOAD_SECONDS (default 20) per transport, seed FURING_LOAD_SEED
 * (default 1). The long profile is scripts/loadtest.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cleanupAll, transports, withMount, withTempDir } from "../helpers/mount.ts";
import { describeLoad, runLoad, type LoadResult } from "../load/checker.ts";
import { cqOverflow, killChildren, spawnChild } from "../load/children.ts";
import { join, resolve } from "node:path";

afterAll(cleanupAll);
afterAll(killChildren);

const HAMMER = resolve(import.meta.dir, "../load/hammer.ts");
const BUSY = resolve(import.meta.dir, "../fixtures/busy.ts");

const SECONDS = Number(process.env.FURING_LOAD_SECONDS ?? 20);
const SEED = Number(process.env.FURING_LOAD_SEED ?? 1);
const WORKERS = 4;

function expectClean(r: LoadResult): void {
  expect(r.failures, r.failures.join("\n\n")).toEqual([]);
  expect(r.mismatches).toBe(0);
  expect(r.errors).toBe(0);
}

// O_DIRECT is off here: a disk filesystem wants aligned buffers, FUSE does not.
describe("the load checker itself (on a plain directory)", () => {
  test("is reproducible: the same seed gives the same operations, bytes and final contents", async () => {
    const once = () => withTempDir((dir) => runLoad({ dir, workers: 2, durationMs: 0, maxOps: 800, seed: 42, directIo: 0 }), "load-repro");
    const [a, b] = [await once(), await once()];
    expectClean(a);
    expectClean(b);
    const key = (r: LoadResult) => r.results.map((w) => [w.ops, w.opCounts, w.bytesWritten, w.bytesVerified, w.regionHashes]);
    expect(key(a)).toEqual(key(b));
    expect(a.ops).toBe(1600);
  }, 30_000);

  test("catches a byte changed behind its model", async () => {
    const r = await withTempDir((dir) => runLoad({ dir, workers: 1, durationMs: 0, maxOps: 400, seed: 3, sabotageAtOp: 400, directIo: 0 }), "load-sabotage");
    expect(r.mismatches).toBe(1);
    expect(r.failures.join("\n")).toMatch(/mismatch at op #\d+: final read .*first difference at file offset/);
  }, 30_000);
});

for (const transport of transports()) {
  describe(`load over ${transport}`, () => {
    test(`${WORKERS} processes of mixed operations for ${SECONDS} s lose nothing`, async () => {
      await withMount({ transport, timeoutMs: SECONDS * 1000 + 90_000 }, async (m) => {
        const r = await runLoad({ dir: m.dir, workers: WORKERS, durationMs: SECONDS * 1000, seed: SEED });
        console.log(`load over ${transport}: ${describeLoad(r)}`);
        expectClean(r);
        expect(r.ops).toBeGreaterThan(1000);
        for (const op of ["write", "read", "truncate", "rename", "link", "unlink", "fsync", "mkdir", "shared-write", "shared-read"]) {
          expect(r.opCounts[op] ?? 0, `no ${op} operations ran`).toBeGreaterThan(0);
        }
        expect(m.log()).not.toContain("answered EIO");
        expect(m.daemon.alive()).toBe(true);
        expect((await m.status()).inflight).toBe(0);
      });
    }, SECONDS * 1000 + 120_000);

    // Many callers queue requests faster than the daemon answers (test/fixtures/busy.ts spins in
    // getattr): the reactor then reads request after request from one wake-up, while the kernel
    // posts a CQE for every wake-up of /dev/fuse's multishot poll. However many pile up, the daemon
    // must keep serving. (A CQ that overflows parks CQEs in the kernel's overflow list, which only
    // io_uring_enter flushes; if the poll's last CQE is parked there, /dev/fuse is never read again.)
    test("many callers queueing requests faster than the daemon answers never stall it", async () => {
      await withMount({ plugin: BUSY, transport, args: ["--spin-us", "100"], timeoutMs: 60_000 }, async (m) => {
        const callers = Array.from({ length: 12 }, (_, i) => spawnChild([process.execPath, HAMMER, "stat", join(m.dir, "f"), String(i), "3"]));
        const done = await Promise.all(callers.map((c) => c.exited(15_000)));
        const stuck = callers.filter((_, i) => !done[i]).map((c) => `${c.pid} (last: ${JSON.stringify(c.last())})`);
        let overflow = "";
        if (stuck.length) {
          overflow = await cqOverflow(m.daemon.pid);
          m.daemon.signal("SIGKILL"); // frees the callers (ECONNABORTED) so the teardown is quick
          await Promise.all(callers.map((c) => c.exited(10_000)));
        }
        expect(stuck, `callers still waiting 12 s after their loops should have ended; the daemon's CQ overflow list: ${overflow || "empty"}`).toEqual([]);
        for (const c of callers) {
          expect(c.last()!.error).toBeUndefined();
          expect(c.last()!.ops as number).toBeGreaterThan(10);
        }
      });
    }, 90_000);
  });
}
