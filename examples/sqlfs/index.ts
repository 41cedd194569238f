// sqlfs: a persistent filesystem on a SQL database (Bun.SQL), on the high-level API. Nodes are
// inode row ids, so they are the node ids and st_ino, stable across mounts. Files, directories,
// symlinks, hard links, device nodes, modes, owners, times and xattrs; data in fixed-size blocks.
// Every op is one transaction (store.ts), so a killed daemon loses nothing it had answered.
//
// `--db` is an embedded SQLite file (a path or sqlite://path; nothing to install), or a
// postgres:// URL, which any number of mounts share; each mount then hears the others' changes
// and drops exactly what they made stale from its kernel's caches (coherence.ts). README.md has
// the consistency model.
//
//   mkdir -p /tmp/sql && bun furing mount ./examples/sqlfs /tmp/sql --db /tmp/sqlfs.db
//   bun furing mount ./examples/sqlfs /mnt/shared --db postgres://user@host/db      # on each host
//   bun examples/sqlfs/check.ts /tmp/sqlfs.db      # integrity check
import { defineTree, S_IFREG } from "furing";
import { BLOCK, Store } from "./store.ts";
import { Coherence, type CoherenceState } from "./coherence.ts";

interface Options {
  db: string;
  pool: number;
  "connect-timeout": number;
  "changelog-keep": number;
}

export default defineTree<number, undefined, Options>({
  name: "sqlfs",
  options: {
    db: { type: "string", required: true, help: "a SQLite file (path or sqlite://path, created if absent) or a postgres:// URL shared by many mounts" },
    pool: { type: "number", default: 8, help: "PostgreSQL: connections in the pool, the most ops that run at once (1-100)" },
    "connect-timeout": { type: "number", default: 5, help: "PostgreSQL: seconds to wait for a connection before an op fails with EIO" },
    "changelog-keep": { type: "number", default: 3600, help: "PostgreSQL: seconds the changelog is kept for mounts that were cut off" },
  },
  async setup(ctx) {
    const o = ctx.options;
    if (!Number.isInteger(o.pool) || o.pool < 1 || o.pool > 100) throw new Error(`--pool ${o.pool}: must be an integer from 1 to 100`);
    if (!(o["connect-timeout"] > 0)) throw new Error(`--connect-timeout ${o["connect-timeout"]}: must be a number of seconds above 0`);
    if (!(o["changelog-keep"] > 0)) throw new Error(`--changelog-keep ${o["changelog-keep"]}: must be a number of seconds above 0`);
    // one id per daemon, kept across hot reloads: it tells this mount's changes from the others'
    const mountId = ctx.keep("sqlfs:mount-id", () => `${process.pid.toString(36)}-${crypto.randomUUID().slice(0, 8)}`);
    const store = await Store.open({
      db: o.db, pool: o.pool, connectTimeout: o["connect-timeout"], mountId,
      uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, log: (m) => ctx.log(m),
    });
    ctx.onDestroy(() => store.close());
    // once per mount, not per hot reload: a reload's kernel still holds the unlinked open files
    const orphans = await ctx.keep("sqlfs:orphans-freed", () => store.freeOrphans());
    ctx.log(`generation ${ctx.generation}: ${store.shared ? "PostgreSQL, shared" : "SQLite"} ${o.db.replace(/:[^:@/]*@/, ":***@")} (${orphans} orphans freed at mount)${store.shared ? `, mount id ${mountId}` : ""}`);
    if (store.shared) {
      const coherence = new Coherence(store, ctx.notify, mountId, ctx.keep<CoherenceState>("sqlfs:coherence", () => ({ seen: 0, recent: new Set() })), (m) => ctx.log(m));
      await coherence.start();
      ctx.onDestroy(() => coherence.stop());
      const prune = setInterval(() => store.pruneChangelog(o["changelog-keep"]).catch(() => {}), 60_000);
      prune.unref();
      ctx.onDestroy(() => clearInterval(prune));
    }
    // files open on this mount (the database holds them while the count is above 0), kept across reloads
    const opens = ctx.keep("sqlfs:opens", () => new Map<number, number>());
    return {
      root: 1,
      killPrivileges: true,
      lookup: (dir, name) => store.lookup(dir, name),
      async stat(id) {
        const n = await store.stat(id);
        return { mode: n.mode, size: n.size, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, atime: n.atime, mtime: n.mtime, ctime: n.ctime, blocks: n.blocks * (BLOCK / 512) };
      },
      readdir: (dir) => store.list(dir),
      readlink: (id) => store.readlink(id),
      // exportable: row ids are never reused, so an id names one inode for good
      find: (id) => store.linked(id),
      parent: (dir) => store.parentOf(dir),
      // atime is kept in the database (the layer decides when, by the mount's atime mode and O_NOATIME)
      touchAtime: (id, atime) => store.touchAtime(id, atime),
      async open(id) {
        const n = opens.get(id) ?? 0;
        if (n === 0) await store.hold(id);
        opens.set(id, n + 1);
      },
      async release(id) {
        const n = (opens.get(id) ?? 1) - 1;
        if (n > 0) return void opens.set(id, n);
        opens.delete(id);
        await store.unhold(id);
      },
      read: (id, offset, size) => store.read(id, offset, size),
      write: (id, offset, data) => store.write(id, offset, data),
      lseek: (id, offset, whence) => store.seek(id, offset, whence),
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
      async statfs() {
        const u = await store.usage();
        return { bsize: 4096, blocks: u.blocks + 1_000_000, bfree: 1_000_000, bavail: 1_000_000, files: u.files + 1_000_000, ffree: 1_000_000, namelen: 255 };
      },
    };
  },
});
