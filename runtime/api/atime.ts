/**
 * The mount's access-time rules, as the kernel's touch_atime applies them to a local filesystem
 * (the kernel leaves atime to a FUSE server): one implementation for memfs, the high-level API
 * (tree.ts) and any plugin that keeps access times. Numbers in, a boolean out: no allocation.
 */
import type { AtimeMode } from "./types.ts";

/** The mode that applies to a node: `-o nodiratime` makes it "noatime" for directories. */
export function atimeModeFor(atime: AtimeMode, nodiratime: boolean, dir: boolean): AtimeMode {
  return dir && nodiratime ? "noatime" : atime;
}

/**
 * Whether an access (read, readdir, readlink) updates a node's atime under `mode`: never with
 * noatime; always with strictatime; with relatime when atime is not newer than mtime or ctime,
 * or is a day (86400 s) older than `nowSec` (relatime_need_update). The kernel then also skips
 * an update to the very time atime already holds.
 */
export function atimeNeedsUpdate(mode: AtimeMode, aSec: number, aNsec: number, mSec: number, mNsec: number, cSec: number, cNsec: number, nowSec: number): boolean {
  if (mode === "noatime") return false;
  if (mode === "strictatime") return true;
  return aSec < mSec || (aSec === mSec && aNsec <= mNsec) || aSec < cSec || (aSec === cSec && aNsec <= cNsec) || nowSec - aSec >= 86400;
}
