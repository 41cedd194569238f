/**
 * Which furing this is: the package version and the git commit it was built from.
 *
 * A build (scripts/build, `furing compile`) inlines the commit with a `define` of
 * `process.env.FURING_BUILD_COMMIT`; from source it is read with git at run time ("source" when
 * the tree is not a git checkout).
 */
import { resolve } from "node:path";
import pkg from "../../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

const REPO = resolve(import.meta.dir, "../..");

/** `git rev-parse --short HEAD` of the source tree, plus "-dirty" if it has changes; null without git. */
export function gitCommit(dir = REPO): string | null {
  try {
    const head = Bun.spawnSync(["git", "-C", dir, "rev-parse", "--short", "HEAD"], { stdout: "pipe", stderr: "ignore" });
    if (head.exitCode !== 0) return null;
    const sha = head.stdout.toString().trim();
    const st = Bun.spawnSync(["git", "-C", dir, "status", "--porcelain", "--untracked-files=normal"], { stdout: "pipe", stderr: "ignore" });
    const dirty = st.exitCode === 0 && st.stdout.toString().trim() !== "";
    return sha + (dirty ? "-dirty" : "");
  } catch {
    return null;
  }
}

let cached: string | undefined;
/** The commit this program was built from (inlined by the build), else the source tree's, else "source". */
export function commit(): string {
  if (cached !== undefined) return cached;
  const built = process.env.FURING_BUILD_COMMIT;
  return (cached = built !== undefined && built !== "" ? built : (gitCommit() ?? "source"));
}

/** `furing 0.1.0 (commit 1a2b3c4, bun 1.4.4)` */
export function versionLine(name = "furing"): string {
  return `${name} ${VERSION} (commit ${commit()}, bun ${Bun.version})`;
}
