/** The environment a run is recorded with (rule 4 of the benchmarking reference). */
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { run } from "./proc.ts";
import { ENABLE_URING, REPO } from "./mounts.ts";

export interface Environment {
  kernel: string;
  cpu_model: string;
  vcpus: number;
  cpus_online: string;
  mem_gib: number;
  enable_uring: string;
  bun: string;
  furing_commit: string;
  furing_dirty: boolean;
  fio: string;
  gcc: string;
  tar: string;
  git: string;
  clk_tck: number;
  /** FURING_* variables passed to the daemons (e.g. FURING_BUSY_POLL_US). */
  furing_env: Record<string, string>;
  loadavg_start: number[];
  /** Load average when the run started and ended: a busy machine makes every number noise. */
  loadavg_end?: number[];
  hostname: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "unavailable";
  }
}

async function out(cmd: string[], cwd?: string): Promise<string> {
  const r = await run(cmd, { timeoutMs: 10_000, ...(cwd ? { cwd } : {}) }).catch(() => undefined);
  return r && r.code === 0 ? (r.stdout || r.stderr).trim().split("\n")[0]! : "unavailable";
}

export function onlineCpus(): string {
  const s = read("/sys/devices/system/cpu/online");
  return s === "unavailable" ? `0-${cpus().length - 1}` : s;
}

/** CPU numbers in a list like "0-1,4". */
export function expandCpuList(list: string): number[] {
  const got: number[] = [];
  for (const part of list.split(",")) {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let i = a; i <= (b ?? a); i++) got.push(i);
  }
  return got;
}

export async function collectEnvironment(): Promise<Environment> {
  const model = /model name\s*:\s*(.*)/.exec(read("/proc/cpuinfo"))?.[1] ?? cpus()[0]?.model ?? "unknown";
  const [commit, dirty, fio, gcc, tar, git, tck] = await Promise.all([
    out(["git", "rev-parse", "HEAD"], REPO),
    run(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: REPO, timeoutMs: 10_000 }).then((r) => r.stdout.trim() !== "").catch(() => false),
    out(["fio", "--version"]),
    out(["gcc", "--version"]),
    out(["tar", "--version"]),
    out(["git", "--version"]),
    out(["getconf", "CLK_TCK"]),
  ]);
  const furingEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("FURING_") && v !== undefined) furingEnv[k] = v;
  return {
    kernel: release(),
    cpu_model: model.trim(),
    vcpus: cpus().length,
    cpus_online: onlineCpus(),
    mem_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    enable_uring: read(ENABLE_URING),
    bun: `${Bun.version} (${Bun.revision.slice(0, 9)})`,
    furing_commit: commit,
    furing_dirty: dirty,
    fio,
    gcc,
    tar,
    git,
    clk_tck: Number(tck) || 100,
    furing_env: furingEnv,
    loadavg_start: loadavg().map((x) => Math.round(x * 100) / 100),
    hostname: read("/proc/sys/kernel/hostname"),
  };
}
