/**
 * The filesystems under test and their baselines: a tmpfs, a native directory, and furing daemons
 * (`bun runtime/cli/main.ts mount ...` in child processes, optionally pinned with `taskset -c`).
 *
 * Every mount is registered the moment it exists and torn down in `closeAll()` (finally blocks)
 * or `cleanupSync()` (SIGINT/SIGTERM/exit): SIGTERM the daemon, `umount -l` whatever is still
 * mounted, SIGKILL. Nothing here touches a mounted path from the bench's own thread except
 * through child processes (or /proc).
 */
import type { Subprocess } from "bun";
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { check, run, sleep, clip } from "./proc.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const CLI = join(REPO, "runtime/cli/main.ts");
export const ENABLE_URING = "/sys/module/fuse/parameters/enable_uring";

export type Plugin = "memfs" | "passthrough";
export type Transport = "io_uring" | "classic";
/** base: tmpfs (memfs runs) or the native source directory (passthrough runs). */
export type Role = "base" | Transport;

// ------------------------------------------------------------------------------------------------
// /proc

export function mountsTable(): Array<{ dir: string; type: string }> {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const f = l.split(" ");
      return { dir: (f[1] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), type: f[2] ?? "" };
    });
}

export function mountedType(dir: string): string | undefined {
  const all = mountsTable();
  for (let i = all.length - 1; i >= 0; i--) if (all[i]!.dir === dir) return all[i]!.type;
  return undefined;
}

let clkTck = 100;
export function setClockTicks(n: number): void {
  if (n > 0) clkTck = n;
}

/** utime+stime of a process (all its threads, dead ones included), in microseconds; NaN if gone. */
export function cpuMicros(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // after the comm: field 3 (state) is f[0], so utime (14) is f[11] and stime (15) is f[12]
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clkTck;
  } catch {
    return NaN;
  }
}

/** Cpus_allowed_list of a process's main thread ("0-1", "0"). */
export function affinity(pid: number): string {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "?";
  } catch {
    return "?";
  }
}

/** Re-pins every thread of a running process (`taskset -a -p -c LIST PID`). */
export async function pin(pid: number, cpus: string): Promise<void> {
  await check(["taskset", "-a", "-p", "-c", cpus, String(pid)], { timeoutMs: 10_000 });
}

// ------------------------------------------------------------------------------------------------
// Targets

export interface Target {
  role: Role;
  /** Short name used in the output: tmpfs, native, io_uring, classic. */
  name: string;
  /** What it is, for people: "furing memfs (io_uring)". */
  label: string;
  /** Where workloads put their files (the mountpoint, or the native directory). */
  root: string;
  daemon?: Daemon;
  /** Mount configuration key (furing targets). */
  config?: string;
  /** The compared furing option set (--compare-opts) it runs with, by its label. */
  variant?: string;
}

export interface Daemon {
  key: string;
  plugin: Plugin;
  transport: Transport;
  options: string[];
  args: string[];
  dir: string;
  proc: Subprocess;
  /** The daemon's pid (from `furing status`). */
  pid: number;
  logFile: string;
  tmp: string;
  /** `furing status <dir> --json` right after it became ready. */
  status: Record<string, unknown>;
  /** The CPU list it was started with (taskset -c), or undefined. */
  startCpus?: string;
  alive(): boolean;
  log(): string;
}

export interface FuringSpec {
  plugin: Plugin;
  transport: Transport;
  /** `-o` options (besides io_uring=off for classic). */
  options: string[];
  /** Plugin arguments (--size, --source DIR). */
  args: string[];
  /** Start the daemon under `taskset -c` (undefined: not pinned). */
  cpus?: string;
}

export class Mounts {
  private daemons = new Map<string, Daemon>();
  private tmpfsDirs = new Set<string>();
  private seq = 0;
  /** Every daemon ever started (for the report), by key. */
  readonly history: Array<{ key: string; pid: number; transport: string; reason: string; passthrough: unknown; options: string[]; args: string[]; cpus?: string }> = [];

  constructor(readonly scratch: string) {}

  /** A tmpfs mounted at scratch/NAME (once per run). */
  async tmpfs(name: string, size: string): Promise<string> {
    const dir = join(this.scratch, name);
    if (this.tmpfsDirs.has(dir) && mountedType(dir) === "tmpfs") return dir;
    mkdirSync(dir, { recursive: true });
    this.tmpfsDirs.add(dir);
    await check(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0755`, `bench-${name}`, dir], { timeoutMs: 10_000 });
    return dir;
  }

  /** The running daemon for this spec, mounting it first if needed. */
  async furing(spec: FuringSpec, readyTimeoutMs = 30_000): Promise<Daemon> {
    const key = specKey(spec);
    const have = this.daemons.get(key);
    if (have && have.alive() && mountedType(have.dir)?.startsWith("fuse")) return have;
    if (have) await this.close(have);
    const n = ++this.seq;
    const dir = join(this.scratch, `mnt-${n}-${spec.plugin}-${spec.transport}`);
    const tmp = join(this.scratch, `daemon-${n}`);
    const logFile = join(this.scratch, `daemon-${n}.log`);
    mkdirSync(dir, { recursive: true });
    mkdirSync(tmp, { recursive: true });
    const options = [...spec.options, ...(spec.transport === "classic" ? ["io_uring=off"] : [])];
    const argv = [process.execPath, CLI, "mount", spec.plugin, dir, ...(options.length ? ["-o", options.join(",")] : []), "--no-watch", ...spec.args];
    const cmd = spec.cpus !== undefined ? ["taskset", "-c", spec.cpus, ...argv] : argv;
    const logFd = openSync(logFile, "a");
    let proc: Subprocess;
    try {
      proc = Bun.spawn(cmd, { cwd: REPO, env: { ...process.env, TMPDIR: tmp }, stdin: "ignore", stdout: logFd, stderr: logFd });
    } finally {
      closeSync(logFd);
    }
    const log = () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    };
    const d: Daemon = {
      key, plugin: spec.plugin, transport: spec.transport, options, args: spec.args, dir, proc, pid: proc.pid, logFile, tmp, status: {},
      startCpus: spec.cpus,
      alive: () => proc.exitCode === null && proc.signalCode === null,
      log,
    };
    this.daemons.set(key, d);
    try {
      const end = Date.now() + readyTimeoutMs;
      for (;;) {
        if (/furing: ready /.test(log()) && mountedType(dir)?.startsWith("fuse")) break;
        if (!d.alive()) throw new Error(`daemon exited (code ${proc.exitCode}, signal ${proc.signalCode}) before it was ready`);
        if (Date.now() > end) throw new Error(`daemon not ready after ${readyTimeoutMs} ms`);
        await sleep(25);
      }
      const st = await check([process.execPath, CLI, "status", dir, "--json"], { cwd: REPO, timeoutMs: 15_000 });
      d.status = JSON.parse(st.stdout) as Record<string, unknown>;
      if (typeof d.status.pid === "number") d.pid = d.status.pid;
      if (d.status.transport !== spec.transport)
        throw new Error(`asked for the ${spec.transport} transport but \`furing status\` reports ${String(d.status.transport)} (${String(d.status.transportReason)})`);
      this.history.push({
        key, pid: d.pid, transport: String(d.status.transport), reason: String(d.status.transportReason ?? ""), passthrough: d.status.passthrough,
        options, args: spec.args, ...(spec.cpus !== undefined ? { cpus: spec.cpus } : {}),
      });
    } catch (e) {
      const out = log();
      await this.close(d).catch(() => {});
      throw new Error(`mounting furing ${spec.plugin} (${spec.transport}, -o ${options.join(",") || "-"}): ${(e as Error).message}\n--- daemon output ---\n${clip(out, 4000)}`);
    }
    return d;
  }

  /** Daemons currently up. */
  live(): Daemon[] {
    return [...this.daemons.values()];
  }

  /** Tears one daemon's mount down: SIGTERM, `umount -l` if still mounted, SIGKILL; removes its dirs. */
  async close(d: Daemon): Promise<void> {
    const problems: string[] = [];
    if (d.alive()) {
      d.proc.kill("SIGTERM");
      await waitUntil(() => !d.alive(), 5000);
    }
    if (mountedType(d.dir) !== undefined) {
      const r = await run(["umount", "-l", d.dir], { timeoutMs: 10_000 });
      if (r.code !== 0 && mountedType(d.dir) !== undefined) problems.push(`umount -l ${d.dir}: ${r.stderr.trim()}`);
    }
    if (d.alive()) {
      if (!(await waitUntil(() => !d.alive(), 2000))) {
        d.proc.kill("SIGKILL");
        await waitUntil(() => !d.alive(), 5000);
      }
    }
    if (this.daemons.get(d.key) === d) this.daemons.delete(d.key);
    if (mountedType(d.dir) === undefined) {
      try {
        rmdirSync(d.dir);
      } catch {}
    } else problems.push(`${d.dir} is still mounted`);
    if (!d.alive()) rmSync(d.tmp, { recursive: true, force: true });
    if (problems.length) throw new Error(problems.join("; "));
  }

  /** Closes the daemons whose keys `keep` rejects. */
  async closeUnless(keep: (key: string) => boolean): Promise<void> {
    for (const d of [...this.daemons.values()]) if (!keep(d.key)) await this.close(d);
  }

  /** Everything down: daemons, tmpfs mounts. Throws (after trying all) if something stays mounted. */
  async closeAll(): Promise<void> {
    const errors: string[] = [];
    for (const d of [...this.daemons.values()]) await this.close(d).catch((e) => errors.push((e as Error).message));
    for (const dir of [...this.tmpfsDirs]) {
      if (mountedType(dir) !== undefined) {
        const r = await run(["umount", dir], { timeoutMs: 10_000 });
        if (r.code !== 0) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
      }
      if (mountedType(dir) === undefined) this.tmpfsDirs.delete(dir);
      else errors.push(`${dir} is still mounted`);
    }
    if (errors.length) throw new Error(errors.join("\n"));
  }

  /** Synchronous last resort (signal and exit handlers): detach everything, kill daemons. */
  cleanupSync(): void {
    for (const d of this.daemons.values()) {
      try {
        if (d.alive()) d.proc.kill("SIGTERM");
      } catch {}
    }
    for (const d of this.daemons.values()) {
      try {
        Bun.spawnSync(["umount", "-l", d.dir], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
      } catch {}
      try {
        d.proc.kill("SIGKILL");
      } catch {}
    }
    this.daemons.clear();
    for (const dir of this.tmpfsDirs) {
      try {
        Bun.spawnSync(["umount", "-l", dir], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
      } catch {}
    }
    this.tmpfsDirs.clear();
  }
}

export function specKey(s: FuringSpec): string {
  return `${s.plugin}|${s.transport}|${s.options.join(",")}|${s.args.join(" ")}|${s.cpus ?? ""}`;
}

async function waitUntil(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/** Nothing mounted at or under `dir`? (checked before removing a scratch directory) */
export function nothingMountedUnder(dir: string): boolean {
  return !mountsTable().some((m) => m.dir === dir || m.dir.startsWith(dir + "/"));
}

export function uringEnabled(): boolean {
  try {
    return readFileSync(ENABLE_URING, "utf8").trim() === "Y";
  } catch {
    return false;
  }
}
