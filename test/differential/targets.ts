/**
 * Targets of furing's own differential suites: memfs against tmpfs (runtime/check/targets.ts,
 * shared with `furing check`) and passthrough against a native directory (here).
 */
import { makeTempDir, mountFs, removeTempDir, unmountFs, isMounted, type Mount, type Transport } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";
import { memfsRules } from "../../runtime/check/compare.ts";
import { liveRefs, memfsTarget, track, MEMFS_EXCLUDE, MEMFS_GEN, MEMFS_KNOWN, type Target, type TargetOptions } from "../../runtime/check/targets.ts";

export * from "../../runtime/check/targets.ts";

/** passthrough of a scratch directory (A) against another scratch directory on the same filesystem (B). */
export async function passthroughTarget(transport: Transport, o: TargetOptions = {}): Promise<Target> {
  const src = await makeTempDir("pt-source");
  const ref = await makeTempDir("pt-reference");
  // The reference is nodev like a FUSE mount (a bind mount of itself): device nodes made in it
  // never open a real device.
  track(ref);
  const dropRef = async () => {
    if (await isMounted(ref)) await run(["umount", "-l", ref], { timeoutMs: 20_000 });
    await removeTempDir(ref);
    liveRefs.delete(ref);
  };
  let mount: Mount;
  try {
    for (const cmd of [["mount", "--bind", ref, ref], ["mount", "-o", "remount,bind,nodev,nosuid", ref]]) {
      const r = await run(cmd, { timeoutMs: 20_000 });
      if (r.code !== 0) throw new Error(`cannot make the reference directory nodev (root needed): ${describeResult(r)}`);
    }
    mount = await mountFs({ plugin: o.plugin ?? "passthrough", transport, options: ["allow_other"], args: ["--source", src, "--no-watch"] });
  } catch (e) {
    await removeTempDir(src).catch(() => {});
    await dropRef().catch(() => {});
    throw e;
  }
  return {
    name: "passthrough",
    reference: "a native directory",
    transport,
    a: mount.dir,
    b: ref,
    rules: {
      ...memfsRules,
      // ext4 & co. hold extent-tree and preallocated blocks that depend on how the writes came in
      blocks: "never",
      // both directories share one filesystem, whose free counts move under both
      statfs: ["bsize", "frsize", "blocks", "files", "namemax"],
      statfsFree: false,
      inodesReused: true,
    },
    exclude: MEMFS_EXCLUDE,
    known: MEMFS_KNOWN,
    // passthrough kills privileges itself too (FUSE_HANDLE_KILLPRIV_V2): every mode
    gen: MEMFS_GEN,
    mount,
    async close() {
      const errors: string[] = [];
      await unmountFs(mount).catch((e) => errors.push(e.message));
      await removeTempDir(src).catch((e) => errors.push(e.message));
      await dropRef().catch((e) => errors.push(e.message));
      if (errors.length) throw new Error(errors.join("\n"));
    },
  };
}

export function openTarget(name: "memfs" | "passthrough", transport: Transport, o: TargetOptions = {}): Promise<Target> {
  return name === "memfs" ? memfsTarget(transport, o) : passthroughTarget(transport, o);
}
