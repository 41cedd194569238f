/**
 * The checker behind `furing check` and `furing/testing`'s `checkPlugin`: any plugin, mounted by a
 * daemon in a child process, against a fresh tmpfs, with the differential tester (generator,
 * executors, comparator, shrinker of this folder).
 *
 * Families pick the op kinds a run makes, so that a filesystem that refuses some by design (no
 * xattrs, no hard links, read-only data) can still be checked for the rest. A refusal (EROFS,
 * EOPNOTSUPP, ENOSYS where tmpfs answered otherwise) is not a difference: the op kind is counted,
 * left out, and the seed starts over without it; the summary lists the refusals once each.
 */
import { ExecutorError } from "./client.ts";
import { memfsRules, type Difference, type Rules } from "./compare.ts";
import { runConcurrent } from "./concurrent.ts";
import { Generator } from "./generator.ts";
import { describe, type Op, type OpKind, type Result } from "./ops.ts";
import { Pair, report, runSequence, saveReplay, shrink, type ShrinkResult } from "./runner.ts";
import { MEMFS_GEN, tmpfsTarget, type Target } from "./targets.ts";
import type { Transport } from "../testing/mount.ts";

/** What each family adds to the runs (the tree family is always on: every run needs it). */
export const FAMILIES = {
  tree: { ops: ["open", "close", "mkdir", "rmdir", "unlink", "rename", "readdir", "stat", "fstat", "access"], help: "names, directories, open/close, stat (always on)" },
  data: { ops: ["write", "pwrite", "read", "pread", "lseek", "truncate", "ftruncate", "fallocate", "cfr", "fsync"], help: "file contents: writes, reads, holes, truncate, fallocate, copy_file_range" },
  metadata: { ops: ["chmod", "fchmod", "chown", "fchown", "utimens", "futimens"], help: "modes, owners, explicit times" },
  links: { ops: ["link", "linkfd", "symlink", "readlink"], help: "hard links and symlinks" },
  xattrs: { ops: ["setxattr", "getxattr", "listxattr", "removexattr"], help: "extended attributes (compared at checkpoints too)" },
  special: { ops: ["mknod", "tmpfile"], help: "FIFOs, sockets, device nodes, O_TMPFILE" },
  users: { ops: [], help: "~12% of ops as other users (permission checks; needs default_permissions semantics)" },
  times: { ops: [], help: "current atime/mtime/ctime at checkpoints, by tmpfs's rules" },
  space: { ops: ["statfs"], help: "statfs totals and st_blocks like tmpfs (the plugin must have tmpfs's limits)" },
  concurrency: { ops: [], help: "several writer processes at once, private and shared files" },
} as const satisfies Record<string, { ops: OpKind[]; help: string }>;

export type Family = keyof typeof FAMILIES;
export const FAMILY_NAMES = Object.keys(FAMILIES) as Family[];

/** Answers that mean "not supported here" rather than "wrong". */
export const REFUSALS = new Set(["EROFS", "EOPNOTSUPP", "ENOTSUP", "ENOSYS"]);

export interface CheckOptions {
  /** Plugin name or path, as for `furing mount`. */
  plugin: string;
  /** The plugin's own options. */
  pluginArgs?: string[];
  /** Default: both. */
  transports?: Transport[];
  /** Default [1, 2, 3]. */
  seeds?: number[];
  /** Ops per seed (default 2000). */
  ops?: number;
  /** Families to run (default: all but space; tree is always added). */
  families?: Family[];
  /** Concurrency family: writer processes and private ops per writer (default 4 × 500). */
  writers?: number;
  writerOps?: number;
  /** Time allowed for shrinking each difference (default 30 s). */
  shrinkMs?: number;
  /** The reference tmpfs's size= and nr_inodes= (default 2g and 100000). */
  refSize?: string;
  refInodes?: number;
  /** The daemon's working directory (a relative plugin path is resolved from it). */
  cwd?: string;
  /** Where replay files of differences go (default os.tmpdir()). */
  replayDir?: string;
  /** Instead of seeds: run the ops of this replay file (written with a difference) once per transport. */
  replay?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface CheckDifference {
  transport: Transport;
  seed: number;
  /** A short category: "op:rename", "snap:nlink", "hang", ... */
  sig: string;
  /** The op where it showed, as a C-like line. */
  op: string;
  /** What the plugin (A) and tmpfs (B) answered to it, when the op's answers differed. */
  plugin?: Result;
  tmpfs?: Result;
  /** The shortest sequence found that shows it, one C-like line per op (the last shows it). */
  sequence: string[];
  confirmed: boolean;
  /** The full report: the difference, and the sequence with both sides' answers. */
  report: string;
  replayFile?: string;
}

export interface Refusal {
  transport: Transport;
  kind: OpKind;
  errno: string;
  /** The op that was refused first, and what tmpfs answered to it. */
  example: string;
  tmpfs: string;
}

export interface CheckResult {
  /** No unexpected difference (refusals are not differences). */
  ok: boolean;
  differences: CheckDifference[];
  refusals: Refusal[];
  /** Ops compared in all (checkpoints included). */
  ops: number;
  runs: Array<{ transport: Transport; seed: number | string; ops: number; ms: number; difference: boolean }>;
}

/** Cannot check at all (the run directory cannot be made, the tmpfs cannot be mounted). */
export class CheckError extends Error {}

/** Rules for a plugin that is not memfs: what tmpfs does is checked, limits only with `space`. */
function rulesFor(families: Set<Family>): Rules {
  const space = families.has("space");
  return {
    ...memfsRules,
    // POSIX leaves listing orders to the filesystem, and a node id may come back for a new node
    // (with a new generation): only memfs promises tmpfs's order and never reuses an id
    readdirOrder: false,
    xattrOrder: false,
    inodesReused: true,
    blocks: space ? "dense" : "never",
    // any answer the content allows: a plugin may keep holes at its own granularity, or none
    seek: "content",
    statfs: space ? memfsRules.statfs : [],
    statfsFree: space,
    xattrs: families.has("xattrs"),
    times: families.has("times"),
  };
}

/** The op kinds the chosen families leave out. */
export function excludedKinds(families: Set<Family>): OpKind[] {
  const on = new Set<OpKind>(FAMILY_NAMES.filter((f) => families.has(f) || f === "tree").flatMap((f) => [...FAMILIES[f].ops]));
  return FAMILY_NAMES.flatMap((f) => [...FAMILIES[f].ops]).filter((k) => !on.has(k));
}

const show = (r: Result | undefined) => (r === undefined ? "?" : r.e ?? (r.v === undefined ? "ok" : JSON.stringify(r.v).slice(0, 60)));

/** Checks `plugin` against tmpfs; never throws for a difference (see `ok`), throws CheckError when it cannot check. */
export async function checkPlugin(o: CheckOptions): Promise<CheckResult> {
  const families = new Set<Family>(o.families ?? FAMILY_NAMES.filter((f) => f !== "space"));
  families.add("tree");
  const log = o.log ?? (() => {});
  const seeds = o.seeds ?? [1, 2, 3];
  const ops = o.ops ?? 2000;
  const rules = rulesFor(families);
  const result: CheckResult = { ok: true, differences: [], refusals: [], ops: 0, runs: [] };
  for (const transport of o.transports ?? ["io_uring", "classic"]) {
    let target: Target;
    try {
      target = await tmpfsTarget(transport, {
        plugin: o.plugin, pluginArgs: o.pluginArgs, size: o.refSize, inodes: o.refInodes, rules,
        exclude: excludedKinds(families), gen: { ...MEMFS_GEN, ...(families.has("users") ? {} : { asUser: 0 }) },
        ...(o.cwd ? { cwd: o.cwd } : {}),
      });
    } catch (e) {
      throw new CheckError((e as Error).message);
    }
    log(`check: ${target.name} over ${transport} (${target.a}) vs tmpfs (${target.b})`);
    const refused = new Map<OpKind, Refusal>();
    const pair = new Pair(target, "check");
    try {
      if (o.replay !== undefined) {
        await replay(pair, target, o.replay, result, log);
        continue;
      }
      for (const seed of seeds) await checkSeed(pair, target, seed, ops, o, refused, result, transport, log);
      const before = result.differences.filter((d) => d.transport === transport).length;
      // a difference the sequential runs found would show again in every writer: fix that first
      if (families.has("concurrency") && before > 0) log(`check: ${transport}: concurrent writers skipped (the sequential runs already differ)`);
      else if (families.has("concurrency")) {
        target.exclude = [...target.exclude, ...refused.keys()];
        const seed = seeds[0]! * 1000 + 7;
        const r = await runConcurrent(target, { seed, writers: o.writers ?? 4, ops: o.writerOps ?? 500, shrinkMs: o.shrinkMs ?? 30_000, log });
        result.ops += r.count;
        result.runs.push({ transport, seed: `concurrent ${seed}`, ops: r.count, ms: r.ms, difference: r.problems.length > 0 });
        log(`check: ${transport}: ${r.writers} concurrent writers, ${r.count} ops (${r.sharedWrites} shared writes), ${(r.ms / 1000).toFixed(1)} s: ${r.problems.length ? "DIFFERENCE" : "no difference"}`);
        for (const p of r.problems)
          result.differences.push({ transport, seed, sig: "concurrent", op: "", sequence: [], confirmed: true, report: p });
      }
    } catch (e) {
      if (e instanceof ExecutorError) throw new CheckError(setupMessage(e));
      throw e;
    } finally {
      await pair.close().catch(() => {});
      await target.close().catch((e) => log(`check: cleanup: ${(e as Error).message}`));
    }
    result.refusals.push(...refused.values());
  }
  result.ok = result.differences.length === 0;
  return result;
}

/** Runs a replay file's ops once on fresh roots and reports what differs, without shrinking. */
async function replay(pair: Pair, target: Target, file: string, out: CheckResult, log: (s: string) => void): Promise<void> {
  let saved: { seed: number; ops: Op[] };
  try {
    saved = JSON.parse(await Bun.file(file).text());
    if (!Array.isArray(saved.ops)) throw new Error("no ops");
  } catch (e) {
    throw new CheckError(`cannot read the replay file ${file}: ${(e as Error).message}`);
  }
  const t0 = Date.now();
  await pair.fresh();
  const r = await runSequence(pair, saved.ops, 0, { rules: target.rules, trace: true });
  await pair.cleanup().catch(() => {});
  const ms = Date.now() - t0;
  out.ops += r.count;
  out.runs.push({ transport: target.transport, seed: `replay ${file}`, ops: r.count, ms, difference: r.diff !== undefined });
  log(`check: ${target.transport}: replay of ${saved.ops.length} ops: ${r.diff ? `DIFFERENCE (${r.diff.sig})` : "no difference"}`);
  if (!r.diff) return;
  const shown: ShrinkResult = { ops: r.ops, trials: 1, ms: 0, diff: r.diff, trace: r.trace ?? [], confirmed: true };
  const last = r.trace?.[r.trace.length - 1];
  out.differences.push({
    transport: target.transport, seed: saved.seed, sig: r.diff.sig, op: describe(r.diff.op), plugin: last?.[0], tmpfs: last?.[1],
    sequence: r.ops.map(describe), confirmed: true, report: report({ seed: saved.seed, ops: r.count, target }, r.diff, shown, undefined),
  });
}

/** An executor failing outside an op: the run directory could not be made, most often. */
function setupMessage(e: ExecutorError): string {
  const first = e.message.split("\n")[0]!;
  const errno = /\b(E[A-Z0-9]{2,})\b/.exec(first)?.[1];
  if (/: root /.test(first) && errno)
    return `cannot make the run's directory in the mount (${errno}): furing check compares a filesystem that can create files against tmpfs${REFUSALS.has(errno) ? "; a read-only filesystem cannot be checked this way" : ""} (${first})`;
  return first;
}

async function checkSeed(pair: Pair, target: Target, seed: number, n: number, o: CheckOptions, refused: Map<OpKind, Refusal>, out: CheckResult, transport: Transport, log: (s: string) => void): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    await pair.fresh();
    const gen = new Generator(seed, { ...target.gen, exclude: [...target.exclude, ...refused.keys()] });
    const r = await runSequence(pair, gen, n, { rules: target.rules });
    out.ops += r.count;
    const d = r.diff;
    if (d && d.op.k !== "check" && d.a?.e !== undefined && REFUSALS.has(d.a.e) && d.b?.e !== d.a.e && !refused.has(d.op.k)) {
      // refused by design: leave the kind out and start the seed over
      refused.set(d.op.k, { transport, kind: d.op.k, errno: d.a.e, example: describe(d.op), tmpfs: show(d.b) });
      log(`check: ${transport} seed ${seed}: ${d.op.k} refused (${d.a.e}); leaving it out and starting over`);
      await pair.cleanup();
      continue;
    }
    const listing = d?.sig === "snap:xattr" ? /xattrs A "([A-Z]+)"/.exec(d.message)?.[1] : undefined;
    if (d && listing !== undefined && REFUSALS.has(listing) && target.rules.xattrs !== false) {
      // the checkpoint's listxattr was refused: no xattrs at all here; stop comparing and making them
      target.rules = { ...target.rules, xattrs: false };
      for (const k of FAMILIES.xattrs.ops) if (!refused.has(k)) refused.set(k, { transport, kind: k, errno: listing, example: "llistxattr at a checkpoint", tmpfs: "[]" });
      log(`check: ${transport} seed ${seed}: listing xattrs refused (${listing}); leaving xattrs out and starting over`);
      await pair.cleanup();
      continue;
    }
    const ms = Date.now() - t0;
    out.runs.push({ transport, seed, ops: r.count, ms, difference: d !== undefined });
    log(`check: ${transport} seed ${seed}: ${r.count} ops (${r.checks} checkpoints) in ${(ms / 1000).toFixed(1)} s: ${d ? `DIFFERENCE (${d.sig}), shrinking` : "no difference"}`);
    if (d) out.differences.push(await shrunk(pair, target, seed, r.ops, r.count, d, r.failedOnB, o, log));
    await pair.cleanup().catch(() => {});
    return;
  }
}

async function shrunk(pair: Pair, target: Target, seed: number, ops: Op[], count: number, d: Difference, failedOnB: Set<number>, o: CheckOptions, log: (s: string) => void): Promise<CheckDifference> {
  let s: ShrinkResult | undefined;
  let file: string | undefined;
  try {
    if (d.sig !== "hang" && d.sig !== "executor") s = await shrink(pair, ops, d, target.rules, o.shrinkMs ?? 30_000, log, failedOnB);
    file = saveReplay(s?.ops ?? ops, { seed, sig: d.sig }, o.replayDir);
  } catch (e) {
    log(`check: shrinking failed: ${(e as Error).message}`);
  }
  const last = s ? s.trace[s.trace.length - 1] : undefined;
  return {
    transport: target.transport,
    seed,
    sig: s?.diff.sig ?? d.sig,
    op: describe(s ? s.ops[s.ops.length - 1]! : d.op),
    plugin: s ? last?.[0] : d.a,
    tmpfs: s ? last?.[1] : d.b,
    sequence: (s?.ops ?? ops.slice(0, d.index + 1)).map(describe),
    confirmed: s?.confirmed ?? false,
    report: report({ seed, ops: count, target, replayHint: (f) => `Replay: furing check ${o.plugin}${o.pluginArgs?.length ? " " + o.pluginArgs.join(" ") : ""} --transport ${target.transport} --replay ${f}` }, d, s, file),
    replayFile: file,
  };
}

/** The summary `furing check` prints after the reports. */
export function summarize(r: CheckResult, plugin: string): string {
  const lines: string[] = [];
  if (r.refusals.length) {
    lines.push(`Refused by design (left out of the runs, not counted as differences):`);
    const by = new Map<string, Refusal[]>();
    for (const x of r.refusals) by.set(`${x.kind} ${x.errno}`, [...(by.get(`${x.kind} ${x.errno}`) ?? []), x]);
    for (const [, xs] of by) lines.push(`  ${xs[0]!.kind.padEnd(12)} ${xs[0]!.errno.padEnd(11)} over ${xs.map((x) => x.transport).join(", ")}   e.g. ${xs[0]!.example} (tmpfs: ${xs[0]!.tmpfs})`);
  }
  const runs = r.runs.length;
  lines.push(`furing check ${plugin}: ${runs} run${runs === 1 ? "" : "s"}, ${r.ops} ops compared with tmpfs, ${r.differences.length} difference${r.differences.length === 1 ? "" : "s"}${r.refusals.length ? `, ${new Set(r.refusals.map((x) => x.kind)).size} op kinds refused` : ""}`);
  return lines.join("\n");
}
