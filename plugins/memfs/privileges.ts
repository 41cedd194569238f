/**
 * Clearing setuid/setgid when a file changes, as tmpfs does. memfs declares `killPrivileges`, so
 * the kernel (FUSE_HANDLE_KILLPRIV_V2) leaves it to us and says when: `killSuidgid` on write,
 * open/create with O_TRUNC, truncate and chown (and the SETATTR with nothing in it that carries
 * the kernel's own file_remove_privs() and chown(f, -1, -1)).
 */
import { readFileSync } from "node:fs";
import { S_IFMT, S_IFDIR, S_ISGID, S_ISUID, type Request } from "furing";
import type { Node } from "./nodes.ts";

const S_IXGRP = 0o010;

/**
 * The Linux VFS rule (setattr_should_drop_suidgid, since 6.2): S_ISUID goes; S_ISGID goes when
 * the file is group-executable, or when the caller is neither in the file's group nor privileged.
 * `capable`: the caller has CAP_FSETID. The kernel tells write, open and truncate only to callers
 * without it (pass false); for chown it asks regardless, and root stands for privileged.
 * Directories keep both bits. Returns whether the mode changed.
 */
export function killPrivileges(req: Request, n: Node, capable: boolean): boolean {
  const m = n.mode;
  if ((m & (S_ISUID | S_ISGID)) === 0 || (m & S_IFMT) === S_IFDIR) return false;
  let kill = S_ISUID;
  if ((m & S_ISGID) !== 0 && ((m & S_IXGRP) !== 0 || (!capable && !inGroup(req, n.gid)))) kill |= S_ISGID;
  n.mode = m & ~kill;
  return n.mode !== m;
}

/**
 * Is `gid` the caller's fsgid or one of its supplementary groups? FUSE requests carry only the
 * fsgid; the supplementary groups are read from /proc (rarely: only for a set-group-ID file
 * without group-execute, written by someone outside its group). Unknown counts as not a member,
 * which clears the bit: the safe side.
 */
function inGroup(req: Request, gid: number): boolean {
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
