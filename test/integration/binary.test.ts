/**
 * The single-file binary (scripts/build → furing) and compiled plugins (furing compile), run the
 * way they are deployed: the executable copied alone into an empty directory, started there with
 * a PATH that has no bun (a directory of symlinks to the few system tools the daemon runs) and no
 * node_modules or source tree reachable.
 *
 * Daemons are child processes; every mount is torn down in a finally (SIGTERM, `umount -l`,
 * SIGKILL), and a process-exit net detaches whatever is left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, symlinkSync, mkdirSync, writeFileSync } from "node:fs";
import { readFile, writeFile, copyFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { availableParallelism } from "node:os";
import { REPO, CLI, makeTempDir, removeTempDir, isMounted, mountedType, waitFor } from "../helpers/mount.ts";
import { skipIf } from "../helpers/skip.ts";
import { run, sh, describeResult } from "../helpers/run.ts";
import { bunNativePlugin } from "../helpers/bun-native.ts";

const READY = "furing: ready ";
const HAVE_PASSTHROUGH = existsSync(join(REPO, "plugins/passthrough/index.ts"));
/** Tools the daemon may run (unmount in a child, fusermount3 for non-root, sh+cat for auto_unmount). */
const TOOLS = ["umount", "mount", "fusermount3", "sh", "cat", "rm"];
/** A small system tree to copy in (first that exists). */
const TREE = ["/usr/include/linux", "/usr/share/zoneinfo", join(REPO, "runtime")].find((d) => existsSync(d))!;

let work = "";
/** The empty directory the binary is copied into and run from. */
let home = "";
let furing = "";
let env: Record<string, string> = {};

// --------------------------------------------------------------------------------------------
// Daemons (not the harness's spawnDaemon: that one runs `bun runtime/cli/main.ts`)

interface Daemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  dir: string;
  out(): string;
  exited: Promise<number | null>;
  alive(): boolean;
}
const live = new Set<Daemon>();

function spawnDaemon(cmd: string[], dir: string): Daemon {
  const proc = Bun.spawn(cmd, { cwd: home, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    try {
      for await (const c of s) out += dec.decode(c, { stream: true });
    } catch {}
  };
  const pumps = Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  const d: Daemon = {
    proc,
    dir,
    out: () => out,
    exited: proc.exited.then(async () => {
      await Promise.race([pumps, Bun.sleep(1000)]);
      return proc.exitCode;
    }),
    alive: () => proc.exitCode === null && proc.signalCode === null,
  };
  live.add(d);
  return d;
}

/** Waits for the `furing: ready ` line; returns it. */
async function waitReady(d: Daemon, ms = 30_000): Promise<string> {
  const line = () => {
    const i = d.out().indexOf(READY);
    const end = i < 0 ? -1 : d.out().indexOf("\n", i);
    return end < 0 ? undefined : d.out().slice(i, end);
  };
  const ok = await waitFor(() => line() !== undefined || !d.alive(), ms, 20);
  const l = line();
  if (!ok || l === undefined)
    throw new Error(`${d.proc.pid}: ${d.alive() ? `not ready after ${ms} ms` : `exited (code ${d.proc.exitCode}) before it was ready`}\n--- output ---\n${d.out()}`);
  const type = await mountedType(d.dir);
  if (!type?.startsWith("fuse")) throw new Error(`ready, but ${d.dir} is not a FUSE mount (${type ?? "nothing"})\n${d.out()}`);
  return l;
}

/** SIGTERM and wait; then whatever it takes. Returns the exit code of the SIGTERM (null if it took more). */
async function stop(d: Daemon): Promise<number | null> {
  let code: number | null = null;
  if (d.alive()) {
    d.proc.kill("SIGTERM");
    const exited = await Promise.race([d.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
    if (exited) code = d.proc.exitCode;
  } else code = d.proc.exitCode;
  if (await isMounted(d.dir)) await run(["umount", "-l", d.dir], { timeoutMs: 10_000 });
  if (d.alive()) {
    d.proc.kill("SIGKILL");
    await Promise.race([d.exited, Bun.sleep(5000)]);
  }
  live.delete(d);
  return code;
}

/** Mount with `cmd <dir> ...`, run `fn`, always stop; the SIGTERM must exit 0 and leave no mount. */
async function withDaemon(cmd: (dir: string) => string[], fn: (dir: string, d: Daemon) => Promise<void>): Promise<void> {
  const dir = await makeTempDir("bin-mnt");
  const d = spawnDaemon(cmd(dir), dir);
  let failure: unknown;
  try {
    await waitReady(d);
    await fn(dir, d);
  } catch (e) {
    failure = e;
  }
  const code = await stop(d);
  const still = await isMounted(dir);
  if (!still) await removeTempDir(dir).catch(() => {});
  if (failure !== undefined) {
    const err = failure instanceof Error ? failure : new Error(String(failure));
    err.message += `\n--- daemon output (${cmd(dir).join(" ")}) ---\n${d.out().slice(-4000)}`;
    throw err;
  }
  expect(still).toBe(false);
  if (code !== 0) throw new Error(`SIGTERM: exit code ${code}, signal ${d.proc.signalCode}\n${d.out()}`);
  expect(d.out()).toContain("unmounted, exiting");
}

/** A file of a mount, read through the thread pool (never block this thread on a mount). */
const readText = (p: string) => readFile(p, "utf8");

process.on("exit", () => {
  for (const d of live) {
    Bun.spawnSync(["umount", "-l", d.dir], { stdout: "ignore", stderr: "ignore" });
    d.proc.kill("SIGKILL");
  }
});

// --------------------------------------------------------------------------------------------

/** A plugin with an option, for `furing compile`. */
const GREET = `import { definePlugin, FuseError, S_IFDIR, S_IFREG, type Attr } from "furing";
const attr = (ino: number, mode: number, size: number): Attr => ({
  ino, mode, size, nlink: 1, uid: 0, gid: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
});
export default definePlugin<{ greeting: string }>({
  options: { greeting: { type: "string", help: "what /greeting says", default: "hello" } },
  setup(ctx) {
    const text = new TextEncoder().encode(ctx.options.greeting + "\\n");
    const file = attr(2, S_IFREG | 0o444, text.length);
    return {
      lookup(_req, parent, name) {
        if (parent === 1 && name === "greeting") return file;
        throw new FuseError("ENOENT");
      },
      getattr(_req, ino) {
        return ino === 1 ? attr(1, S_IFDIR | 0o755, 0) : file;
      },
      read(_req, _ino, _fh, offset, size, dest) {
        const part = text.subarray(offset, offset + size);
        dest.set(part);
        return part.length;
      },
    };
  },
});
`;

beforeAll(async () => {
  work = await makeTempDir("binary");
  // PATH: symlinks to the tools the daemon may run, and nothing else (no bun)
  const bin = join(work, "bin");
  mkdirSync(bin);
  for (const t of TOOLS) {
    const p = Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
    if (p !== null) symlinkSync(p, join(bin, t));
  }
  env = { PATH: bin, HOME: work, TMPDIR: process.env.TMPDIR ?? "/tmp", LANG: "C" };
  expect(Bun.which("bun", { PATH: env.PATH! })).toBeNull();

  // build, then copy the one file into an empty directory
  const built = join(work, "build", "furing");
  const args = [process.execPath, join(REPO, "scripts/build"), "--outfile", built, ...(HAVE_PASSTHROUGH ? [] : ["--without-passthrough"])];
  if (!HAVE_PASSTHROUGH) console.warn("binary.test: plugins/passthrough/index.ts does not exist yet: building without passthrough");
  await sh(args, { cwd: REPO, timeoutMs: 120_000 });
  home = join(work, "home");
  mkdirSync(home);
  furing = join(home, "furing");
  await copyFile(built, furing);
  await sh(["chmod", "+x", furing]);
  // nothing the binary could fall back on: no node_modules anywhere above its directory
  for (let d = home; d !== "/"; d = dirname(d)) expect(existsSync(join(d, "node_modules"))).toBe(false);
}, 180_000);

afterAll(async () => {
  for (const d of [...live]) await stop(d);
  if (work) await removeTempDir(work);
});

describe("dist/furing (single-file binary)", () => {
  test("runs with no bun on PATH and names its version and commit", async () => {
    const r = await run([furing, "--version"], { cwd: home, env });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^furing \d+\.\d+\.\d+\S* \(commit [0-9a-f]{4,}(-dirty)?, bun \d+\.\d+\.\d+\S*\)$/);
    const s = await stat(furing);
    console.log(`binary.test: furing is ${(s.size / 1e6).toFixed(1)} MB; ${r.stdout.trim()}`);
  });

  test("mounts the embedded memfs, served by a reactor Worker per CPU; a tree copied in is identical; SIGTERM unmounts and exits 0", async () => {
    await withDaemon((dir) => [furing, "mount", "memfs", dir], async (dir, d) => {
      await sh(["cp", "-r", TREE, join(dir, "tree")], { timeoutMs: 60_000 });
      await sh(["diff", "-r", TREE, join(dir, "tree")], { timeoutMs: 60_000 });
      // the binary carries the Worker program: its built-ins get a Worker per online CPU, as from source
      const cpus = availableParallelism();
      const workers = Math.min(cpus, 8);
      expect(d.out()).toContain(`${workers} reactor Workers`);
      expect(d.out()).not.toContain("the main thread serves every queue");
      // a caller on each CPU: over io_uring its requests go to that CPU's queue and Worker
      for (let cpu = 0; cpu < workers; cpu++) await sh(["taskset", "-c", String(cpu), "sh", "-c", `echo ${cpu} > "$1/probe-${cpu}" && cat "$1/probe-${cpu}"`, "sh", dir], { timeoutMs: 10_000 });
      const st = JSON.parse((await run([furing, "status", dir, "--json"], { cwd: home, env })).stdout);
      expect(st.reactors.workers.length).toBe(workers);
      for (const w of st.reactors.workers) expect(w.requests.io_uring + w.requests.classic).toBeGreaterThan(0);
    });
  });

  test.skipIf(skipIf(!HAVE_PASSTHROUGH, "the embedded passthrough test", "plugins/passthrough is not in this tree"))("mounts the embedded passthrough over a source directory", async () => {
    const src = await makeTempDir("bin-src");
    try {
      writeFileSync(join(src, "a.txt"), "through\n");
      await withDaemon((dir) => [furing, "mount", "passthrough", dir, "--source", src], async (dir) => {
        expect(await readText(join(dir, "a.txt"))).toBe("through\n");
        await writeFile(join(dir, "b.txt"), "back\n");
        expect(await readFile(join(src, "b.txt"), "utf8")).toBe("back\n");
      });
    } finally {
      await removeTempDir(src);
    }
  });

  test("loads a plugin file from disk and hot-reloads it (Bun.build inside the binary)", async () => {
    const plugDir = join(work, "plugin");
    mkdirSync(plugDir, { recursive: true });
    const file = join(plugDir, "hello.ts");
    const source = await readFile(join(REPO, "test/fixtures/hello.ts"), "utf8");
    await writeFile(file, source);
    await withDaemon((dir) => [furing, "mount", file, dir], async (dir, d) => {
      expect(await readText(join(dir, "hello"))).toBe("hello, world\n");
      await writeFile(file, source.replace("hello, world", "hello, reloaded"));
      let got = "";
      const ok = await waitFor(async () => (got = await readText(join(dir, "hello")).catch((e) => String(e))) === "hello, reloaded\n", 20_000, 100);
      if (!ok) throw new Error(`still serving ${JSON.stringify(got)} after the edit`);
      expect(d.out()).toContain("generation 2 serving");
      // generation 1 is released inside the binary too: no bundle left in the module registry
      const st = await run([furing, "status", dir, "--json"], { cwd: home, env });
      expect(JSON.parse(st.stdout).generationsHeld).toEqual({ modules: 0, sourceMaps: 1 });
    });
  });

  test("first run: TMPDIR and the runtime directory absent: the embedded memfs mounts in the background, serves and unmounts; what needs TMPDIR says so in one line", async () => {
    const rundir = join(work, "fresh-run", "furing");
    mkdirSync(dirname(rundir), { recursive: true });
    const fresh = { ...env, TMPDIR: join(work, "no-such-tmp"), FURING_RUNTIME_DIR: rundir };
    const dir = await makeTempDir("bin-boot");
    let pid: number | undefined;
    try {
      const r = await run([furing, "mount", "memfs", dir, "--background"], { cwd: home, env: fresh, timeoutMs: 40_000 });
      pid = Number(/\(pid (\d+),/.exec(r.stderr)?.[1]) || undefined;
      expect(r.code, describeResult(r)).toBe(0);
      expect((await stat(rundir)).mode & 0o777).toBe(0o700);
      await writeFile(join(dir, "f"), "no tmp needed\n");
      expect(await readText(join(dir, "f"))).toBe("no tmp needed\n");
      const u = await run([furing, "unmount", dir], { cwd: home, env: fresh });
      expect(u.code, describeResult(u)).toBe(0);
      expect(await isMounted(dir)).toBe(false);
      expect(await waitFor(() => !existsSync(`/proc/${pid}`), 10_000), "the daemon outlived its mount").toBe(true);

      // a plugin file is bundled into a generation file under TMPDIR; compile works under TMPDIR too
      const file = join(work, "plugin", "boot.ts");
      mkdirSync(dirname(file), { recursive: true });
      await writeFile(file, await readFile(join(REPO, "test/fixtures/hello.ts"), "utf8"));
      for (const [args, op] of [[["mount", file, dir], "mount"], [["compile", file, "-o", join(work, "bootfs")], "compile"]] as const) {
        const f = await run([furing, ...args], { cwd: home, env: fresh, timeoutMs: 60_000 });
        expect(f.code, describeResult(f)).toBe(1);
        expect(f.stderr.trim().split("\n"), describeResult(f)).toEqual([expect.stringMatching(new RegExp(`^furing ${op}: mkdtemp ${fresh.TMPDIR}/furing-\\S+: no such file or directory \\(ENOENT\\)$`))]);
      }
      expect(await isMounted(dir)).toBe(false);
    } finally {
      if (pid !== undefined && existsSync(`/proc/${pid}`)) process.kill(pid, "SIGTERM");
      if (await isMounted(dir)) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
      if (pid !== undefined && existsSync(`/proc/${pid}`)) process.kill(pid, "SIGKILL");
      if (!(await isMounted(dir))) await removeTempDir(dir);
    }
  });

  test("a Bun-native plugin from disk (bun:sqlite, Bun globals, its own npm package) serves and hot-reloads", async () => {
    const plugin = await bunNativePlugin();
    try {
      await withDaemon((dir) => [furing, "mount", plugin, dir], async (dir, d) => {
        const info = async () => JSON.parse(await readText(join(dir, "info")));
        expect(await info()).toMatchObject({ label: "first", generation: 1, dep: "bun", sqlite: expect.stringMatching(/^3\./) });
        const src = join(plugin, "index.ts");
        await writeFile(src, (await readText(src)).replace(`const LABEL = "first"`, `const LABEL = "second"`));
        let got: Record<string, unknown> = {};
        const ok = await waitFor(async () => (got = await info()).generation === 2, 20_000, 100);
        if (!ok) throw new Error(`no second generation: ${JSON.stringify(got)}\n${d.out()}`);
        expect(got).toMatchObject({ label: "second", dep: "bun" });
      });
    } finally {
      await removeTempDir(plugin);
    }
  });

  test("compile inside the binary (no bun): the program mounts its filesystem", async () => {
    const src = join(work, "plugin", "greet.ts");
    mkdirSync(dirname(src), { recursive: true });
    await writeFile(src, GREET);
    const exe = join(home, "greetfs");
    const r = await run([furing, "compile", src, "-o", exe], { cwd: home, env, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(describeResult(r));
    expect(existsSync(`${exe}.map`)).toBe(false);
    const v = await run([exe, "--version"], { cwd: home, env });
    expect(v.stdout).toContain("furing ");
    await withDaemon((dir) => [exe, dir, "--greeting", "from the binary"], async (dir) => {
      expect(await readText(join(dir, "greeting"))).toBe("from the binary\n");
    });
  });

  test("furing check runs inside the binary (its executors are the binary itself) and leaves nothing mounted", async () => {
    // both transports, the concurrency family included: daemons and executors are copies of the binary
    const r = await run([furing, "check", "memfs", "--ops", "300", "--seed", "5", "--writers", "2", "--writer-ops", "100"], { cwd: home, env, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(describeResult(r));
    expect(r.stdout).toMatch(/furing check memfs: 4 runs, \d+ ops compared with tmpfs, 0 differences/);
    const dirs = [...r.stderr.matchAll(/over \S+ \((\S+)\) vs tmpfs \((\S+)\)/g)].flatMap((m) => [m[1]!, m[2]!]);
    expect(dirs.length).toBe(4);
    for (const d of dirs) expect(await isMounted(d)).toBe(false);
  }, 120_000);
});

describe("furing compile (from source)", () => {
  test("a Bun-native plugin (bun:sqlite, Bun globals, its own npm package) compiles and mounts", async () => {
    const plugin = await bunNativePlugin();
    try {
      const exe = join(home, "bun-native-fs");
      await sh([process.execPath, CLI, "compile", plugin, "-o", exe], { cwd: work, timeoutMs: 120_000 });
      await withDaemon((dir) => [exe, dir], async (dir) => {
        expect(JSON.parse(await readText(join(dir, "info")))).toMatchObject({ label: "first", generation: 1, dep: "bun", sqlite: expect.stringMatching(/^3\./) });
      });
    } finally {
      await removeTempDir(plugin);
    }
  });

  test("compiles a plugin into one executable that mounts it, foreground and --background", async () => {
    const src = join(work, "plugin-src", "greet.ts");
    mkdirSync(dirname(src), { recursive: true });
    await writeFile(src, GREET);
    const exe = join(home, "greetfs-src");
    await sh([process.execPath, CLI, "compile", src, "-o", exe], { cwd: work, timeoutMs: 120_000 });

    // usage names the plugin's options
    const h = await run([exe, "--help"], { cwd: home, env });
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("--greeting");

    await withDaemon((dir) => [exe, dir], async (dir) => {
      expect(await readText(join(dir, "greeting"))).toBe("hello\n");
    });

    // --background returns once mounted; the daemon is the program itself
    const dir = await makeTempDir("bin-mnt");
    try {
      const r = await run([exe, dir, "--background", "--greeting", "detached", "--log", join(work, "bg.log")], { cwd: home, env, timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(describeResult(r));
      expect(await mountedType(dir)).toStartWith("fuse");
      expect(await readText(join(dir, "greeting"))).toBe("detached\n");
      const pid = Number(/pid (\d+)/.exec(r.stderr)?.[1]);
      expect(pid).toBeGreaterThan(0);
      const u = await run([furing, "unmount", dir], { cwd: home, env, timeoutMs: 30_000 });
      if (u.code !== 0) throw new Error(describeResult(u));
      expect(await waitFor(() => !existsSync(`/proc/${pid}`), 10_000)).toBe(true);
    } finally {
      if (await isMounted(dir)) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
      await removeTempDir(dir).catch(() => {});
    }
  });
});
