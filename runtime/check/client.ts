/**
 * The parent's handle on an executor child process (./executor.ts): sends requests as JSON lines,
 * matches answers by id, and kills the child when a request takes longer than its timeout (a
 * syscall stuck on a hung mount). Nothing here touches a mount itself.
 */
import type { Subprocess } from "bun";
import { join, resolve } from "node:path";
import type { Op, Result } from "./ops.ts";
import type { Snapshot } from "./executor.ts";
import { isStandalone } from "../standalone.ts";

/** The hidden command of the furing binary that runs an executor (runtime/cli/main.ts). */
export const EXECUTOR_COMMAND = "__check-executor";

/** How to start an executor: bun with executor.ts from source, the binary itself when compiled. */
function executorCommand(): { cmd: string[]; cwd?: string } {
  if (isStandalone()) return { cmd: [process.execPath, EXECUTOR_COMMAND] };
  return { cmd: [process.execPath, join(import.meta.dir, "executor.ts")], cwd: resolve(import.meta.dir, "../..") };
}

export class ExecutorError extends Error {}

export class Executor {
  private proc: Subprocess<"pipe", "pipe", "pipe">;
  private next = 1;
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; timer: Timer; what: string }>();
  private err = "";
  private dead: Error | undefined;
  /** Default timeout of one request (ms). */
  timeoutMs: number;

  /** `cpu`: pin the executor to that CPU (taskset), so its requests go to that CPU's queue. */
  constructor(readonly name: string, timeoutMs = 20_000, cpu?: number) {
    this.timeoutMs = timeoutMs;
    const { cmd, cwd } = executorCommand();
    const pin = cpu === undefined ? [] : ["taskset", "-c", String(cpu)];
    this.proc = Bun.spawn([...pin, ...cmd], { cwd, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const proc = this.proc;
    void this.pump();
    void (async () => {
      const d = new TextDecoder();
      for await (const chunk of proc.stderr) {
        this.err += d.decode(chunk, { stream: true });
        if (this.err.length > 20000) this.err = this.err.slice(-10000);
      }
    })().catch(() => {});
    this.proc.exited.then((code) => this.fail(new ExecutorError(`executor ${this.name} exited (code ${code}, signal ${this.proc.signalCode})${this.err ? `: ${this.err.trim()}` : ""}`)));
  }

  private async pump(): Promise<void> {
    const d = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of this.proc.stdout) {
        buf += d.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let msg: any;
          try {
            msg = JSON.parse(line);
          } catch {
            continue;
          }
          const p = this.pending.get(msg.i);
          if (p === undefined) continue;
          this.pending.delete(msg.i);
          clearTimeout(p.timer);
          if (msg.error !== undefined) p.reject(new ExecutorError(`executor ${this.name}: ${p.what}: ${msg.error}`));
          else p.resolve(msg);
        }
      }
    } catch {}
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.dead);
    }
    this.pending.clear();
  }

  /** Sends one request; rejects on error, on executor death and after `timeoutMs` (killing it). */
  request(msg: Record<string, unknown>, what: string, timeoutMs = this.timeoutMs): Promise<any> {
    if (this.dead) return Promise.reject(this.dead);
    const i = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new ExecutorError(`executor ${this.name}: ${what} did not finish within ${timeoutMs} ms (killed)`));
        this.proc.kill("SIGKILL");
      }, timeoutMs);
      this.pending.set(i, { resolve, reject, timer, what });
      this.proc.stdin.write(JSON.stringify({ i, ...msg }) + "\n");
      this.proc.stdin.flush();
    });
  }

  async setRoot(path: string): Promise<void> {
    await this.request({ c: "root", path }, `root ${path}`);
  }

  async op(op: Op): Promise<Result> {
    return (await this.request({ c: "op", op }, `op ${op.k}`)).r as Result;
  }

  async snapshot(): Promise<Snapshot> {
    return (await this.request({ c: "snap" }, "snapshot", Math.max(this.timeoutMs, 60_000))).snap as Snapshot;
  }

  async zeros(s: number, from: number, to: number): Promise<{ zero: boolean; size: number }> {
    const r = await this.request({ c: "zeros", s, from, to }, "zeros");
    return { zero: r.zero as boolean, size: r.size as number };
  }

  /** A whole small file (up to 64 MiB). */
  async readFile(path: string): Promise<Buffer> {
    const r = await this.request({ c: "read", path }, `read ${path}`, 120_000);
    return Buffer.from(r.data as string, "base64");
  }

  async reset(): Promise<void> {
    await this.request({ c: "reset" }, "reset");
  }

  async wipe(path: string): Promise<void> {
    await this.request({ c: "wipe", path }, `wipe ${path}`, 120_000);
  }

  /** Ends the child (closing its descriptors) and waits for it. */
  async close(): Promise<void> {
    if (!this.dead) {
      this.proc.stdin.end();
      const t = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await this.proc.exited;
      clearTimeout(t);
    } else {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
    }
  }
}
