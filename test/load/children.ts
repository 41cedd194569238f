/**
 * Child processes that print JSON lines (the callers of the interrupt, crash and load tests):
 * collect their lines, wait for one with a bound, and kill whatever is left when the file ends.
 */
import type { Subprocess } from "bun";
import { readFile } from "node:fs/promises";
import { waitFor } from "../helpers/mount.ts";

export interface Child {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  pid: number;
  /** Every JSON line printed so far. */
  lines: Record<string, unknown>[];
  /** Waits (bounded) for a line matching `pred`; throws with what the child printed if none comes. */
  line(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  /** The last line printed. */
  last(): Record<string, unknown> | undefined;
  /** Waits up to `ms` for the child to exit; true if it did. */
  exited(ms: number): Promise<boolean>;
  stderr(): string;
}

const live = new Set<Child>();

/** Spawns `cmd` (stdin, stdout and stderr piped). */
export function spawnChild(cmd: string[]): Child {
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const lines: Record<string, unknown>[] = [];
  let err = "";
  void (async () => {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!l) continue;
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          err += `(stdout) ${l}\n`;
        }
      }
    }
  })().catch(() => {});
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) err += dec.decode(chunk, { stream: true });
  })().catch(() => {});
  const c: Child = {
    proc,
    pid: proc.pid,
    lines,
    async line(pred, ms = 10_000) {
      const ok = await waitFor(() => lines.some(pred), ms, 20);
      if (!ok) throw new Error(`\`${cmd.join(" ")}\` printed no expected line within ${ms} ms; lines: ${JSON.stringify(lines)}; stderr: ${err}`);
      return lines.find(pred)!;
    },
    last: () => lines[lines.length - 1],
    exited: (ms) => waitFor(() => proc.exitCode !== null || proc.signalCode !== null, ms, 20),
    stderr: () => err,
  };
  live.add(c);
  void proc.exited.then(() => live.delete(c));
  return c;
}

/** SIGKILLs every child still running (call from afterAll). */
export function killChildren(): void {
  for (const c of live) c.proc.kill("SIGKILL");
  live.clear();
}

/** The kernel-side state of `pid` ("R", "S", "D", ..., "gone") and where it sleeps. */
export async function procState(pid: number): Promise<{ state: string; wchan: string }> {
  try {
    const st = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = st.slice(st.lastIndexOf(")") + 2).split(" ")[0]!;
    const wchan = await readFile(`/proc/${pid}/wchan`, "utf8").catch(() => "");
    return { state, wchan };
  } catch {
    return { state: "gone", wchan: "" };
  }
}

/** Waits (bounded) until `pid` sleeps waiting for a FUSE answer; throws if it never does. */
export async function waitingOnFuse(pid: number, ms = 10_000): Promise<void> {
  const ok = await waitFor(async () => (await procState(pid)).wchan === "request_wait_answer", ms, 20);
  if (!ok) throw new Error(`process ${pid} never waited for a FUSE answer (${JSON.stringify(await procState(pid))})`);
}

/**
 * What the daemon's io_uring holds back: the CQEs in its CQ overflow list (from
 * /proc/<pid>/fdinfo). A completion stuck there is never seen by a reactor that reaps the CQ ring
 * from user space without entering the kernel; "" when there are none.
 */
export async function cqOverflow(pid: number): Promise<string> {
  const { readdir, readlink } = await import("node:fs/promises");
  let out = "";
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    if (!link.includes("io_uring")) continue;
    const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, "utf8").catch(() => "");
    const m = /CqOverflowList:\n((?:\s+user_data=.*\n)*)/.exec(info);
    if (m?.[1]?.trim()) out += `fd ${fd}: ${m[1].trim().replace(/\s+/g, " ")}; `;
  }
  return out;
}
