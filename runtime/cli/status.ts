/** `furing status [<dir>] [--json]`: what each furing daemon is doing. */
import { resolve } from "node:path";
import { UsageError } from "../mount/options.ts";
import { queryStatus, querySocket, listControlSockets } from "../control/socket.ts";
import { MountError } from "../mount/mount.ts";
import { isExpectedError } from "../dispatch/stats.ts";
import { Errno } from "../api/errno.ts";
import { Op } from "../kernel/abi.ts";

const opcodeOf = (name: string): number => (Op as Record<string, number>)[name.toUpperCase()] ?? -1;
/** "ENOENT" → 2; unnamed ones are "E<n>" (the last slot "E255+"). */
const errnoOf = (name: string): number => (Errno as Record<string, number>)[name] ?? Number(/^E(\d+)/.exec(name)?.[1] ?? -1);

export const STATUS_USAGE = "  furing status [<mountpoint>] [--json]";

interface Status {
  mountpoint: string;
  plugin: string;
  pid: number;
  transport: string;
  transportReason: string;
  queues: number;
  depth: number;
  uptime_s: number;
  requests: { io_uring: number; classic: number };
  reactor?: { cpu: string; cpuMoves: number };
  reactors?: {
    count: number;
    main: { requests: number; serves: string };
    workers: ({ index: number; cpus: number[]; queues?: string; transport?: string; fixedBuffers?: string; requests?: { io_uring: number; classic: number }; inflight?: number; generation?: number; sched?: { policy: string; starvedMoves: number; note?: string }; error?: string })[];
  };
  generation?: number;
  generationLoadedAt?: string;
  reloads?: number;
  rejectedReloads?: number;
  lastReloadError?: string | null;
  lastReloadErrorAt?: string | null;
  watching?: boolean;
  ops: Record<string, { count: number; errors: number; failures: number; expected: number; errnos: Record<string, number>; p50_us: number; p99_us: number }>;
}

/** "2026-12-07 15:20:01 UTC (41 s ago)". */
function when(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  const ago = Math.max(0, Math.round((now - t) / 1000));
  return `${iso.slice(0, 19).replace("T", " ")} UTC (${ago < 120 ? `${ago} s` : ago < 7200 ? `${Math.round(ago / 60)} min` : `${Math.round(ago / 3600)} h`} ago)`;
}

/** The plugin's generation, when it loaded, reloads, and the last reload error. */
function generationLines(s: Status): string[] {
  if (s.generation === undefined) return [];
  const lines = [`  generation ${s.generation}${s.generationLoadedAt ? `, loaded ${when(s.generationLoadedAt)}` : ""}; ${s.reloads ?? 0} reloads, ${s.rejectedReloads ?? 0} rejected; ${s.watching === false ? "not watching (--no-watch)" : "reloads on edit"}`];
  if (s.lastReloadError) lines.push(`  last reload error${s.lastReloadErrorAt ? ` (${when(s.lastReloadErrorAt)})` : ""}: ${s.lastReloadError.replaceAll("\n", "\n    ")}`);
  else lines.push("  last reload error: none");
  return lines;
}

/** Error replies by errno, per op: failures first, then expected answers (ENOENT from lookup, ...). */
function errnoLines(s: Status): string[] {
  const lines: string[] = [];
  const list = (e: [string, number][]) => e.map(([n, k]) => `${n} ${k}`).join(", ");
  for (const [op, o] of Object.entries(s.ops)) {
    if (o.errors === 0 || o.errnos === undefined) continue;
    const all = Object.entries(o.errnos).sort((a, b) => b[1] - a[1]);
    const exp = new Set(expectedNames(op, o));
    const failed = all.filter(([n]) => !exp.has(n)), expected = all.filter(([n]) => exp.has(n));
    const parts = [...(failed.length > 0 ? [`failed ${list(failed)}`] : []), ...(expected.length > 0 ? [`expected ${list(expected)}`] : [])];
    lines.push(`    ${op}: ${parts.join("; ")}`);
  }
  return lines.length === 0 ? [] : ["  error replies by errno:", ...lines];
}

/** Which of an op's errnos the daemon counted as expected (its counts tell: failures + expected = errors). */
function expectedNames(op: string, o: Status["ops"][string]): string[] {
  return Object.keys(o.errnos).filter((n) => isExpectedError(opcodeOf(op), errnoOf(n)));
}

function render(s: Status): string {
  const lines = [
    `${s.mountpoint}: ${s.plugin} (pid ${s.pid}), transport ${s.transport}${s.transport === "io_uring" ? ` ${s.queues}x${s.depth}` : ""}, up ${s.uptime_s}s`,
    `  ${s.transportReason}`,
    ...generationLines(s),
    `  requests: io_uring ${s.requests.io_uring}, classic ${s.requests.classic}`,
    ...(s.reactors !== undefined ? reactorLines(s) : s.reactor && s.transport === "io_uring" ? [`  reactor CPU: ${s.reactor.cpu}, ${s.reactor.cpuMoves} moves`] : []),
    `  ${"op".padEnd(16)}${"count".padStart(10)}${"failed".padStart(8)}${"expected".padStart(10)}${"p50µs".padStart(8)}${"p99µs".padStart(8)}`,
  ];
  for (const [op, o] of Object.entries(s.ops)) lines.push(`  ${op.padEnd(16)}${String(o.count).padStart(10)}${String(o.failures ?? o.errors).padStart(8)}${String(o.expected ?? 0).padStart(10)}${String(o.p50_us).padStart(8)}${String(o.p99_us).padStart(8)}`);
  lines.push(...errnoLines(s));
  return lines.join("\n");
}

/** One line per reactor: the main thread (what stays single) and each Worker (its CPUs, queues, requests). */
function reactorLines(s: Status): string[] {
  const r = s.reactors!;
  const lines = [`  reactors: main thread (${r.main.serves}): ${r.main.requests} requests; ${r.count} Workers:`];
  for (const w of r.workers) {
    const where = `    Worker ${w.index} on CPU ${w.cpus.join(",") || "any"}`;
    if (w.error !== undefined) lines.push(`${where}: ${w.error}`);
    else lines.push(`${where}${w.transport === "io_uring" ? `, queue${w.queues!.includes("-") ? "s" : ""} ${w.queues}` : ", cloned /dev/fuse"}: ${w.requests!.io_uring + w.requests!.classic} requests, ${w.inflight} in flight, generation ${w.generation}${w.transport === "io_uring" && w.fixedBuffers !== undefined ? `; fixed buffers ${w.fixedBuffers}` : ""}${schedLine(w.sched)}`);
  }
  return lines;
}

/** A Worker's scheduling class: SCHED_IDLE under the starvation guard, or why not. */
function schedLine(c: { policy: string; starvedMoves: number; note?: string } | undefined): string {
  if (c === undefined) return "";
  if (c.note !== undefined) return `; ${c.policy} (${c.note})`;
  return `; ${c.policy}${c.starvedMoves > 0 ? ` (moved to the normal class ${c.starvedMoves} time${c.starvedMoves === 1 ? "" : "s"} while another task kept its CPU)` : ""}`;
}

export async function statusCommand(argv: string[]): Promise<number> {
  let json = false;
  const dirs: string[] = [];
  for (const a of argv) {
    if (a === "--json") json = true;
    else if (a === "-h" || a === "--help") {
      console.log(`Usage:\n${STATUS_USAGE}\n\nShows plugin, transport, queue layout, uptime, the plugin's generation (when it loaded, the last
reload error), per-op counts and latencies, and error replies by errno: failures apart from
expected answers (ENOENT from lookup, ENODATA from getxattr, ENOSYS for ops the plugin lacks, ...).`);
      return 0;
    } else if (a.startsWith("-")) throw new UsageError(`status: unknown flag '${a}'`);
    else dirs.push(a);
  }
  const all: Status[] = [];
  if (dirs.length > 0) {
    for (const d of dirs) {
      const s = (await queryStatus(resolve(d))) as Status | null;
      if (s === null) throw new MountError(`${resolve(d)}: no furing daemon answers for this mountpoint`);
      all.push(s);
    }
  } else {
    // in parallel, briefly: one hung daemon must not make status slow
    const found = await Promise.all(listControlSockets().map((p) => querySocket(p, 1000)));
    for (const s of found) if (s !== null) all.push(s as Status);
  }
  if (json) console.log(JSON.stringify(dirs.length === 1 ? all[0] : all, null, 2));
  else console.log(all.length === 0 ? "no furing mounts" : all.map(render).join("\n\n"));
  return 0;
}
