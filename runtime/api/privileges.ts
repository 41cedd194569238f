/**
 * Helpers for filesystems that declare `killPrivileges` (FUSE_HANDLE_KILLPRIV_V2): the kernel then
 * leaves clearing setuid/setgid to the filesystem and says when (`killSuidgid`). Exported through
 * `furing`, so every plugin applies the same rule.
 */
import { readFileSync } from "node:fs";
import { S_IFMT, S_IFDIR, S_ISGID, S_ISUID } from "./constants.ts";

const S_IXGRP = 0o010;

/**
 * Is `gid` the caller's fsgid or one of its supplementary groups? FUSE requests carry only the
 * fsgid; the supplementary groups are read from /proc/PID/status (so call it only when the answer
 * matters). Unknown counts as not a member.
 */
export function callerInGroup(req: { gid: number; pid: number }, gid: number): boolean {
  if (req.gid === gid) return true;
  if (req.pid <= 0) return false;
  let status: string;
  try {
    status = readFileSync(`/proc/${req.pid}/status`, "latin1");
  } catch {
    return false;
  }
  const m = /\nGroups:([^\n]*)/.exec(status);
  if (m === null) return false;
  const want = String(gid);
  for (const g of (m[1] as string).trim().split(/\s+/)) if (g === want) return true;
  return false;
}

/**
 * `mode` after the kill the Linux VFS applies (setattr_should_drop_suidgid, since 6.2): S_ISUID
 * goes; S_ISGID goes when the file is group-executable, or when the caller is neither in the
 * file's group `gid` nor privileged. `capable`: the caller has CAP_FSETID (the kernel tells write,
 * open and truncate only to callers without it; for chown, root stands for privileged).
 * Directories keep both bits.
 */
export function modeAfterKill(req: { gid: number; pid: number }, mode: number, gid: number, capable: boolean): number {
  if ((mode & (S_ISUID | S_ISGID)) === 0 || (mode & S_IFMT) === S_IFDIR) return mode;
  let kill = S_ISUID;
  if ((mode & S_ISGID) !== 0 && ((mode & S_IXGRP) !== 0 || (!capable && !callerInGroup(req, gid)))) kill |= S_ISGID;
  return mode & ~kill;
}
