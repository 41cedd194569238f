/**
 * What the differential tests (test/integration/differential-*.test.ts) share: seeded op
 * sequences run one after the other on a target's two trees.
 */
import { expect } from "bun:test";
import { Pair, runSeed } from "../differential/runner.ts";
import type { Target } from "../differential/targets.ts";

export interface SeedRuns {
  seeds: number[];
  /** Ops per seed. */
  ops: number;
  shrinkMs: number;
  log: (s: string) => void;
  /** Told the ops of each seed as it finishes (a failing seed's included). */
  counted?: (ops: number) => void;
}

/**
 * Runs every seed on one pair of `target`'s trees: the first difference fails with its seed and
 * the shortest sequence found that shows it. Each run must get through all its ops and compare
 * names that differ only in bytes that are not UTF-8 (names are bytes). `label` starts each line.
 */
export async function runSeeds(target: Target, label: string, o: SeedRuns): Promise<void> {
  const pair = new Pair(target, "ci");
  try {
    for (const seed of o.seeds) {
      const r = await runSeed(pair, { seed, ops: o.ops, shrinkMs: o.shrinkMs, log: o.log });
      o.counted?.(r.count);
      o.log(`${label}: seed ${seed}: ${r.count} ops, ${r.checks} checkpoints, ${(r.ms / 1000).toFixed(1)} s, ${r.outcomes.get("check names-not-utf8") ?? 0} with names that are not UTF-8, ${r.outcomes.get("check invalid-byte-pair") ?? 0} with names differing only in such bytes`);
      if (r.difference) throw new Error(r.difference);
      expect(r.count).toBe(o.ops + 1);
      // names are bytes: the trees compared held non-UTF-8 names and pairs differing only in them
      expect(r.outcomes.get("check invalid-byte-pair") ?? 0).toBeGreaterThan(0);
    }
  } finally {
    await pair.close();
  }
}
