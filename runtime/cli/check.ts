/**
 * `furing check <plugin> [options] [plugin options]`: serve the plugin from a daemon in a child
 * process and compare it with a fresh tmpfs under seeded random ops (runtime/check/), reporting
 * each difference as the shortest sequence that shows it, with both sides' answers.
 */
import { UsageError } from "../mount/options.ts";
import { CheckError, checkPlugin, FAMILIES, FAMILY_NAMES, summarize, type Family } from "../check/check.ts";
import { cleanupAll, type Transport } from "../testing/mount.ts";

export const CHECK_USAGE = "  furing check <plugin> [--transport T] [--seed S,...] [--ops N] [--only F,...] [--skip F,...] [plugin options]";

const HELP = `Usage:
${CHECK_USAGE}

Mounts <plugin> (memfs, passthrough, a plugin directory or a .ts/.js file) in a child daemon,
runs the same seeded random file operations on it and on a fresh tmpfs, and compares every
answer, errno, name, mode, link count, size, content, xattr and time. Each difference is shrunk
to the shortest op sequence that shows it and printed with what the plugin (A) and tmpfs (B)
answered. Ops the plugin refuses by design (EROFS, EOPNOTSUPP, ENOSYS) are left out and listed
once. Exit status: 0 when no difference was found, 1 when one was (or nothing could be checked),
2 for a usage error. Runs as root (it mounts a tmpfs and acts as other users).

  --transport io_uring|classic|both   transports to check (default both)
  --seed S[,S...]      seeds (default 1,2,3); the same seed makes the same ops
  --seeds N            N random seeds instead
  --ops N              ops per seed (default 2000)
  --only F[,F...]      only these families (tree is always on)
  --skip F[,F...]      leave these families out
  --writers N          concurrency family: writer processes (default 4, at most 4)
  --writer-ops N       concurrency family: private ops per writer (default 500)
  --shrink-seconds S   time to shrink each difference (default 30)
  --ref-size SIZE      the tmpfs's size= (default 2g)
  --ref-inodes N       the tmpfs's nr_inodes= (default 100000)
  --replay-dir DIR     where replay files of differences go (default: the temp dir)
  --replay FILE        run the ops of a replay file once (on each transport) instead of seeds
  --json               print the result as one JSON object on stdout
  -q, --quiet          no progress lines
  -h, --help           this help

Other --name [value] options, and everything after --, go to the plugin.

Families (default: all but space):
${FAMILY_NAMES.map((f) => `  ${f.padEnd(12)} ${FAMILIES[f].help}`).join("\n")}`;

const VALUED = ["--transport", "--seed", "--seeds", "--ops", "--only", "--skip", "--writers", "--writer-ops", "--shrink-seconds", "--ref-size", "--ref-inodes", "--replay-dir", "--replay"];

function count(name: string, v: string, min = 0): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min) throw new UsageError(`${name} wants ${min > 0 ? "a positive" : "a non-negative"} integer, not '${v}'`);
  return n;
}

function families(name: string, v: string): Family[] {
  const out: Family[] = [];
  for (const f of v.split(",")) {
    if (!(FAMILY_NAMES as string[]).includes(f)) throw new UsageError(`${name}: unknown family '${f}' (families: ${FAMILY_NAMES.join(", ")})`);
    out.push(f as Family);
  }
  return out;
}

export async function checkCommand(argv: string[]): Promise<number> {
  const opt = new Map<string, string>();
  const pluginArgs: string[] = [];
  const positional: string[] = [];
  let json = false, quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-h" || a === "--help") {
      console.log(HELP);
      return 0;
    }
    if (a === "--") {
      pluginArgs.push(...argv.slice(i + 1));
      break;
    }
    const eq = a.indexOf("=");
    const key = eq > 0 ? a.slice(0, eq) : a;
    if (VALUED.includes(key)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === "") throw new UsageError(`${key} needs a value (see furing check --help)`);
      opt.set(key, v);
    } else if (a === "--json") json = true;
    else if (a === "-q" || a === "--quiet") quiet = true;
    else if (a.startsWith("--")) {
      // the plugin's option; the daemon checks it against the plugin's declared options
      pluginArgs.push(a);
      if (eq < 0 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("-")) pluginArgs.push(argv[++i]!);
    } else if (a.startsWith("-")) throw new UsageError(`check: unknown flag '${a}' (see furing check --help)`);
    else positional.push(a);
  }
  if (positional.length !== 1) throw new UsageError(`check needs one <plugin>${positional.length > 1 ? ` (got ${positional.join(" ")})` : ""}\n\n${HELP}`);
  const plugin = positional[0]!;
  const tr = opt.get("--transport") ?? "both";
  if (!["io_uring", "classic", "both"].includes(tr)) throw new UsageError(`--transport is io_uring, classic or both, not '${tr}'`);
  const transports: Transport[] = tr === "both" ? ["io_uring", "classic"] : [tr as Transport];
  let seeds = [1, 2, 3];
  const seedList = opt.get("--seed");
  if (seedList !== undefined) seeds = seedList.split(",").map((s) => count("--seed", s));
  if (opt.has("--seeds")) {
    if (seedList !== undefined) throw new UsageError("--seed and --seeds exclude each other");
    const first = (Date.now() % 1_000_000) * 10;
    seeds = Array.from({ length: count("--seeds", opt.get("--seeds")!, 1) }, (_, i) => first + i);
  }
  let fams: Family[] = FAMILY_NAMES.filter((f) => f !== "space");
  if (opt.has("--only")) fams = families("--only", opt.get("--only")!);
  if (opt.has("--skip")) {
    const skip = families("--skip", opt.get("--skip")!);
    if (skip.includes("tree")) throw new UsageError("--skip: the tree family is always on (every run creates files and directories)");
    fams = fams.filter((f) => !skip.includes(f));
  }
  const refSize = opt.get("--ref-size");
  if (refSize !== undefined && !/^\d+[kmgKMG%]?$/.test(refSize)) throw new UsageError(`--ref-size wants a tmpfs size such as 512m or 2g, not '${refSize}'`);
  if (process.getuid?.() !== 0) throw new UsageError("check runs as root: it mounts the reference tmpfs and makes ops as other users");

  const log = quiet ? () => {} : (s: string) => console.error(s);
  let result;
  try {
    result = await checkPlugin({
      plugin, pluginArgs, transports, seeds, families: fams,
      ops: opt.has("--ops") ? count("--ops", opt.get("--ops")!, 1) : 2000,
      writers: opt.has("--writers") ? count("--writers", opt.get("--writers")!, 1) : undefined,
      writerOps: opt.has("--writer-ops") ? count("--writer-ops", opt.get("--writer-ops")!, 1) : undefined,
      shrinkMs: (opt.has("--shrink-seconds") ? count("--shrink-seconds", opt.get("--shrink-seconds")!) : 30) * 1000,
      refSize, refInodes: opt.has("--ref-inodes") ? count("--ref-inodes", opt.get("--ref-inodes")!, 1) : undefined,
      replayDir: opt.get("--replay-dir"),
      replay: opt.get("--replay"),
      log,
    });
  } catch (e) {
    await cleanupAll().catch(() => {});
    if (e instanceof CheckError) {
      // the daemon refused the plugin's options: a usage error, named by the daemon's own line
      const bad = /(unknown option '--[^']*'|option '--[^']*' needs [^.\n]*|unexpected argument '[^']*'|needs --\S+ \([^)]*\))/.exec(e.message);
      if (bad) throw new UsageError(`check: plugin ${plugin}: ${bad[1]}`);
      console.error(`furing check: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (json) console.log(JSON.stringify(result));
  else {
    for (const d of result.differences) console.log(`\n${d.report}\n`);
    console.log(summarize(result, plugin));
  }
  return result.ok ? 0 : 1;
}
