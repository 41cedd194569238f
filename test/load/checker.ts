/**
 * The load checker: N worker processes (./worker.ts) doing mixed operations on one mount at once,
 * each against its own shadow model, plus shared files in which every worker owns one region
 * (regions are not page-aligned, so neighbours share pages). Seeded and reproducible: worker i
 * runs seed `seed * 1000 + i`; its operation sequence depends on nothing else.
 *
 *   const r = await runLoad({ dir, workers: 4, durationMs: 20_000, seed: 1 });
 *   // r.mismatches === 0 && r.errors === 0 && r.failures.length === 0
 *
 * After the workers end, the checker reads every shared file whole and compares each region with
 * the hash its worker reported from its model, and checks the files' sizes.
 */
import { readFile, writeFile, stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import type { WorkerConfig, WorkerResult } from "./worker.ts";

export const WORKER = resolve(import.meta.dir, "worker.ts");

export interface LoadOptions {
  /** The mountpoint (or a directory inside it). */
  dir: string;
  workers?: number;
  durationMs?: number;
  /** Operations per worker (0: only the duration counts). */
  maxOps?: number;
  seed?: number;
  sharedFiles?: number;
  /** Bytes each worker owns in each shared file (default 200_000: not page-aligned). */
  regionSize?: number;
  maxFileSize?: number;
  maxFiles?: number;
  maxDirs?: number;
  /** Fraction of by-path reads/writes with O_DIRECT (default 0.3). */
  directIo?: number;
  /** A worker that has not finished this long after its duration is killed (a hang). */
  graceMs?: number;
  /** Checker self-test: worker 0 corrupts a file behind its model at this operation. */
  sabotageAtOp?: number;
}

export interface LoadResult {
  workers: number;
  seed: number;
  ops: number;
  opCounts: Record<string, number>;
  durationMs: number;
  bytesWritten: number;
  bytesVerified: number;
  mismatches: number;
  errors: number;
  /** Human-readable failures (worker failures with their recent ops, hangs, shared-file damage). */
  failures: string[];
  results: WorkerResult[];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const n = o.workers ?? 4;
  const seed = o.seed ?? 1;
  const region = o.regionSize ?? 200_000;
  const sharedCount = o.sharedFiles ?? 2;
  const durationMs = o.durationMs ?? 20_000;
  const shared: string[] = [];
  for (let k = 0; k < sharedCount; k++) {
    const p = join(o.dir, `shared-${k}`);
    await writeFile(p, new Uint8Array(n * region));
    shared.push(p);
  }
  const t0 = performance.now();
  const procs = Array.from({ length: n }, (_, i) => {
    const cfg: WorkerConfig = {
      root: o.dir,
      id: i,
      seed: seed * 1000 + i,
      durationMs,
      maxOps: o.maxOps ?? 0,
      shared: shared.map((path) => ({ path, offset: i * region, length: region })),
      maxFileSize: o.maxFileSize ?? 2 * 1024 * 1024,
      maxFiles: o.maxFiles ?? 40,
      maxDirs: o.maxDirs ?? 10,
      directIo: o.directIo ?? 0.3,
      sabotageAtOp: i === 0 ? o.sabotageAtOp : undefined,
    };
    return Bun.spawn([process.execPath, WORKER, JSON.stringify(cfg)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  });
  const limit = durationMs + (o.graceMs ?? 60_000) + (o.maxOps ? 600_000 : 0);
  const failures: string[] = [];
  const results: WorkerResult[] = [];
  await Promise.all(
    procs.map(async (p, i) => {
      const timer = setTimeout(() => {
        failures.push(`worker ${i} did not finish within ${limit} ms (hung in a syscall?): killed`);
        p.kill("SIGKILL");
      }, limit);
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      let r: WorkerResult | undefined;
      try {
        r = JSON.parse(last) as WorkerResult;
      } catch {
        failures.push(`worker ${i} (seed ${seed * 1000 + i}) exited ${p.exitCode ?? p.signalCode} without a result:\n${out}\n${err}`);
        return;
      }
      results[i] = r;
      if (r.failure) {
        failures.push(
          `worker ${i} (seed ${r.seed}) ${r.failure.kind} at op #${r.failure.op}: ${r.failure.message}\n  last operations:\n    ${r.failure.recent.join("\n    ")}`,
        );
      }
    }),
  );
  const elapsed = performance.now() - t0;
  // shared files: each region as its worker's model says, sizes unchanged
  for (const [k, p] of shared.entries()) {
    const st = await stat(p);
    if (st.size !== n * region) failures.push(`${p}: size ${st.size}, expected ${n * region}`);
    const data = await readFile(p);
    for (let i = 0; i < n; i++) {
      const want = results[i]?.regionHashes[k];
      if (want === undefined) continue;
      const got = createHash("sha256").update(data.subarray(i * region, (i + 1) * region)).digest("hex");
      if (got !== want) failures.push(`${p}: region of worker ${i} differs from its model at the end`);
    }
  }
  const opCounts: Record<string, number> = {};
  for (const r of results) if (r) for (const [k, v] of Object.entries(r.opCounts)) opCounts[k] = (opCounts[k] ?? 0) + v;
  const sum = (f: (r: WorkerResult) => number) => results.reduce((s, r) => s + (r ? f(r) : 0), 0);
  return {
    workers: n,
    seed,
    ops: sum((r) => r.ops),
    opCounts,
    durationMs: Math.round(elapsed),
    bytesWritten: sum((r) => r.bytesWritten),
    bytesVerified: sum((r) => r.bytesVerified) + shared.length * n * region,
    mismatches: sum((r) => r.mismatches) + failures.filter((f) => f.includes("differs from its model")).length,
    errors: sum((r) => r.errors),
    failures,
    results,
  };
}

/** One line per result, for logs. */
export function describeLoad(r: LoadResult): string {
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  return `${r.workers} processes, ${r.ops} operations in ${(r.durationMs / 1000).toFixed(1)} s (seed ${r.seed}), ${mib(r.bytesWritten)} written, ${mib(r.bytesVerified)} verified, ${r.mismatches} mismatches, ${r.errors} errors`;
}
