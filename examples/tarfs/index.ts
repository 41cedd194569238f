// tarfs: a read-only view of a tar archive (.tar or .tar.gz), on the high-level API. Nodes are
// the archive's entries (objects; hard links are the same object); furing gives them node ids,
// answers EROFS to every change, and lists "." and "..".
//
//   tar -czf /tmp/src.tar.gz -C /usr/share doc
//   mkdir -p /tmp/tar && bun furing mount ./examples/tarfs /tmp/tar --archive /tmp/src.tar.gz
import { defineTree, S_IFLNK, S_IFMT } from "furing";
import { readFileSync } from "node:fs";
import { parseTar, type TarNode } from "./tar.ts";

export default defineTree<TarNode, undefined, { archive: string }>({
  name: "tarfs",
  options: { archive: { type: "string", required: true, help: "the .tar or .tar.gz file to show" } },
  async setup(ctx) {
    const path = ctx.options.archive;
    // parsed once: a hot reload of this code keeps the same node objects (and so the same ids)
    const root = ctx.keep(`archive:${path}`, () => parseTar(readFileSync(path), path));
    return {
      root,
      lookup: (dir, name) => dir.children.get(name),
      stat: (n) => ({
        mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, mtime: n.mtime, atime: n.mtime, ctime: n.mtime,
        size: (n.mode & S_IFMT) === S_IFLNK ? Buffer.byteLength(n.target) : n.data.length,
      }),
      readdir: (dir) => dir.children,
      readlink: (n) => n.target,
      read: (n, offset, size) => n.data.subarray(offset, offset + size),
    };
  },
});
