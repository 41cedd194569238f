/**
 * The daemon's lifecycle as an operator sees it: signals, external unmounts, a killed daemon, a
 * busy mount, and bad command lines.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  cleanupAll,
  cli,
  isMounted,
  makeTempDir,
  mountFs,
  removeTempDir,
  transports,
  unmountFs,
  waitFor,
  withMount,
  withTempDir,
  type Mount,
  type MountOptions,
} from "../helpers/mount.ts";
import { run, sh } from "../helpers/run.ts";

afterAll(cleanupAll);

/** Mounts, runs `fn` (which may itself stop the daemon), and always tears down what is left. */
async function withRawMount(opts: MountOptions, fn: (m: Mount) => Promise<void>): Promise<void> {
  const m = await mountFs(opts);
  try {
    await fn(m);
  } catch (e) {
    (e as Error).message += `\n--- daemon output ---\n${m.log()}`;
    throw e;
  } finally {
    await unmountFs(m);
  }
}

/** The mount's state after a stop: daemon gone with `code`, nothing mounted, an empty plain dir. */
async function expectStopped(m: Mount, code = 0): Promise<void> {
  expect(await m.daemon.waitExit(15_000)).toBe(true);
  expect(m.daemon.proc.signalCode).toBeNull();
  expect(m.daemon.proc.exitCode).toBe(code);
  expect(await isMounted(m.dir)).toBe(false);
  expect(await readdir(m.dir)).toEqual([]);
}

for (const transport of transports()) {
  describe(`lifecycle over ${transport}`, () => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      test(`${sig} unmounts and the daemon exits 0`, async () => {
        await withRawMount({ transport }, async (m) => {
          await writeFile(join(m.dir, "f"), "data");
          m.daemon.signal(sig);
          await expectStopped(m);
        });
      });
    }

    for (const tool of [["umount"], ["fusermount3", "-u"]]) {
      test(`an external \`${tool.join(" ")}\` makes the daemon exit 0`, async () => {
        await withRawMount({ transport }, async (m) => {
          await writeFile(join(m.dir, "f"), "data");
          await sh([...tool, m.dir], { timeoutMs: 15_000 });
          await expectStopped(m);
        });
      });
    }

    test("a SIGKILLed daemon leaves a dead mount that `furing unmount` removes", async () => {
      await withRawMount({ transport }, async (m) => {
        await writeFile(join(m.dir, "f"), "data");
        m.daemon.signal("SIGKILL");
        expect(await m.daemon.waitExit(10_000)).toBe(true);
        expect(await isMounted(m.dir)).toBe(true);
        const dead = await run(["stat", m.dir], { timeoutMs: 10_000 });
        expect(dead.code).not.toBe(0);
        // ENOTCONN or ECONNABORTED (ECANCELED while the kernel tears a dead io_uring queue down).
        expect(dead.stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort|Operation canceled/);
        const r = await cli(["unmount", m.dir], 20_000);
        expect(r.code).toBe(0);
        expect(await isMounted(m.dir)).toBe(false);
        expect(await readdir(m.dir)).toEqual([]);
      });
    });

    test("a busy mount is reported and kept serving on SIGTERM; a second signal detaches it", async () => {
      await withRawMount({ transport }, async (m) => {
        await writeFile(join(m.dir, "f"), "still here");
        // A process whose working directory is inside the mount keeps it busy.
        const holder = Bun.spawn(["sleep", "120"], { cwd: m.dir, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
        try {
          await Bun.sleep(200);
          m.daemon.signal("SIGTERM");
          const said = await waitFor(() => /busy/i.test(m.log()), 10_000);
          expect(said, "the daemon did not say the mount is busy").toBe(true);
          expect(m.log(), "the busy message should name the process that holds the mount").toContain(String(holder.pid));
          await Bun.sleep(500);
          expect(m.daemon.alive()).toBe(true);
          expect(await isMounted(m.dir)).toBe(true);
          expect(await sh(["cat", join(m.dir, "f")], { timeoutMs: 10_000 })).toBe("still here");
          await sh(["touch", join(m.dir, "new")], { timeoutMs: 10_000 });

          m.daemon.signal("SIGTERM");
          expect(await waitFor(async () => !(await isMounted(m.dir)), 10_000)).toBe(true);
          // The detached filesystem lives on until its last user leaves; then the daemon exits 0.
          holder.kill("SIGKILL");
          await holder.exited;
          expect(await m.daemon.waitExit(15_000)).toBe(true);
          expect(m.daemon.proc.signalCode).toBeNull();
          expect(m.daemon.proc.exitCode).toBe(0);
        } finally {
          holder.kill("SIGKILL");
          await holder.exited;
        }
      });
    });
  });
}

describe("bad command lines", () => {
  /** Runs `furing mount ...` that is expected to fail; whatever it mounts by mistake is removed. */
  async function mountShouldFail(args: string[], dir: string) {
    const r = await cli(["mount", ...args], 20_000);
    if (await isMounted(dir)) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
    return r;
  }

  test("a missing mountpoint is a one-line error naming it, exit code != 0", async () => {
    await withTempDir(async (scratch) => {
      const dir = join(scratch, "does-not-exist");
      const r = await mountShouldFail(["memfs", dir], dir);
      expect(r.code).not.toBe(0);
      expect(r.timedOut).toBe(false);
      const lines = r.stderr.trim().split("\n");
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain(dir);
    });
  });

  test("a mountpoint that is not a directory is a one-line error naming it, exit code != 0", async () => {
    await withTempDir(async (scratch) => {
      const file = join(scratch, "plain-file");
      await writeFile(file, "x");
      const r = await mountShouldFail(["memfs", file], file);
      expect(r.code).not.toBe(0);
      expect(r.timedOut).toBe(false);
      const lines = r.stderr.trim().split("\n");
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain(file);
    });
  });

  test("a mountpoint that is already mounted is a one-line error naming it, and the mount keeps serving", async () => {
    await withMount({ transport: transports()[0]! }, async (m) => {
      await writeFile(join(m.dir, "f"), "first");
      const r = await cli(["mount", "memfs", m.dir], 20_000);
      expect(r.code).not.toBe(0);
      expect(r.timedOut).toBe(false);
      const lines = r.stderr.trim().split("\n");
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain(m.dir);
      expect(await sh(["cat", join(m.dir, "f")], { timeoutMs: 10_000 })).toBe("first");
    });
  });

  test("an unknown -o option is a usage error that names it and lists the valid ones", async () => {
    const dir = await makeTempDir("badopt");
    try {
      const r = await mountShouldFail(["memfs", dir, "-o", "allow_other,no_such_option"], dir);
      expect(r.code).not.toBe(0);
      expect(r.timedOut).toBe(false);
      expect(r.stderr).toContain("no_such_option");
      expect(r.stderr).toContain("entry_timeout");
      expect(await isMounted(dir)).toBe(false);
    } finally {
      await removeTempDir(dir);
    }
  });

  test("a bad option value is an error naming the option", async () => {
    const dir = await makeTempDir("badval");
    try {
      const r = await mountShouldFail(["memfs", dir, "-o", "entry_timeout=soon"], dir);
      expect(r.code).not.toBe(0);
      expect(r.timedOut).toBe(false);
      expect(r.stderr).toContain("entry_timeout");
      expect(await isMounted(dir)).toBe(false);
    } finally {
      await removeTempDir(dir);
    }
  });
});
