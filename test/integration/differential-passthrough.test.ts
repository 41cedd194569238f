/**
 * passthrough against the native directory, with the same differential tester as memfs (fast
 * profile), over each transport: seeded op sequences run through a passthrough mount of a source
 * directory and directly on a second native directory beside it, and every result, errno, name,
 * attribute, content and xattr must match (times by their ordering rules). Per transport: 3 seeds
 * × 2000 ops. Long profiles: `scripts/difftest --target passthrough`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupAll, transports } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { Pair, runSeed } from "../differential/runner.ts";
import { passthroughTarget, type Target } from "../differential/targets.ts";

afterAll(cleanupAll);

const BASE = Number(process.env.FURING_DIFFTEST_SEED ?? 0) || 0;
const SEEDS = [41, 42, 43].map((s) => s + BASE);
const OPS = 2000;
const log = (s: string) => console.error(s);

for (const transport of transports()) {
  describe.skipIf(needsRoot(`passthrough vs the native directory over ${transport}`, "the ops run as several users and include chown and mknod"))(`passthrough vs the native directory, differential, over ${transport}`, () => {
    let target: Target | undefined;
    beforeAll(async () => {
      target = await passthroughTarget(transport);
      for (const k of target.known) log(`differential passthrough (${transport}): known difference, left out of the runs: ${k}`);
    }, 30_000);
    afterAll(async () => {
      await target?.close();
    }, 30_000);

    test("seeded op sequences give the native directory's results, errnos, trees and contents", async () => {
      const pair = new Pair(target!, "ci");
      try {
        for (const seed of SEEDS) {
          const r = await runSeed(pair, { seed, ops: OPS, shrinkMs: 30_000, log });
          log(`differential passthrough (${transport}): seed ${seed}: ${r.count} ops, ${r.checks} checkpoints, ${(r.ms / 1000).toFixed(1)} s, ${r.outcomes.get("check names-not-utf8") ?? 0} with names that are not UTF-8, ${r.outcomes.get("check invalid-byte-pair") ?? 0} with names differing only in such bytes`);
          if (r.difference) throw new Error(r.difference);
          expect(r.count).toBe(OPS + 1);
          // names are bytes: the trees compared held non-UTF-8 names and pairs differing only in them
          expect(r.outcomes.get("check invalid-byte-pair") ?? 0).toBeGreaterThan(0);
        }
      } finally {
        await pair.close();
      }
    }, 300_000);
  });
}
