/**
 * The first mount after a boot (issue #19): /run is a fresh tmpfs, so the runtime directory that
 * holds control sockets and background logs does not exist yet. Every first-run path starts here
 * from an absent directory: root `--background` (FURING_RUNTIME_DIR), a normal user's
 * `--background` through fusermount3 ($XDG_RUNTIME_DIR/furing-UID), and `mount -t fuse.furing`
 * through mount.fuse3 in a private mount namespace whose /run is an empty tmpfs (the real
 * /run/furing default, and no environment: mount(8) empties it). Each mounts, serves, and unmounts.
 * Then the other first-run paths: `status` with no directory, a runtime directory that is not
 * ours, `furing unmount` of a dead mount after the directory is gone, the plugin bundle
 * directory under an absent TMPDIR, and the CLI's one-line error for an unexpected exception.
 *
 * Daemons run in child processes; everything started is torn down in `finally` (SIGTERM,
 * `umount -l`, SIGKILL) and by a process-exit net; the namespace's processes are killed by pid.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CLI, REPO, isMounted, makeTempDir, removeTempDir, transports, waitFor, type Transport } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { describeResult, run, sh, type RunResult } from "../helpers/run.ts";
import { pidAlive, teardown, trackPid, tracked } from "../helpers/cli-daemon.ts";

setDefaultTimeout(90_000);

const NOBODY = 65534;
const transportOpt = (t: Transport) => (t === "classic" ? "io_uring=off" : "io_uring=on");

let base = "";
beforeAll(async () => {
  base = await makeTempDir("boot");
  await chmod(base, 0o755);
});
afterAll(async () => {
  for (const [dir, t] of [...tracked]) await teardown(dir, t.pid());
  for (const ns of [...namespaces]) await ns.close();
  if (base) await removeTempDir(base);
});

/** `bun runtime/cli/main.ts <args>` as root with `env` added. */
const furing = (args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 40_000) =>
  run([process.execPath, CLI, ...args], { cwd: REPO, env, timeoutMs });

/** The pid in `furing: <dir> mounted in the background (pid N, log F)`. */
function backgroundPid(r: RunResult): number | undefined {
  const m = /mounted in the background \(pid (\d+), log ([^)]+)\)/.exec(r.stderr);
  return m ? Number(m[1]) : undefined;
}

/** A directory that exists, is not a symlink, mode 0700, owned by `uid`. */
function expectPrivateDir(dir: string, uid: number): void {
  const st = lstatSync(dir);
  expect(st.isDirectory()).toBe(true);
  expect(st.mode & 0o777).toBe(0o700);
  expect(st.uid).toBe(uid);
}

/** The one line a failed command must print: no stack frames, no source excerpt. */
function expectOneLine(r: RunResult, pattern: RegExp): void {
  expect(r.code, describeResult(r)).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines, describeResult(r)).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at |\n\s*\d+ \| /m);
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(needsRoot("fresh boot", "starts root and normal-user daemons on fresh runtime directories"))("fresh boot: the runtime directory does not exist yet", () => {
  for (const transport of transports()) {
    test(`root \`--background\` (${transport}) creates it 0700, mounts, serves, and unmounts`, async () => {
      const rundir = join(base, `run-root-${transport}`, "furing");
      const mnt = join(base, `mnt-root-${transport}`);
      await mkdir(join(rundir, ".."));
      await mkdir(mnt);
      const env = { FURING_RUNTIME_DIR: rundir };
      let pid: number | undefined;
      try {
        expect(existsSync(rundir)).toBe(false);
        const r = await furing(["mount", "memfs", mnt, "--background", "-o", transportOpt(transport)], env);
        pid = backgroundPid(r);
        trackPid(mnt, pid);
        expect(r.code, describeResult(r)).toBe(0);
        expect(pid).toBeNumber();
        expectPrivateDir(rundir, 0);
        const files = readdirSync(rundir).sort();
        expect(files.map((f) => f.replace(/^[0-9a-f]{16}/, "H"))).toEqual(["H.log", "H.sock"]);
        expect(statSync(join(rundir, files[0]!)).mode & 0o777).toBe(0o600);
        expect(r.stderr).toContain(`log ${join(rundir, files[0]!)}`);

        const s = await furing(["status", mnt, "--json"], env);
        expect(s.code, describeResult(s)).toBe(0);
        const st = JSON.parse(s.stdout);
        expect(st.pid).toBe(pid);
        expect(st.transport).toBe(transport);
        await writeFile(join(mnt, "f"), "first boot");
        expect(await readFile(join(mnt, "f"), "utf8")).toBe("first boot");

        const u = await furing(["unmount", mnt], env);
        expect(u.code, describeResult(u)).toBe(0);
        expect(await isMounted(mnt)).toBe(false);
        expect(await waitFor(() => !pidAlive(pid!), 10_000), "the daemon outlived its mount").toBe(true);
        expect(readdirSync(rundir).filter((f) => f.endsWith(".sock"))).toEqual([]);
      } finally {
        await teardown(mnt, pid);
      }
    });
  }

  test("two first mounts at once (systemd starts fstab mount units in parallel) share the new directory", async () => {
    const rundir = join(base, "run-parallel", "furing");
    await mkdir(join(rundir, ".."));
    const mnts = [join(base, "mnt-par-a"), join(base, "mnt-par-b")];
    const pids: Array<number | undefined> = [];
    try {
      for (const m of mnts) await mkdir(m);
      const rs = await Promise.all(mnts.map((m) => furing(["mount", "memfs", m, "--background"], { FURING_RUNTIME_DIR: rundir })));
      rs.forEach((r, i) => trackPid(mnts[i]!, (pids[i] = backgroundPid(r))));
      for (const r of rs) expect(r.code, describeResult(r)).toBe(0);
      expectPrivateDir(rundir, 0);
      for (const m of mnts) {
        await writeFile(join(m, "f"), m);
        expect(await readFile(join(m, "f"), "utf8")).toBe(m);
        const u = await furing(["unmount", m], { FURING_RUNTIME_DIR: rundir });
        expect(u.code, describeResult(u)).toBe(0);
      }
    } finally {
      for (let i = 0; i < mnts.length; i++) await teardown(mnts[i]!, pids[i]);
    }
  });

  describe("a normal user's `--background` through fusermount3", () => {
    // the program runs from a copy every user can read (a checkout may live under /root, 0700)
    let app = "";
    let home = "";
    beforeAll(async () => {
      expect((statSync("/dev/fuse").mode & 0o666) === 0o666, "/dev/fuse must be mode 0666 (scripts/setup)").toBe(true);
      app = join(base, "app");
      home = join(base, "home");
      await mkdir(join(app, "test"), { recursive: true });
      await sh(["cp", "-a", "runtime", "plugins", "package.json", "tsconfig.json", "node_modules", app], { cwd: REPO, timeoutMs: 60_000 });
      await sh(["chmod", "-R", "a+rX", app]);
      await mkdir(join(home, "run"), { recursive: true });
      await sh(["chown", "-R", `${NOBODY}:${NOBODY}`, home]);
      await chmod(join(home, "run"), 0o700);
    });

    const asNobody = (cmd: string[]) => [
      "setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups",
      "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", `HOME=${home}`, `TMPDIR=${home}`, `XDG_RUNTIME_DIR=${join(home, "run")}`,
      ...cmd,
    ];
    const furingAsNobody = (args: string[]) => run(asNobody([process.execPath, join(app, "runtime/cli/main.ts"), ...args]), { cwd: app, timeoutMs: 40_000 });

    for (const transport of transports()) {
      test(`nobody (${transport}): $XDG_RUNTIME_DIR/furing-${NOBODY} is created 0700, the mount serves and unmounts`, async () => {
        const rundir = join(home, "run", `furing-${NOBODY}`);
        const mnt = join(base, `mnt-nobody-${transport}`);
        await mkdir(mnt);
        await chown(mnt, NOBODY, NOBODY);
        let pid: number | undefined;
        try {
          await rm(rundir, { recursive: true, force: true });
          const r = await furingAsNobody(["mount", "memfs", mnt, "--background", "-o", transportOpt(transport)]);
          pid = backgroundPid(r);
          trackPid(mnt, pid);
          expect(r.code, describeResult(r)).toBe(0);
          expectPrivateDir(rundir, NOBODY);
          const s = await furingAsNobody(["status", mnt, "--json"]);
          expect(s.code, describeResult(s)).toBe(0);
          expect(JSON.parse(s.stdout)).toMatchObject({ pid, transport, state: "serving" });
          await sh(asNobody(["sh", "-c", `echo unprivileged > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
          expect(await sh(asNobody(["cat", join(mnt, "f")]), { timeoutMs: 10_000 })).toBe("unprivileged\n");
          const u = await furingAsNobody(["unmount", mnt]);
          expect(u.code, describeResult(u)).toBe(0);
          expect(await isMounted(mnt)).toBe(false);
          expect(await waitFor(() => !pidAlive(pid!), 10_000), "the daemon outlived its mount").toBe(true);
        } finally {
          await teardown(mnt, pid);
        }
      });
    }
  });

  describe("`mount -t fuse.furing` through mount.fuse3, /run an empty tmpfs", () => {
    for (const transport of transports()) {
      test(`(${transport}) creates /run/furing 0700, mounts, serves, and \`furing unmount\` unmounts`, async () => {
        const ns = await Namespace.open(join(base, `ns-${transport}`));
        const mnt = join(base, `mnt-helper-${transport}`);
        await mkdir(mnt);
        try {
          expect((await ns.run(["ls", "-A", "/run"])).stdout).not.toContain("furing");
          const r = await ns.run(["mount", "-t", "fuse.furing", "memfs", mnt, "-o", `fsname=first-boot,${transportOpt(transport)}`]);
          expect(r.code, describeResult(r)).toBe(0);
          expect((await ns.run(["stat", "-c", "%F %a %u", "/run/furing"])).stdout.trim()).toBe("directory 700 0");
          const s = await ns.run(["furing", "status", mnt, "--json"]);
          expect(s.code, describeResult(s)).toBe(0);
          expect(JSON.parse(s.stdout)).toMatchObject({ transport, state: "serving", plugin: "memfs" });
          expect((await ns.run(["grep", ` ${mnt} `, "/proc/self/mounts"])).stdout).toStartWith(`first-boot ${mnt} fuse.`);
          expect((await ns.run(["sh", "-c", `echo via mount.fuse3 > "$1/f" && cat "$1/f"`, "sh", mnt])).stdout).toBe("via mount.fuse3\n");
          const u = await ns.run(["furing", "unmount", mnt]);
          expect(u.code, describeResult(u)).toBe(0);
          expect(await waitFor(async () => (await ns.pids()).length === 1, 10_000), "the daemon outlived its mount").toBe(true);
          expect((await ns.run(["sh", "-c", `grep -c " ${mnt} " /proc/self/mounts || true`])).stdout.trim()).toBe("0");
        } finally {
          await ns.close();
        }
      });
    }
  });
});

/**
 * A private mount namespace, held open by a `sleep`, whose /run is an empty tmpfs and whose
 * /usr/local/sbin holds a `furing` shim (mount(8) runs mount.fuse3 with no PATH, so its
 * `sh -c furing ...` finds only the default path; the host's /usr/local/sbin is left alone).
 * Mounts made inside exist only there; close() kills every process in it, which frees them.
 */
const namespaces = new Set<Namespace>();
class Namespace {
  private constructor(private readonly holder: number, private readonly ino: string, private readonly dir: string) {}

  static async open(dir: string): Promise<Namespace> {
    const bin = join(dir, "bin");
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "furing"), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    const proc = Bun.spawn(
      ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs -o mode=755 tmpfs /run && mount --bind ${bin} /usr/local/sbin && echo ready && exec sleep 1000`],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const reader = proc.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
    reader.releaseLock();
    if (!first.includes("ready")) {
      proc.kill("SIGKILL");
      throw new Error(`cannot set up the mount namespace: ${await new Response(proc.stderr).text()}`);
    }
    await waitFor(() => readlinkSync(`/proc/${proc.pid}/ns/mnt`) !== readlinkSync("/proc/self/ns/mnt"), 5000);
    const ns = new Namespace(proc.pid, readlinkSync(`/proc/${proc.pid}/ns/mnt`), dir);
    namespaces.add(ns);
    process.on("exit", () => {
      for (const pid of ns.pidsSync()) try { process.kill(pid, "SIGKILL"); } catch {}
    });
    return ns;
  }

  run(cmd: string[]): Promise<RunResult> {
    return run(["nsenter", `--target=${this.holder}`, "--mount", "--", ...cmd], { timeoutMs: 40_000 });
  }

  /** Processes in the namespace (the holder, and any daemon mount.fuse3 started). */
  async pids(): Promise<number[]> {
    return this.pidsSync();
  }

  pidsSync(): number[] {
    const out: number[] = [];
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      try {
        if (readlinkSync(`/proc/${p}/ns/mnt`) === this.ino && pidAlive(Number(p))) out.push(Number(p));
      } catch {}
    }
    return out;
  }

  async close(): Promise<void> {
    for (const pid of await this.pids()) if (pid !== this.holder) try { process.kill(pid, "SIGTERM"); } catch {}
    await waitFor(async () => (await this.pids()).length <= 1, 10_000);
    for (const pid of await this.pids()) try { process.kill(pid, "SIGKILL"); } catch {}
    await waitFor(async () => (await this.pids()).length === 0, 5000);
    namespaces.delete(this);
    await rm(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

describe("the other first-run paths, from a clean state", () => {
  test("`status` with no runtime directory: no mounts, a named mountpoint has no daemon, and nothing is created", async () => {
    const rundir = join(base, "run-status", "furing");
    const env = { FURING_RUNTIME_DIR: rundir };
    const all = await furing(["status"], env);
    expect(all.code, describeResult(all)).toBe(0);
    expect(all.stdout.trim()).toBe("no furing mounts");
    const json = await furing(["status", "--json"], env);
    expect(JSON.parse(json.stdout)).toEqual([]);
    expectOneLine(await furing(["status", base], env), new RegExp(`^furing: ${base}: no furing daemon answers for this mountpoint$`));
    expect(existsSync(join(rundir, ".."))).toBe(false);
  });

  test("a runtime directory that is a symlink, a file, or has no parent, and a --log that cannot be opened: one line, nothing mounted, nothing written", async () => {
    const work = join(base, "bad-dirs");
    const target = join(work, "target");
    await mkdir(target, { recursive: true, mode: 0o700 });
    await symlink(target, join(work, "link"));
    await writeFile(join(work, "file"), "");
    const mnt = join(base, "mnt-bad");
    await mkdir(mnt);
    const cases: Array<[string, RegExp]> = [
      [join(work, "link"), new RegExp(`^furing: runtime directory ${work}/link: is a symbolic link \\(to ${target}\\); .*remove it$`)],
      [join(work, "file"), new RegExp(`^furing: runtime directory ${work}/file: exists and is not a directory; remove it$`)],
      [join(work, "none", "furing"), new RegExp(`^furing: cannot create the runtime directory ${work}/none/furing: its parent ${work}/none does not exist$`)],
    ];
    try {
      for (const [rundir, msg] of cases) {
        const env = { FURING_RUNTIME_DIR: rundir };
        for (const args of [["mount", "memfs", mnt, "--background"], ["mount", "memfs", mnt, "-f"]]) {
          const r = await furing(args, env);
          trackPid(mnt, undefined);
          expectOneLine(r, msg);
          expect(await isMounted(mnt), `${args.join(" ")} left a mount`).toBe(false);
        }
        if (!rundir.includes("none")) expectOneLine(await furing(["status"], env), msg);
      }
      expect(readdirSync(target)).toEqual([]);
      // `furing unmount` still unmounts (exit 0) when the runtime directory it would clean is not ours
      const ok = { FURING_RUNTIME_DIR: join(work, "ok") };
      const m = await furing(["mount", "memfs", mnt, "--background"], ok);
      trackPid(mnt, backgroundPid(m));
      expect(m.code, describeResult(m)).toBe(0);
      const u = await furing(["unmount", mnt], { FURING_RUNTIME_DIR: join(work, "link") });
      expect(u.code, describeResult(u)).toBe(0);
      expect(await isMounted(mnt)).toBe(false);
      expect(await waitFor(() => !pidAlive(backgroundPid(m)!), 10_000)).toBe(true);
      // --log in a directory that does not exist
      const log = join(work, "none", "x.log");
      const r = await furing(["mount", "memfs", mnt, "--background", "--log", log], ok);
      expectOneLine(r, new RegExp(`^furing: cannot open the log file ${log}: no such file or directory \\(ENOENT\\)$`));
      expect(await isMounted(mnt)).toBe(false);
    } finally {
      await teardown(mnt, undefined);
    }
  });

  test.skipIf(needsRoot("the foreign runtime directory test", "chowns a directory to another user"))("a runtime directory of another user is refused before mounting; one of ours with loose permissions is tightened to 0700", async () => {
    const rundir = join(base, "run-foreign", "furing");
    await mkdir(rundir, { recursive: true, mode: 0o755 });
    await chown(rundir, NOBODY, NOBODY);
    const mnt = join(base, "mnt-foreign");
    await mkdir(mnt);
    try {
      const msg = new RegExp(`^furing: runtime directory ${rundir}: belongs to uid ${NOBODY}, not to uid 0; refusing to keep control sockets there`);
      for (const args of [["mount", "memfs", mnt, "--background"], ["mount", "memfs", mnt, "-f"], ["status"]]) {
        const r = await furing(args, { FURING_RUNTIME_DIR: rundir });
        trackPid(mnt, undefined);
        expectOneLine(r, msg);
        expect(await isMounted(mnt), `${args.join(" ")} left a mount`).toBe(false);
      }
      expect(readdirSync(rundir)).toEqual([]);
      await chown(rundir, 0, 0);
      await chmod(rundir, 0o755);
      const s = await furing(["status"], { FURING_RUNTIME_DIR: rundir });
      expect(s.code, describeResult(s)).toBe(0);
      expectPrivateDir(rundir, 0);
    } finally {
      await teardown(mnt, undefined);
    }
  });

  test("`furing unmount` of a dead mount after a \"reboot\" took the runtime directory: unmounts, and creates nothing", async () => {
    const rundir = join(base, "run-dead", "furing");
    const mnt = join(base, "mnt-dead");
    await mkdir(join(rundir, ".."));
    await mkdir(mnt);
    const env = { FURING_RUNTIME_DIR: rundir };
    let pid: number | undefined;
    try {
      const r = await furing(["mount", "memfs", mnt, "--background", "-o", transportOpt(transports()[0]!)], env);
      pid = backgroundPid(r);
      trackPid(mnt, pid);
      expect(r.code, describeResult(r)).toBe(0);
      process.kill(pid!, "SIGKILL");
      expect(await waitFor(() => !pidAlive(pid!), 5000)).toBe(true);
      await rm(rundir, { recursive: true });
      const dead = await run(["stat", mnt], { timeoutMs: 10_000 });
      // dead: ENOTCONN (io_uring may answer ECANCELED or ECONNABORTED while the ring's requests
      // are torn down: fuse_uring_abort ends the queued ones with ECONNABORTED)
      expect(dead.stderr).toMatch(/Transport endpoint is not connected|Operation canceled|Software caused connection abort/);
      const u = await furing(["unmount", mnt], env);
      expect(u.code, describeResult(u)).toBe(0);
      expect(u.stderr).toBe("");
      expect(await isMounted(mnt)).toBe(false);
      expect(existsSync(rundir)).toBe(false);
    } finally {
      await teardown(mnt, pid);
    }
  });

  test("an unexpected error (the plugin bundle directory under an absent TMPDIR) is one line naming the operation, path and cause; nothing is mounted", async () => {
    const mnt = join(base, "mnt-notmp");
    await mkdir(mnt);
    const tmp = join(base, "no-such-tmp");
    try {
      const r = await furing(["mount", join(REPO, "test/fixtures/hello.ts"), mnt], { TMPDIR: tmp, FURING_RUNTIME_DIR: join(base, "run-notmp") });
      trackPid(mnt, undefined);
      expectOneLine(r, new RegExp(`^furing mount: mkdtemp ${tmp}/furing-gen-\\d+-\\S+: no such file or directory \\(ENOENT\\)$`));
      expect(await isMounted(mnt)).toBe(false);
      // the same through compile, which bundles under TMPDIR as well
      const c = await furing(["compile", join(REPO, "test/fixtures/hello.ts"), "-o", join(base, "hellofs")], { TMPDIR: tmp });
      expectOneLine(c, new RegExp(`^furing compile: mkdtemp ${tmp}/furing-compile-\\S+: no such file or directory \\(ENOENT\\)$`));
      // FURING_DEBUG brings the stack back for whoever debugs furing itself
      const d = await furing(["compile", join(REPO, "test/fixtures/hello.ts"), "-o", join(base, "hellofs")], { TMPDIR: tmp, FURING_DEBUG: "1" });
      expect(d.stderr).toMatch(/\n\s+at .*compile\.ts:\d+/);
    } finally {
      await teardown(mnt, undefined);
    }
  });
});
