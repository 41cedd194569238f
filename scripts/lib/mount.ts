/**
 * Mounts for the scripts: the tests' harness (test/helpers/mount.ts: daemon in a child process,
 * torn down whatever happens, a safety net on exit and signals), with no time limit on the body.
 */
import { withMount, type Mount, type WithMountOptions } from "../../test/helpers/mount.ts";

export { cleanupAll, mountFs, mountServer, transports, unmountFs, type Mount, type Status, type Transport } from "../../test/helpers/mount.ts";

/** {@link withMount} for a script: mounts, runs `fn` as long as it takes, always unmounts. */
export function withScriptMount(opts: Omit<WithMountOptions, "timeoutMs">, fn: (m: Mount) => Promise<void>): Promise<void> {
  return withMount({ ...opts, timeoutMs: 2 ** 31 - 1 }, fn);
}
