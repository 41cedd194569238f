/**
 * Attributes through a real memfs mount (what `ls -l`, `stat` and `df` show), over each transport.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, open, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "../helpers/data.ts";
import { cleanupAll, isRoot, transports, withMount } from "../helpers/mount.ts";
import { sh } from "../helpers/run.ts";

afterAll(cleanupAll);

/** `ls -ln` of one entry as [mode string, links, uid, gid, size, name...]. */
async function lsFields(path: string): Promise<string[]> {
  const line = (await sh(["ls", "-ldn", "--time-style=+%s", path])).trim();
  return line.split(/\s+/);
}

interface Df {
  size: number;
  used: number;
  avail: number;
  itotal: number;
  iused: number;
  iavail: number;
  fstype: string;
}

async function df(dir: string): Promise<Df> {
  const out = await sh(["df", "-B1", "--output=size,used,avail,itotal,iused,iavail,fstype", dir]);
  const f = out.trim().split("\n")[1]!.trim().split(/\s+/);
  const n = (s: string | undefined) => (s === "-" || s === undefined ? NaN : Number(s));
  return { size: n(f[0]), used: n(f[1]), avail: n(f[2]), itotal: n(f[3]), iused: n(f[4]), iavail: n(f[5]), fstype: f[6] ?? "" };
}

for (const transport of transports()) {
  describe(`memfs attributes over ${transport}`, () => {
    test("ls -l shows the mode, owner, size and type that were set", async () => {
      await withMount({ transport }, async (m) => {
        const p = (s: string) => join(m.dir, s);
        await writeFile(p("file"), randomBytes(12_345, 5));
        await chmod(p("file"), 0o640);
        await mkdir(p("dir"), 0o750);
        await chmod(p("dir"), 0o750); // independent of the umask
        await symlink("file", p("link"));
        await writeFile(p("exe"), "#!/bin/sh\n");
        await sh(["chmod", "u=rwx,g=rx,o=x", p("exe")]);
        if (isRoot()) {
          await sh(["chown", "1234:5678", p("file")]);
          await sh(["chown", "-h", "42:43", p("link")]);
        }
        const file = await lsFields(p("file"));
        expect(file.slice(0, 5)).toEqual(["-rw-r-----", "1", isRoot() ? "1234" : String(process.getuid!()), isRoot() ? "5678" : String(process.getgid!()), "12345"]);
        const dir = await lsFields(p("dir"));
        expect(dir[0]).toBe("drwxr-x---");
        expect(dir[1]).toBe("2");
        const link = await lsFields(p("link"));
        expect(link[0]).toBe("lrwxrwxrwx");
        if (isRoot()) expect(link.slice(2, 4)).toEqual(["42", "43"]);
        expect(link[4]).toBe("4");
        expect((await lsFields(p("exe")))[0]).toBe("-rwxr-x--x");
        // Special bits survive too.
        await sh(["chmod", "4755", p("exe")]);
        expect((await lsFields(p("exe")))[0]).toBe("-rwsr-xr-x");
        await sh(["chmod", "1777", p("dir")]);
        expect((await lsFields(p("dir")))[0]).toBe("drwxrwxrwt");
        // stat(1) in another process agrees with node's stat.
        const st = await stat(p("file"));
        expect((await sh(["stat", "-c", "%a %s %h %i %F", p("file")])).trim()).toBe(`640 12345 1 ${st.ino} regular file`);
        expect(st.blocks).toBeGreaterThanOrEqual(Math.ceil(12_345 / 512));
      });
    });

    test("timestamps: touch -d sets atime and mtime to the nanosecond; writes advance mtime and ctime", async () => {
      await withMount({ transport }, async (m) => {
        const f = join(m.dir, "f");
        await writeFile(f, "x");
        await sh(["touch", "-d", "2001-02-03 04:05:06.123456789 UTC", f]);
        expect((await sh(["stat", "-c", "%X.%x|%Y.%y", f])).trim()).toBe(
          "981173106.2001-02-03 04:05:06.123456789 +0000|981173106.2001-02-03 04:05:06.123456789 +0000",
        );
        await sh(["touch", "-m", "-d", "@1000000000.5", f]);
        const st = await stat(f, { bigint: true });
        expect(st.mtimeNs).toBe(1_000_000_000_500_000_000n);
        expect(st.atimeNs).toBe(981_173_106_123_456_789n);
        const before = BigInt(Date.now() - 5000) * 1_000_000n;
        const fh = await open(f, "r+");
        try {
          await fh.write("more", 1);
        } finally {
          await fh.close();
        }
        const after = await stat(f, { bigint: true });
        expect(after.mtimeNs).toBeGreaterThan(before);
        expect(after.ctimeNs).toBeGreaterThan(before);
      });
    });

    test("df reports the filesystem's size, and used space and inodes follow what is stored", async () => {
      await withMount({ transport }, async (m) => {
        const empty = await df(m.dir);
        expect(empty.fstype.startsWith("fuse")).toBe(true);
        expect(empty.size).toBeGreaterThan(0);
        expect(empty.avail).toBeGreaterThan(0);
        expect(empty.avail).toBeLessThanOrEqual(empty.size);
        expect(empty.itotal).toBeGreaterThan(0);

        await writeFile(join(m.dir, "blob"), randomBytes(16 << 20, 11));
        for (let i = 0; i < 100; i++) await writeFile(join(m.dir, `small${i}`), "");
        const full = await df(m.dir);
        expect(full.used - empty.used).toBeGreaterThanOrEqual(16 << 20);
        expect(full.used - empty.used).toBeLessThan(20 << 20);
        expect(empty.avail - full.avail).toBeGreaterThanOrEqual(16 << 20);
        expect(full.iused - empty.iused).toBeGreaterThanOrEqual(101);

        await unlink(join(m.dir, "blob"));
        const freed = await df(m.dir);
        expect(full.used - freed.used).toBeGreaterThanOrEqual(16 << 20);
      });
    });
  });
}
