/**
 * `furing mount --background` and the mount.fuse3 calling convention: start the daemon as a
 * detached copy of this program in the foreground mode, wait until it serves, and return.
 */
import { closeSync, readFileSync } from "node:fs";
import { controlPath, queryStatus } from "../control/socket.ts";
import { ensureRuntimeDir, openLogFile } from "../control/rundir.ts";
import { MountError } from "../mount/mount.ts";

/** How to run this program again: the compiled binary itself, or bun with the CLI script. */
export function selfCommand(): string[] {
  const standalone = Bun.main.startsWith("/$bunfs/") || !/\bbun(\.exe)?$/.test(process.execPath);
  return standalone ? [process.execPath] : [process.execPath, Bun.main];
}

/** Default log file of a background daemon (next to its control socket; creates the runtime directory). */
export function backgroundLogPath(mountpoint: string): string {
  ensureRuntimeDir();
  return controlPath(mountpoint, ".log");
}

/** Spawn `mount <args>` detached, logging to `logFile`; resolves when it serves `mountpoint`. */
export async function startInBackground(mountArgs: string[], mountpoint: string, logFile: string): Promise<number> {
  const fd = openLogFile(logFile);
  const proc = Bun.spawn([...selfCommand(), "mount", ...mountArgs, "--foreground"], {
    stdio: ["ignore", fd, fd],
    detached: true,
  } as Parameters<typeof Bun.spawn>[1]);
  closeSync(fd);
  let exited: number | null = null;
  void proc.exited.then((c) => (exited = c));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited !== null) break;
    const s = (await queryStatus(mountpoint, 1000)) as { state?: string; pid?: number } | null;
    if (s !== null && s.pid === proc.pid && s.state === "serving") {
      proc.unref();
      return proc.pid;
    }
    await Bun.sleep(50);
  }
  const tail = readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n");
  if (exited === null) proc.kill("SIGKILL");
  throw new MountError(`background daemon for ${mountpoint} ${exited !== null ? `exited with ${exited}` : "did not become ready in 30 s"}; log ${logFile}:\n${tail}`);
}
