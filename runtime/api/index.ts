/**
 * The public API of furing: what plugins import as `furing`. Types and docs live in ./types.ts.
 */
export type * from "./types.ts";
export { RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT } from "./types.ts";
export { Errno, FuseError, errnoName, type ErrnoName } from "./errno.ts";
export * from "./constants.ts";
export { callerInGroup, modeAfterKill } from "./privileges.ts";
export { atimeModeFor, atimeNeedsUpdate } from "./atime.ts";
export { nameFromBytes, nameToBytes, nameByteLength, writeName, isNameString } from "./names.ts";

import type { Filesystem, Plugin } from "./types.ts";

/** Identity helper that gives a filesystem object literal full type checking and completion. */
export function defineFilesystem<F extends Filesystem>(fs: F): F {
  return fs;
}

/** Identity helper for a plugin with options and a setup step. */
export function definePlugin<O = Record<string, unknown>>(plugin: Plugin<O>): Plugin<O> {
  return plugin;
}
export { Mutex, AtomicCounter, SharedHeap, NumberMap, StringMap, hashString, equalUnits, writeUnits, readUnits, lockOps } from "./shared.ts";
export { defineTree, staticTree, timespec, timeNs, now, fail, type Tree, type TreePlugin, type Stat, type Changes, type Time, type StaticDir } from "./tree.ts";
