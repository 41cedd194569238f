/**
 * examples/sqlfs (the high-level API on bun:sqlite) through real mounts, over each transport:
 * the filesystem's objects survive unmount/remount and a SIGKILL of the daemon, the database
 * passes `PRAGMA integrity_check` and sqlfs's own invariants, and the traps of the guide hold.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmod, cp, link, lstat, mkdir, readFile, readdir, readlink, rename, stat, symlink, truncate, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectErrno, randomBytes, sha256 } from "../helpers/data.ts";
import { cleanupAll, cli, makeTempDir, mountFs, REPO, removeTempDir, transports, unmountFs, waitFor, withMount, withTempDir, type Mount, type Transport } from "../helpers/mount.ts";
import { FdHolder } from "../fixtures/fd-holder.ts";
import { describeResult, run } from "../helpers/run.ts";

afterAll(cleanupAll);

const PLUGIN = "./examples/sqlfs";
const py = (code: string, ...args: string[]) => run(["python3", "-c", code, ...args], { timeoutMs: 20_000 });

async function withSqlfs(transport: Transport, db: string, fn: (m: Mount) => Promise<void>, options?: string[]): Promise<void> {
  const m = await mountFs({ plugin: PLUGIN, transport, options, args: ["--db", db] });
  try {
    await fn(m);
  } catch (e) {
    (e as Error).message += `\n--- daemon output ---\n${m.log()}`;
    throw e;
  } finally {
    await unmountFs(m);
  }
}

async function check(db: string): Promise<void> {
  const r = await run([process.execPath, "examples/sqlfs/check.ts", db], { timeoutMs: 20_000 });
  expect(r.stdout.trim(), describeResult(r)).toBe("ok");
  expect(r.code).toBe(0);
}

/** How many inodes the database holds (read beside the daemon: WAL lets readers in). */
function inodes(db: string): number {
  const d = new Database(db, { readonly: true });
  try {
    return (d.query("SELECT count(*) AS n FROM inode").get() as { n: number }).n;
  } finally {
    d.close();
  }
}

const big = randomBytes(300_001, 7); // not a multiple of the block size, several blocks

for (const transport of transports()) {
  describe(`sqlfs over ${transport}`, () => {
    test("files, directories, symlinks, hard links, modes, times and xattrs survive unmount and remount", async () => {
      await withTempDir(async (tmp) => {
        const db = join(tmp, "fs.db");
        let inoA = 0;
        await withSqlfs(transport, db, async (m) => {
          const p = (s: string) => join(m.dir, s);
          await mkdir(p("d"));
          await mkdir(p("d/sub"));
          await writeFile(p("d/a.txt"), "alpha\n");
          await writeFile(p("big"), big);
          await symlink("d/a.txt", p("sym"));
          await link(p("d/a.txt"), p("hard"));
          await chmod(p("d/a.txt"), 0o640);
          await utimes(p("big"), new Date("2001-02-03T04:05:06.789Z"), new Date("2002-03-04T05:06:07.891Z"));
          const x = await py("import os,sys; os.setxattr(sys.argv[1], 'user.color', b'blue'); print(os.getxattr(sys.argv[1], 'user.color').decode())", p("hard"));
          expect(x.stdout.trim(), describeResult(x)).toBe("blue");
          await run(["mkfifo", p("fifo")]);
          // rename over an existing file, and a sparse write past the end
          await writeFile(p("old"), "replaced");
          await writeFile(p("new"), "new content");
          await rename(p("new"), p("old"));
          await writeFile(p("sparse"), "");
          await py("import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b'end', 100000); os.close(fd)", p("sparse"));
          inoA = (await stat(p("d/a.txt"))).ino;
          expect((await stat(p("hard"))).ino).toBe(inoA);
          expect((await stat(p("d"))).nlink).toBe(3);
        });
        await check(db);
        await withSqlfs(transport, db, async (m) => {
          const p = (s: string) => join(m.dir, s);
          // times first: reading updates an atime older than mtime (relatime, the default)
          const b = await stat(p("big"), { bigint: true });
          expect(b.mtimeNs).toBe(BigInt(Date.parse("2002-03-04T05:06:07.891Z")) * 1_000_000n);
          expect((await readdir(m.dir)).sort()).toEqual(["big", "d", "fifo", "hard", "old", "sparse", "sym"]);
          expect((await readdir(p("d"))).sort()).toEqual(["a.txt", "sub"]);
          expect(await readFile(p("d/a.txt"), "utf8")).toBe("alpha\n");
          expect(b.atimeNs).toBe(BigInt(Date.parse("2001-02-03T04:05:06.789Z")) * 1_000_000n);
          expect(sha256(new Uint8Array(await readFile(p("big"))))).toBe(sha256(big));
          expect((await stat(p("big"), { bigint: true })).atimeNs).toBeGreaterThan(b.mtimeNs);
          expect(await readlink(p("sym"))).toBe("d/a.txt");
          expect(await readFile(p("sym"), "utf8")).toBe("alpha\n");
          const a = await stat(p("d/a.txt"));
          expect(a.ino).toBe(inoA); // node ids are the row ids: stable across mounts
          expect(a.nlink).toBe(2);
          expect(a.mode & 0o7777).toBe(0o640);
          expect((await stat(p("hard"))).ino).toBe(inoA);
          expect((await lstat(p("fifo"))).isFIFO()).toBe(true);
          expect(await readFile(p("old"), "utf8")).toBe("new content");
          const s = new Uint8Array(await readFile(p("sparse")));
          expect(s.length).toBe(100003);
          expect(s.subarray(0, 100000).every((v) => v === 0)).toBe(true);
          expect(Buffer.from(s.subarray(100000)).toString()).toBe("end");
          const x = await py("import os,sys; print(os.getxattr(sys.argv[1], 'user.color').decode(), os.listxattr(sys.argv[1]))", p("d/a.txt"));
          expect(x.stdout.trim(), describeResult(x)).toBe("blue ['user.color']");
          // the last name goes: rmdir of a non-empty directory fails, then it works
          await expectErrno(rename(p("d"), p("d/sub/inside")), "EINVAL");
          await unlink(p("hard"));
          expect((await stat(p("d/a.txt"))).nlink).toBe(1);
          await truncate(p("big"), 5000);
          expect(sha256(new Uint8Array(await readFile(p("big"))))).toBe(sha256(big.subarray(0, 5000)));
        });
        await check(db);
      });
    }, 120_000);

    test("data written before a SIGKILL of the daemon is there after `furing unmount` and a remount", async () => {
      await withTempDir(async (tmp) => {
        const db = join(tmp, "fs.db");
        const m = await mountFs({ plugin: PLUGIN, transport, args: ["--db", db] });
        try {
          await mkdir(join(m.dir, "keep"));
          await writeFile(join(m.dir, "keep/big"), big);
          await writeFile(join(m.dir, "keep/small"), "written, answered, kept\n");
          // an orphan: unlinked while open when the daemon dies; freed at the next start
          await writeFile(join(m.dir, "orphan"), "gone");
          const { holder } = await FdHolder.open(join(m.dir, "orphan"));
          await unlink(join(m.dir, "orphan"));
          m.daemon.signal("SIGKILL");
          expect(await m.daemon.waitExit(10_000)).toBe(true);
          await holder.close();
          const u = await cli(["unmount", m.dir]);
          expect(u.code, describeResult(u)).toBe(0);
        } finally {
          await unmountFs(m);
        }
        const orphaned = inodes(db);
        const r = await run([process.execPath, "examples/sqlfs/check.ts", db], { timeoutMs: 20_000 });
        expect([r.code, r.stdout.trim(), r.stderr.trim()], describeResult(r)).toEqual([0, "ok", "sqlfs check: freed 1 orphan inode(s)"]);
        expect(inodes(db)).toBe(orphaned - 1);
        const d = new Database(db, { readonly: true });
        expect((d.query("PRAGMA integrity_check").values() as string[][])[0]![0]).toBe("ok");
        d.close();
        await withSqlfs(transport, db, async (m2) => {
          expect(sha256(new Uint8Array(await readFile(join(m2.dir, "keep/big"))))).toBe(sha256(big));
          expect(await readFile(join(m2.dir, "keep/small"), "utf8")).toBe("written, answered, kept\n");
        });
      });
    }, 120_000);

    test("unlink while open keeps the data until close, then frees it; O_TRUNC, umask and cp -a modes", async () => {
      await withTempDir(async (tmp) => {
        const db = join(tmp, "fs.db");
        await withSqlfs(transport, db, async (m) => {
          const p = (s: string) => join(m.dir, s);
          await writeFile(p("victim"), big);
          const before = inodes(db);
          const r = await py(
            "import os,sys,hashlib; fd=os.open(sys.argv[1], os.O_RDONLY); os.unlink(sys.argv[1]); print(os.path.exists(sys.argv[1])); print(hashlib.sha256(os.pread(fd, 400000, 0)).hexdigest()); os.close(fd)",
            p("victim"),
          );
          expect(r.stdout.trim().split("\n"), describeResult(r)).toEqual(["False", sha256(big)]);
          // closed and unlinked: the kernel forgets the node and its blocks go
          let after = before;
          for (let i = 0; i < 100 && after === before; i++) {
            await Bun.sleep(50);
            after = inodes(db);
          }
          expect(after).toBe(before - 1);

          // O_TRUNC on open: the layer truncates before the write
          await writeFile(p("t"), "a long first version\n");
          await writeFile(p("t"), "short\n");
          expect(await readFile(p("t"), "utf8")).toBe("short\n");
          // the kernel applies the umask (DONT_MASK is not negotiated)
          const u = await run(["sh", "-c", `umask 027 && touch "$1" && mkdir "$2"`, "sh", p("um"), p("umd")]);
          expect(u.code, describeResult(u)).toBe(0);
          expect((await stat(p("um"))).mode & 0o777).toBe(0o640);
          expect((await stat(p("umd"))).mode & 0o777).toBe(0o750);
          // cp -a keeps the mode: system.posix_acl_* is refused, so cp falls back to chmod
          const src = join(tmp, "src");
          await writeFile(src, "mode me");
          await chmod(src, 0o654);
          const c = await run(["cp", "-a", src, p("copied")]);
          expect(c.code, describeResult(c)).toBe(0);
          expect((await stat(p("copied"))).mode & 0o7777).toBe(0o654);
          const acl = await py("import os,sys\ntry:\n os.setxattr(sys.argv[1], 'system.posix_acl_access', b'\\x02\\0\\0\\0')\nexcept OSError as e: print(e.errno)", p("copied"));
          expect(acl.stdout.trim(), describeResult(acl)).toBe("95");
          // chmod keeps the file type (SetAttr.mode carries S_IFREG; the layer passes only 07777)
          await chmod(p("copied"), 0o4755);
          const st = await stat(p("copied"));
          expect(st.isFile()).toBe(true);
          expect(st.mode & 0o7777).toBe(0o4755);
        });
        await check(db);
      });
    }, 120_000);
    test("what furing check found: NAME_MAX, xattr namespaces, directory sizes, holes, st_blocks, relatime, O_NOATIME, chown -1 -1", async () => {
      await withTempDir(async (tmp) => {
        await withSqlfs(transport, join(tmp, "fs.db"), async (m) => {
          const p = (s: string) => join(m.dir, s);
          await expectErrno(writeFile(p("n".repeat(256)), "x"), "ENAMETOOLONG");
          await expectErrno(mkdir(p("n".repeat(256))), "ENAMETOOLONG");
          await writeFile(p("n".repeat(255)), "x"); // NAME_MAX itself is fine
          await writeFile(p("f"), "x");
          const x = await py(
            `import os,sys
f=sys.argv[1]
for name in ("user.", "other.ns"):
  try: os.removexattr(f, name); print("ok")
  except OSError as e: print(e.errno)
try: os.getxattr(f, "user.missing"); print("ok")
except OSError as e: print(e.errno)`,
            p("f"),
          );
          expect(x.stdout.trim().split("\n"), describeResult(x)).toEqual(["22", "95", "61"]); // EINVAL, EOPNOTSUPP, ENODATA
          // a directory's size counts its entries as tmpfs does: 40 empty, 20 per entry
          await mkdir(p("d"));
          expect((await stat(p("d"))).size).toBe(40);
          await writeFile(p("d/a"), "");
          await mkdir(p("d/b"));
          expect((await stat(p("d"))).size).toBe(80);
          await rename(p("d/a"), p("a2"));
          expect((await stat(p("d"))).size).toBe(60);
          // holes: SEEK_DATA/SEEK_HOLE and st_blocks count only the blocks stored
          const h = await py(
            `import os,sys
fd=os.open(sys.argv[1], os.O_CREAT|os.O_RDWR)
os.pwrite(fd, b"x"*5000, 1<<20)
print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, (1<<20)+10, os.SEEK_HOLE), os.lseek(fd, 0, os.SEEK_HOLE), os.fstat(fd).st_blocks)
os.close(fd)`,
            p("sparse"),
          );
          expect(h.stdout.trim(), describeResult(h)).toBe(`${1 << 20} ${(1 << 20) + 5000} 0 16`);
          // relatime: a read sets an atime older than mtime, once; O_NOATIME never
          await utimes(p("f"), new Date(1_000_000), new Date(2_000_000));
          const r = await py(`import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY|os.O_NOATIME); os.read(fd, 10); os.close(fd); print(os.stat(sys.argv[1]).st_atime)`, p("f"));
          expect(r.stdout.trim(), describeResult(r)).toBe("1000.0");
          await readFile(p("f"));
          expect((await stat(p("f"))).atimeMs).toBeGreaterThan(Date.now() - 60_000);
          // chown(f, -1, -1) changes nothing but ctime
          const before = (await stat(p("f"), { bigint: true })).ctimeNs;
          await Bun.sleep(5);
          const c = await py(`import os,sys; os.chown(sys.argv[1], -1, -1)`, p("f"));
          expect(c.code, describeResult(c)).toBe(0);
          expect((await stat(p("f"), { bigint: true })).ctimeNs).toBeGreaterThan(before);
          // truncation times, as tmpfs: open(O_TRUNC) and ftruncate stamp mtime even on an empty file,
          // truncate(2) by path to the same size of an empty file does not
          await writeFile(p("e"), "");
          const t = await py(
            `import os,sys
f=sys.argv[1]
def m(): return os.stat(f).st_mtime
os.utime(f, (1000, 1000)); os.truncate(f, 0); a=m()
os.close(os.open(f, os.O_WRONLY|os.O_TRUNC)); b=m()
os.utime(f, (1000, 1000)); fd=os.open(f, os.O_WRONLY); os.ftruncate(fd, 0); os.close(fd); c=m()
print(a == 1000, b > 1000, c > 1000)`,
            p("e"),
          );
          expect(t.stdout.trim(), describeResult(t)).toBe("True True True");
          // a write by a user outside the file's group clears S_ISGID even without group-exec (the
          // tree's killPrivileges; the kernel's own fallback keeps it)
          await writeFile(p("sgid"), "x");
          await chmod(p("sgid"), 0o2646);
          const w = await run(["setpriv", "--reuid=1001", "--regid=1001", "--clear-groups", "/usr/bin/python3", "-c", "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b'y'); os.close(fd)", p("sgid")]);
          expect(w.code, describeResult(w)).toBe(0);
          expect((await stat(p("sgid"))).mode & 0o7777).toBe(0o646);
        }, ["allow_other"]);
      });
    }, 60_000);

    test("a hot reload keeps open files and counts: an unlinked open file is read and written across it, then freed", async () => {
      const plugin = await makeTempDir("sqlfs-plugin");
      try {
        for (const f of ["index.ts", "store.ts", "coherence.ts"]) await cp(join(REPO, "examples/sqlfs", f), join(plugin, f));
        await withTempDir(async (tmp) => {
          const db = join(tmp, "fs.db");
          await withMount({ plugin, transport, args: ["--db", db] }, async (m) => {
            const f = join(m.dir, "open-across-reload");
            await writeFile(f, "one");
            const { holder } = await FdHolder.open(f);
            try {
              await unlink(f);
              const before = inodes(db);
              const src = join(plugin, "index.ts");
              await writeFile(src, (await readFile(src, "utf8")).replace("`generation ${ctx.generation}:", "`reloaded, generation ${ctx.generation}:"));
              expect(await waitFor(() => m.log().includes("reloaded, generation 2:"), 20_000, 100), m.log()).toBe(true);
              expect(await holder.ask("read 0 10")).toEqual({ ok: true, data: "one" });
              expect(await holder.ask("write 0 two!")).toEqual({ ok: true, n: 4 });
              expect(await holder.ask("read 0 10")).toEqual({ ok: true, data: "two!" });
              expect(inodes(db)).toBe(before);
            } finally {
              await holder.close();
            }
            const freed = await waitFor(() => inodes(db) === 1, 5_000); // the root alone
            expect(freed, `inodes left: ${inodes(db)}`).toBe(true);
          });
          await check(db);
        });
      } finally {
        await removeTempDir(plugin);
      }
    }, 120_000);
  });
}
