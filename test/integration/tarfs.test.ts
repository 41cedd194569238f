/**
 * examples/tarfs (a read-only tar view on the high-level API) through real mounts, over each
 * transport: what tar(1) packed is what the mount shows (names, types, modes, owners, mtimes,
 * hard links, symlinks, long names, contents), plain and gzipped; every change is EROFS.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmod, link, mkdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectErrno, randomBytes } from "../helpers/data.ts";
import { cleanupAll, transports, withMount, withTempDir } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";

afterAll(cleanupAll);

/** One line per object below `dir`: path, type, mode, owner, size, mtime (s), link target, nlink. */
async function listing(dir: string): Promise<string[]> {
  const r = await run(["find", ".", "-mindepth", "1", "-printf", "%P %y %m %U:%G %s %T@ %l %n\\n"], { cwd: dir, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(describeResult(r));
  // tar keeps whole seconds (ustar) and directory sizes differ by filesystem
  return r.stdout.trim().split("\n").map((l) => l.replace(/ (\d+)\.\d+ /, " $1 ").replace(/^(\S+ d \S+ \S+) \d+/, "$1 -")).sort();
}

for (const transport of transports()) {
  describe(`tarfs over ${transport}`, () => {
    test("shows the archive as tar packed it, plain and gzipped, and refuses changes", async () => {
      await withTempDir(async (tmp) => {
        const src = join(tmp, "src");
        await mkdir(join(src, "docs/deep/er"), { recursive: true });
        await writeFile(join(src, "docs/readme.md"), "# read me\n");
        await writeFile(join(src, "blob.bin"), randomBytes(200_000, 3));
        await writeFile(join(src, "x".repeat(120)), "long name");
        await writeFile(join(src, "docs/deep/er/" + "y".repeat(90) + ".txt"), "long path");
        await link(join(src, "docs/readme.md"), join(src, "hardlink"));
        await symlink("docs/readme.md", join(src, "symlink"));
        await chmod(join(src, "docs/deep"), 0o750);
        await chmod(join(src, "blob.bin"), 0o600);
        await run(["chown", "1234:5678", join(src, "blob.bin")]);
        await utimes(join(src, "docs/readme.md"), 1e9, 1e9);
        const want = await listing(src);
        expect(want.length).toBe(9); // 3 directories, 4 files (one with 2 names), a symlink
        for (const [file, flags] of [["a.tar", "-cf"], ["a.tar.gz", "-czf"]] as const) {
          const archive = join(tmp, file);
          const t = await run(["tar", "--format=gnu", flags, archive, "-C", src, "."]);
          expect(t.code, describeResult(t)).toBe(0);
          await withMount({ plugin: "./examples/tarfs", transport, args: ["--archive", archive] }, async (m) => {
            expect(await listing(m.dir)).toEqual(want);
            for (const f of ["blob.bin", "docs/readme.md", "x".repeat(120), "docs/deep/er/" + "y".repeat(90) + ".txt", "symlink"])
              expect(Buffer.compare(await readFile(join(m.dir, f)), await readFile(join(src, f))), f).toBe(0);
            await expectErrno(writeFile(join(m.dir, "new"), "x"), "EROFS");
            await expectErrno(writeFile(join(m.dir, "blob.bin"), "x"), "EROFS");
            await expectErrno(mkdir(join(m.dir, "d")), "EROFS");
            await expectErrno(chmod(join(m.dir, "blob.bin"), 0o644), "EROFS");
          });
        }
      });
    }, 120_000);
  });
}
