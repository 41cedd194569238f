/**
 * furing's runtime directory: where control sockets and background logs live. `/run/furing` for
 * root, `$XDG_RUNTIME_DIR/furing-UID` (or `/tmp/furing-UID`) for a normal user, or
 * `$FURING_RUNTIME_DIR`. /run is a tmpfs emptied at every boot, so the first mount after a boot
 * creates it; in a shared /tmp someone else may have made that name first, so an existing entry is
 * used only when it is a real directory (not a symlink) owned by us.
 */
import { chmodSync, lstatSync, mkdirSync, openSync, readlinkSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { MountError } from "../mount/mount.ts";

/** The runtime directory cannot be made or is not ours: one line naming it and the cause. */
export class RuntimeDirError extends MountError {
  constructor(message: string) {
    super(message);
    this.name = "RuntimeDirError";
  }
}

/** `ENOENT (no such file or directory)` from a node:fs error, or the message of anything else. */
export function systemCause(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === "string" && typeof err.message === "string") {
    // node:fs messages read "ENOENT: no such file or directory, open '/x'": keep code and text
    const m = /^([A-Z0-9]+): ([^,]+)/.exec(err.message);
    return m ? `${m[2]} (${m[1]})` : `${err.message} (${err.code})`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Where the runtime directory is, whether or not it exists. */
export function runtimeDirPath(): string {
  const override = process.env.FURING_RUNTIME_DIR;
  if (override) return resolve(override);
  const uid = process.geteuid!();
  if (uid === 0) return "/run/furing";
  const xdg = process.env.XDG_RUNTIME_DIR;
  return join(xdg && isAbsolute(xdg) ? xdg : "/tmp", `furing-${uid}`);
}

/** Throws unless `dir` (which exists) is a directory, not a symlink, owned by us; tightens it to 0700. */
function checkOwnDir(dir: string): void {
  const st = lstatSync(dir);
  const uid = process.geteuid!();
  if (st.isSymbolicLink()) {
    let to = "?";
    try {
      to = readlinkSync(dir);
    } catch {}
    throw new RuntimeDirError(`runtime directory ${dir}: is a symbolic link (to ${to}); furing uses only a real directory of its own there: remove it`);
  }
  if (!st.isDirectory()) throw new RuntimeDirError(`runtime directory ${dir}: exists and is not a directory; remove it`);
  if (st.uid !== uid) throw new RuntimeDirError(`runtime directory ${dir}: belongs to uid ${st.uid}, not to uid ${uid}; refusing to keep control sockets there (remove it, or set FURING_RUNTIME_DIR)`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/** The runtime directory, created (mode 0700) when absent; throws a {@link RuntimeDirError} otherwise. */
export function ensureRuntimeDir(): string {
  const dir = runtimeDirPath();
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new RuntimeDirError(`cannot create the runtime directory ${dir}: its parent ${dirname(dir)} does not exist`);
    if (code !== "EEXIST") throw new RuntimeDirError(`cannot create the runtime directory ${dir}: ${systemCause(e)}`);
  }
  try {
    checkOwnDir(dir);
  } catch (e) {
    if (e instanceof RuntimeDirError) throw e;
    throw new RuntimeDirError(`runtime directory ${dir}: ${systemCause(e)}`);
  }
  return dir;
}

/** For readers (status, unmount): the runtime directory if it exists (and is ours), else null. */
export function existingRuntimeDir(): string | null {
  const dir = runtimeDirPath();
  try {
    lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new RuntimeDirError(`runtime directory ${dir}: ${systemCause(e)}`);
  }
  checkOwnDir(dir);
  return dir;
}

/** Opens (creating, 0600) a log file for appending; a clear error when it cannot. */
export function openLogFile(path: string): number {
  try {
    return openSync(path, "a", 0o600);
  } catch (e) {
    throw new MountError(`cannot open the log file ${path}: ${systemCause(e)}`);
  }
}
