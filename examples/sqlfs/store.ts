// The storage layer of sqlfs: inodes, directory entries, file blocks and xattrs in SQLite.
// Every public method is one transaction, so a crash (even SIGKILL) leaves either all of an
// operation or none of it. The tree (index.ts) only calls these methods: another backend
// (Bun.SQL / PostgreSQL) replaces this file, not the filesystem logic.
import { Database } from "bun:sqlite";
import { fail, S_IFDIR, S_IFLNK, S_IFMT, S_ISGID, RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE, XATTR_REPLACE, type Changes } from "furing";

/** File data is stored in blocks of this many bytes (the last one of a file may be shorter). */
export const BLOCK = 4096;

export interface Inode {
  id: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  rdev: number;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  target: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS inode (
  id INTEGER PRIMARY KEY AUTOINCREMENT, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  nlink INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, rdev INTEGER NOT NULL DEFAULT 0,
  atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, target TEXT);
CREATE TABLE IF NOT EXISTS dirent (parent INTEGER NOT NULL, name TEXT NOT NULL, child INTEGER NOT NULL,
  PRIMARY KEY (parent, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS block (ino INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (ino, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS xattr (ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (ino, name)) WITHOUT ROWID;
`;

const nowNs = () => BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);

export class Store {
  readonly db: Database;

  constructor(path: string, uid: number, gid: number) {
    this.db = new Database(path, { create: true, safeIntegers: false });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;");
    this.db.exec(SCHEMA);
    this.tx(() => {
      if (!this.db.query("SELECT 1 FROM inode WHERE id = 1").get()) {
        const t = nowNs();
        this.db.query("INSERT INTO inode (id, mode, uid, gid, nlink, atime, mtime, ctime) VALUES (1, ?, ?, ?, 2, ?, ?, ?)").run(S_IFDIR | 0o755, uid, gid, t, t, t);
      }
    });
  }

  /**
   * Frees orphans: nodes unlinked while open or known to the kernel when the daemon stopped (it
   * never forgot them). Only when nothing serves the database: at the first setup of a mount, not
   * on a hot reload (the kernel still holds those nodes). Returns how many were freed.
   */
  freeOrphans(): number {
    return this.tx(() => {
      const ids = this.db.query("SELECT id FROM inode WHERE nlink = 0").all() as { id: number }[];
      for (const { id } of ids) this.purge(id);
      return ids.length;
    });
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` as one transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK when it throws). */
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private row(id: number): Inode {
    // times are nanoseconds: read them as text, a JS number would round them
    const r = this.db
      .query("SELECT id, mode, uid, gid, nlink, size, rdev, target, CAST(atime AS TEXT) AS atime, CAST(mtime AS TEXT) AS mtime, CAST(ctime AS TEXT) AS ctime FROM inode WHERE id = ?")
      .get(id) as (Omit<Inode, "atime" | "mtime" | "ctime"> & { atime: string; mtime: string; ctime: string }) | null;
    if (!r) fail("ENOENT", `inode ${id} does not exist`);
    return { ...r, atime: BigInt(r.atime), mtime: BigInt(r.mtime), ctime: BigInt(r.ctime) };
  }

  private touch(id: number, what: "m" | "c" | "mc", t = nowNs()): void {
    const set = what === "c" ? "ctime = ?1" : what === "m" ? "mtime = ?1" : "mtime = ?1, ctime = ?1";
    this.db.query(`UPDATE inode SET ${set} WHERE id = ?2`).run(t, id);
  }

  /** An access: atime only (the mount's atime mode decided it; ctime stays). */
  accessed(id: number, atime: { sec: number; nsec: number }): void {
    this.db.query("UPDATE inode SET atime = ? WHERE id = ?").run(BigInt(atime.sec) * 1_000_000_000n + BigInt(atime.nsec), id);
  }

  private childOf(parent: number, name: string): number | undefined {
    return (this.db.query("SELECT child FROM dirent WHERE parent = ? AND name = ?").get(parent, name) as { child: number } | null)?.child;
  }

  private purge(id: number): void {
    this.db.query("DELETE FROM block WHERE ino = ?").run(id);
    this.db.query("DELETE FROM xattr WHERE ino = ?").run(id);
    this.db.query("DELETE FROM inode WHERE id = ?").run(id);
  }

  stat(id: number): Inode {
    return this.row(id);
  }

  /** Inode `id` if it still has a name (export support: a file handle's node), else undefined. */
  linked(id: number): number | undefined {
    return this.db.query("SELECT 1 FROM inode WHERE id = ? AND nlink > 0").get(id) ? id : undefined;
  }

  /** The directory holding directory `id` (a directory has one entry; the root is its own). */
  parentOf(id: number): number {
    if (id === 1) return 1;
    const r = this.db.query("SELECT parent FROM dirent WHERE child = ?").get(id) as { parent: number } | null;
    if (!r) fail("ENOENT", `directory ${id} has no entry`);
    return r.parent;
  }

  lookup(parent: number, name: string): number | undefined {
    return this.childOf(parent, name);
  }

  list(dir: number): [string, number][] {
    const rows = this.db.query("SELECT name, child FROM dirent WHERE parent = ? ORDER BY name").values(dir) as [string, number][];
    return rows;
  }

  /** A new node named `name` in `parent` (any type; `target` for symlinks). */
  make(parent: number, name: string, mode: number, uid: number, gid: number, rdev = 0, target: string | null = null): number {
    return this.tx(() => {
      const p = this.row(parent);
      if (this.childOf(parent, name) !== undefined) fail("EEXIST");
      const isDir = (mode & S_IFMT) === S_IFDIR;
      // a setgid directory hands its group down (and its setgid bit to subdirectories)
      if (p.mode & S_ISGID) {
        gid = p.gid;
        if (isDir) mode |= S_ISGID;
      }
      const t = nowNs();
      const size = target === null ? 0 : Buffer.byteLength(target);
      const { id } = this.db
        .query("INSERT INTO inode (mode, uid, gid, nlink, size, rdev, atime, mtime, ctime, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
        .get(mode, uid, gid, isDir ? 2 : 1, size, rdev, t, t, t, target) as { id: number };
      this.db.query("INSERT INTO dirent (parent, name, child) VALUES (?, ?, ?)").run(parent, name, id);
      if (isDir) this.db.query("UPDATE inode SET nlink = nlink + 1 WHERE id = ?").run(parent);
      this.touch(parent, "mc", t);
      return id;
    });
  }

  link(id: number, parent: number, name: string): void {
    this.tx(() => {
      if (this.childOf(parent, name) !== undefined) fail("EEXIST");
      this.db.query("INSERT INTO dirent (parent, name, child) VALUES (?, ?, ?)").run(parent, name, id);
      this.db.query("UPDATE inode SET nlink = nlink + 1 WHERE id = ?").run(id);
      const t = nowNs();
      this.touch(id, "c", t);
      this.touch(parent, "mc", t);
    });
  }

  /** Drops one name of `child`; a directory loses its "." and its parent's ".." link too. */
  private dropName(parent: number, name: string, child: number, t: bigint): void {
    const c = this.row(child);
    this.db.query("DELETE FROM dirent WHERE parent = ? AND name = ?").run(parent, name);
    if ((c.mode & S_IFMT) === S_IFDIR) {
      this.db.query("UPDATE inode SET nlink = 0, ctime = ? WHERE id = ?").run(t, child);
      this.db.query("UPDATE inode SET nlink = nlink - 1 WHERE id = ?").run(parent);
    } else this.db.query("UPDATE inode SET nlink = nlink - 1, ctime = ? WHERE id = ?").run(t, child);
    // data stays until the kernel forgets the node (it may still be open): see forgotten()
  }

  remove(parent: number, name: string, dir: boolean): void {
    this.tx(() => {
      const child = this.childOf(parent, name) ?? fail("ENOENT");
      const isDir = (this.row(child).mode & S_IFMT) === S_IFDIR;
      if (dir && !isDir) fail("ENOTDIR");
      if (!dir && isDir) fail("EISDIR");
      if (isDir && this.db.query("SELECT 1 FROM dirent WHERE parent = ? LIMIT 1").get(child)) fail("ENOTEMPTY");
      const t = nowNs();
      this.dropName(parent, name, child, t);
      this.touch(parent, "mc", t);
    });
  }

  rename(parent: number, name: string, newParent: number, newName: string, flags: number): void {
    this.tx(() => {
      if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) fail("EINVAL", "RENAME_WHITEOUT is not supported");
      const src = this.childOf(parent, name) ?? fail("ENOENT");
      const dst = this.childOf(newParent, newName);
      const isDir = (id: number) => (this.row(id).mode & S_IFMT) === S_IFDIR;
      const t = nowNs();
      const move = (id: number, from: number, to: number) => {
        if (from !== to && isDir(id)) {
          this.db.query("UPDATE inode SET nlink = nlink - 1 WHERE id = ?").run(from);
          this.db.query("UPDATE inode SET nlink = nlink + 1 WHERE id = ?").run(to);
        }
        this.touch(id, "c", t);
      };
      if (flags & RENAME_EXCHANGE) {
        if (dst === undefined) fail("ENOENT");
        this.db.query("UPDATE dirent SET child = ? WHERE parent = ? AND name = ?").run(dst, parent, name);
        this.db.query("UPDATE dirent SET child = ? WHERE parent = ? AND name = ?").run(src, newParent, newName);
        move(src, parent, newParent);
        move(dst, newParent, parent);
      } else {
        if (dst === src) return; // two names of one file: rename(2) does nothing
        if (dst !== undefined) {
          if (flags & RENAME_NOREPLACE) fail("EEXIST");
          if (isDir(src) && !isDir(dst)) fail("ENOTDIR");
          if (!isDir(src) && isDir(dst)) fail("EISDIR");
          if (isDir(dst) && this.db.query("SELECT 1 FROM dirent WHERE parent = ? LIMIT 1").get(dst)) fail("ENOTEMPTY");
          this.dropName(newParent, newName, dst, t);
        }
        this.db.query("DELETE FROM dirent WHERE parent = ? AND name = ?").run(parent, name);
        this.db.query("INSERT INTO dirent (parent, name, child) VALUES (?, ?, ?)").run(newParent, newName, src);
        move(src, parent, newParent);
      }
      this.touch(parent, "mc", t);
      if (newParent !== parent) this.touch(newParent, "mc", t);
    });
  }

  setattr(id: number, ch: Changes): void {
    this.tx(() => {
      const n = this.row(id);
      const t = nowNs();
      if (ch.mode !== undefined) this.db.query("UPDATE inode SET mode = ? WHERE id = ?").run((n.mode & S_IFMT) | ch.mode, id);
      if (ch.uid !== undefined) this.db.query("UPDATE inode SET uid = ? WHERE id = ?").run(ch.uid, id);
      if (ch.gid !== undefined) this.db.query("UPDATE inode SET gid = ? WHERE id = ?").run(ch.gid, id);
      if (ch.size !== undefined) this.truncate(n, ch.size, t);
      const ns = (ts: { sec: number; nsec: number }) => BigInt(ts.sec) * 1_000_000_000n + BigInt(ts.nsec);
      if (ch.atime) this.db.query("UPDATE inode SET atime = ? WHERE id = ?").run(ns(ch.atime), id);
      if (ch.mtime) this.db.query("UPDATE inode SET mtime = ? WHERE id = ?").run(ns(ch.mtime), id);
      this.db.query("UPDATE inode SET ctime = ? WHERE id = ?").run(ch.ctime ? ns(ch.ctime) : t, id);
    });
  }

  private truncate(n: Inode, size: number, t: bigint): void {
    const keep = Math.ceil(size / BLOCK);
    this.db.query("DELETE FROM block WHERE ino = ? AND idx >= ?").run(n.id, keep);
    const tail = size % BLOCK;
    if (tail && size < n.size) {
      const last = this.db.query("SELECT data FROM block WHERE ino = ? AND idx = ?").get(n.id, keep - 1) as { data: Uint8Array } | null;
      if (last && last.data.length > tail) this.db.query("UPDATE block SET data = ? WHERE ino = ? AND idx = ?").run(last.data.subarray(0, tail), n.id, keep - 1);
    }
    this.db.query("UPDATE inode SET size = ?, mtime = ?, ctime = ? WHERE id = ?").run(size, t, t, n.id);
  }

  read(id: number, offset: number, size: number): Uint8Array {
    const n = this.row(id);
    const end = Math.min(n.size, offset + size);
    if (end <= offset) return new Uint8Array(0);
    const out = new Uint8Array(end - offset); // holes read as zeros
    const rows = this.db.query("SELECT idx, data FROM block WHERE ino = ? AND idx >= ? AND idx <= ?").all(id, Math.floor(offset / BLOCK), Math.floor((end - 1) / BLOCK)) as { idx: number; data: Uint8Array }[];
    for (const { idx, data } of rows) {
      const start = idx * BLOCK;
      const from = Math.max(offset, start), to = Math.min(end, start + data.length);
      if (to > from) out.set(data.subarray(from - start, to - start), from - offset);
    }
    return out;
  }

  write(id: number, offset: number, data: Uint8Array): number {
    return this.tx(() => {
      this.row(id);
      const end = offset + data.length;
      const get = this.db.query("SELECT data FROM block WHERE ino = ? AND idx = ?");
      const put = this.db.query("INSERT OR REPLACE INTO block (ino, idx, data) VALUES (?, ?, ?)");
      for (let idx = Math.floor(offset / BLOCK); idx * BLOCK < end; idx++) {
        const start = idx * BLOCK;
        const from = Math.max(offset, start), to = Math.min(end, start + BLOCK);
        const old = (get.get(id, idx) as { data: Uint8Array } | null)?.data;
        const block = new Uint8Array(Math.max(to - start, old?.length ?? 0)); // short tail: the rest is a hole
        if (old) block.set(old);
        block.set(data.subarray(from - offset, to - offset), from - start);
        put.run(id, idx, block);
      }
      const t = nowNs();
      this.db.query("UPDATE inode SET size = max(size, ?), mtime = ?, ctime = ? WHERE id = ?").run(end, t, t, id);
      return data.length;
    });
  }

  getxattr(id: number, name: string): Uint8Array | undefined {
    return (this.db.query("SELECT value FROM xattr WHERE ino = ? AND name = ?").get(id, name) as { value: Uint8Array } | null)?.value;
  }

  setxattr(id: number, name: string, value: Uint8Array, flags: number): void {
    this.tx(() => {
      const exists = this.getxattr(id, name) !== undefined;
      if (flags & XATTR_CREATE && exists) fail("EEXIST");
      if (flags & XATTR_REPLACE && !exists) fail("ENODATA");
      this.db.query("INSERT OR REPLACE INTO xattr (ino, name, value) VALUES (?, ?, ?)").run(id, name, value.slice());
      this.touch(id, "c");
    });
  }

  listxattr(id: number): string[] {
    return (this.db.query("SELECT name FROM xattr WHERE ino = ? ORDER BY name").values(id) as [string][]).map((r) => r[0]);
  }

  removexattr(id: number, name: string): void {
    this.tx(() => {
      if (this.db.query("DELETE FROM xattr WHERE ino = ? AND name = ?").run(id, name).changes === 0) fail("ENODATA");
      this.touch(id, "c");
    });
  }

  /** The kernel let go of `id` (no lookups, not open): free it if it has no name left. */
  forgotten(id: number): void {
    this.tx(() => {
      const n = this.db.query("SELECT nlink FROM inode WHERE id = ?").get(id) as { nlink: number } | null;
      if (n && n.nlink <= 0) this.purge(id);
    });
  }

  usage(): { blocks: number; files: number } {
    const b = this.db.query("SELECT count(*) AS n FROM block").get() as { n: number };
    const f = this.db.query("SELECT count(*) AS n FROM inode").get() as { n: number };
    return { blocks: b.n, files: f.n };
  }

  /** `PRAGMA integrity_check` plus the filesystem's own invariants; [] when all hold. */
  check(): string[] {
    const problems = (this.db.query("PRAGMA integrity_check").values() as [string][]).map((r) => r[0]).filter((r) => r !== "ok");
    const q = (sql: string, what: string) => {
      for (const r of this.db.query(sql).all()) problems.push(`${what}: ${JSON.stringify(r)}`);
    };
    q("SELECT d.parent, d.name, d.child FROM dirent d LEFT JOIN inode i ON i.id = d.child WHERE i.id IS NULL", "entry to a missing inode");
    q(`SELECT i.id, i.nlink, (SELECT count(*) FROM dirent WHERE child = i.id) AS names FROM inode i
       WHERE (i.mode & ${S_IFMT}) != ${S_IFDIR} AND i.nlink != (SELECT count(*) FROM dirent WHERE child = i.id)`, "nlink differs from the names");
    q(`SELECT i.id, i.nlink FROM inode i WHERE (i.mode & ${S_IFMT}) = ${S_IFDIR} AND i.nlink > 0
       AND i.nlink != 2 + (SELECT count(*) FROM dirent d JOIN inode c ON c.id = d.child WHERE d.parent = i.id AND (c.mode & ${S_IFMT}) = ${S_IFDIR})`, "directory nlink");
    q(`SELECT b.ino, b.idx FROM block b JOIN inode i ON i.id = b.ino WHERE b.idx * ${BLOCK} >= i.size`, "block beyond the end of file");
    q(`SELECT id, size, length(target) FROM inode WHERE (mode & ${S_IFMT}) = ${S_IFLNK} AND target IS NULL`, "symlink without target");
    return problems;
  }
}
