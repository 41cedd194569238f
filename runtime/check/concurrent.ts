/**
 * The multi-process variant: several writers at once on one mount, each an executor process of
 * its own, fsx-style.
 *
 * - Private files: each writer runs its own seeded op sequence in its own directory, and the same
 *   sequence runs in a directory of the reference; results and checkpoints are compared exactly
 *   as in a single run (the other writers are busy on the same mount meanwhile).
 * - Shared files: between their private ops, the writers also pwrite into a few shared files on
 *   the mount, every write filled with one byte value that names it. Afterwards each shared file
 *   must hold the size of the furthest write, and every byte must be 0 where nothing was written,
 *   else the value of one of the writes that covered it (writes may interleave, never corrupt).
 */
import { CheckState, compareResult } from "./compare.ts";
import { Generator } from "./generator.ts";
import { describe, O_CREAT, O_RDWR, PRIVATE_SLOTS, type Op, type Result } from "./ops.ts";
import { Rng } from "./rng.ts";
import { Pair, referenceOracle, report, saveReplay, shrink, type ShrinkResult } from "./runner.ts";
import type { Target } from "./targets.ts";

export interface ConcurrentOptions {
  seed: number;
  writers: number;
  /** Private ops per writer (shared writes come on top). */
  ops: number;
  /** Shared files. */
  files?: number;
  /** Share of steps that are shared writes. */
  sharedShare?: number;
  /** Pin writer i to CPU i % cpus (taskset), spreading the writers over that many CPUs' queues. */
  cpus?: number;
  /** Time allowed for shrinking a private difference (re-run alone). */
  shrinkMs?: number;
  log?: (s: string) => void;
}

export interface ConcurrentResult {
  writers: number;
  /** Ops performed (private ops on both roots count once, shared writes once). */
  count: number;
  sharedWrites: number;
  ms: number;
  problems: string[];
}

interface SharedWrite {
  file: number;
  off: number;
  len: number;
  fill: number;
}

const SHARED_SPAN = 1 << 20;

/** The CPU writer `i` is pinned to, if any. */
function cpuOf(o: ConcurrentOptions, i: number): number | undefined {
  return o.cpus ? i % o.cpus : undefined;
}

export async function runConcurrent(target: Target, o: ConcurrentOptions): Promise<ConcurrentResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const files = o.files ?? 3;
  const share = o.sharedShare ?? 0.25;
  const W = Math.min(o.writers, 4); // fill values: 60 per writer, 1..240
  const tag = `c${o.seed}`;
  const sharedDir = `${tag}-shared`;
  // statfs totals move with the other writers' work: not comparable here
  const rules = { ...target.rules, statfs: [], statfsFree: false };
  const pairs = Array.from({ length: W }, (_, i) => new Pair(target, `${tag}w${i}-`, 20_000, cpuOf(o, i)));
  const res: ConcurrentResult = { writers: W, count: 0, sharedWrites: 0, ms: 0, problems: [] };
  const writes: SharedWrite[][] = Array.from({ length: files }, () => []);
  try {
    await Promise.all(pairs.map((p) => p.fresh()));
    // The shared directory, made through writer 0's executor on A.
    const boss = pairs[0]!.A;
    const mk = await boss.op({ k: "mkdir", p: `../${sharedDir}`, m: 0o777 });
    if (mk.e) throw new Error(`mkdir ${sharedDir}: ${mk.e}`);
    for (const p of pairs)
      for (let f = 0; f < files; f++) {
        const r = await p.A.op({ k: "open", p: `../${sharedDir}/s${f}`, fl: O_RDWR | O_CREAT, m: 0o666, s: PRIVATE_SLOTS + f });
        if (r.e) throw new Error(`open shared file s${f}: ${r.e}`);
      }

    const runWriter = async (w: number): Promise<void> => {
      const pair = pairs[w]!;
      const gen = new Generator(o.seed * 1000 + w, { ...target.gen, exclude: [...target.exclude, "statfs"] });
      const rng = new Rng(o.seed * 7919 + w);
      const state = new CheckState();
      const oracle = referenceOracle(pair);
      const done: Op[] = [];
      const failed = new Set<number>();
      let seq = 0;
      for (let i = 0; i <= o.ops; ) {
        if (rng.chance(share)) {
          const file = rng.int(files);
          const off = rng.int(SHARED_SPAN);
          const len = rng.range(1, 65536);
          const fill = w * 60 + (seq++ % 60) + 1;
          const op: Op = { k: "pwrite", s: PRIVATE_SLOTS + file, off, len, seed: 0, fill };
          const r = await pair.A.op(op);
          res.count++;
          res.sharedWrites++;
          if (r.e !== undefined || r.v !== len) res.problems.push(`writer ${w}: shared ${describe(op)} on s${file}: ${JSON.stringify(r)} (expected ${len})`);
          writes[file]!.push({ file, off, len, fill });
          continue;
        }
        const op: Op = i === o.ops ? { k: "check" } : gen.next();
        i++;
        done.push(op);
        res.count++;
        if (op.k === "check") {
          const [sa, sb] = await Promise.all([pair.A.snapshot(), pair.B.snapshot()]);
          gen.model.resync(sb);
          const diffs = state.compare(sa, sb, rules);
          if (diffs.length) return problem(w, done, failed, diffs[0]!.sig, diffs.map((d) => d.message).join("\n"));
          continue;
        }
        const [ra, rb]: [Result, Result] = await Promise.all([pair.A.op(op), pair.B.op(op)]);
        if (rb.e !== undefined) failed.add(done.length - 1);
        const msg = await compareResult(op, ra, rb, rules, oracle);
        if (msg !== undefined) return problem(w, done, failed, `op:${op.k}`, msg);
        gen.observe(op, rb);
      }
    };

    const problem = async (w: number, done: Op[], failed: Set<number>, sig: string, message: string): Promise<void> => {
      const diff = { index: done.length - 1, op: done[done.length - 1]!, sig, message };
      res.problems.push(`writer ${w} (seed ${o.seed * 1000 + w}), private files: difference while ${W} writers ran:\n${report({ seed: o.seed * 1000 + w, ops: done.length, target }, diff, undefined, undefined)}`);
      // Does it show without the other writers? Shrink it alone (after the others are done).
      pendingShrinks.push(async () => {
        let s: ShrinkResult | undefined;
        try {
          const alone = new Pair(target, `${tag}w${w}-alone-`, 20_000, cpuOf(o, w));
          try {
            s = await shrink(alone, done, diff, rules, o.shrinkMs ?? 60_000, log, failed);
          } finally {
            await alone.close();
          }
        } catch (e) {
          log(`shrinking failed: ${(e as Error).message}`);
        }
        if (s?.confirmed) {
          const file = saveReplay(s.ops, { seed: o.seed * 1000 + w, sig });
          res.problems.push(`writer ${w}: the difference also shows alone:\n${report({ seed: o.seed * 1000 + w, ops: done.length, target }, diff, s, file)}`);
        } else res.problems.push(`writer ${w}: the difference does not show when the sequence runs alone (a concurrency problem?)`);
      });
    };
    const pendingShrinks: Array<() => Promise<void>> = [];

    await Promise.all(Array.from({ length: W }, (_, w) => runWriter(w)));
    for (const f of pendingShrinks) await f();

    // Shared files: size and bytes.
    for (let f = 0; f < files; f++) {
      const data = await boss.readFile(`${pairs[0]!.rootA}/../${sharedDir}/s${f}`);
      res.problems.push(...checkShared(f, data, writes[f]!));
    }
  } finally {
    await Promise.all(pairs.map((p) => p.close().catch(() => {})));
    await cleanupShared(target, sharedDir).catch(() => {});
  }
  res.ms = Date.now() - t0;
  return res;
}

async function cleanupShared(target: Target, dir: string): Promise<void> {
  const p = new Pair(target, "cleanup");
  try {
    await p.A.wipe(`${target.a}/${dir}`);
  } finally {
    await p.close();
  }
}

/** Merged, sorted [start, end) intervals. */
function union(iv: Array<[number, number]>): Array<[number, number]> {
  iv.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of iv) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The interval of the sorted union `u` that holds x, if any. */
function holding(u: Array<[number, number]>, x: number): [number, number] | undefined {
  let lo = 0;
  let hi = u.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const iv = u[mid]!;
    if (x < iv[0]) hi = mid - 1;
    else if (x >= iv[1]) lo = mid + 1;
    else return iv;
  }
  return undefined;
}

/** Is all of [a, b) covered by the sorted union `u`? */
function covered(u: Array<[number, number]>, a: number, b: number): boolean {
  for (let x = a; x < b; ) {
    const iv = holding(u, x);
    if (!iv) return false;
    x = iv[1];
  }
  return true;
}

function intersects(u: Array<[number, number]>, a: number, b: number): boolean {
  for (const [s, e] of u) if (s < b && a < e) return true;
  return false;
}

/** The fsx-style invariants of one shared file. */
export function checkShared(f: number, data: Uint8Array, writes: SharedWrite[]): string[] {
  const problems: string[] = [];
  const want = writes.reduce((m, w) => Math.max(m, w.off + w.len), 0);
  if (data.length !== want) problems.push(`shared file s${f}: size ${data.length}, but the furthest of its ${writes.length} writes ends at ${want}`);
  const byFill = new Map<number, Array<[number, number]>>();
  for (const w of writes) {
    const l = byFill.get(w.fill) ?? [];
    l.push([w.off, w.off + w.len]);
    byFill.set(w.fill, l);
  }
  const unions = new Map([...byFill].map(([k, v]) => [k, union(v)]));
  const all = union(writes.map((w) => [w.off, w.off + w.len] as [number, number]));
  let bad = 0;
  for (let p = 0; p < data.length; ) {
    const v = data[p]!;
    let q = p + 1;
    while (q < data.length && data[q] === v) q++;
    // a run of one value: zeros (never written: fills are 1..240) must lie outside every
    // write, a fill value inside the writes that wrote it
    const u = unions.get(v);
    const ok = v === 0 ? !intersects(all, p, q) : u !== undefined && covered(u, p, q);
    if (!ok && bad++ < 5) problems.push(`shared file s${f}: bytes [${p}, ${q}) hold ${v}, which ${v === 0 ? "no write leaves where writes covered" : "no write covering them wrote"}`);
    p = q;
  }
  if (bad > 5) problems.push(`shared file s${f}: ... ${bad} bad runs in all`);
  return problems;
}
