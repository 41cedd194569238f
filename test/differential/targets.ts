/**
 * The two roots of a differential run: A, the FUSE mount under test (daemon in a child process,
 * through the test harness), and B, the reference: a fresh tmpfs for memfs, a plain directory
 * on the host filesystem for passthrough. Both are torn down by `close()`, whatever happened.
 */
import { makeTempDir, mountFs, removeTempDir, unmountFs, isMounted, type Mount, type Transport } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";
import { memfsRules, type Rules } from "./compare.ts";
import { FALLOC_FL_ZERO_RANGE, type Op, type OpKind } from "./ops.ts";
import type { GeneratorOptions } from "./generator.ts";

export type TargetName = "memfs" | "passthrough";

/**
 * Reference mounts still up (tmpfs, nodev bind mounts): detached if the process exits or is
 * interrupted before `close()` (the harness does the same for the FUSE mounts).
 */
const liveRefs = new Set<string>();
let netSet = false;
function track(dir: string): void {
  liveRefs.add(dir);
  if (netSet) return;
  netSet = true;
  process.on("exit", () => {
    for (const d of liveRefs) {
      try {
        Bun.spawnSync(["umount", "-l", d], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
        Bun.spawnSync(["rmdir", d], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
      } catch {}
    }
  });
}

export interface Target {
  name: TargetName;
  transport: Transport;
  /** Directory the runs' roots are created in, on A and on B. */
  a: string;
  b: string;
  rules: Rules;
  /** Op kinds left out, because the target does not support them yet (see `known`). */
  exclude: OpKind[];
  /** Known differences that are not intended (bugs or missing features), printed with each run. */
  known: string[];
  /** Generator settings that keep runs clear of the known differences. */
  gen: Partial<GeneratorOptions>;
  mount: Mount;
  close(): Promise<void>;
}

export interface TargetOptions {
  /** tmpfs size= and memfs --size (default 2g: large enough that the fast profiles never fill it). */
  size?: string;
  /** tmpfs nr_inodes= and memfs --inodes. */
  inodes?: number;
  /** Serve this plugin (a path, e.g. a modified copy of memfs) instead of the built-in one. */
  plugin?: string;
}

/**
 * Not intended, not yet fixed: each entry says what differs; the op kinds involved are left out
 * of memfs runs (MEMFS_EXCLUDE) until it is fixed. Remove both when it is.
 */
const MEMFS_KNOWN: string[] = [];
const MEMFS_EXCLUDE: OpKind[] = [];
/** memfs and passthrough kill privileges themselves (FUSE_HANDLE_KILLPRIV_V2), so runs use every mode. */
const MEMFS_GEN: Partial<GeneratorOptions> = { userOp: fuseUserOp };
/**
 * Intended (FUSE's kernel decides, not the daemon), so runs make these calls as root:
 * - a fallocate mode tmpfs refuses (ZERO_RANGE) by a caller without CAP_FSETID still clears
 *   S_ISUID/S_ISGID through FUSE, which removes privileges before it asks the daemon; tmpfs
 *   refuses first;
 * - chown(f, -1, -1) by someone other than the owner of a setuid/setgid file: tmpfs answers EPERM
 *   (clearing the bits is a mode change, for the owner only); with FUSE_HANDLE_KILLPRIV_V2 the
 *   kernel drops that mode change before its permission check and sends the daemon the same empty
 *   SETATTR as its own file_remove_privs() for a writer, so the call succeeds (memfs clears the
 *   bits then only while the file is open for writing).
 */
function fuseUserOp(op: Op): boolean {
  if ((op.k === "chown" || op.k === "fchown") && op.u === -1 && op.g === -1) return false;
  return !(op.k === "fallocate" && (op.mode & FALLOC_FL_ZERO_RANGE) !== 0);
}

/** memfs (A) against a fresh tmpfs (B) with the same size and inode limits. */
export async function memfsTarget(transport: Transport, o: TargetOptions = {}): Promise<Target> {
  const size = o.size ?? "2g";
  const inodes = o.inodes ?? 100_000;
  const ref = await makeTempDir("tmpfs");
  // nosuid,nodev like a FUSE mount; mode 755 like memfs's root
  const r = await run(["mount", "-t", "tmpfs", "-o", `size=${size},nr_inodes=${inodes},mode=755,nosuid,nodev`, "tmpfs", ref], { timeoutMs: 20_000 });
  if (r.code !== 0) {
    await removeTempDir(ref).catch(() => {});
    throw new Error(`cannot mount the reference tmpfs (root needed): ${describeResult(r)}`);
  }
  track(ref);
  const dropRef = async () => {
    if (await isMounted(ref)) {
      const u = await run(["umount", ref], { timeoutMs: 20_000 });
      if (u.code !== 0) await run(["umount", "-l", ref], { timeoutMs: 20_000 });
    }
    await removeTempDir(ref);
    liveRefs.delete(ref);
  };
  let mount: Mount;
  try {
    mount = await mountFs({ plugin: o.plugin ?? "memfs", transport, options: ["allow_other"], args: ["--size", size, "--inodes", String(inodes), "--no-watch"] });
  } catch (e) {
    await dropRef();
    throw e;
  }
  return {
    name: "memfs",
    transport,
    a: mount.dir,
    b: ref,
    rules: memfsRules,
    exclude: MEMFS_EXCLUDE,
    known: MEMFS_KNOWN,
    gen: MEMFS_GEN,
    mount,
    async close() {
      const errors: string[] = [];
      await unmountFs(mount).catch((e) => errors.push(e.message));
      await dropRef().catch((e) => errors.push(e.message));
      if (errors.length) throw new Error(errors.join("\n"));
    },
  };
}

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
    transport,
    a: mount.dir,
    b: ref,
    rules: {
      ...memfsRules,
      // ext4 & co. hold extent-tree and preallocated blocks that depend on how the writes came in
      blocks: "never",
      // and answer SEEK_DATA/SEEK_HOLE by those extents
      seek: "content",
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

export function openTarget(name: TargetName, transport: Transport, o: TargetOptions = {}): Promise<Target> {
  return name === "memfs" ? memfsTarget(transport, o) : passthroughTarget(transport, o);
}
