/**
 * passthrough against the native directory, with the same differential tester as memfs (fast
 * profile), over each transport: seeded op sequences run through a passthrough mount of a source
 * directory and directly on a second native directory beside it, and every result, errno, name,
 * attribute, content and xattr must match (times by their ordering rules). Per transport: 3 seeds
 * × 2000 ops. Long profiles: `scripts/difftest --target passthrough`.
 */
import { afterAll, beforeAll, describe, test } from "bun:test";
import { cleanupAll, transports } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { passthroughTarget, type Target } from "../differential/targets.ts";
import { runSeeds } from "../helpers/differential.ts";

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
      await runSeeds(target!, `differential passthrough (${transport})`, { seeds: SEEDS, ops: OPS, shrinkMs: 30_000, log });
    }, 300_000);
  });
}
