/**
 * Directory trees through a real memfs mount, driven by the everyday tools (mkdir -p, cp -r,
 * diff -r, tar, find), over each transport.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expectErrno } from "../helpers/data.ts";
import { cleanupAll, transports, withMount, withTempDir } from "../helpers/mount.ts";
import { run, sh } from "../helpers/run.ts";

afterAll(cleanupAll);

/**
 * A system directory with a few thousand files that a fresh Debian has: /usr/include when the C
 * headers are installed, /usr/share/doc otherwise. (Read once, outside any mount.)
 */
function systemTree(): string {
  for (const dir of ["/usr/include", "/usr/share/doc"]) {
    if (existsSync(dir) && readdirSync(dir).length >= 50) return dir;
  }
  return "/etc";
}
const SYSTEM_TREE = systemTree();

/** `find` listing (type, path) of a tree, sorted, paths relative to `dir`. */
async function listing(dir: string): Promise<string[]> {
  const out = await sh(["find", ".", "-printf", "%y %p\n"], { cwd: dir, timeoutMs: 60_000 });
  return out.split("\n").filter(Boolean).sort();
}

for (const transport of transports()) {
  describe(`memfs trees over ${transport}`, () => {
    test("mkdir -p builds deep and wide trees that find lists exactly", async () => {
      await withMount({ transport }, async (m) => {
        await sh(["mkdir", "-p", "a/b/c/d/e/f/g/h/i/j"], { cwd: m.dir });
        const wide: string[] = [];
        for (let i = 0; i < 30; i++) for (let j = 0; j < 10; j++) wide.push(`w/d${i}/s${j}`);
        await sh(["mkdir", "-p", ...wide], { cwd: m.dir });
        // mkdir -p on an existing tree succeeds and changes nothing.
        await sh(["mkdir", "-p", "a/b/c", "w/d3/s3"], { cwd: m.dir });
        const want = new Set<string>(["d ."]);
        let p = ".";
        for (const c of "abcdefghij") want.add(`d ${(p = `${p}/${c}`)}`);
        want.add("d ./w");
        for (let i = 0; i < 30; i++) {
          want.add(`d ./w/d${i}`);
          for (let j = 0; j < 10; j++) want.add(`d ./w/d${i}/s${j}`);
        }
        expect(await listing(m.dir)).toEqual([...want].sort());
        expect((await readdir(join(m.dir, "w"))).length).toBe(30);
        // mkdir of an existing name fails with EEXIST; mkdir under a file with ENOTDIR.
        await expectErrno(mkdir(join(m.dir, "a/b")), "EEXIST");
        await writeFile(join(m.dir, "file"), "x");
        await expectErrno(mkdir(join(m.dir, "file/sub")), "ENOTDIR");
        // rm -r removes it all again.
        await sh(["rm", "-r", "a", "w", "file"], { cwd: m.dir });
        expect(await readdir(m.dir)).toEqual([]);
      });
    });

    test(`cp -r of ${SYSTEM_TREE} into the mount is identical by diff -r`, async () => {
      await withMount({ transport, timeoutMs: 170_000 }, async (m) => {
        await sh(["cp", "-r", SYSTEM_TREE, m.dir + "/"], { timeoutMs: 150_000 });
        const copy = join(m.dir, SYSTEM_TREE.split("/").pop()!);
        const diff = await run(["diff", "-r", "--no-dereference", SYSTEM_TREE, copy], { timeoutMs: 150_000 });
        expect(diff.stderr + diff.stdout).toBe("");
        expect(diff.code).toBe(0);
        expect(await listing(copy)).toEqual(await listing(SYSTEM_TREE));
      });
    }, 180_000);

    test("tar round trip: an archive extracted into the mount matches it (tar -d) and re-archives identically", async () => {
      await withTempDir(async (scratch) => {
        // A source tree with the metadata tar records: modes, owners, mtimes, symlinks, hard links.
        const src = join(scratch, "src");
        const t = join(src, "tree");
        await sh(["mkdir", "-p", `${t}/dir/sub`, `${t}/empty`]);
        await writeFile(join(t, "dir/hello.txt"), "hello\n");
        await writeFile(join(t, "dir/sub/data.bin"), new Uint8Array(200_000).map((_, i) => (i * 7) & 255));
        await writeFile(join(t, "secret"), "s");
        await writeFile(join(t, "tool.sh"), "#!/bin/sh\necho hi\n");
        await sh(["ln", "-s", "dir/hello.txt", join(t, "link")]);
        await sh(["ln", join(t, "dir/hello.txt"), join(t, "hardlink")]);
        await sh(["chmod", "600", join(t, "secret")]);
        await sh(["chmod", "755", join(t, "tool.sh")]);
        await sh(["chmod", "750", join(t, "dir/sub")]);
        if (process.getuid?.() === 0) await sh(["chown", "-R", "1234:5678", join(t, "dir")]);
        const old = ["dir/hello.txt", "secret", "link", "dir/sub", "empty", "."].map((f) => join(t, f));
        await sh(["touch", "-h", "-d", "2001-02-03 04:05:06", ...old]);
        const archive = join(scratch, "a.tar");
        await sh(["tar", "-C", src, "-cf", archive, "tree"]);

        await withMount({ transport }, async (m) => {
          await sh(["tar", "-C", m.dir, "-xpf", archive]);
          // tar -d compares contents, sizes, modes, owners, mtimes and link targets.
          const cmp = await run(["tar", "-C", m.dir, "-df", archive]);
          expect(cmp.stdout + cmp.stderr).toBe("");
          expect(cmp.code).toBe(0);
          // Archive the mount (into a file on the mount itself) and extract it elsewhere.
          await sh(["tar", "-C", m.dir, "-cf", join(m.dir, "b.tar"), "tree"]);
          const out = join(scratch, "out");
          await sh(["mkdir", out]);
          await sh(["tar", "-C", out, "-xpf", join(m.dir, "b.tar")]);
          const diff = await run(["diff", "-r", "--no-dereference", t, join(out, "tree")]);
          expect(diff.stdout + diff.stderr).toBe("");
          // Which of two hard-linked names tar stores as the file depends on readdir order, so
          // compare (mode, owner, mtime, name[ -> symlink target]) with hard links as files.
          const verbose = async (a: string) =>
            (await sh(["tar", "-tvf", a, "--numeric-owner"]))
              .split("\n")
              .filter(Boolean)
              .map((l) => {
                const [mode, owner, , date, time, ...name] = l.split(/\s+/);
                const n = name.join(" ").replace(/ link to .*$/, "");
                return `${mode!.replace(/^h/, "-")} ${owner} ${date} ${time} ${n}`;
              })
              .sort();
          expect(await verbose(join(m.dir, "b.tar"))).toEqual(await verbose(archive));
        });
      });
    });

    test("rename moves files and directories, replaces targets, and reports POSIX errors", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        await sh(["mkdir", "-p", "d1/inner", "d2", "full/x", "emptydir"], { cwd: m.dir });
        await writeFile(p("d1/inner/f"), "inner");
        await writeFile(p("a"), "A");
        await writeFile(p("b"), "B");

        await rename(p("a"), p("a2")); // same directory
        await expectErrno(stat(p("a")), "ENOENT");
        expect(await readFile(p("a2"), "utf8")).toBe("A");

        await rename(p("a2"), p("d2/a3")); // across directories
        expect(await readFile(p("d2/a3"), "utf8")).toBe("A");
        expect(await readdir(m.dir)).not.toContain("a2");

        const inoB = (await stat(p("b"))).ino;
        await rename(p("b"), p("d2/a3")); // replaces an existing file
        expect(await readFile(p("d2/a3"), "utf8")).toBe("B");
        expect((await stat(p("d2/a3"))).ino).toBe(inoB);
        await expectErrno(stat(p("b")), "ENOENT");

        await rename(p("d1"), p("d2/moved")); // a directory with contents
        expect(await readFile(p("d2/moved/inner/f"), "utf8")).toBe("inner");
        await expectErrno(stat(p("d1")), "ENOENT");

        await rename(p("d2/moved"), p("emptydir")); // a directory over an empty directory
        expect(await readFile(p("emptydir/inner/f"), "utf8")).toBe("inner");

        await expectErrno(rename(p("nope"), p("x")), "ENOENT");
        await expectErrno(rename(p("emptydir"), p("full")), "ENOTEMPTY");
        await expectErrno(rename(p("d2/a3"), p("full")), "EISDIR");
        await expectErrno(rename(p("full"), p("d2/a3")), "ENOTDIR");
        await expectErrno(rename(p("full"), p("full/x/under")), "EINVAL");

        expect((await readdir(m.dir)).sort()).toEqual(["d2", "emptydir", "full"]);
        expect((await readdir(p("d2"))).sort()).toEqual(["a3"]);
      });
    });

    test("unlink and rmdir remove names; rmdir refuses non-empty directories", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        for (let i = 0; i < 100; i++) await writeFile(p(`f${i}`), `${i}`);
        for (let i = 0; i < 100; i += 2) await unlink(p(`f${i}`));
        const left = (await readdir(m.dir)).sort();
        expect(left).toEqual(Array.from({ length: 50 }, (_, i) => `f${2 * i + 1}`).sort());
        await expectErrno(stat(p("f0")), "ENOENT");
        await expectErrno(unlink(p("f0")), "ENOENT");
        await mkdir(p("d"));
        await writeFile(p("d/x"), "x");
        await expectErrno(rmdir(p("d")), "ENOTEMPTY");
        await expectErrno(unlink(p("d")), "EISDIR");
        await expectErrno(rmdir(p("f1")), "ENOTDIR");
        await unlink(p("d/x"));
        await rmdir(p("d"));
        await expectErrno(stat(p("d")), "ENOENT");
        // The freed names can be used again.
        await writeFile(p("f0"), "again");
        expect(await readFile(p("f0"), "utf8")).toBe("again");
      });
    });

    test("a directory with 5000 entries lists every name once (readdir continues across replies)", async () => {
      await withMount({ transport }, async (m) => {
        const names = Array.from({ length: 5000 }, (_, i) => `entry-with-a-longish-name-${i}`);
        await sh(["bash", "-c", 'cd "$1" && for i in $(seq 0 4999); do : > entry-with-a-longish-name-$i; done', "_", m.dir]);
        const listed = await readdir(m.dir);
        expect(listed.length).toBe(5000);
        expect([...listed].sort()).toEqual([...names].sort());
        // ls walks the same directory through the kernel (readdirplus).
        const ls = (await sh(["ls", "-1", "-f", m.dir])).split("\n").filter(Boolean);
        expect(ls.filter((n) => n !== "." && n !== "..").sort()).toEqual([...names].sort());
      });
    });
  });
}
