/**
 * memfs against tmpfs, differential testing (fast profile), over each transport: seeded random
 * op sequences run on a memfs mount and on a fresh tmpfs side by side, and every result, errno,
 * name, attribute, content and xattr must match (times by their ordering rules; the intended
 * differences are in docs/differential-testing.md). A difference fails the test with its seed
 * and the shortest sequence found that shows it. Per transport: 5 seeds × 4000 ops, four
 * concurrent writers (~4200 ops) and a 1 MiB / 48-inode filesystem (2500 ops): ~26.7k ops.
 * Long profiles: scripts/difftest.
 *
 * Seeds are fixed so that a run is repeatable; FURING_DIFFTEST_SEED=N shifts them all (to explore),
 * FURING_DIFFTEST_PLUGIN=DIR tests a modified copy of memfs instead of the built-in one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupAll, transports } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { runConcurrent } from "../differential/concurrent.ts";
import { Pair, runSeed } from "../differential/runner.ts";
import { memfsTarget, type Target } from "../differential/targets.ts";
import { runSeeds } from "../helpers/differential.ts";

afterAll(cleanupAll);

const BASE = Number(process.env.FURING_DIFFTEST_SEED ?? 0) || 0;
/** Sequential runs: seeds × ops (and a checkpoint every 40 ops). */
const SEEDS = [11, 12, 13, 14, 15].map((s) => s + BASE);
const OPS = 4000;
/** Concurrent writers: private ops per writer (shared writes come on top). */
const WRITERS = 4;
const WRITER_OPS = 800;
/** A 1 MiB, 48-inode filesystem: ENOSPC at the same op as tmpfs. */
const FULL_OPS = 2500;
const SHRINK_MS = 30_000;
const plugin = process.env.FURING_DIFFTEST_PLUGIN || undefined;

const log = (s: string) => console.error(s);
let total = 0;

for (const transport of transports()) {
  describe.skipIf(needsRoot(`memfs vs tmpfs over ${transport}`, "mounts a tmpfs reference; the ops run as several users"))(`memfs vs tmpfs, differential, over ${transport}`, () => {
    let target: Target | undefined;
    let ops = 0;
    beforeAll(async () => {
      target = await memfsTarget(transport, { plugin });
      for (const k of target.known) log(`differential (${transport}): known difference, left out of the runs: ${k}`);
    }, 30_000);
    afterAll(async () => {
      await target?.close();
      total += ops;
      log(`differential (${transport}): ${ops} ops compared (${total} over the transports so far)`);
    }, 30_000);

    test("seeded op sequences give tmpfs's results, errnos, trees, contents and times", async () => {
      await runSeeds(target!, `differential (${transport})`, { seeds: SEEDS, ops: OPS, shrinkMs: SHRINK_MS, log, counted: (n) => (ops += n) });
    }, 300_000);

    test("concurrent writers: private files match tmpfs, shared files keep their invariants", async () => {
      const r = await runConcurrent(target!, { seed: 21 + BASE, writers: WRITERS, ops: WRITER_OPS, shrinkMs: SHRINK_MS, log });
      ops += r.count;
      log(`differential (${transport}): ${r.writers} concurrent writers: ${r.count} ops (${r.sharedWrites} shared writes), ${(r.ms / 1000).toFixed(1)} s`);
      if (r.problems.length) throw new Error(r.problems.join("\n\n"));
      expect(r.sharedWrites).toBeGreaterThan(0);
    }, 150_000);

    test("a full filesystem runs out of space and inodes at the same op as tmpfs, losing nothing", async () => {
      const full = await memfsTarget(transport, { size: "1m", inodes: 48, plugin });
      const pair = new Pair(full, "full");
      try {
        const seed = 31 + BASE;
        const r = await runSeed(pair, { seed, ops: FULL_OPS, gen: { dense: true }, shrinkMs: SHRINK_MS, log });
        ops += r.count;
        log(`differential (${transport}): full filesystem, seed ${seed}: ${r.count} ops, ${r.outcomes.get("write ENOSPC") ?? 0} writes and ${["open", "mkdir", "mknod", "symlink", "link"].reduce((n, k) => n + (r.outcomes.get(`${k} ENOSPC`) ?? 0), 0)} creates that hit ENOSPC, ${(r.ms / 1000).toFixed(1)} s`);
        if (r.difference) throw new Error(r.difference);
        expect(r.outcomes.get("write ENOSPC") ?? 0).toBeGreaterThan(0);
      } finally {
        await pair.close();
        await full.close();
      }
    }, 150_000);
  });
}
