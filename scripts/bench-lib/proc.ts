/**
 * Child processes for the benchmark: every tool that touches a mount runs in a child (the bench's
 * own thread never blocks in a syscall on a FUSE mount), with a time limit, optionally pinned to
 * CPUs with `taskset -c`. Running children are tracked so a timeout or Ctrl-C can kill them all.
 */
import type { Subprocess } from "bun";

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Kill the command after this many milliseconds (default 120 s). */
  timeoutMs?: number;
  /** Pin the command to these CPUs (`taskset -c LIST`); undefined: not pinned. */
  cpus?: string;
}

export interface RunResult {
  cmd: string[];
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Wall time from spawn to exit, milliseconds. */
  ms: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

const running = new Set<Subprocess>();

/** Runs a command to completion (never throws for a failing command; see {@link check}). */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = opts.cpus !== undefined ? ["taskset", "-c", opts.cpus, ...cmd] : cmd;
  const t0 = performance.now();
  const proc = Bun.spawn(full, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs ?? 120_000);
  try {
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const ms = performance.now() - t0;
    return { cmd: full, code: proc.exitCode, signal: proc.signalCode === null ? null : String(proc.signalCode), stdout, stderr, timedOut, ms };
  } finally {
    clearTimeout(timer);
    running.delete(proc);
  }
}

/** Runs a command and throws a {@link CommandError} unless it exits 0. */
export async function check(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, opts);
  if (r.code !== 0 || r.timedOut) throw new CommandError(describe(r), r);
  return r;
}

/** `sh -c SCRIPT`, checked. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return check(["sh", "-c", script], opts);
}

export function describe(r: RunResult): string {
  const status = r.timedOut ? "timed out (killed)" : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const out = [r.stderr.trim() && `stderr: ${clip(r.stderr.trim())}`, r.stdout.trim() && `stdout: ${clip(r.stdout.trim())}`].filter(Boolean).join("\n");
  return `\`${r.cmd.join(" ")}\`: ${status}${out ? `\n${out}` : ""}`;
}

export function clip(s: string, max = 1500): string {
  return s.length <= max ? s : `${s.slice(0, max / 2)}\n[... ${s.length - max} bytes ...]\n${s.slice(-max / 2)}`;
}

/** Kills every running child (SIGKILL): a timed-out workload or an interrupted run. */
export function killAllChildren(): number {
  let n = 0;
  for (const p of running) {
    try {
      p.kill("SIGKILL");
      n++;
    } catch {}
  }
  return n;
}

/** Quotes a word for sh. */
export function q(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sleep(ms: number): Promise<void> {
  return Bun.sleep(ms);
}
