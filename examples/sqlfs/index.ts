// sqlfs: a persistent filesystem in one SQLite file, on the high-level API. Nodes are inode row
// ids, so they are the node ids and st_ino, stable across mounts. Files, directories, symlinks,
// hard links, device nodes, modes, owners, times and xattrs; data in fixed-size blocks.
// Every op is one transaction (store.ts), so a killed daemon loses nothing it had answered.
//
//   mkdir -p /tmp/sql && bun furing mount ./examples/sqlfs /tmp/sql --db /tmp/sqlfs.db
//   bun examples/sqlfs/check.ts /tmp/sqlfs.db      # integrity check (while not mounted)
import { defineTree, S_IFREG } from "furing";
import { Store } from "./store.ts";

export default defineTree<number, undefined, { db: string }>({
  name: "sqlfs",
  options: { db: { type: "string", required: true, help: "the SQLite database file (created if absent)" } },
  setup(ctx) {
    const store = new Store(ctx.options.db, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    // once per mount, not per hot reload: a reload's kernel still holds the unlinked open files
    const orphans = ctx.keep("sqlfs:orphans-freed", () => store.freeOrphans());
    ctx.log(`generation ${ctx.generation}: ${ctx.options.db} (${orphans} orphans freed at mount)`);
    return {
      root: 1,
      lookup: (dir, name) => store.lookup(dir, name),
      stat(id) {
        const n = store.stat(id);
        return { mode: n.mode, size: n.size, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, atime: n.atime, mtime: n.mtime, ctime: n.ctime };
      },
      readdir: (dir) => store.list(dir),
      readlink: (id) => store.stat(id).target ?? "",
      // exportable: row ids are never reused (AUTOINCREMENT), so an id names one inode for good
      find: (id) => store.linked(id),
      parent: (dir) => store.parentOf(dir),
      // atime is kept in the database (the layer decides when, by the mount's atime mode)
      touchAtime: (id, atime) => store.accessed(id, atime),
      read: (id, offset, size) => store.read(id, offset, size),
      write: (id, offset, data) => store.write(id, offset, data),
      setattr: (id, changes) => store.setattr(id, changes),
      create: (dir, name, mode, req) => store.make(dir, name, mode, req.uid, req.gid),
      mkdir: (dir, name, mode, req) => store.make(dir, name, mode, req.uid, req.gid),
      mknod: (dir, name, mode, rdev, req) => store.make(dir, name, mode || S_IFREG, req.uid, req.gid, rdev),
      symlink: (dir, name, target, req) => store.make(dir, name, 0o120777, req.uid, req.gid, 0, target),
      link: (id, dir, name) => store.link(id, dir, name),
      unlink: (dir, name) => store.remove(dir, name, false),
      rmdir: (dir, name) => store.remove(dir, name, true),
      rename: (dir, name, newDir, newName, flags) => store.rename(dir, name, newDir, newName, flags),
      getxattr: (id, name) => store.getxattr(id, name),
      setxattr: (id, name, value, flags) => store.setxattr(id, name, value, flags),
      listxattr: (id) => store.listxattr(id),
      removexattr: (id, name) => store.removexattr(id, name),
      forget: (id) => store.forgotten(id),
      statfs() {
        const u = store.usage();
        return { bsize: 4096, blocks: u.blocks + 1_000_000, bfree: 1_000_000, bavail: 1_000_000, files: u.files + 1_000_000, ffree: 1_000_000 };
      },
      destroy: () => store.close(),
    };
  },
});
