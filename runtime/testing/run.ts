/**
 * Running external tools from tests without ever blocking the test's own thread on a FUSE mount.
 *
 * Every tool runs in a child process with a timeout; a tool stuck on a dead mount is killed, and
 * the test gets an error that says which command hung, instead of a frozen test run.
 */

export interface RunOptions {
  cwd?: string;
  /** Kill the command after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** Data written to the command's stdin. */
  stdin?: string | Uint8Array;
}

export interface RunResult {
  cmd: string[];
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command and returns its exit status and output (never throws for a failing command). */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdin: opts.stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  if (opts.stdin !== undefined && proc.stdin) {
    proc.stdin.write(opts.stdin);
    await proc.stdin.end();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { cmd, code: proc.exitCode, signal: proc.signalCode === null ? null : String(proc.signalCode), stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Describes a finished command for an error message. */
export function describeResult(r: RunResult): string {
  const status = r.timedOut ? "timed out (killed)" : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const out = [r.stdout.trim() && `stdout:\n${clip(r.stdout)}`, r.stderr.trim() && `stderr:\n${clip(r.stderr)}`]
    .filter(Boolean)
    .join("\n");
  return `\`${r.cmd.join(" ")}\`: ${status}${out ? "\n" + out : ""}`;
}

/** Runs a command and throws (with its output) unless it exits 0. Returns stdout. */
export async function sh(cmd: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, opts);
  if (r.code !== 0) throw new Error(describeResult(r));
  return r.stdout;
}

function clip(s: string, max = 4000): string {
  s = s.trimEnd();
  return s.length <= max ? s : `${s.slice(0, max / 2)}\n[... ${s.length - max} bytes ...]\n${s.slice(-max / 2)}`;
}
