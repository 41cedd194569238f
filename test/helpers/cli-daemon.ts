/**
 * The CLI tests' harness (test/integration/cli-*.test.ts): daemons started with arbitrary command
 * lines, and daemons known only by pid (--background, mount.fuse3), all torn down even when a
 * test fails (in `finally`, and by a process-exit safety net); plus /proc/self/mounts entries,
 * commands that must fail without leaving a mount, and `furing status --json`.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { cli, isMounted, makeTempDir, removeTempDir, spawnDaemon, transports, waitFor, type Daemon, type Transport } from "./mount.ts";
import { describeResult, run, type RunResult } from "./run.ts";

export const READY = "furing: ready ";
export const ALL = transports();
export const FIRST: Transport = ALL[0]!;
/** Run a command as the unprivileged user `nobody` (no supplementary groups). */
export const NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];

// Local harness: daemons started with arbitrary command lines, and daemons we only know by pid
// (--background, mount.fuse3). Everything registered here is torn down even if a test fails.

export const tracked = new Map<string, { pid: () => number | undefined }>();

export function track(dir: string, pid: () => number | undefined): void {
  tracked.set(dir, { pid });
}

/** `track` for a pid known now (undefined: none, only the mount is torn down). */
export function trackPid(dir: string, pid: number | undefined): void {
  track(dir, () => pid);
}

process.on("exit", () => {
  for (const [dir, t] of tracked) {
    try {
      Bun.spawnSync(["umount", "-l", dir], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
    } catch {}
    const pid = t.pid();
    if (pid !== undefined) try { process.kill(pid, "SIGKILL"); } catch {}
  }
});

/** Whether `pid` is a live (not zombie) process. */
export function pidAlive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Stops whatever serves `dir`: SIGTERM, then a lazy unmount, then SIGKILL. Never throws. */
export async function teardown(dir: string, pid: number | undefined): Promise<void> {
  if (pid !== undefined && pidAlive(pid)) {
    try { process.kill(pid, "SIGTERM"); } catch {}
    await waitFor(() => !pidAlive(pid), 10_000);
  }
  if (await isMounted(dir)) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
  if (pid !== undefined && pidAlive(pid)) {
    await waitFor(() => !pidAlive(pid), 2000);
    if (pidAlive(pid)) try { process.kill(pid, "SIGKILL"); } catch {}
    await waitFor(() => !pidAlive(pid), 5000);
  }
  tracked.delete(dir);
}

/** `furing <args>` in a child; waits for the ready line. `dir` is the mountpoint it serves. */
export async function startDaemon(args: string[], dir: string, readyMs = 20_000): Promise<Daemon> {
  const d = spawnDaemon(args);
  track(dir, () => (d.alive() ? d.pid : undefined));
  await waitFor(() => d.output().includes(READY) || !d.alive(), readyMs);
  if (!d.output().includes(READY) || !(await isMounted(dir))) {
    await teardown(dir, d.pid);
    throw new Error(`furing ${args.join(" ")} did not get ready:\n${d.output()}`);
  }
  return d;
}

/** Starts a daemon in a fresh temp dir, runs `fn`, and always tears it down and removes the dir. */
export async function withDaemon(args: (dir: string) => string[], fn: (dir: string, d: Daemon) => Promise<void>): Promise<void> {
  const dir = await makeTempDir("cli");
  let d: Daemon | undefined;
  try {
    d = await startDaemon(args(dir), dir);
    await fn(dir, d);
  } catch (e) {
    if (d) (e as Error).message += `\n--- daemon output ---\n${d.output().slice(-6000)}`;
    throw e;
  } finally {
    await teardown(dir, d?.pid);
    await removeTempDir(dir);
  }
}

/** The topmost /proc/self/mounts entry at `dir`. */
export async function mountEntry(dir: string): Promise<{ source: string; type: string; options: string[] } | undefined> {
  const lines = (await readFile("/proc/self/mounts", "utf8")).split("\n").filter(Boolean);
  const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (let i = lines.length - 1; i >= 0; i--) {
    const f = lines[i]!.split(" ");
    if (unesc(f[1]!) === dir) return { source: unesc(f[0]!), type: f[2]!, options: f[3]!.split(",") };
  }
  return undefined;
}

/** A command that must fail: whatever it mounted by mistake is detached (and reported by the caller). */
export async function mustFail(args: string[], dir: string, timeoutMs = 30_000): Promise<RunResult & { mounted: boolean }> {
  const r = await cli(args, timeoutMs);
  const mounted = await isMounted(dir);
  if (mounted) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
  return { ...r, mounted };
}

/** `furing status --json` of every daemon (no mountpoint given): an array. */
export async function statusAll(): Promise<Array<{ mountpoint: string; pid: number }>> {
  const r = await cli(["status", "--json"], 20_000);
  if (r.code !== 0) throw new Error(describeResult(r));
  return JSON.parse(r.stdout);
}

export async function statusOf(dir: string): Promise<Record<string, any>> {
  const r = await cli(["status", dir, "--json"], 15_000);
  if (r.code !== 0) throw new Error(describeResult(r));
  return JSON.parse(r.stdout);
}
