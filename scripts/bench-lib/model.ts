/** The shapes shared by the workloads, the runner and the report. */
import type { Plugin, Role, Target } from "./mounts.ts";
import type { Tools } from "./tools.ts";

export type Better = "higher" | "lower";

export interface Metric {
  /** What is measured: "read bandwidth", "stat rate", "elapsed". */
  name: string;
  unit: string;
  /** higher: a rate (ratio = furing/baseline); lower: a time (ratio = baseline/furing). */
  better: Better;
}

/** One timed run on one target. */
export interface Sample {
  value: number;
  /** Operations done (fio I/Os, stats, creates, tar entries): divides the server CPU. */
  ops: number;
  p50_us?: number;
  p99_us?: number;
}

export interface Profile {
  name: "quick" | "full" | "smoke";
  rounds: number;
  /** Discarded warm-up rounds per target (JIT, caches). */
  warmup: number;
  /** Warm up before every case, or only before a target's first case in each workload. */
  warmupEach: "case" | "workload";
  /** fio runtime per time-based round, seconds. */
  fioSeconds: number;
  /** Data file size for D-workloads, MiB. */
  fileMiB: number;
  m1Ops: number;
  /** Stop an M1 loop after this many seconds even if m1Ops are not done (0: never). */
  m1Seconds: number;
  /** M2 cold/warm tree: dirs × files (furing defaults). */
  m2: [number, number];
  /** M2 distinct-file stat with zero timeouts: dirs × files. */
  m2zero: [number, number];
  m3Files: number;
  m4Files: number;
  readdirFiles: number;
  readdirPasses: number;
  /** Directory tarred for X1/X2. */
  tarSource: string;
  /** U1: files of the single-caller create / stat / open / unlink loop. */
  uFiles: number;
  /** U2: directory tarred for the single-caller untar. */
  uTarSource: string;
  /** U3: how many callers at once (the first is the 1-caller reference), files per caller, tarred dir. */
  parCallers: number[];
  parFiles: number;
  parTarSource: string;
  workloadTimeoutS: number;
  /** Time limit of any one command (a client stuck on a hung daemon fails the case, not the run). */
  commandTimeoutS: number;
  memfsSize: string;
  tmpfsSize: string;
}

/** What the workload definitions build their cases from. */
export interface BenchEnv {
  profile: Profile;
  tools: Tools;
  /** CPU of the pinned client in single-threaded cases (taskset -c). */
  clientCpu: string;
  /** M1 placements: the CPU the daemon is pinned to ("same" client CPU), and the other one. */
  daemonCpu: string;
  otherCpu: string;
  /** All online CPUs ("0-1"): the unpinned placement. */
  allCpus: string;
  /** CPU every daemon is pinned to at start (--daemon-cpu), or undefined. */
  daemonStartCpu?: string;
}

/** A mount configuration of the furing targets (timeouts, caches, kernel passthrough). */
export interface Config {
  key: string;
  options: string[];
  /** How caches are set, for the output. */
  caches: string;
}

/** What a case's hooks get for one target. */
export interface Ctx {
  target: Target;
  /** This case's private directory on the target (created before setup). */
  dir: string;
  /** The workload's directory on the target (shared by its cases; removed after the workload). */
  work: string;
  round: number;
  /** The client's CPUs for this case (undefined: not pinned). */
  client: string | undefined;
}

export interface RatioDef {
  a: Role;
  b: Role;
  /** Issue 8's or 14's target for this ratio (pass when ratio ≥ target). */
  target?: number;
  /** Where the target comes from / what it means. */
  note?: string;
}

export interface CaseDef {
  /** "D3.seq128k" */
  id: string;
  title: string;
  config: string;
  roles: Role[];
  metric: Metric;
  /** Client placement: a CPU list for taskset -c, or undefined (not pinned). */
  client: string | undefined;
  /** Re-pin the furing daemons to these CPUs for this case (undefined: as started). */
  daemonCpus?: string;
  /** Placement label for the output ("client CPU 1, daemon unpinned"). */
  placement?: string;
  setup?(c: Ctx): Promise<void>;
  before?(c: Ctx): Promise<void>;
  run(c: Ctx): Promise<Sample>;
  after?(c: Ctx): Promise<void>;
  ratios: RatioDef[];
}

/** A ratio across cases (M1: caller on the other CPU vs on the daemon's CPU). */
export interface CrossRatioDef {
  name: string;
  a: { case: string; role: Role };
  b: { case: string; role: Role };
  target?: number;
  note?: string;
}

/** U: callers as users run them (unpinned, parallel; issue 14), then the reference's groups. */
export type Group = "U" | "D" | "M" | "X" | "P";

export interface WorkloadDef {
  id: string;
  title: string;
  group: Group;
  /** fixed: always this plugin (P1, P2); undefined: the run's plugin (memfs by default). */
  plugin?: Plugin;
  /** Tools it needs besides the furing daemon. */
  needs: string[];
  cases(b: BenchEnv, plugin: Plugin): CaseDef[];
  /** Ratios across its cases (a list, or one built from the profile). */
  cross?: CrossRatioDef[] | ((b: BenchEnv) => CrossRatioDef[]);
}

// ------------------------------------------------------------------------------------------------
// Results (the JSON file)

export interface RoundRecord {
  value: number;
  ops: number;
  /** Wall time of the timed command, ms (process start and exit included). */
  wall_ms: number;
  p50_us?: number;
  p99_us?: number;
  /** Daemon utime+stime during the run, µs (furing targets). */
  cpu_us?: number;
  /** Requests the daemon received during the run, by transport (furing targets). */
  requests?: { io_uring: number; classic: number };
}

export interface TargetResult {
  name: string;
  label: string;
  role: Role;
  rounds: RoundRecord[];
  median: number;
  p99_us?: number;
  /** Σ daemon CPU / Σ ops over the measured rounds, µs per operation. */
  cpu_us_per_op?: number;
  /** Σ requests / Σ ops, and the per-op breakdown from `furing status` counters. */
  requests_per_op?: number;
  ops_per_op?: Record<string, number>;
  /** The compared furing option set (--compare-opts) this target ran with. */
  variant?: string;
  daemon?: { pid: number; transport: string; affinity: string; mount_options: string[]; passthrough?: string };
}

export interface RatioResult {
  workload: string;
  case: string;
  name: string;
  a: string;
  b: string;
  value: number;
  target?: number;
  pass?: boolean;
  note?: string;
  /** config: one furing option set against the other (--compare-opts), same role. */
  kind: "baseline" | "transport" | "placement" | "config";
}

export interface CaseResult {
  id: string;
  title: string;
  config: string;
  caches: string;
  placement: string;
  metric: Metric;
  targets: TargetResult[];
  ratios: RatioResult[];
  /** Wall time of the case: mounts, setup, all rounds with their before/after steps. */
  duration_s: number;
  error?: string;
}

export interface WorkloadResult {
  id: string;
  title: string;
  group: Group;
  plugin: Plugin;
  status: "ok" | "error" | "skipped";
  error?: string;
  duration_s: number;
  cases: CaseResult[];
  ratios: RatioResult[];
}
