/**
 * Directory listings: opendir, readdir, readdirplus, releasedir, fsyncdir.
 *
 * Directory offsets are per-directory cookies (see nodes.ts): "." is 1, ".." is 2, entries
 * get increasing cookies from 3 as they are added and never reuse them. Listings show "." and
 * "..", then the newest entry first, as tmpfs does (Linux 6.14 and later); a renamed entry
 * counts as new. As on tmpfs, an entry's offset is the cookie of the entry listed after it
 * (DIR_EOD, 2^31 - 1, after the last), so the end is above every other offset; resuming from
 * an offset lists the entries whose cookies are at most it, and an offset that was never a
 * cookie (other than DIR_EOD) never ends a listing early. Entries present throughout are
 * listed exactly once, entries added meanwhile are not.
 */
import { defineFilesystem, type AtimeMode, type DirList, type DirListPlus, type Request } from "furing";
import { ENOTDIR } from "../errors.ts";
import { type Node, accessed, entryName, entryNode, getNode, listStart, maybeFree, offsetOf, prevLive } from "../nodes.ts";
import { nodeById, type MemfsState } from "../state.ts";

/** `dirAtime`: the mount's atime mode for directories (atimeModeFor; nodiratime: noatime). */
export function directoryOps(state: MemfsState, dirAtime: AtimeMode) {
  return defineFilesystem({
    opendir(_req: Request, ino: number): undefined {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      n.opens++;
      return undefined;
    },

    readdir(_req: Request, ino: number, _fh: number, offset: number, out: DirList): void {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      if (n.nlink === 0) return; // removed while open: no entries
      accessed(n, dirAtime);
      // Each entry's offset is where the listing goes on: the next entry's cookie (DIR_EOD after
      // the last), as tmpfs reports them; listStart maps it back.
      let i = prevLive(n, listStart(n, offset));
      if (offset < 1 && !out.add(".", n.ino, n.mode, 1)) return;
      if (offset < 2) {
        const up = nodeById(state, n.parent) ?? n;
        if (!out.add("..", up.ino, up.mode, offsetOf(n, i))) return;
      }
      while (i >= 0) {
        const c = entryNode(n, i);
        const next = prevLive(n, i);
        if (!out.add(entryName(n, i), c, (nodeById(state, c) as Node).mode, offsetOf(n, next))) return;
        i = next;
      }
    },

    readdirplus(_req: Request, ino: number, _fh: number, offset: number, out: DirListPlus): void {
      const n = getNode(state, ino);
      if (!n.isDir) throw ENOTDIR;
      if (n.nlink === 0) return;
      accessed(n, dirAtime);
      // "." and ".." do not count as lookups.
      let i = prevLive(n, listStart(n, offset));
      if (offset < 1 && !out.add(".", n, 1)) return;
      if (offset < 2 && !out.add("..", nodeById(state, n.parent) ?? n, offsetOf(n, i))) return;
      while (i >= 0) {
        const c = nodeById(state, entryNode(n, i)) as Node;
        const next = prevLive(n, i);
        if (!out.add(entryName(n, i), c, offsetOf(n, next))) return;
        c.nlookup++;
        i = next;
      }
    },

    releasedir(_req: Request, ino: number): void {
      const n = nodeById(state, ino);
      if (n === undefined) return;
      if (n.opens > 0) n.opens--;
      maybeFree(state, n);
    },

    fsyncdir(): void {},
  });
}
