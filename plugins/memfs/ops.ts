/**
 * The filesystem operations, built around a state object (state.ts) and holding no other state,
 * so a new generation of the code can serve an existing tree. Split by concern in ops/: names.ts
 * (the namespace), attributes.ts, file-data.ts, handles.ts (open/create/release),
 * directories.ts (listings), xattrs.ts; common.ts holds what several of them use.
 *
 * Behaviour follows tmpfs, errno for errno, with the kernel's default_permissions doing the
 * mode checks (only `access` checks modes here, for mounts without default_permissions).
 * atime follows the mount's mode (ctx.atime, ctx.nodiratime) as tmpfs: read, readdir and
 * readlink update it with relatime (the default) when it is not newer than mtime/ctime or is a
 * day old, always with strictatime, never with noatime (nodiratime: never for directories).
 */
import { atimeModeFor, defineFilesystem, lockOps, type AtimeMode, type Filesystem } from "furing";
import type { MemfsState } from "./state.ts";
import { attributeOps } from "./ops/attributes.ts";
import { directoryOps } from "./ops/directories.ts";
import { fileDataOps } from "./ops/file-data.ts";
import { handleOps } from "./ops/handles.ts";
import { nameOps } from "./ops/names.ts";
import { xattrOps } from "./ops/xattrs.ts";

/** The mount's atime mode (ctx.atime and ctx.nodiratime); relatime when not given. */
export interface AtimeOptions {
  atime?: AtimeMode;
  nodiratime?: boolean;
}

export function createOps(state: MemfsState, mount: AtimeOptions = {}): Filesystem {
  // atime mode for files, and for directories (nodiratime: never)
  const fileAtime = atimeModeFor(mount.atime ?? "relatime", false, false);
  const dirAtime = atimeModeFor(mount.atime ?? "relatime", mount.nodiratime === true, true);
  return lockOps(state.lock, defineFilesystem({
    // setuid/setgid are cleared here (privileges.ts), when the kernel says so (killSuidgid)
    killPrivileges: true,
    // node ids are never reused (slot + generation), and lookup answers "." and ".." by id
    exportSupport: true,
    ...nameOps(state, fileAtime),
    ...attributeOps(state),
    ...handleOps(state),
    ...fileDataOps(state, fileAtime),
    ...directoryOps(state, dirAtime),
    ...xattrOps(state),
  }));
}
