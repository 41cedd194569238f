/**
 * `--typecheck`: each generation's own files go through the TypeScript compiler (in a Worker, so
 * a check never stalls serving) before the generation may serve. Type errors reject it with
 * file:line, as a syntax error does. TypeScript is a development dependency: where it cannot be
 * loaded (the single-file binary) the check says so instead of passing silently.
 */
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import { PluginError } from "./loader.ts";
import type { CheckAnswer, CheckRequest } from "./typecheck-worker.ts";

const WORKER_ENTRY = join(import.meta.dir, "typecheck-worker.ts");

export class TypeChecker {
  private worker: Worker | null = null;
  private next = 0;
  private readonly waiting = new Map<number, (a: CheckAnswer) => void>();

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    let w: Worker;
    try {
      w = new Worker(WORKER_ENTRY);
    } catch (e) {
      throw new PluginError(`--typecheck is not available in this program: its checker cannot start (${e instanceof Error ? e.message : String(e)})`);
    }
    w.on("message", (a: CheckAnswer) => {
      this.waiting.get(a.id)?.(a);
      this.waiting.delete(a.id);
    });
    w.on("error", (e: unknown) => this.failAll(`the type-check Worker failed: ${e instanceof Error ? e.message : String(e)}`));
    w.on("exit", () => {
      this.worker = null;
      this.failAll("the type-check Worker exited");
    });
    w.unref();
    return (this.worker = w);
  }

  private failAll(why: string): void {
    for (const [id, done] of this.waiting) done({ id, unavailable: why });
    this.waiting.clear();
  }

  /**
   * Type-check `inputs` (a generation's bundle inputs; those under node_modules are left out).
   * Resolves with the time it took; throws a PluginError listing the errors (file:line:col: TSnnnn).
   */
  async check(inputs: string[], what: string): Promise<number> {
    const files = inputs.filter((f) => !f.includes("/node_modules/") && /\.(ts|tsx|mts|cts)$/.test(f));
    if (files.length === 0) return 0;
    const w = this.start();
    const id = ++this.next;
    const answer = await new Promise<CheckAnswer>((res) => {
      this.waiting.set(id, res);
      w.postMessage({ id, files } satisfies CheckRequest);
    });
    if ("unavailable" in answer) throw new PluginError(`--typecheck: ${answer.unavailable}`);
    if (answer.errors.length > 0) {
      const shown = answer.errors.slice(0, 20);
      const more = answer.errors.length - shown.length;
      throw new PluginError(`${what} has ${answer.errors.length} type error${answer.errors.length === 1 ? "" : "s"} (--typecheck):\n  ${shown.join("\n  ")}${more > 0 ? `\n  ... and ${more} more` : ""}`);
    }
    return answer.ms;
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = null;
  }
}
