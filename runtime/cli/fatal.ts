/**
 * How the command line ends on an error: one line on stderr naming the operation, the path and
 * the cause, and an exit status (2 for usage errors, 1 otherwise), never a stack trace. Set
 * FURING_DEBUG=1 to get the stack as well.
 */
import { UsageError } from "../mount/options.ts";
import { MountError } from "../mount/mount.ts";
import { PluginError, errorLocation } from "../host/loader.ts";
import { ReactorError } from "../session/reactors.ts";
import { mapStack } from "../host/sourcemap.ts";
import { systemCause } from "../control/rundir.ts";

/** The one line for `e`, raised while `prog` ran the operation `op` (a command name). */
export function fatalLine(prog: string, op: string | undefined, e: unknown): string {
  if (e instanceof UsageError || e instanceof MountError || e instanceof PluginError || e instanceof ReactorError) return `${prog}: ${e.message}`;
  const who = op ? `${prog} ${op}` : prog;
  const err = e as NodeJS.ErrnoException;
  // a node:fs / OS error: syscall, path and errno say what went wrong where
  if (typeof err?.code === "string" && typeof err.syscall === "string") {
    const path = err.path ? ` ${err.path}` : "";
    return `${who}: ${err.syscall}${path}: ${systemCause(e)}`;
  }
  const where = mapStack(errorLocation(e));
  const what = e instanceof Error ? `${e.name}: ${e.message.split("\n")[0]}` : String(e);
  return `${who}: internal error: ${what}${where ? ` (at ${where})` : ""}`;
}

/** Print the line for `e` (and its stack under FURING_DEBUG) and exit with its status. */
export function exitOnError(prog: string, op: string | undefined, e: unknown): never {
  console.error(fatalLine(prog, op, e));
  if (process.env.FURING_DEBUG && e instanceof Error && e.stack) console.error(mapStack(e.stack));
  process.exit(e instanceof UsageError ? 2 : 1);
}

/**
 * Route exceptions thrown outside the command's promise chain (a callback, a stray promise) to
 * {@link exitOnError} too. A serving daemon replaces these with its own, which keep it serving.
 */
export function catchStrayErrors(prog: string, op: string | undefined): void {
  process.on("uncaughtException", (e) => exitOnError(prog, op, e));
  process.on("unhandledRejection", (e) => exitOnError(prog, op, e));
}
