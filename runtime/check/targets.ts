/**
 * The two roots of a differential run: A, the FUSE mount under test (daemon in a child process,
 * through the test kit's harness), and B, the reference: a fresh tmpfs (memfs, and any plugin
 * under `furing check`); passthrough's native-directory target is in test/differential/targets.ts.
 * Both are torn down by `close()`, whatever happened.
 */
import { makeTempDir, mountFs, removeTempDir, unmountFs, isMounted, type Mount, type Transport } from "../testing/mount.ts";
import { describeResult, run } from "../testing/run.ts";
import { memfsRules, type Rules } from "./compare.ts";
import { FALLOC_FL_ZERO_RANGE, type Op, type OpKind } from "./ops.ts";
import type { GeneratorOptions } from "./generator.ts";

/** "memfs", "passthrough", or the plugin `furing check` was given. */
export type TargetName = string;

/**
 * Reference mounts still up (tmpfs, nodev bind mounts): detached if the process exits or is
 * interrupted before `close()` (the harness does the same for the FUSE mounts).
 */
export const liveRefs = new Set<string>();
let netSet = false;
export function track(dir: string): void {
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
  /** What B is, for reports ("tmpfs", "a native directory"). */
  reference: string;
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

/** Any plugin (A) against a fresh tmpfs (B): what `furing check` runs. */
export interface TmpfsTargetOptions {
  plugin: string;
  /** The plugin's own options (after the mountpoint). */
  pluginArgs?: string[];
  /** tmpfs size= and nr_inodes= (default 2g and 100000). */
  size?: string;
  inodes?: number;
  rules: Rules;
  exclude?: OpKind[];
  gen?: Partial<GeneratorOptions>;
  /** Name in reports (default: the plugin). */
  name?: string;
  /** The daemon's working directory (a relative plugin path is resolved from it). */
  cwd?: string;
}

/**
 * Not intended, not yet fixed: each entry says what differs; the op kinds involved are left out
 * of memfs runs (MEMFS_EXCLUDE) until it is fixed. Remove both when it is.
 */
export const MEMFS_KNOWN: string[] = [];
export const MEMFS_EXCLUDE: OpKind[] = [];
/** memfs and passthrough kill privileges themselves (FUSE_HANDLE_KILLPRIV_V2), so runs use every mode. */
export const MEMFS_GEN: Partial<GeneratorOptions> = { userOp: fuseUserOp };
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
export function fuseUserOp(op: Op): boolean {
  if ((op.k === "chown" || op.k === "fchown") && op.u === -1 && op.g === -1) return false;
  return !(op.k === "fallocate" && (op.mode & FALLOC_FL_ZERO_RANGE) !== 0);
}

/** memfs (A) against a fresh tmpfs (B) with the same size and inode limits. */
export function memfsTarget(transport: Transport, o: TargetOptions = {}): Promise<Target> {
  const size = o.size ?? "2g";
  const inodes = o.inodes ?? 100_000;
  return tmpfsTarget(transport, {
    plugin: o.plugin ?? "memfs", name: "memfs", pluginArgs: ["--size", size, "--inodes", String(inodes)], size, inodes,
    rules: memfsRules, exclude: MEMFS_EXCLUDE, gen: MEMFS_GEN,
  });
}

/** A plugin (A) against a fresh tmpfs (B) with the given size and inode limits. */
export async function tmpfsTarget(transport: Transport, o: TmpfsTargetOptions): Promise<Target> {
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
    mount = await mountFs({ plugin: o.plugin, transport, options: ["allow_other"], args: [...(o.pluginArgs ?? []), "--no-watch"], ...(o.cwd ? { cwd: o.cwd } : {}) });
  } catch (e) {
    await dropRef();
    throw e;
  }
  return {
    name: o.name ?? o.plugin,
    reference: "tmpfs",
    transport,
    a: mount.dir,
    b: ref,
    rules: o.rules,
    exclude: o.exclude ?? [],
    known: o.name === "memfs" ? MEMFS_KNOWN : [],
    gen: o.gen ?? MEMFS_GEN,
    mount,
    async close() {
      const errors: string[] = [];
      await unmountFs(mount).catch((e) => errors.push(e.message));
      await dropRef().catch((e) => errors.push(e.message));
      if (errors.length) throw new Error(errors.join("\n"));
    },
  };
}
