/**
 * Daemons that go to the background: `furing mount --background`, and mount.fuse3
 * (mount -t, /etc/fstab).
 *
 * Daemons run in child processes; the test never makes a synchronous syscall on a mount. Anything
 * a test mounts or starts is torn down in `finally` (and by a process-exit safety net): the
 * harness is test/helpers/cli-daemon.ts.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, readlinkSync, lstatSync, unlinkSync, symlinkSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CLI, cleanupAll, cli, isMounted, makeTempDir, removeTempDir, waitFor } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { describeResult, run, type RunResult } from "../helpers/run.ts";
import {
  READY, tracked, track, pidAlive, teardown, mountEntry, mustFail, statusAll, statusOf,
} from "../helpers/cli-daemon.ts";
import { controlPath } from "../../runtime/control/socket.ts";

afterAll(cleanupAll);
// bunfig.toml's [test] timeout does not reach every runner; these tests mount and wait for daemons
setDefaultTimeout(60_000);

describe("--background", () => {
  test("returns once mounted and serving, logs to the default log file; `furing unmount` stops it", async () => {
    const dir = await makeTempDir("bg");
    let pid: number | undefined;
    track(dir, () => pid);
    try {
      const r = await cli(["mount", "memfs", dir, "--background", "-o", "fsname=bg-test"], 40_000);
      expect(r.code, describeResult(r)).toBe(0);
      pid = Number(/pid (\d+)/.exec(r.stderr)?.[1]);
      // mounted and serving the moment the command returns
      expect((await mountEntry(dir))?.source).toBe("bg-test");
      const s = await statusOf(dir);
      expect(s.state).toBe("serving");
      expect(s.pid).toBe(pid);
      expect(pidAlive(pid)).toBe(true);
      const log = controlPath(dir).replace(/\.sock$/, ".log");
      expect(r.stderr).toContain(log);
      expect(readFileSync(log, "utf8")).toContain(`${READY}${dir}`);
      await writeFile(join(dir, "f"), "bg");
      expect(await readFile(join(dir, "f"), "utf8")).toBe("bg");

      const u = await cli(["unmount", dir], 20_000);
      expect(u.code, describeResult(u)).toBe(0);
      expect(await isMounted(dir)).toBe(false);
      expect(await waitFor(() => !pidAlive(pid!), 10_000)).toBe(true);
      expect(readFileSync(log, "utf8")).toContain("unmounted, exiting");
    } finally {
      await teardown(dir, pid);
      await removeTempDir(dir);
    }
  });

  test("--log FILE and -d: the trace goes to the log file", async () => {
    const dir = await makeTempDir("bglog");
    const work = await makeTempDir("bglogdir");
    const log = join(work, "daemon.log");
    let pid: number | undefined;
    track(dir, () => pid);
    try {
      const r = await cli(["mount", "memfs", dir, "--background", "--log", log, "-d"], 40_000);
      expect(r.code, describeResult(r)).toBe(0);
      pid = Number(/pid (\d+)/.exec(r.stderr)?.[1]);
      await stat(join(dir, "probe-name")).catch(() => {});
      expect(await waitFor(() => /LOOKUP node=1 "probe-name"/.test(readFileSync(log, "utf8")), 5000)).toBe(true);
      expect((await stat(log)).mode & 0o777).toBe(0o600);
    } finally {
      await teardown(dir, pid);
      await removeTempDir(dir);
      await removeTempDir(work);
    }
  });

  test("a plugin that fails to start: exit 1 with the cause from the log, nothing mounted, no daemon left", async () => {
    const work = await makeTempDir("bgfail");
    const mnt = join(work, "mnt");
    await mkdir(mnt);
    const file = join(work, "broken.ts");
    await writeFile(file, `export default {\n  getattr( {\n};\n`);
    try {
      const before = new Set((await statusAll()).map((s) => s.pid));
      const r = await mustFail(["mount", file, mnt, "--background"], mnt, 40_000);
      expect(r.code, describeResult(r)).toBe(1);
      expect(r.mounted).toBe(false);
      expect(r.stderr).toContain(`${file}:`);
      expect(r.stderr).toMatch(/exited with 1/);
      expect((await statusAll()).filter((s) => !before.has(s.pid) && s.mountpoint === mnt)).toEqual([]);
    } finally {
      await removeTempDir(work);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(needsRoot("mount.fuse3 and /etc/fstab", "mount(8) and a furing link in /usr/local/sbin"))("mount.fuse3 and /etc/fstab", () => {
  /**
   * mount(8) runs helpers with an emptied environment (no PATH): mount.fuse3's `sh -c furing ...`
   * searches the shell's default path only. For `-t fuse.furing` and fstab lines a `furing` must be
   * there, so the test links /usr/local/sbin/furing for its duration (unless one is installed).
   * The `-t fuse '<path>#<source>'` form names the program and needs nothing installed.
   */
  const LINK = "/usr/local/sbin/furing";

  async function withFuringOnDefaultPath(fn: () => Promise<void>): Promise<void> {
    let made = false;
    let existing: string | null = null;
    try {
      existing = readlinkSync(LINK);
    } catch {
      try {
        lstatSync(LINK);
        existing = "(not a symlink)";
      } catch {}
    }
    if (existing === null) {
      symlinkSync(CLI, LINK);
      made = true;
      process.on("exit", () => { try { if (readlinkSync(LINK) === CLI) unlinkSync(LINK); } catch {} });
    }
    try {
      await fn();
    } finally {
      if (made) try { unlinkSync(LINK); } catch {}
    }
  }

  /** Mounted by mount(8): check it, use it, `furing unmount` it, and see the daemon exit. */
  async function checkHelperMount(dir: string, r: RunResult, fsname: string): Promise<void> {
    expect(r.code, describeResult(r)).toBe(0);
    const e = await mountEntry(dir);
    expect(e?.source).toBe(fsname);
    expect(e?.type).toMatch(/^fuse\./);
    const s = await statusOf(dir);
    const pid = s.pid as number;
    track(dir, () => pid);
    expect(s.state).toBe("serving");
    expect(s.plugin).toBe("memfs");
    await writeFile(join(dir, "f"), "via mount.fuse3");
    expect(await readFile(join(dir, "f"), "utf8")).toBe("via mount.fuse3");
    const u = await cli(["unmount", dir], 20_000);
    expect(u.code, describeResult(u)).toBe(0);
    expect(await waitFor(() => !pidAlive(pid), 10_000), "the daemon outlived its mount").toBe(true);
  }

  async function cleanup(dir: string): Promise<void> {
    const s = await cli(["status", dir, "--json"], 10_000);
    const pid = s.code === 0 ? (JSON.parse(s.stdout).pid as number) : tracked.get(dir)?.pid();
    await teardown(dir, pid);
    await removeTempDir(dir);
  }

  test("`mount -t fuse '<furing>#memfs' <dir> -o ...` backgrounds once mounted", async () => {
    const bin = await makeTempDir("bin");
    const dir = await makeTempDir("mountfuse");
    try {
      const furing = join(bin, "furing");
      symlinkSync(CLI, furing);
      const r = await run(["mount", "-t", "fuse", `${furing}#memfs`, dir, "-o", "fsname=hash-form,noatime,nosuid,nodev,_netdev,nofail,defaults"], { timeoutMs: 40_000 });
      await checkHelperMount(dir, r, "hash-form");
    } finally {
      await cleanup(dir);
      await removeTempDir(bin);
    }
  });

  test("`mount -t fuse.furing memfs <dir> -o ...`", async () => {
    const dir = await makeTempDir("mountfusefuring");
    try {
      await withFuringOnDefaultPath(async () => {
        const r = await run(["mount", "-t", "fuse.furing", "memfs", dir, "-o", "fsname=typed-form,noexec,allow_other"], { timeoutMs: 40_000 });
        expect((await mountEntry(dir))?.options ?? [], describeResult(r)).toContain("noexec");
        await checkHelperMount(dir, r, "typed-form");
      });
    } finally {
      await cleanup(dir);
    }
  });

  test("an fstab line (`mount -T <fstab> <dir>`) mounts with its options", async () => {
    const dir = await makeTempDir("fstab");
    const work = await makeTempDir("fstabfile");
    try {
      const fstab = join(work, "fstab");
      await writeFile(fstab, `# test fstab\nmemfs  ${dir}  fuse.furing  rw,nosuid,nodev,noexec,noatime,_netdev,nofail,fsname=from-fstab,max_read=65536  0  0\n`);
      await withFuringOnDefaultPath(async () => {
        const r = await run(["mount", "-T", fstab, dir], { timeoutMs: 40_000 });
        const e = await mountEntry(dir);
        for (const o of ["noexec", "noatime", "max_read=65536"]) expect(e?.options ?? [], describeResult(r)).toContain(o);
        await checkHelperMount(dir, r, "from-fstab");
      });
    } finally {
      await cleanup(dir);
      await removeTempDir(work);
    }
  });
});
