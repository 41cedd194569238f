/**
 * The test kit for plugin authors (`furing/testing`), used the way an author's `bun test` uses
 * it: a plugin mounted by a daemon in a child process over each transport, a mountpoint handed to
 * the test, and the mount always gone afterwards: when the body passes, when it throws, when it
 * hangs past its timeout, and when the runner itself is stopped by a signal.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll as kitCleanupAll, isMounted, mountFs, transports, unmountFs, waitFor, withMount, type Mount } from "furing/testing";
import { REPO } from "../helpers/mount.ts";

afterAll(kitCleanupAll);

const HELLO = join(REPO, "test/fixtures/hello.ts");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The mount is gone, its daemon has exited and its directory is removed. */
async function gone(m: Pick<Mount, "dir" | "daemon">): Promise<void> {
  expect(await isMounted(m.dir)).toBe(false);
  expect(m.daemon.alive()).toBe(false);
  expect(await readdir(m.dir).catch((e) => e.code)).toBe("ENOENT");
}

for (const transport of transports()) {
  describe(`furing/testing over ${transport}`, () => {
    test("withMount serves the plugin at a mountpoint in a child daemon, then unmounts", async () => {
      let seen: Mount | undefined;
      await withMount({ plugin: HELLO, transport }, async (m) => {
        seen = m;
        expect(m.transport).toBe(transport);
        expect(m.daemon.pid).not.toBe(process.pid);
        expect(m.ready).toContain(`transport ${transport}`);
        expect(await readFile(join(m.dir, "hello"), "utf8")).toBe("hello, world\n");
        const st = await m.status();
        expect(st.transport).toBe(transport);
        expect(st.requests[transport]).toBeGreaterThan(0);
      });
      await gone(seen!);
    });

    test("a failing body still unmounts, and the error carries the daemon's output", async () => {
      let seen: Mount | undefined;
      const err = await withMount({ plugin: "memfs", transport }, async (m) => {
        seen = m;
        await writeFile(join(m.dir, "f"), "x");
        throw new Error("the assertion failed");
      }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain("the assertion failed");
      expect((err as Error).message).toContain(`--- daemon output (${transport}, was running) ---`);
      expect((err as Error).message).toContain("furing: ready ");
      await gone(seen!);
    });

    test("a body that hangs is cut off at its timeout and the mount torn down", async () => {
      let seen: Mount | undefined;
      const t0 = Date.now();
      const err = await withMount({ plugin: "memfs", transport, timeoutMs: 1500 }, async (m) => {
        seen = m;
        await new Promise(() => {});
      }).catch((e: Error) => e);
      expect((err as Error).message).toContain("test body did not finish within 1500 ms");
      expect(Date.now() - t0).toBeLessThan(15_000);
      await gone(seen!);
    });

    test("mountFs/unmountFs by hand; unmountFs twice is harmless", async () => {
      const m = await mountFs({ plugin: "memfs", transport, args: ["--size", "16m"] });
      try {
        await writeFile(join(m.dir, "a"), "data");
        expect(await readFile(join(m.dir, "a"), "utf8")).toBe("data");
      } finally {
        await unmountFs(m);
      }
      await unmountFs(m);
      await gone(m);
    });

    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      test(`a runner stopped by ${sig} takes its mounts down (the kit's safety net)`, async () => {
        const proc = Bun.spawn([process.execPath, join(REPO, "test/fixtures/kit-runner.ts"), "memfs", transport], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
        let out = "";
        const reader = (async () => {
          for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk);
        })();
        try {
          if (!(await waitFor(() => /MOUNTED \S+ \d+\n/.test(out) || proc.exitCode !== null, 30_000)))
            throw new Error(`the runner did not mount: ${out}${await new Response(proc.stderr).text()}`);
          const [, dir, pid] = /MOUNTED (\S+) (\d+)/.exec(out)!;
          expect(await isMounted(dir!)).toBe(true);
          proc.kill(sig);
          await proc.exited;
          expect(proc.exitCode).toBe(128 + (sig === "SIGINT" ? 2 : 15));
          expect(await isMounted(dir!)).toBe(false);
          expect(await waitFor(() => !alive(Number(pid)), 5000)).toBe(true);
          expect(await readdir(dir!).catch((e) => e.code)).toBe("ENOENT");
        } finally {
          proc.kill("SIGKILL");
          await reader.catch(() => {});
        }
      }, 60_000);
    }
  });
}
