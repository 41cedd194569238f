/**
 * Runs op sequences on both roots in lockstep and compares as it goes; on a difference, shrinks
 * the sequence to the shortest one it can find that still shows it (delta debugging, each trial
 * on fresh roots) and writes a report with the seed and that sequence.
 *
 * Each run (and each shrinking trial) gets a fresh empty directory on A and on B as its root; it
 * is removed afterwards, so trials start from the same state without remounting. The shortest
 * sequence is finally re-run once more on fresh roots to confirm it.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor, ExecutorError } from "./client.ts";
import { CheckState, compareResult, formatOps, type Difference, type Oracle, type Rules } from "./compare.ts";
import type { Attr, Snapshot } from "./executor.ts";
import { Generator, type GeneratorOptions } from "./generator.ts";
import { describe, slotsUsed, S_IFDIR, S_IFMT, S_IFREG, type Op, type Result } from "./ops.ts";
import type { Target } from "./targets.ts";

/** Executors for A and B, and fresh run roots under the target's two directories. */
export class Pair {
  readonly A: Executor;
  readonly B: Executor;
  private trial = 0;
  rootA = "";
  rootB = "";

  /** `cpu`: pin both executors to that CPU. */
  constructor(readonly target: Target, readonly tag = "run", opTimeoutMs = 20_000, cpu?: number) {
    this.A = new Executor(`A (${target.name} over ${target.transport}${cpu === undefined ? "" : `, CPU ${cpu}`})`, opTimeoutMs, cpu);
    this.B = new Executor("B (reference)", opTimeoutMs, cpu);
  }

  /** Closes all slots and switches both executors to new empty roots (named `name`, default tagN). */
  async fresh(name = `${this.tag}${this.trial++}`): Promise<void> {
    await this.cleanup();
    this.rootA = join(this.target.a, name);
    this.rootB = join(this.target.b, name);
    await Promise.all([this.A.setRoot(this.rootA), this.B.setRoot(this.rootB)]);
  }

  /** Closes the slots and removes the current roots. */
  async cleanup(): Promise<void> {
    if (!this.rootA) return;
    await Promise.all([this.A.reset(), this.B.reset()]);
    await Promise.all([this.A.wipe(this.rootA), this.B.wipe(this.rootB)]);
    this.rootA = this.rootB = "";
  }

  async close(): Promise<void> {
    await this.cleanup().catch(() => {});
    await Promise.all([this.A.close(), this.B.close()]);
  }
}

export interface SequenceResult {
  /** Every op sent (checkpoints included), up to and including the one that showed a difference. */
  ops: Op[];
  /** Ops and checkpoints performed. */
  count: number;
  checks: number;
  diff?: Difference;
  /** How often each op kind ended in each result ("rename ENOTEMPTY", "write ok"). */
  outcomes: Map<string, number>;
  /** Answers of A and B to each op (kept when asked, for reports). */
  trace?: Array<[Result | undefined, Result | undefined]>;
  /** Indexes of the ops that failed on the reference (candidates the shrinker tries to drop first). */
  failedOnB: Set<number>;
}

export interface SequenceOptions {
  rules: Rules;
  /**
   * After ops that free space (unlink, rmdir, rename, close), wait until statfs agrees: through
   * FUSE, a removed file's space comes back when the kernel sends RELEASE/FORGET, a moment after
   * the call returned. For runs near ENOSPC.
   */
  settle?: boolean;
  /** Keep A's and B's answers per op. */
  trace?: boolean;
  /** Called every so many ops with the count so far. */
  progress?: (count: number) => void;
}

/** What the comparator may ask of the reference side (B): where its holes are, what a slot is. */
export function referenceOracle(pair: Pair): Oracle {
  return {
    zeros: (s, from, to) => pair.B.zeros(s, from, to),
    type: async (s) => {
      const r = await pair.B.op({ k: "fstat", s });
      const t = r.e === undefined ? (r.v as Attr).mode & S_IFMT : 0;
      return t === S_IFDIR ? "dir" : t === S_IFREG ? "file" : "other";
    },
  };
}

/**
 * Runs ops from `source` (a generator, which sees the reference's answers, or a fixed list) on
 * the pair's current roots until it ends or a difference shows. A fixed list ends with what it
 * contains; a generator run of `n` ops ends with a checkpoint.
 */
export async function runSequence(pair: Pair, source: Generator | Op[], n: number, o: SequenceOptions): Promise<SequenceResult> {
  const res: SequenceResult = { ops: [], count: 0, checks: 0, outcomes: new Map(), trace: o.trace ? [] : undefined, failedOnB: new Set() };
  const state = new CheckState();
  const oracle = referenceOracle(pair);
  const gen = source instanceof Generator ? source : undefined;
  const list = source instanceof Generator ? undefined : source;
  const total = list ? list.length : n;
  const ahead = new Map<number, Promise<[Result, Result]>>();
  const found = (op: Op, sig: string, message: string): SequenceResult => {
    res.diff = { index: res.ops.length - 1, op, sig, message };
    return res;
  };
  const frees = (op: Op) => o.settle === true && FREEING.has(op.k);
  for (let i = 0; i < total + (gen ? 1 : 0); i++) {
    const op: Op = list ? (list[i] as Op) : i === total ? { k: "check" } : (gen as Generator).next();
    res.ops.push(op);
    res.count++;
    if (o.progress && res.count % 1000 === 0) o.progress(res.count);
    try {
      if (op.k === "check") {
        res.checks++;
        const [sa, sb] = await Promise.all([pair.A.snapshot(), pair.B.snapshot()]);
        res.trace?.push([undefined, undefined]);
        const fa = sa.statfs, fb = sb.statfs;
        // (only when statfs counts are compared: a plugin with other limits never agrees)
        if (typeof fa === "object" && typeof fb === "object" && o.rules.statfs.includes("ffree") && (fa.ffree !== fb.ffree || (o.settle && fa.bfree !== fb.bfree))) {
          const s = await settle(pair, 1000, o.settle === true);
          if (s) [sa.statfs, sb.statfs] = s;
        }
        gen?.model.resync(sb);
        countByteNames(sb, res.outcomes);
        const diffs = state.compare(sa, sb, o.rules);
        if (diffs.length) return found(op, diffs[0]!.sig, diffs.map((d) => d.message).join("\n"));
        continue;
      }
      let pending = ahead.get(i);
      if (pending === undefined && list) {
        // A fixed list: send the ops up to the next checkpoint (or an lseek, whose check may ask
        // the reference about the descriptor right after) without waiting for each answer.
        for (let j = i; j < total && j < i + 64; j++) {
          const x = list[j] as Op;
          if (x.k === "check") break;
          ahead.set(j, Promise.all([pair.A.op(x), pair.B.op(x)]));
          if (x.k === "lseek" || frees(x)) break;
        }
        pending = ahead.get(i);
      }
      ahead.delete(i);
      const [ra, rb] = await (pending ?? Promise.all([pair.A.op(op), pair.B.op(op)]));
      res.trace?.push([ra, rb]);
      if (rb.e !== undefined) res.failedOnB.add(res.ops.length - 1);
      const key = `${op.k} ${rb.e ?? "ok"}`;
      res.outcomes.set(key, (res.outcomes.get(key) ?? 0) + 1);
      let msg = await compareResult(op, ra, rb, o.rules, oracle);
      if (msg !== undefined && op.k === "statfs" && ra.e === undefined && rb.e === undefined) {
        // space and inodes of removed files come back when the kernel's RELEASE/FORGET arrive
        const s = await settle(pair, 1000, o.settle === true);
        if (s) msg = await compareResult(op, { v: s[0] }, { v: s[1] }, o.rules, oracle);
      }
      if (msg !== undefined) {
        found(op, `op:${op.k}`, msg);
        res.diff!.a = ra;
        res.diff!.b = rb;
        return res;
      }
      gen?.observe(op, rb);
      if (frees(op) && rb.e === undefined) await settle(pair, 2000, true);
    } catch (e) {
      if (e instanceof ExecutorError) return found(op, /did not finish/.test(e.message) ? "hang" : "executor", e.message);
      throw e;
    } finally {
      if (res.diff) for (const p of ahead.values()) p.catch(() => {});
    }
  }
  return res;
}

const FREEING = new Set(["unlink", "rmdir", "rename", "close"]);

/**
 * Counts (as outcomes "check names-not-utf8" and "check invalid-byte-pair") the checkpoints whose
 * reference tree holds names that are not UTF-8 (escaped bytes, U+DC80..U+DCFF), and those where
 * two paths differ only in such bytes: a profile shows that byte-exact names were exercised.
 */
function countByteNames(snap: Snapshot, outcomes: Map<string, number>): void {
  const seen = new Set<string>();
  let escaped = false, pair = false;
  for (const e of snap.entries) {
    if (e.p.isWellFormed()) continue;
    escaped = true;
    const key = e.p.replace(/[\udc80-\udcff]/g, "?");
    if (seen.has(key)) pair = true;
    seen.add(key);
  }
  if (escaped) outcomes.set("check names-not-utf8", (outcomes.get("check names-not-utf8") ?? 0) + 1);
  if (pair) outcomes.set("check invalid-byte-pair", (outcomes.get("check invalid-byte-pair") ?? 0) + 1);
}

/**
 * Waits (up to `ms`) until statfs's free inodes (and blocks, with `blocks`) agree on A and B, and
 * returns the last statfs of each; undefined when statfs fails.
 */
async function settle(pair: Pair, ms: number, blocks: boolean): Promise<[Record<string, number>, Record<string, number>] | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const [a, b] = await Promise.all([pair.A.op({ k: "statfs" }), pair.B.op({ k: "statfs" })]);
    if (a.e !== undefined || b.e !== undefined) return undefined;
    const fa = a.v as Record<string, number>, fb = b.v as Record<string, number>;
    if ((fa.ffree === fb.ffree && (!blocks || fa.bfree === fb.bfree)) || Date.now() > end) return [fa, fb];
    await Bun.sleep(2);
  }
}

// ---- shrinking -------------------------------------------------------------------------------------

export interface ShrinkResult {
  ops: Op[];
  trials: number;
  ms: number;
  /** The difference as the shortest sequence shows it. */
  diff: Difference;
  trace: Array<[Result | undefined, Result | undefined]>;
  confirmed: boolean;
  /** The difference the shrinker was given (diff differs when the state already differed before it). */
  original?: Difference;
}

/**
 * Delta debugging (ddmin) over the ops before the one that showed the difference: removes
 * chunks of ops, halving the chunk size when no removal keeps the difference, until no single
 * op can go or the time budget is spent. A trial "keeps" the difference when a fresh run of the
 * candidate shows one with the same signature.
 */
export async function shrink(pair: Pair, ops: Op[], diff: Difference, rules: Rules, budgetMs: number, log: (s: string) => void = () => {}, failedOnB?: Set<number>, settleOps = false): Promise<ShrinkResult> {
  const start = Date.now();
  let trials = 0;
  let last = ops[diff.index] as Op;
  const original = diff;
  const run = async (list: Op[]): Promise<SequenceResult> => {
    trials++;
    await pair.fresh();
    return runSequence(pair, list, 0, { rules, trace: true, settle: settleOps });
  };
  const trial = (prefix: Op[]) => run([...prefix, last]);
  const keeps = async (prefix: Op[]) => {
    const r = await trial(prefix);
    return r.diff !== undefined && r.diff.sig === diff.sig && r.diff.index === prefix.length;
  };
  let cur = ops.slice(0, diff.index);
  // An op answering differently: did the state already differ before it (a file position, a
  // mode)? Then shrink that checkpoint difference instead, which can be pinned to its op.
  if (last.k !== "check" && !/time/.test(diff.sig)) {
    const check: Op = { k: "check" };
    const r = await run([...cur, check]);
    if (r.diff && r.diff.op === check && !/time/.test(r.diff.sig)) {
      log(`  shrinking: the state differed already before that op (${r.diff.sig})`);
      diff = { ...r.diff, index: cur.length };
      last = check;
    }
  }
  // A checkpoint difference: find the op that caused it, by re-running the ops since the last
  // good checkpoint with a checkpoint after each.
  let culprit: Op | undefined;
  const prev = cur.map((op) => op.k).lastIndexOf("check");
  if (last.k === "check" && diff.index - prev > 2) {
    const inserted = new Set<Op>();
    const probe = [...cur.slice(0, prev + 1)];
    for (const op of cur.slice(prev + 1)) {
      const c: Op = { k: "check" };
      inserted.add(c);
      probe.push(op, c);
    }
    const r = await run(probe);
    if (r.diff && r.diff.sig === diff.sig && inserted.has(r.diff.op)) {
      cur = probe.slice(0, r.diff.index).filter((op) => !inserted.has(op));
      culprit = cur[cur.length - 1];
      log(`  shrinking: the difference shows after ${culprit ? describe(culprit) : "?"} (op ${cur.length})`);
    }
  }
  // Cheap big cuts first: nothing at all; only the ops that succeeded on the reference (failed
  // ops rarely change anything); only the ops that change something.
  const passive = new Set(["stat", "fstat", "access", "readdir", "readlink", "getxattr", "listxattr", "statfs", "lseek", "read", "pread", "fsync"]);
  // Time differences need the checkpoint before (what changed since); the others only the last.
  if (!/time/.test(diff.sig)) {
    const cand = cur.filter((op) => op.k !== "check");
    if (cand.length < cur.length && (await keeps(cand))) {
      cur = cand;
    }
  }
  const failed = new Set(ops.filter((_, i) => failedOnB?.has(i)));
  const cuts: Op[][] = [[], cur.filter((op) => !failed.has(op))];
  cuts.push(cuts[1]!.filter((op) => !passive.has(op.k)));
  cuts.push(cuts[2]!.filter((op, i, all) => op.k !== "check" || all.slice(i + 1).some((x) => x.k === "check") === false || i === all.length - 1));
  cuts.push(relevant(cuts[1]!, culprit ? [last, culprit] : [last], diff));
  for (const cand of cuts) {
    if (cand.length >= cur.length || Date.now() - start > budgetMs) continue;
    if (await keeps(cand)) {
      cur = cand;
      log(`  shrinking: ${cur.length + 1} ops (${trials} trials)`);
    }
  }
  let n = 2;
  while (cur.length > 0 && Date.now() - start < budgetMs) {
    if (n > cur.length) n = cur.length;
    const size = Math.ceil(cur.length / n);
    let reduced = false;
    for (let i = 0; i < n && Date.now() - start < budgetMs; i++) {
      const cand = [...cur.slice(0, i * size), ...cur.slice((i + 1) * size)];
      if (cand.length === cur.length) continue;
      if (await keeps(cand)) {
        cur = cand;
        n = Math.max(n - 1, 2);
        reduced = true;
        log(`  shrinking: ${cur.length + 1} ops (${trials} trials)`);
        break;
      }
    }
    if (!reduced) {
      if (n >= cur.length) break;
      n = Math.min(cur.length, n * 2);
    }
  }
  // Final confirmation (with the answers, for the report).
  const final = await trial(cur);
  await pair.cleanup();
  const confirmed = final.diff !== undefined && final.diff.sig === diff.sig;
  return { ops: [...cur, last], trials, ms: Date.now() - start, diff: final.diff ?? diff, trace: final.trace ?? [], confirmed, original };
}

/** Paths an op names (a symlink's target too, resolved against the link's directory). */
function pathsOf(op: Op): string[] {
  const out: string[] = [];
  const o = op as { p?: string; q?: string; t?: string };
  if (typeof o.p === "string") out.push(o.p);
  if (typeof o.q === "string") out.push(o.q);
  if (op.k === "symlink" && op.t !== "") {
    const dir = op.p.includes("/") ? op.p.slice(0, op.p.lastIndexOf("/") + 1) : "";
    out.push(dir + op.t);
  }
  return out.map((p) => p.replace(/\/\.{1,2}$/, ""));
}

function relatedPath(a: string, b: string): boolean {
  if (a === "" || b === "") return a === b;
  return a === b || a.startsWith(b + "/") || b.startsWith(a + "/");
}

/**
 * The ops that share an open slot or a path (or a parent or child of one) with the op that
 * showed the difference, or with the names its message quotes, transitively; and every
 * checkpoint. A guess at what matters, tried as one cut before delta debugging.
 */
function relevant(ops: Op[], seeds: Op[], diff: Difference): Op[] {
  const slots = new Set(seeds.flatMap(slotsUsed));
  const paths = new Set(seeds.flatMap(pathsOf));
  for (const m of diff.message.matchAll(/"([^"]*)"/g)) {
    const fd = /^fd(\d+)$/.exec(m[1]!);
    if (fd) slots.add(Number(fd[1]));
    else paths.add(m[1]!);
  }
  const keep = new Array<boolean>(ops.length).fill(false);
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = ops.length - 1; i >= 0; i--) {
      if (keep[i]) continue;
      const op = ops[i]!;
      const used = [...slotsUsed(op), ...(op.k === "open" || op.k === "tmpfile" ? [op.s] : [])];
      const ps = pathsOf(op);
      if (op.k === "check" || used.some((s) => slots.has(s)) || ps.some((p) => [...paths].some((q) => relatedPath(p, q)))) {
        keep[i] = true;
        changed = true;
        for (const s of used) slots.add(s);
        for (const p of ps) paths.add(p);
      }
    }
  }
  return ops.filter((_, i) => keep[i]);
}

// ---- reports ---------------------------------------------------------------------------------------

function showResult(r: Result | undefined): string {
  if (r === undefined) return "";
  if (r.e !== undefined) return r.e;
  if (r.v === undefined) return "ok";
  let v = r.v;
  if (typeof v === "object" && v !== null && "ino" in v) {
    // stat: what is compared per op
    const { mode, nlink, uid, gid, size } = v as Record<string, number>;
    v = { mode: "0" + mode!.toString(8), nlink, uid, gid, size };
  }
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

export interface RunInfo {
  seed: number;
  ops: number;
  target: Target;
  gen?: Partial<GeneratorOptions>;
  /** The replay line of the report (default: scripts/difftest --replay FILE). */
  replayHint?: (file: string) => string;
}

/** A report of a difference: what, where, the shortest sequence and how to replay it. */
export function report(info: RunInfo, found: Difference, s: ShrinkResult | undefined, replayFile: string | undefined): string {
  const t = info.target;
  const lines = [
    `DIFFERENCE: ${t.name} over ${t.transport} vs ${t.reference}, seed ${info.seed}, at op ${found.index + 1} of ${info.ops}: ${found.sig}`,
    `  (A: ${t.name}, served by furing; B: ${t.reference}, the reference)`,
    `  ${describe(found.op)}`,
    ...found.message.split("\n").map((l) => `  ${l}`),
  ];
  if (s) {
    lines.push(
      "",
      s.trials === 1 && s.ms === 0
        ? `Sequence (${s.ops.length} ops):`
        : `Shortest sequence found: ${s.ops.length} ops (${s.trials} trials in ${(s.ms / 1000).toFixed(1)} s${s.confirmed ? "" : "; NOT confirmed on a fresh run, showing the last one that was"}):`,
      "        op" + " ".repeat(60) + "A | B",
    );
    s.ops.forEach((op, i) => {
      const [a, b] = s.trace[i] ?? [undefined, undefined];
      const ra = showResult(a), rb = showResult(b);
      const d = describe(op);
      const res = op.k === "check" ? "" : ra === rb ? ra : `${ra} | ${rb}   <-- differs`;
      lines.push(`  ${String(i + 1).padStart(4)}  ${d.length > 64 ? d : d.padEnd(64)}  ${res}`);
    });
    if (s.diff.sig !== found.sig) lines.push(`  the state already differed before that op (${s.diff.sig}); the shortest sequence that shows it:`, ...s.diff.message.split("\n").map((l) => `    ${l}`));
    else if (s.diff.message !== found.message) lines.push("  as the shortest sequence shows it:", ...s.diff.message.split("\n").map((l) => `    ${l}`));
  } else lines.push("", "Sequence (not shrunk):", formatOps([found.op]));
  if (replayFile) lines.push("", info.replayHint?.(replayFile) ?? `Replay: scripts/difftest --replay ${replayFile} --target ${t.name} --transport ${t.transport}`);
  return lines.join("\n");
}

/** Writes a sequence as JSON for --replay; returns the file name. */
export function saveReplay(ops: Op[], info: { seed: number; sig: string }, dir = tmpdir()): string {
  const file = join(dir, `difftest-${info.seed}-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify({ seed: info.seed, sig: info.sig, ops }, null, 0).replace(/\},\{"k"/g, '},\n{"k"') + "\n");
  return file;
}

// ---- one seeded run, end to end ---------------------------------------------------------------------

export interface SeedRunOptions {
  seed: number;
  ops: number;
  gen?: Partial<GeneratorOptions>;
  /** Time allowed for shrinking a difference (ms). */
  shrinkMs?: number;
  /** Where to save a replay file of a difference (default: os.tmpdir()). */
  replayDir?: string;
  log?: (s: string) => void;
}

export interface SeedRunResult {
  seed: number;
  count: number;
  checks: number;
  ms: number;
  outcomes: Map<string, number>;
  /** The report, when a difference was found. */
  difference?: string;
}

/** Generates and runs `ops` ops from `seed` on fresh roots; on a difference, shrinks and reports it. */
export async function runSeed(pair: Pair, o: SeedRunOptions): Promise<SeedRunResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const target = pair.target;
  await pair.fresh();
  const gen = new Generator(o.seed, { ...target.gen, ...o.gen, exclude: [...(o.gen?.exclude ?? []), ...target.exclude] });
  const settleOps = o.gen?.dense === true;
  const r = await runSequence(pair, gen, o.ops, { rules: target.rules, settle: settleOps });
  const out: SeedRunResult = { seed: o.seed, count: r.count, checks: r.checks, ms: Date.now() - t0, outcomes: r.outcomes };
  if (r.diff) {
    log(`seed ${o.seed}: difference at op ${r.diff.index + 1} (${r.diff.sig}); shrinking...`);
    let s: ShrinkResult | undefined;
    let file: string | undefined;
    try {
      if (r.diff.sig !== "hang" && r.diff.sig !== "executor") s = await shrink(pair, r.ops, r.diff, target.rules, o.shrinkMs ?? 60_000, log, r.failedOnB, settleOps);
      file = saveReplay(s?.ops ?? r.ops, { seed: o.seed, sig: r.diff.sig }, o.replayDir);
    } catch (e) {
      log(`shrinking failed: ${(e as Error).message}`);
    }
    out.difference = report({ seed: o.seed, ops: r.count, target }, r.diff, s, file);
  }
  await pair.cleanup().catch(() => {});
  out.ms = Date.now() - t0;
  return out;
}
