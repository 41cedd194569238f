/** Symbolic and hard links through a real memfs mount, over each transport. */
import { afterAll, describe, expect, test } from "bun:test";
import { link, lstat, mkdir, readFile, readlink, readdir, rename, rmdir, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectErrno } from "../helpers/data.ts";
import { cleanupAll, transports, withMount } from "../helpers/mount.ts";
import { sh } from "../helpers/run.ts";

afterAll(cleanupAll);

for (const transport of transports()) {
  describe(`memfs links over ${transport}`, () => {
    test("symlink stores its target verbatim; readlink, lstat and path resolution agree", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        await mkdir(p("dir"));
        await writeFile(p("dir/file"), "through the link");
        const targets = ["dir/file", "../outside/and/beyond", "/absolute/path", "x".repeat(1000), "ünïcödé → ✓"];
        for (const [i, t] of targets.entries()) {
          await symlink(t, p(`l${i}`));
          expect(await readlink(p(`l${i}`))).toBe(t);
          const st = await lstat(p(`l${i}`));
          expect(st.isSymbolicLink()).toBe(true);
          expect(st.size).toBe(Buffer.byteLength(t));
        }
        // Following a link reaches the file; a link to a link too; a dangling link is ENOENT.
        expect(await readFile(p("l0"), "utf8")).toBe("through the link");
        await symlink("l0", p("chain"));
        expect(await readFile(p("chain"), "utf8")).toBe("through the link");
        expect((await stat(p("chain"))).isFile()).toBe(true);
        await expectErrno(stat(p("l2")), "ENOENT");
        await symlink("dir", p("dirlink"));
        expect(await readdir(p("dirlink"))).toEqual(["file"]);
        // A symlink to itself loops.
        await symlink("loop", p("loop"));
        await expectErrno(stat(p("loop")), "ELOOP");
        // Creating over an existing name fails; readlink of a non-link is EINVAL.
        await expectErrno(symlink("x", p("l0")), "EEXIST");
        await expectErrno(readlink(p("dir/file")), "EINVAL");
        // ls -l shows the link and its target; removing the link leaves the target.
        const ls = await sh(["ls", "-l", p("l0")]);
        expect(ls).toMatch(/^l[rwx-]{9}/);
        expect(ls.trim().endsWith(`l0 -> dir/file`)).toBe(true);
        await unlink(p("l0"));
        await expectErrno(lstat(p("l0")), "ENOENT");
        expect(await readFile(p("dir/file"), "utf8")).toBe("through the link");
      });
    });

    test("hard links share one inode and count their names", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        await mkdir(p("sub"));
        await writeFile(p("a"), "one");
        expect((await stat(p("a"))).nlink).toBe(1);
        await link(p("a"), p("b"));
        await link(p("a"), p("sub/c"));
        const [sa, sb, sc] = await Promise.all([stat(p("a")), stat(p("b")), stat(p("sub/c"))]);
        expect(sa.nlink).toBe(3);
        expect(sb.nlink).toBe(3);
        expect(sc.nlink).toBe(3);
        expect(sb.ino).toBe(sa.ino);
        expect(sc.ino).toBe(sa.ino);
        // A write through one name is seen through the others.
        await writeFile(p("sub/c"), "changed through c");
        expect(await readFile(p("a"), "utf8")).toBe("changed through c");
        // stat -c %h agrees (a separate process, fresh lookups).
        expect((await sh(["stat", "-c", "%h %i", p("b")])).trim()).toBe(`3 ${sa.ino}`);
        // Renaming a link keeps the count; unlinking drops it.
        await rename(p("b"), p("b2"));
        expect((await stat(p("a"))).nlink).toBe(3);
        await unlink(p("a"));
        expect((await stat(p("b2"))).nlink).toBe(2);
        await unlink(p("sub/c"));
        expect((await stat(p("b2"))).nlink).toBe(1);
        expect(await readFile(p("b2"), "utf8")).toBe("changed through c");
        // Directories cannot be hard-linked; an existing name cannot be a link target.
        await expectErrno(link(p("sub"), p("sub2")), "EPERM");
        await writeFile(p("x"), "x");
        await expectErrno(link(p("b2"), p("x")), "EEXIST");
      });
    });

    test("a directory's link count is 2 plus its subdirectories", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        await mkdir(p("d"));
        expect((await stat(p("d"))).nlink).toBe(2);
        await mkdir(p("d/s1"));
        await mkdir(p("d/s2"));
        await writeFile(p("d/file"), "");
        expect((await stat(p("d"))).nlink).toBe(4);
        await rename(p("d/s2"), p("s2"));
        expect((await stat(p("d"))).nlink).toBe(3);
        await rmdir(p("d/s1"));
        expect((await stat(p("d"))).nlink).toBe(2);
      });
    });
  });
}
