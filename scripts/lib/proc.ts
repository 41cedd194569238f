/**
 * Processes and memory for the scripts: the daemon's RSS (shared with the tests), and the frame
 * every script runs in, so that a failed check or a thrown error always ends in a non-zero exit.
 */
import { describeResult, run } from "../../test/helpers/run.ts";

export { gcStatus, rssKiB, settledRssKiB } from "../../test/helpers/proc.ts";

/** KiB as "12.3 MiB". */
export const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

/**
 * Runs a script's body and exits: 0 when it returns true (its check held), 1 when it returns false
 * or throws (the error printed as `name: message`). Never returns.
 */
export async function runScript(name: string, body: () => Promise<boolean>): Promise<never> {
  let ok = false;
  try {
    ok = await body();
  } catch (e) {
    console.error(`${name}: ${(e as Error).message}`);
  }
  process.exit(ok ? 0 : 1);
}

/** Compiles a C client with gcc (-O2) to `out`; throws with gcc's message when it fails. */
export async function compileC(source: string, out: string, flags: string[] = []): Promise<string> {
  const r = await run(["gcc", "-O2", ...flags, "-o", out, source], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`compiling ${source}: ${describeResult(r)}`);
  return out;
}
