/**
 * Skips that say why. bun:test prints a skipped test's name but never the reason, so a run on a
 * normal user's machine or a one-CPU VM would look as if it covered what it did not. Wrap every
 * skip condition: `describe.skipIf(needsRoot("fstab mounts", "writes /etc/fstab"))(...)`.
 */
import { isRoot } from "./mount.ts";
import { postgresMissing } from "./postgres.ts";

const said = new Set<string>();

/** Returns `skip`; when it is true, prints (once) `skipping <what>: <why>` on stderr. */
export function skipIf(skip: boolean, what: string, why: string): boolean {
  const line = `furing tests: skipping ${what}: ${why}`;
  if (skip && !said.has(line)) {
    said.add(line);
    console.warn(line);
  }
  return skip;
}

/** Skip unless root; `why` says what needs root. */
export function needsRoot(what: string, why: string): boolean {
  return skipIf(!isRoot(), what, `needs root (${why}); running as uid ${process.getuid?.()}`);
}

/** Skip unless at least `n` CPUs are usable; `why` says what needs them. */
export function needsCpus(n: number, what: string, why: string): boolean {
  const have = navigator.hardwareConcurrency; // Bun counts the CPUs of this process's affinity mask
  return skipIf(have < n, what, `needs ${n} CPUs (${why}); this process may use ${have}`);
}

/** Skip unless PostgreSQL's server programs are installed (scripts/setup --with-postgres). */
export function needsPostgres(what: string): boolean {
  const why = postgresMissing();
  return skipIf(why !== undefined, what, why ?? "");
}
