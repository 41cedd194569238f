/**
 * scripts/bench: furing's side-by-side benchmark suite (issue 8, ../shared/reference/benchmarking.md).
 * See docs/benchmarks.md. Exit status: 0 when every selected workload ran, 1 when one errored,
 * 2 for a usage or preflight problem, 130 when interrupted.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { collectEnvironment, expandCpuList, onlineCpus, type Environment } from "./env.ts";
import type { BenchEnv, Profile, WorkloadResult } from "./model.ts";
import { Mounts, mountsTable, nothingMountedUnder, REPO, setClockTicks, uringEnabled, type Plugin } from "./mounts.ts";
import { parseMountOptions } from "../../runtime/mount/options.ts";
import { killAllChildren, run } from "./proc.ts";
import { markdown, groupScores } from "./report.ts";
import { Runner, type Variant } from "./runner.ts";
import { Tools } from "./tools.ts";
import { CONFIGS, WORKLOADS, WORKLOAD_IDS } from "./workloads.ts";

const USAGE = `Usage: scripts/bench [--quick|--full|--smoke] [--only IDS] [--plugin memfs|passthrough] [options]

Runs the workloads of the benchmarking reference side by side with their baselines (memfs vs tmpfs,
passthrough vs its native source directory, io_uring vs classic /dev/fuse) in alternating rounds,
and prints a markdown table of median ratios (higher is better) with issue 8's and 14's targets;
the full results go to a JSON file. U1-U3 come first: callers as users run them (unpinned, then 1,
2 and 4 at once; pinned rows after). Needs root (tmpfs, drop_caches, kernel passthrough), fio
(scripts/setup --bench), gcc, tar, git.

  --quick            short rounds, small files, 3 rounds (default; a few minutes; what CI runs)
  --full             the reference's sizes, 5 rounds
  --smoke            the smallest variant of quick: 1 round, no warm-up, tiny sizes
  --only D1,M1,...   run only these workloads (${WORKLOAD_IDS.join(" ")})
  --plugin NAME      memfs: D, M, X vs tmpfs; passthrough: P1, P2 (and any D/M/X named in
                     --only, then against the native directory). Default: D, M, X on memfs and P1, P2.
  --rounds N         measured rounds per target (overrides the profile)
  --client-cpu N     CPU of the pinned client (default 1)
  --daemon-cpu N     pin every daemon to CPU N when it starts (default: unpinned; M1 always pins)
  --native-dir DIR   where passthrough's source directory is created (default: the scratch dir, under $TMPDIR)
  --furing-opts OPTS add -o OPTS (comma-separated) to every furing daemon, after the case's own
                     options (also BENCH_FURING_OPTS=OPTS); e.g. --furing-opts reactors=2
  --compare-opts A B run every furing target twice, with -o A and with -o B, side by side in the
                     same rounds; each gets its own ratios, plus B / A ("" = no extra options),
                     e.g. --only U1,U2,U3 --compare-opts follow_cpu no_follow_cpu
  --out FILE         JSON results (default: $TMPDIR/furing-bench-<time>.json)
  --markdown FILE    also write the markdown table to FILE
  --skip-missing     skip (do not fail) workloads whose tools are not installed
  --list             list the workloads and exit
  -h, --help         this help`;

const PROFILES: Record<Profile["name"], Profile> = {
  full: {
    name: "full", rounds: 5, warmup: 1, warmupEach: "case", fioSeconds: 3, fileMiB: 1024, m1Ops: 100_000, m1Seconds: 0, m2: [100, 100], m2zero: [100, 200], m3Files: 20_000,
    m4Files: 20_000, readdirFiles: 10_000, readdirPasses: 20, tarSource: "/usr/include", workloadTimeoutS: 1800, commandTimeoutS: 300, memfsSize: "8G", tmpfsSize: "8G",
    uFiles: 5000, uTarSource: "/usr/include", parCallers: [1, 2, 4], parFiles: 2000, parTarSource: "/usr/include/linux",
  },
  quick: {
    name: "quick", rounds: 3, warmup: 1, warmupEach: "workload", fioSeconds: 0.15, fileMiB: 32, m1Ops: 20_000, m1Seconds: 0.25, m2: [20, 100], m2zero: [20, 100],
    m3Files: 1000, m4Files: 1000, readdirFiles: 1000, readdirPasses: 5, tarSource: "/usr/include/linux", workloadTimeoutS: 120, commandTimeoutS: 15,
    memfsSize: "2G", tmpfsSize: "2G", uFiles: 1000, uTarSource: "/usr/include/linux", parCallers: [1, 2, 4], parFiles: 300, parTarSource: "/usr/include/linux",
  },
  smoke: {
    name: "smoke", rounds: 1, warmup: 0, warmupEach: "workload", fioSeconds: 0.1, fileMiB: 8, m1Ops: 1000, m1Seconds: 0.3, m2: [4, 50], m2zero: [4, 50], m3Files: 200,
    m4Files: 200, readdirFiles: 200, readdirPasses: 2, tarSource: "/usr/include/linux/netfilter", workloadTimeoutS: 60, commandTimeoutS: 15, memfsSize: "1G", tmpfsSize: "1G",
    uFiles: 100, uTarSource: "/usr/include/linux/netfilter", parCallers: [1, 2, 4], parFiles: 50, parTarSource: "/usr/include/linux/netfilter",
  },
};

class Usage extends Error {}

interface Args {
  profile: Profile;
  only?: string[];
  plugin?: Plugin;
  clientCpu: string;
  daemonCpu?: string;
  nativeDir?: string;
  furingOpts: string[];
  variants?: Variant[];
  out?: string;
  markdown?: string;
  skipMissing: boolean;
  list: boolean;
}

function parseArgs(argv: string[]): Args {
  let profile: Profile = { ...PROFILES.quick };
  let rounds: number | undefined;
  const a: Args = { profile, clientCpu: "1", skipMissing: false, list: false, furingOpts: optionList(process.env.BENCH_FURING_OPTS ?? "", "BENCH_FURING_OPTS") };
  const value = (i: number, flag: string) => {
    const v = argv[i];
    if (v === undefined || v.startsWith("--")) throw new Usage(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const take = () => inline ?? value(++i, flag);
    switch (flag) {
      case "--quick": case "--full": case "--smoke":
        profile = { ...PROFILES[flag.slice(2) as Profile["name"]] };
        break;
      case "--only":
        a.only = take().split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
        for (const id of a.only) if (!WORKLOAD_IDS.includes(id)) throw new Usage(`unknown workload ${id} (valid: ${WORKLOAD_IDS.join(", ")})`);
        break;
      case "--plugin": {
        const p = take();
        if (p !== "memfs" && p !== "passthrough") throw new Usage(`--plugin takes memfs or passthrough (got ${p})`);
        a.plugin = p;
        break;
      }
      case "--rounds": {
        const n = Number(take());
        if (!Number.isInteger(n) || n < 1 || n > 100) throw new Usage("--rounds needs an integer 1..100");
        rounds = n;
        break;
      }
      case "--client-cpu": a.clientCpu = cpuArg(take(), flag); break;
      case "--daemon-cpu": a.daemonCpu = cpuArg(take(), flag); break;
      case "--native-dir": a.nativeDir = resolve(take()); break;
      case "--furing-opts": a.furingOpts = optionList(take(), flag); break;
      case "--compare-opts": {
        if (inline !== undefined) throw new Usage("--compare-opts takes two values: --compare-opts A B");
        const [x, y] = [argv[++i], argv[++i]];
        if (x === undefined || y === undefined || x.startsWith("--") || y.startsWith("--")) throw new Usage('--compare-opts needs two option lists, e.g. --compare-opts reactors=0 reactors=2 ("" for none)');
        if (optionList(x, flag).join(",") === optionList(y, flag).join(",")) throw new Usage(`--compare-opts: both sides are the same options (${x || '""'})`);
        a.variants = [x, y].map((v) => ({ label: optionList(v, flag).join(",") || "no -o", options: optionList(v, flag) }));
        break;
      }
      case "--out": a.out = resolve(take()); break;
      case "--markdown": a.markdown = resolve(take()); break;
      case "--skip-missing": a.skipMissing = true; break;
      case "--list": a.list = true; break;
      case "-h": case "--help": throw new Usage("");
      default: throw new Usage(`unknown argument ${arg}`);
    }
  }
  if (rounds !== undefined) profile.rounds = rounds;
  a.profile = profile;
  return a;
}

/** A comma-separated `-o` list ("a=1,b"), checked with the daemon's own parser: a bad option fails the run before anything mounts. */
function optionList(v: string, flag: string): string[] {
  const opts = v.split(",").map((o) => o.trim()).filter(Boolean);
  try {
    parseMountOptions([opts.join(",")]);
  } catch (e) {
    throw new Usage(`${flag}: ${(e as Error).message.split("\n")[0]!.replace(/\. Valid options:$/, "")}`);
  }
  return opts;
}

function cpuArg(v: string, flag: string): string {
  const online = expandCpuList(onlineCpus());
  const n = Number(v);
  if (!Number.isInteger(n) || !online.includes(n)) throw new Usage(`${flag} needs an online CPU number (${onlineCpus()})`);
  return String(n);
}

function log(line: string): void {
  console.error(line);
}

/** Which workloads run, and on which plugin. */
function selection(a: Args): Array<{ id: string; plugin: Plugin }> {
  const ids = a.only ?? WORKLOAD_IDS;
  const out: Array<{ id: string; plugin: Plugin }> = [];
  for (const id of ids) {
    const w = WORKLOADS.find((x) => x.id === id)!;
    if (w.plugin) {
      if (a.plugin === "memfs" && !a.only) continue; // P-workloads are passthrough's
      out.push({ id, plugin: w.plugin });
    } else {
      if (a.plugin === "passthrough" && !a.only) continue; // D/M/X on passthrough only when named
      out.push({ id, plugin: a.plugin ?? "memfs" });
    }
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof Usage) {
      if (e.message) console.error(`bench: ${e.message}\n`);
      console.error(USAGE);
      return e.message ? 2 : 0;
    }
    throw e;
  }
  if (args.list) {
    for (const w of WORKLOADS) console.log(`${w.id}  ${w.title}${w.plugin ? ` [${w.plugin}]` : ""}`);
    return 0;
  }
  const t0 = performance.now();
  const p = args.profile;

  // ---- preflight
  if (process.getuid?.() !== 0) {
    console.error("bench: needs root (tmpfs mounts, drop_caches, kernel passthrough, FUSE over io_uring)");
    return 2;
  }
  if (!uringEnabled()) {
    console.error("bench: FUSE over io_uring is off (/sys/module/fuse/parameters/enable_uring is not Y); run scripts/setup as root");
    return 2;
  }
  const have = new Map<string, boolean>();
  for (const tool of ["fio", "gcc", "tar", "git", "find", "taskset"]) have.set(tool, Bun.which(tool) !== null);
  if (!have.get("taskset")) {
    console.error("bench: taskset (util-linux) is missing");
    return 2;
  }
  const online = expandCpuList(onlineCpus());
  const daemonCpu = String(online[0] ?? 0);
  const otherCpu = String(online.find((c) => String(c) !== daemonCpu) ?? daemonCpu);

  const env: Environment = await collectEnvironment();
  setClockTicks(env.clk_tck);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").replace(/Z$/, "");
  const jsonPath = args.out ?? join(tmpdir(), `furing-bench-${stamp}.json`);
  const scratch = mkdtempSync(join(tmpdir(), "furing-bench-"));
  const nativeDir = args.nativeDir ? mkdtempSync(join(args.nativeDir, "furing-bench-native-")) : join(scratch, "native");
  mkdirSync(nativeDir, { recursive: true });
  const nativeFs = await run(["stat", "-f", "-c", "%T", nativeDir], { timeoutMs: 5000 }).then((r) => r.stdout.trim() || "?");
  const mounts = new Mounts(scratch);
  const tools = new Tools(scratch, REPO);
  const b: BenchEnv = { profile: p, tools, clientCpu: args.clientCpu, daemonCpu, otherCpu, allCpus: onlineCpus(), ...(args.daemonCpu !== undefined ? { daemonStartCpu: args.daemonCpu } : {}) };
  const runner = new Runner(mounts, b, {
    nativeDir, nativeFs, furingOpts: args.furingOpts, log,
    ...(args.daemonCpu !== undefined ? { daemonCpu: args.daemonCpu } : {}), ...(args.variants ? { variants: args.variants } : {}),
  });
  const results: WorkloadResult[] = [];

  const document = (interrupted: boolean) => {
    env.loadavg_end = loadavg().map((x) => Math.round(x * 100) / 100);
    return {
      schema: "furing-bench/1",
      profile: p.name,
      interrupted,
      started: new Date(Date.now() - (performance.now() - t0)).toISOString(),
      duration_s: Math.round((performance.now() - t0) / 100) / 10,
      argv,
      environment: env,
      settings: {
        ...p,
        client_cpu: args.clientCpu,
        daemon_cpu: args.daemonCpu ?? "unpinned (M1: pinned per placement with taskset -a -p)",
        m1_placements: { daemon: daemonCpu, same: daemonCpu, other: otherCpu, unpinned: onlineCpus() },
        native_dir: nativeDir,
        native_fs: nativeFs,
        furing_opts: args.furingOpts,
        compare_opts: args.variants ?? null,
        ratio: "median(furing)/median(baseline) for rates, median(baseline)/median(furing) for times; groups: geometric mean",
      },
      configs: CONFIGS,
      daemons: mounts.history,
      workloads: results,
      groups: groupScores(results),
      targets: (() => {
        const all = results.flatMap((w) => w.ratios).filter((r) => r.target !== undefined);
        return { met: all.filter((r) => r.pass).length, missed: all.filter((r) => !r.pass).map((r) => ({ case: r.case, name: r.name, value: r.value, target: r.target })) };
      })(),
    };
  };

  // ---- cleanup on any exit
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    killAllChildren();
    mounts.cleanupSync();
    if (nothingMountedUnder(scratch)) Bun.spawnSync(["rm", "-rf", "--one-file-system", scratch], { stdout: "ignore", stderr: "ignore", timeout: 60_000 });
    if (args.nativeDir && nothingMountedUnder(nativeDir)) Bun.spawnSync(["rm", "-rf", "--one-file-system", nativeDir], { stdout: "ignore", stderr: "ignore", timeout: 60_000 });
    cleaned = true;
  };
  process.on("exit", cleanupSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(sig, () => {
      log(`bench: ${sig}: stopping, unmounting everything`);
      try {
        writeFileSync(jsonPath, JSON.stringify(document(true), null, 2));
        log(`bench: partial results in ${jsonPath}`);
      } catch {}
      cleanupSync();
      process.exit(sig === "SIGINT" ? 130 : sig === "SIGTERM" ? 143 : 129);
    });

  const chosen = selection(args);
  log(`bench: ${p.name} profile, ${p.rounds} rounds (+${p.warmup} warm-up), workloads ${chosen.map((c) => c.id).join(" ")}; scratch ${scratch}`);
  if (args.furingOpts.length) log(`bench: every furing daemon also gets -o ${args.furingOpts.join(",")}`);
  if (args.variants) log(`bench: comparing furing with -o ${args.variants[0]!.label} (A) and -o ${args.variants[1]!.label} (B)`);
  log(`bench: load average ${env.loadavg_start.join(" ")}${env.loadavg_start[0]! > 0.5 ? " (the machine is busy: absolute numbers and ratios are noisy)" : ""}`);
  let failed = false;
  try {
    if (have.get("gcc")) await tools.compile();
    for (let i = 0; i < chosen.length; i++) {
      const { id, plugin } = chosen[i]!;
      const w = WORKLOADS.find((x) => x.id === id)!;
      const missing = w.needs.filter((t) => !have.get(t));
      if (missing.length) {
        const msg = `needs ${missing.join(", ")}${missing.includes("fio") ? " (scripts/setup --bench)" : ""}`;
        results.push({ id, title: w.title, group: w.group, plugin, status: args.skipMissing ? "skipped" : "error", error: msg, duration_s: 0, cases: [], ratios: [] });
        log(`${id}: ${args.skipMissing ? "skipped" : "ERROR"}: ${msg}`);
        if (!args.skipMissing) failed = true;
        continue;
      }
      for (const key of w.group === "X" ? (["tarSource"] as const) : w.group === "U" ? (["uTarSource", "parTarSource"] as const) : [])
        if (!existsSync(p[key])) {
          log(`bench: ${p[key]} does not exist; ${w.id} uses a tar of ${join(REPO, "runtime")} instead`);
          p[key] = join(REPO, "runtime");
        }
      log(`${id} (${plugin}): ${w.title}`);
      const res = await runner.runWorkload(w, plugin);
      results.push(res);
      if (res.status === "error") failed = true;
      log(`${id}: ${res.status} in ${res.duration_s} s`);
      // Close the daemons no later workload uses (frees their memory, keeps idle reactors out of the way).
      const later = new Set(chosen.slice(i + 1).flatMap((c) => runner.daemonsOf(WORKLOADS.find((x) => x.id === c.id)!, c.plugin)));
      await mounts.closeUnless((key) => {
        const [plug, , opts] = key.split("|");
        return later.has(`${plug}|${opts}`);
      }).catch((e) => log(`bench: closing daemons: ${(e as Error).message}`));
    }
  } catch (e) {
    failed = true;
    log(`bench: ${(e as Error).stack ?? e}`);
    results.push({ id: "run", title: "the run itself", group: "D", plugin: args.plugin ?? "memfs", status: "error", error: String((e as Error).message ?? e), duration_s: 0, cases: [], ratios: [] });
  } finally {
    await mounts.closeAll().catch((e) => {
      failed = true;
      log(`bench: unmounting: ${(e as Error).message}`);
    });
  }
  const doc = document(false);
  mkdirSync(join(jsonPath, ".."), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + "\n");
  const md = markdown(env, { profile: p.name, rounds: p.rounds, warmup: p.warmup, plugin: args.plugin ?? "memfs+passthrough", json: jsonPath, duration_s: doc.duration_s, furingOpts: args.furingOpts, variants: args.variants ?? [], configs: Object.values(CONFIGS).filter((c) => results.some((w) => w.cases.some((x) => x.config === c.key))), daemons: mounts.history }, results);
  console.log(md);
  if (args.markdown) writeFileSync(args.markdown, md + "\n");
  log(`bench: results in ${jsonPath}`);
  cleanupSync();
  const leaked = mountsTable().filter((m) => m.dir.startsWith(scratch + "/") || m.dir === scratch);
  if (leaked.length) {
    log(`bench: mounts left behind: ${leaked.map((m) => m.dir).join(", ")}`);
    failed = true;
  }
  return failed ? 1 : 0;
}
