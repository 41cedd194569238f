/**
 * Clearing setuid/setgid when a file changes, as tmpfs does. memfs declares `killPrivileges`, so
 * the kernel (FUSE_HANDLE_KILLPRIV_V2) leaves it to us and says when: `killSuidgid` on write,
 * open/create with O_TRUNC, truncate and chown (and the SETATTR with nothing in it that carries
 * the kernel's own file_remove_privs() and chown(f, -1, -1)).
 */
import { modeAfterKill, type Request } from "furing";
import type { Node } from "./nodes.ts";

/**
 * Apply the Linux VFS rule (`modeAfterKill`) to `n`. `capable`: the caller has CAP_FSETID.
 * Returns whether the mode changed.
 */
export function killPrivileges(req: Request, n: Node, capable: boolean): boolean {
  const m = n.mode;
  n.mode = modeAfterKill(req, m, n.gid, capable);
  return n.mode !== m;
}
