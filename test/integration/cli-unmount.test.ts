/**
 * `furing unmount [-z]` (and its alias `umount`): errors naming the path, busy mounts, and
 * recovery after the daemon was SIGKILLed.
 *
 * lifecycle.test.ts covers signals, external unmounts and the busy-on-SIGTERM case; this file
 * does not repeat those.
 *
 * Daemons run in child processes; the test never makes a synchronous syscall on a mount. Anything
 * a test mounts or starts is torn down in `finally` (and by a process-exit safety net): the
 * harness is test/helpers/cli-daemon.ts.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, cli, isMounted, makeTempDir, removeTempDir, type Daemon } from "../helpers/mount.ts";
import { describeResult } from "../helpers/run.ts";
import { ALL, teardown, startDaemon, withDaemon, statusAll, statusOf } from "../helpers/cli-daemon.ts";
import { controlPath } from "../../runtime/control/socket.ts";

afterAll(cleanupAll);
// bunfig.toml's [test] timeout does not reach every runner; these tests mount and wait for daemons
setDefaultTimeout(60_000);

describe("furing unmount", () => {
  test("of a directory that is not mounted, a missing path, or a non-FUSE mount: exit 1 naming the path", async () => {
    const dir = await makeTempDir("notmounted");
    try {
      const cases: Array<[string, RegExp]> = [
        [dir, /not mounted/],
        [join(dir, "missing"), /not mounted/],
        ["/proc", /not a FUSE mount \(proc\)/],
      ];
      for (const [p, msg] of cases) {
        const r = await cli(["unmount", p]);
        expect(r.code, describeResult(r)).toBe(1);
        const lines = r.stderr.trim().split("\n");
        expect(lines.length).toBe(1);
        expect(lines[0]).toContain(p);
        expect(lines[0]).toMatch(msg);
      }
    } finally {
      await removeTempDir(dir);
    }
  });

  test("a busy mount: plain unmount fails naming the holder and keeps serving; -z detaches it", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir],
      async (dir, d) => {
        await writeFile(join(dir, "f"), "busy");
        const holder = Bun.spawn(["sleep", "60"], { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
        try {
          await Bun.sleep(100);
          const r = await cli(["unmount", dir], 20_000);
          expect(r.code, describeResult(r)).toBe(1);
          expect(r.stderr).toContain(dir);
          expect(r.stderr).toMatch(/busy/);
          expect(r.stderr).toContain(`${holder.pid} (sleep)`);
          expect(r.stderr).toContain("-z");
          expect(await isMounted(dir)).toBe(true);
          expect(await readFile(join(dir, "f"), "utf8")).toBe("busy");

          const z = await cli(["unmount", "-z", dir], 20_000);
          expect(z.code, describeResult(z)).toBe(0);
          expect(await isMounted(dir)).toBe(false);
          holder.kill("SIGKILL");
          await holder.exited;
          expect(await d.waitExit(15_000), "the daemon should exit once the detached mount's last user left").toBe(true);
          expect(d.proc.exitCode).toBe(0);
        } finally {
          holder.kill("SIGKILL");
          await holder.exited;
        }
      },
    );
  });

  for (const transport of ALL) {
    test(`after SIGKILL of the daemon (${transport}): status drops it, a new mount is refused until \`furing unmount\` recovers the mountpoint, then a new mount works there`, async () => {
      const dir = await makeTempDir("recover");
      const io = ["-o", transport === "classic" ? "io_uring=off" : "io_uring=on"];
      let d: Daemon | undefined;
      let d2: Daemon | undefined;
      try {
        d = await startDaemon(["mount", "memfs", dir, ...io], dir);
        await writeFile(join(dir, "old"), "gone with the daemon");
        expect((await statusAll()).some((s) => s.mountpoint === dir && s.pid === d!.pid)).toBe(true);
        d.signal("SIGKILL");
        expect(await d.waitExit(10_000)).toBe(true);
        expect(await isMounted(dir)).toBe(true);

        // status: the dead daemon is not listed, and asking for it is a clear error
        expect((await statusAll()).some((s) => s.mountpoint === dir)).toBe(false);
        const st = await cli(["status", dir], 15_000);
        expect(st.code).toBe(1);
        expect(st.stderr).toContain(dir);

        // mounting over the dead mount is refused with a hint
        const again = await cli(["mount", "memfs", dir], 20_000);
        expect(again.code, describeResult(again)).not.toBe(0);
        expect(again.stderr).toContain(`furing unmount ${dir}`);

        const u = await cli(["unmount", dir], 20_000);
        expect(u.code, describeResult(u)).toBe(0);
        expect(await isMounted(dir)).toBe(false);
        expect(existsSync(controlPath(dir)), "the dead daemon's control socket is removed").toBe(false);

        d2 = await startDaemon(["mount", "memfs", dir, ...io], dir);
        expect(await readdir(dir)).toEqual([]);
        await writeFile(join(dir, "new"), "fresh");
        expect(await readFile(join(dir, "new"), "utf8")).toBe("fresh");
        const listed = (await statusAll()).filter((s) => s.mountpoint === dir);
        expect(listed.map((s) => s.pid)).toEqual([d2.pid]);
        expect((await statusOf(dir)).transport).toBe(transport);
      } catch (e) {
        (e as Error).message += `\n--- first daemon ---\n${d?.output() ?? ""}\n--- second daemon ---\n${d2?.output() ?? ""}`;
        throw e;
      } finally {
        await teardown(dir, d2?.alive() ? d2.pid : undefined);
        await removeTempDir(dir);
      }
    });
  }
});
