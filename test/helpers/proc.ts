/**
 * A daemon's memory, read from /proc and its control socket (never through the mount), for the
 * tests and the scripts that measure it.
 */
import { readFile } from "node:fs/promises";
import { queryStatus } from "../../runtime/control/socket.ts";

/** VmRSS of `pid` in KiB (throws naming the pid if it has none: the process is gone or a zombie). */
export async function rssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status (has the process exited?)`);
  return Number(m[1]);
}

/**
 * The daemon's status after a full GC (control socket `gc`), twice with a pause (finalizers and the
 * allocator free more the second time), so memory figures are what is retained rather than when
 * the collector last ran.
 */
export async function gcStatus(mountpoint: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  await queryStatus(mountpoint, timeoutMs, "gc");
  await Bun.sleep(500);
  const s = (await queryStatus(mountpoint, timeoutMs, "gc")) as Record<string, unknown> | null;
  if (s === null) throw new Error(`the daemon serving ${mountpoint} did not answer on its control socket`);
  return s;
}

/** RSS (KiB) of the daemon `pid` serving `mountpoint`, after {@link gcStatus}. */
export async function settledRssKiB(pid: number, mountpoint: string): Promise<number> {
  await gcStatus(mountpoint);
  return rssKiB(pid);
}
