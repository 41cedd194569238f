/** What more than one group of operations needs: creating a named node, O_NOATIME handles. */
import { type OpenReply, type Request, S_IFDIR, S_IFMT, S_IFREG, S_ISGID } from "furing";
import { type Node, addEntry, newNode, setMtime, tick } from "../nodes.ts";
import type { MemfsState } from "../state.ts";

export function isReg(n: Node): boolean {
  return (n.mode & S_IFMT) === S_IFREG;
}

/**
 * Create node `name` in directory `p` (already checked: live directory, new valid name) owned by
 * the caller; the group and, for directories, S_ISGID come from a set-group-ID parent.
 */
export function make(state: MemfsState, req: Request, p: Node, name: string, mode: number): Node {
  let gid = req.gid;
  if ((p.mode & S_ISGID) !== 0) {
    gid = p.gid;
    if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID;
  }
  tick(state);
  const n = newNode(state, mode, req.uid, gid);
  addEntry(p, name, n);
  setMtime(p);
  return n;
}

/** open(2)'s O_NOATIME (not in the furing constants). */
export const O_NOATIME = 0o1000000;
export const NOATIME_FH = 1;
export const NOATIME_OPEN: OpenReply = Object.freeze({ fh: NOATIME_FH });
