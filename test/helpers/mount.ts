/**
 * Real mounts for furing's own integration tests: the test kit's machinery (runtime/testing/mount.ts,
 * public as `furing/testing`) with the repository as the daemon's working directory, so plugin
 * paths such as "test/fixtures/hello.ts" resolve from the repository wherever `bun test` runs.
 *
 * The daemon always runs in a child process; every mount is torn down when its test ends, pass or
 * fail (SIGTERM, `umount -l`, SIGKILL, and a process-level safety net). The test's own thread never
 * blocks in a syscall on the mount: use `node:fs/promises` or the tools of ./run.ts on paths inside it.
 */
import { readFile } from "node:fs/promises";
import * as kit from "../../runtime/testing/mount.ts";
import type { Mount, MountOptions, WithMountOptions } from "../../runtime/testing/mount.ts";

export * from "../../runtime/testing/mount.ts";

export function mountFs(opts: MountOptions): Promise<Mount> {
  return kit.mountFs({ cwd: kit.REPO, ...opts });
}

export function withMount(opts: WithMountOptions, fn: (m: Mount) => Promise<void>): Promise<void> {
  return kit.withMount({ cwd: kit.REPO, ...opts }, fn);
}

export function spawnDaemon(args: string[], tmp?: string, command?: string[], cwd = kit.REPO): kit.Daemon {
  return kit.spawnDaemon(args, tmp, command, cwd);
}

/** Number of possible CPUs (/sys/devices/system/cpu/possible, e.g. "0-1" → 2): the io_uring queues. */
export async function possibleCpus(): Promise<number> {
  const text = (await readFile("/sys/devices/system/cpu/possible", "utf8")).trim();
  let n = 0;
  for (const part of text.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}
