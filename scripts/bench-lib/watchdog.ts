/**
 * Lost-request watchdog. A client of ours blocked in the kernel waiting for a FUSE reply
 * (`request_wait_answer`) for several seconds while the daemon serving that mount reports no
 * request in flight means the daemon never picked the request up (a lost wake-up): nothing will
 * ever answer it. Rather than wait for the command's time limit, the watchdog kills the blocked
 * client's process tree and reports the hang, naming the daemon; the runner then tears that daemon
 * down. A slow plugin (requests in flight) is never flagged.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { queryStatus } from "../../runtime/control/socket.ts";
import type { Daemon } from "./mounts.ts";

export interface Hang {
  daemon: Daemon;
  pid: number;
  comm: string;
  blockedMs: number;
  status: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Where a task sleeps while it waits for a FUSE reply (/proc/PID/task/TID/wchan). */
const FUSE_WAITS = new Set(["request_wait_answer", "fuse_direct_IO", "fuse_direct_io"]);

/** All processes descending from `root` (not `root` itself), except those under `skip`. */
function descendants(root: number, skip: Set<number>): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = read(`/proc/${e}/stat`);
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    parent.set(Number(e), Number(f[1]));
  }
  const out: number[] = [];
  for (const pid of parent.keys()) {
    if (skip.has(pid)) continue;
    let p = parent.get(pid);
    for (let depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (skip.has(p)) break; // a daemon's own helpers (its unmount child) are not clients
      if (p === root) {
        out.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

/** Does process `pid` refer to a path under `dir` (command line, cwd, open descriptors)? */
function touches(pid: number, dir: string): boolean {
  const prefix = dir + "/";
  const hit = (p: string) => p === dir || p.startsWith(prefix);
  if (read(`/proc/${pid}/cmdline`).split("\0").some((a) => a.includes(prefix) || a === dir)) return true;
  try {
    if (hit(readlinkSync(`/proc/${pid}/cwd`))) return true;
  } catch {}
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (hit(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
      } catch {}
    }
  } catch {}
  return false;
}

/** Voluntary context switches of all of a process's threads (each wake from a wait adds one). */
function switches(pid: number): number {
  let n = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const t of tasks) n += Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(read(`/proc/${pid}/task/${t}/status`))?.[1] ?? 0);
  return n;
}

export class Watchdog {
  private timer: Timer | undefined;
  /** Per client blocked at every sample: since when, and its context switches then. */
  private since = new Map<number, { t0: number; switches: number }>();
  private busy = false;
  readonly hangs: Hang[] = [];

  constructor(
    private readonly daemons: () => Daemon[],
    private readonly onHang: (h: Hang) => void,
    private readonly thresholdMs = 5000,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.since.clear();
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = Date.now();
      const daemons = this.daemons();
      const daemonPids = new Set(daemons.map((d) => d.pid));
      const blocked = new Set<number>();
      for (const pid of descendants(process.pid, daemonPids)) {
        let tasks: string[] = [];
        try {
          tasks = readdirSync(`/proc/${pid}/task`);
        } catch {}
        if (tasks.some((t) => FUSE_WAITS.has(read(`/proc/${pid}/task/${t}/wchan`).trim()))) blocked.add(pid);
      }
      for (const pid of [...this.since.keys()]) if (!blocked.has(pid)) this.since.delete(pid);
      for (const pid of blocked) if (!this.since.has(pid)) this.since.set(pid, { t0: now, switches: switches(pid) });
      for (const [pid, w] of this.since) {
        if (now - w.t0 < this.thresholdMs) continue;
        // A client that sleeps in request_wait_answer at every sample may still be making
        // progress (a stat storm from another vCPU spends nearly all its time there, see
        // docs/benchmarks.md, "Robustness"): if it was
        // woken since, it is slow, not stuck. A lost request leaves it asleep, never woken.
        const sw = switches(pid);
        if (sw !== w.switches) {
          this.since.set(pid, { t0: now, switches: sw });
          continue;
        }
        const t0 = w.t0;
        const d = daemons.find((x) => x.alive() && touches(pid, x.dir));
        if (!d) continue;
        const st = (await queryStatus(d.dir, 2000).catch(() => null)) as { inflight?: number; requests?: unknown; reactor?: unknown } | null;
        if (st && st.inflight !== 0) continue; // the plugin is working on it: slow, not lost
        const h: Hang = {
          daemon: d, pid, comm: read(`/proc/${pid}/comm`).trim(), blockedMs: now - t0,
          status: st ? `inflight 0, requests ${JSON.stringify(st.requests)}, reactor ${JSON.stringify(st.reactor)}` : "status: no answer",
        };
        this.since.delete(pid);
        this.hangs.push(h);
        this.onHang(h);
      }
    } finally {
      this.busy = false;
    }
  }
}

export function describeHang(h: Hang): string {
  return `lost request: ${h.comm} (pid ${h.pid}) waited ${(h.blockedMs / 1000).toFixed(0)} s for a FUSE reply from the ${h.daemon.transport} daemon (pid ${h.daemon.pid}, -o ${h.daemon.options.join(",") || "-"}), which reports ${h.status}`;
}
