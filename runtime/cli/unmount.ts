/** `furing unmount [-z] <dir>`: unmount, including a dead mount whose daemon was killed. */
import { resolve } from "node:path";
import { UsageError } from "../mount/options.ts";
import { rmSync } from "node:fs";
import { findMount, umountNow, MountError } from "../mount/mount.ts";
import { controlPath, queryStatus } from "../control/socket.ts";
import { RuntimeDirError } from "../control/rundir.ts";

export const UNMOUNT_USAGE = "  furing unmount [-z] <mountpoint>";

export async function unmountCommand(argv: string[]): Promise<number> {
  let lazy = false;
  const dirs: string[] = [];
  for (const a of argv) {
    if (a === "-z" || a === "--lazy") lazy = true;
    else if (a === "-h" || a === "--help") {
      console.log(`Usage:\n${UNMOUNT_USAGE}\n\nUnmounts a furing (or any FUSE) mount; also removes a dead mount\n("Transport endpoint is not connected") left by a killed daemon.\n  -z  detach lazily when the mount is busy`);
      return 0;
    } else if (a.startsWith("-")) throw new UsageError(`unmount: unknown flag '${a}'`);
    else dirs.push(a);
  }
  if (dirs.length !== 1) throw new UsageError(`unmount needs exactly one mountpoint\n${UNMOUNT_USAGE}`);
  const dir = resolve(dirs[0]!);
  const m = findMount(dir);
  if (m === undefined) throw new MountError(`${dir}: not mounted`);
  if (!m.fstype.startsWith("fuse")) throw new MountError(`${dir}: not a FUSE mount (${m.fstype})`);
  if (process.getuid!() === 0) umountNow(dir, lazy);
  else {
    const p = Bun.spawnSync(["fusermount3", "-u", ...(lazy ? ["-z"] : []), dir], { stderr: "pipe" });
    if (p.exitCode !== 0) throw new MountError(`${dir}: ${p.stderr.toString().trim()}`);
  }
  // a daemon killed with SIGKILL leaves its control socket behind (none to remove in a runtime
  // directory that is not ours: the unmount itself has succeeded)
  try {
    if ((await queryStatus(dir, 500)) === null) rmSync(controlPath(dir), { force: true });
  } catch (e) {
    if (!(e instanceof RuntimeDirError)) throw e;
  }
  return 0;
}
