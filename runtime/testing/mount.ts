/**
 * Real mounts for tests (furing's own, and plugin authors' through `furing/testing`), and for
 * `furing check`.
 *
 * The daemon always runs in a child process (`furing mount ...`: bun with runtime/cli/main.ts from
 * source, the binary itself when compiled): a process must
 * never touch a mount it serves itself. Every mount is torn down when its test ends, pass or fail:
 * SIGTERM, then `umount -l` if it is still mounted, then SIGKILL; and a process-level safety net
 * detaches whatever is left if the test run itself is interrupted.
 *
 * The test's own thread never blocks in a syscall on the mount: use `node:fs/promises` (thread
 * pool) or the spawned tools of ./run.ts, never the *Sync fs calls, on paths inside a mount.
 */
import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describeResult, run, type RunResult } from "./run.ts";
import { isStandalone } from "../standalone.ts";

export type Transport = "io_uring" | "classic";

/** The furing source tree this module belongs to (a repository checkout or node_modules/furing). */
export const REPO = resolve(import.meta.dir, "../..");
export const CLI = join(REPO, "runtime/cli/main.ts");
/** How to run furing: the binary itself when compiled, else bun with the CLI script. */
export function furingCommand(): string[] {
  return isStandalone() ? [process.execPath] : [process.execPath, CLI];
}
export const ENABLE_URING = "/sys/module/fuse/parameters/enable_uring";
/** Prefix of every directory the harness creates under os.tmpdir(). */
export const TMP_PREFIX = "furing-test-";

const READY = "furing: ready ";

export interface MountOptions {
  /** Plugin name or path, as given to `furing mount` (default "memfs"). */
  plugin?: string;
  transport: Transport;
  /** `-o` mount options (besides the transport's own). */
  options?: string[];
  /**
   * Reactor Workers (`-o reactors=N`): a plugin with `concurrency: "shared"` is then served by N
   * pinned Workers; others ignore it. FURING_TEST_REACTORS=N sets it for every mount that does
   * not say (so whole suites can run in multi-Worker mode).
   */
  reactors?: number;
  /** Extra arguments after the mountpoint (-d, plugin options such as --source DIR). */
  args?: string[];
  /** How long to wait for the ready line (default 20 s). */
  readyTimeoutMs?: number;
  /** The command before `mount ...` (default: {@link furingCommand}). */
  command?: string[];
  /** The daemon's working directory, which a relative plugin path is resolved from (default: this process's). */
  cwd?: string;
}

export interface WithMountOptions extends MountOptions {
  /** Abort the test body (and tear the mount down) after this long; default 100 s. */
  timeoutMs?: number;
}

export interface Daemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  pid: number;
  /** Resolves with the exit code (null if killed by a signal) when the daemon exits. */
  exited: Promise<number | null>;
  alive(): boolean;
  signal(sig: NodeJS.Signals): void;
  /** Waits up to `ms` for the daemon to exit; resolves true if it did. */
  waitExit(ms: number): Promise<boolean>;
  /** Everything the daemon printed so far (stdout and stderr, interleaved by arrival). */
  output(): string;
  /** The daemon's own TMPDIR (removed with the mount), so a killed daemon leaves nothing in /tmp. */
  tmp?: string;
}

export interface Mount {
  dir: string;
  transport: Transport;
  daemon: Daemon;
  /** The daemon's ready line (without the prefix). */
  ready: string;
  /** `furing status <dir> --json`, parsed. */
  status(): Promise<Status>;
  /** The daemon's output so far, for diagnostics. */
  log(): string;
}

/** What `furing status --json` reports. */
export interface Status {
  mountpoint: string;
  plugin: string;
  transport: Transport;
  queues: number;
  depth: number;
  requests: { io_uring: number; classic: number };
  ops: Record<string, { count: number; errors: number }>;
  [key: string]: unknown;
}

/** Mounts whose teardown has not finished; the safety net detaches these. */
const live = new Map<string, Daemon>();

/**
 * Something else a test run starts that must never outlive it (a test database server): torn down
 * after the mounts (their daemons may use it) by {@link cleanupAll}, and by the safety net.
 */
export interface Teardown {
  /** Orderly teardown, for {@link cleanupAll}. */
  async(): Promise<void>;
  /** Best effort at once (SIGKILL, rm), for process exit and signals, which cannot await. */
  sync(): void;
}
const teardowns = new Set<Teardown>();

/** Registers `t` with {@link cleanupAll} and the safety net; returns the function that unregisters it. */
export function registerTeardown(t: Teardown): () => void {
  installSafetyNet();
  teardowns.add(t);
  return () => void teardowns.delete(t);
}

// ---------------------------------------------------------------------------------------------
// Environment

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export async function uringEnabled(): Promise<boolean> {
  try {
    return (await readFile(ENABLE_URING, "utf8")).trim() === "Y";
  } catch {
    return false;
  }
}

let warned = false;
/**
 * The transports to test: both, always. io_uring is left out only for a normal user on a machine
 * where it is off (only root can turn it on, see scripts/setup); as root, a disabled io_uring makes
 * the io_uring tests fail loudly in {@link mountFs} instead of being skipped.
 */
export function transports(): Transport[] {
  let enabled = false;
  try {
    enabled = readFileSync(ENABLE_URING, "utf8").trim() === "Y";
  } catch {}
  if (isRoot() || enabled) return ["io_uring", "classic"];
  if (!warned) {
    warned = true;
    console.warn(
      `furing tests: skipping the io_uring transport: ${ENABLE_URING} is not Y and only root can turn it on (as root: echo Y > ${ENABLE_URING}, or scripts/setup in furing's repository)`,
    );
  }
  return ["classic"];
}

// ---------------------------------------------------------------------------------------------
// /proc/mounts

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts in this namespace as [mountpoint, fstype] pairs (reads /proc, never the mount). */
export async function mounts(): Promise<Array<{ dir: string; type: string }>> {
  const text = await readFile("/proc/self/mounts", "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const f = line.split(" ");
      return { dir: unescapeMount(f[1] ?? ""), type: f[2] ?? "" };
    });
}

/** The fstype mounted at `dir` (the topmost one), or undefined if nothing is mounted there. */
export async function mountedType(dir: string): Promise<string | undefined> {
  const all = await mounts();
  for (let i = all.length - 1; i >= 0; i--) if (all[i]!.dir === dir) return all[i]!.type;
  return undefined;
}

export async function isMounted(dir: string): Promise<boolean> {
  return (await mountedType(dir)) !== undefined;
}

/** Polls until `pred` holds or `ms` pass; returns the last value of `pred`. */
export async function waitFor(pred: () => Promise<boolean> | boolean, ms: number, every = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= end) return false;
    await Bun.sleep(every);
  }
}

// ---------------------------------------------------------------------------------------------
// Temporary directories

/** A fresh empty directory under os.tmpdir(); remove it with {@link removeTempDir}. */
export async function makeTempDir(tag = "tmp"): Promise<string> {
  return mkdtemp(join(tmpdir(), `${TMP_PREFIX}${tag}-`));
}

/** Removes a temp dir and its contents, refusing (with an error) if anything is mounted under it. */
export async function removeTempDir(dir: string): Promise<void> {
  const inside = (await mounts()).filter((m) => m.dir === dir || m.dir.startsWith(dir + "/"));
  if (inside.length) throw new Error(`not removing ${dir}: still mounted: ${inside.map((m) => m.dir).join(", ")}`);
  const r = await run(["rm", "-rf", "--one-file-system", "--", dir], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(describeResult(r));
}

/** Runs `fn` with a scratch directory outside any mount, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>, tag = "scratch"): Promise<T> {
  const dir = await makeTempDir(tag);
  try {
    return await fn(dir);
  } finally {
    await removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI

/** `furing ...args` with a timeout (never throws for a failing command). */
export function cli(args: string[], timeoutMs = 30_000, cwd = REPO): Promise<RunResult> {
  return run([...furingCommand(), ...args], { cwd, timeoutMs });
}

/** Starts `furing mount` in a child process, capturing its output. Does not wait for ready. */
export function spawnDaemon(args: string[], tmp?: string, command = furingCommand(), cwd = process.cwd()): Daemon {
  return spawnServer([...command, ...args], tmp, cwd);
}

/** Starts any FUSE server command in a child process, capturing its output (as {@link spawnDaemon}). */
function spawnServer(cmd: string[], tmp?: string, cwd = process.cwd()): Daemon {
  const proc = Bun.spawn(cmd, {
    cwd,
    env: tmp ? { ...process.env, TMPDIR: tmp } : process.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const listeners = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        out += decoder.decode(chunk, { stream: true });
        for (const l of listeners) l();
      }
    } catch {}
  };
  const pumps = Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  const exited = proc.exited.then(async () => {
    await Promise.race([pumps, Bun.sleep(1000)]);
    return proc.exitCode;
  });
  const daemon: Daemon & { onOutput(fn: () => void): () => void } = {
    proc,
    pid: proc.pid,
    exited,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    signal: (sig) => {
      if (daemon.alive()) proc.kill(sig);
    },
    waitExit: async (ms) => {
      let timer: Timer | undefined;
      const done = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
      ]);
      clearTimeout(timer);
      return done;
    },
    output: () => out,
    tmp,
    onOutput: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
  return daemon;
}

function mountArgs(dir: string, opts: MountOptions): string[] {
  const o = [...(opts.options ?? [])];
  if (opts.transport === "classic") o.push("io_uring=off");
  const reactors = opts.reactors ?? (process.env.FURING_TEST_REACTORS ? Number(process.env.FURING_TEST_REACTORS) : undefined);
  if (reactors !== undefined) o.push(`reactors=${reactors}`);
  return ["mount", opts.plugin ?? "memfs", dir, ...(o.length ? ["-o", o.join(",")] : []), ...(opts.args ?? [])];
}

/**
 * Mounts a filesystem in a new temp dir with the daemon in a child process and waits until it
 * is serving. Throws (after cleaning up) with the daemon's output if it fails to get ready.
 */
export async function mountFs(opts: MountOptions): Promise<Mount> {
  if (opts.transport === "io_uring" && !(await uringEnabled()))
    throw new Error(
      `cannot test the io_uring transport: ${ENABLE_URING} is not Y; as root, echo Y > ${ENABLE_URING} (scripts/setup in furing's repository) to turn it on`,
    );
  const dir = await makeTempDir("mnt");
  const tmp = await makeTempDir("daemon");
  const daemon = spawnDaemon(mountArgs(dir, opts), tmp, opts.command, opts.cwd) as Daemon & { onOutput(fn: () => void): () => void };
  installSafetyNet();
  live.set(dir, daemon);
  const m: Mount = {
    dir,
    transport: opts.transport,
    daemon,
    ready: "",
    status: () => status(dir),
    log: () => daemon.output(),
  };
  try {
    m.ready = await waitReady(daemon, opts.readyTimeoutMs ?? 20_000);
    const type = await mountedType(dir);
    if (!type?.startsWith("fuse"))
      throw new Error(`daemon said ready but ${dir} is not a FUSE mount in /proc/mounts (found: ${type ?? "nothing"})`);
    const said = /transport[: ]+(io_uring|classic)/.exec(m.ready)?.[1];
    if (said && said !== opts.transport)
      throw new Error(`asked for the ${opts.transport} transport but the daemon uses ${said}`);
  } catch (e) {
    await unmountFs(m).catch(() => {});
    throw new Error(`${(e as Error).message}\n--- daemon output (furing ${mountArgs(dir, opts).join(" ")}) ---\n${daemon.output()}`);
  }
  return m;
}

async function waitReady(daemon: Daemon & { onOutput(fn: () => void): () => void }, ms: number, marker = READY): Promise<string> {
  const find = () => {
    const i = daemon.output().indexOf(marker);
    if (i < 0) return undefined;
    const end = daemon.output().indexOf("\n", i);
    if (end < 0) return undefined;
    return daemon.output().slice(i + marker.length, end);
  };
  let off = () => {};
  let timer: Timer | undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = find();
        if (line !== undefined) resolve(line);
      };
      off = daemon.onOutput(check);
      check();
      daemon.exited.then((code) => {
        check();
        reject(new Error(`daemon exited (code ${code}, signal ${daemon.proc.signalCode}) before it was ready`));
      });
      timer = setTimeout(() => reject(new Error(`daemon not ready after ${ms} ms`)), ms);
    });
  } finally {
    off();
    clearTimeout(timer);
  }
}

/**
 * Mounts with a FUSE server of its own (not `furing mount`: a script's or benchmark's server) in a
 * child process: `cmd(dir)` gets a new temp mountpoint (named after `tag`) and must print `ready`
 * once it serves there.
 * Tracked, checked and torn down ({@link unmountFs}) like {@link mountFs}'s mounts.
 */
export async function mountServer(
  cmd: (dir: string) => string[],
  ready: string,
  { transport = "io_uring", readyTimeoutMs = 20_000, tag = "mnt", cwd }: { transport?: Transport; readyTimeoutMs?: number; tag?: string; cwd?: string } = {},
): Promise<Mount> {
  const dir = await makeTempDir(tag);
  const daemon = spawnServer(cmd(dir), undefined, cwd) as Daemon & { onOutput(fn: () => void): () => void };
  installSafetyNet();
  live.set(dir, daemon);
  const m: Mount = { dir, transport, daemon, ready: "", status: () => status(dir), log: () => daemon.output() };
  try {
    m.ready = await waitReady(daemon, readyTimeoutMs, ready);
    const type = await mountedType(dir);
    if (!type?.startsWith("fuse")) throw new Error(`the server said ready but ${dir} is not a FUSE mount in /proc/mounts (found: ${type ?? "nothing"})`);
  } catch (e) {
    await unmountFs(m).catch(() => {});
    throw new Error(`${(e as Error).message}\n--- server output (${cmd(dir).join(" ")}) ---\n${daemon.output()}`);
  }
  return m;
}

/**
 * Tears a mount down, whatever state it is in: SIGTERM and wait; `umount -l` if still mounted;
 * SIGKILL if still alive; remove the temp dir. Safe to call more than once.
 */
export async function unmountFs(m: Mount, graceMs = 10_000): Promise<void> {
  const { dir, daemon } = m;
  const problems: string[] = [];
  if (daemon.alive()) {
    // Stop on SIGTERM; if it reports the mount busy (a stuck test still holds it), detach at once.
    const before = daemon.output().length;
    daemon.signal("SIGTERM");
    await waitFor(() => !daemon.alive() || /busy/i.test(daemon.output().slice(before)), graceMs);
    await daemon.waitExit(200);
  }
  if (await isMounted(dir)) {
    const r = await run(["umount", "-l", dir], { timeoutMs: 10_000 });
    if (r.code !== 0 && (await isMounted(dir))) problems.push(describeResult(r));
  }
  if (daemon.alive()) {
    // Detached now: an external unmount should make it exit by itself.
    if (!(await daemon.waitExit(2000))) {
      daemon.signal("SIGKILL");
      await daemon.waitExit(5000);
    }
  }
  live.delete(dir);
  if (daemon.tmp && !daemon.alive()) await removeTempDir(daemon.tmp).catch((e) => problems.push(e.message));
  if (await isMounted(dir)) problems.push(`${dir} is still mounted`);
  else await rmdir(dir).catch((e) => e.code !== "ENOENT" && problems.push(`rmdir ${dir}: ${e.message}`));
  if (problems.length) throw new Error(`unmounting ${dir}: ${problems.join("; ")}`);
}

/**
 * Mounts, runs `fn`, and always unmounts. If `fn` has not settled after `timeoutMs`, the mount is
 * torn down anyway (which also fails any syscall stuck on it) and the test fails with the
 * daemon's output.
 */
export async function withMount(opts: WithMountOptions, fn: (m: Mount) => Promise<void>): Promise<void> {
  const m = await mountFs(opts);
  const timeoutMs = opts.timeoutMs ?? 100_000;
  let timer: Timer | undefined;
  let failure: unknown;
  const body = fn(m);
  body.catch(() => {}); // if it settles after the timeout, the race below has already reported it
  try {
    await Promise.race([
      body,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`test body did not finish within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    failure = e;
  } finally {
    clearTimeout(timer);
  }
  const alive = m.daemon.alive();
  try {
    await unmountFs(m);
  } catch (e) {
    failure ??= e;
  }
  if (failure !== undefined) {
    const err = failure instanceof Error ? failure : new Error(String(failure));
    err.message += `\n--- daemon output (${m.transport}, ${alive ? "was running" : `had exited: code ${m.daemon.proc.exitCode} signal ${m.daemon.proc.signalCode}`}) ---\n${tail(m.log())}`;
    throw err;
  }
}

function tail(s: string, max = 6000): string {
  return s.length <= max ? s : `[... ${s.length - max} bytes ...]\n${s.slice(-max)}`;
}

/** `furing status <dir> --json`, parsed; throws with the command's output if it fails. */
export async function status(dir: string): Promise<Status> {
  const r = await cli(["status", dir, "--json"], 15_000);
  if (r.code !== 0) throw new Error(describeResult(r));
  try {
    return JSON.parse(r.stdout) as Status;
  } catch {
    throw new Error(`status --json printed no JSON:\n${describeResult(r)}`);
  }
}

/** Detaches every mount the harness still has and kills their daemons (async version), then runs the registered {@link Teardown}s. */
export async function cleanupAll(): Promise<void> {
  const errors: string[] = [];
  for (const [dir, daemon] of [...live]) {
    try {
      await unmountFs({ dir, daemon, transport: "classic", ready: "", status: () => status(dir), log: daemon.output });
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  for (const t of [...teardowns]) {
    try {
      await t.async();
    } catch (e) {
      errors.push((e as Error).message);
    }
    teardowns.delete(t);
  }
  if (errors.length) throw new Error(errors.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Safety net: if the run ends or is interrupted with mounts still up, detach them and kill their
// daemons. Runs synchronously (exit handlers cannot await); `umount -l` does not wait for the daemon.

function cleanupSync(): void {
  for (const [dir, daemon] of live) {
    try {
      Bun.spawnSync(["umount", "-l", dir], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
    } catch {}
    try {
      daemon.proc.kill("SIGKILL");
    } catch {}
    try {
      Bun.spawnSync(["rmdir", dir], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
      if (daemon.tmp) Bun.spawnSync(["rm", "-rf", "--one-file-system", daemon.tmp], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
    } catch {}
  }
  live.clear();
  for (const t of teardowns) {
    try {
      t.sync();
    } catch {}
  }
  teardowns.clear();
}

// Installed with the first mount, not on import: a program that only imports this module (the
// furing CLI, for `furing check`) keeps its own signal handling until it mounts something.
const g = globalThis as { __furingMountSafetyNet?: boolean };
function installSafetyNet(): void {
  if (g.__furingMountSafetyNet) return;
  g.__furingMountSafetyNet = true;
  process.on("exit", cleanupSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (live.size || teardowns.size) console.error(`furing/testing: ${sig}: detaching ${live.size} mount(s) and ${teardowns.size} other resource(s) left by the harness`);
      cleanupSync();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}
