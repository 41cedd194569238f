/** `furing status [<dir>] [--json]`: what each furing daemon is doing. */
import { resolve } from "node:path";
import { UsageError } from "../mount/options.ts";
import { queryStatus, querySocket, listControlSockets } from "../control/socket.ts";
import { MountError } from "../mount/mount.ts";

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
    workers: ({ index: number; cpus: number[]; queues?: string; transport?: string; requests?: { io_uring: number; classic: number }; inflight?: number; generation?: number; error?: string })[];
  };
  ops: Record<string, { count: number; errors: number; p50_us: number; p99_us: number }>;
}

function render(s: Status): string {
  const lines = [
    `${s.mountpoint}: ${s.plugin} (pid ${s.pid}), transport ${s.transport}${s.transport === "io_uring" ? ` ${s.queues}x${s.depth}` : ""}, up ${s.uptime_s}s`,
    `  ${s.transportReason}`,
    `  requests: io_uring ${s.requests.io_uring}, classic ${s.requests.classic}`,
    ...(s.reactors !== undefined ? reactorLines(s) : s.reactor && s.transport === "io_uring" ? [`  reactor CPU: ${s.reactor.cpu}, ${s.reactor.cpuMoves} moves`] : []),
    `  ${"op".padEnd(16)}${"count".padStart(10)}${"errors".padStart(8)}${"p50µs".padStart(8)}${"p99µs".padStart(8)}`,
  ];
  for (const [op, o] of Object.entries(s.ops)) lines.push(`  ${op.padEnd(16)}${String(o.count).padStart(10)}${String(o.errors).padStart(8)}${String(o.p50_us).padStart(8)}${String(o.p99_us).padStart(8)}`);
  return lines.join("\n");
}

/** One line per reactor: the main thread (what stays single) and each Worker (its CPUs, queues, requests). */
function reactorLines(s: Status): string[] {
  const r = s.reactors!;
  const lines = [`  reactors: main thread (${r.main.serves}): ${r.main.requests} requests; ${r.count} Workers:`];
  for (const w of r.workers) {
    const where = `    Worker ${w.index} on CPU ${w.cpus.join(",") || "any"}`;
    if (w.error !== undefined) lines.push(`${where}: ${w.error}`);
    else lines.push(`${where}${w.transport === "io_uring" ? `, queue${w.queues!.includes("-") ? "s" : ""} ${w.queues}` : ", cloned /dev/fuse"}: ${w.requests!.io_uring + w.requests!.classic} requests, ${w.inflight} in flight, generation ${w.generation}`);
  }
  return lines;
}

export async function statusCommand(argv: string[]): Promise<number> {
  let json = false;
  const dirs: string[] = [];
  for (const a of argv) {
    if (a === "--json") json = true;
    else if (a === "-h" || a === "--help") {
      console.log(`Usage:\n${STATUS_USAGE}\n\nShows plugin, transport, queue layout, uptime and per-op counts and latencies.`);
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
