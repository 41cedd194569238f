/**
 * The high-level API (runtime/api/tree.ts) through real mounts, over each transport:
 * examples/hello as a new user runs it; a hot reload keeps the layer's node table (same node
 * ids, the new code's content); long listings keep every name once across reply buffers.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, makeTempDir, REPO, removeTempDir, transports, waitFor, withMount, withTempDir } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";

afterAll(cleanupAll);

for (const transport of transports()) {
  describe(`defineTree over ${transport}`, () => {
    test("examples/hello: one file, owned by the mounter, '.' and '..', EROFS; a hot reload keeps its node id", async () => {
      const plugin = await makeTempDir("hello");
      try {
        await cp(join(REPO, "examples/hello/index.ts"), join(plugin, "index.ts"));
        await withMount({ plugin, transport }, async (m) => {
          const f = join(m.dir, "hello.txt");
          expect(await readFile(f, "utf8")).toBe("Hello from furing!\n");
          const ls = await run(["ls", "-a", m.dir]);
          expect(ls.stdout.split("\n").filter(Boolean), describeResult(ls)).toEqual([".", "..", "hello.txt"]);
          const st = await stat(f);
          expect([st.uid, st.gid, st.mode & 0o7777, st.nlink]).toEqual([process.getuid!(), process.getgid!(), 0o444, 1]);
          expect(Math.abs(st.mtimeMs - Date.now())).toBeLessThan(120_000); // mount time
          const w = await run(["sh", "-c", `echo x > "$1"`, "sh", join(m.dir, "new")]);
          expect(w.stderr, describeResult(w)).toContain("Read-only file system");

          const src = join(plugin, "index.ts");
          await writeFile(src, (await readFile(src, "utf8")).replace("Hello from furing!", "Hello again, reloaded!"));
          let got = "";
          const ok = await waitFor(async () => (got = await readFile(f, "utf8")) === "Hello again, reloaded!\n", 20_000, 100);
          expect(ok, `still ${JSON.stringify(got)}\n${m.log()}`).toBe(true);
          expect((await stat(f)).ino).toBe(st.ino);
        });
      } finally {
        await removeTempDir(plugin);
      }
    }, 60_000);

    test("a directory of 3000 entries lists each name once over many reply buffers; telldir/seekdir and rewinddir work", async () => {
      await withTempDir(async (tmp) => {
        await withMount({ plugin: "./examples/sqlfs", transport, args: ["--db", join(tmp, "fs.db")] }, async (m) => {
          const names = Array.from({ length: 3000 }, (_, i) => `entry-with-a-longer-name-${i}`);
          const mk = await run(["sh", "-c", `cd "$1" && shift && touch "$@"`, "sh", m.dir, ...names], { timeoutMs: 60_000 });
          expect(mk.code, describeResult(mk)).toBe(0);
          const listed = await run(["ls", "-fa", m.dir]);
          const got = listed.stdout.split("\n").filter(Boolean);
          expect(got.length).toBe(3002);
          expect(new Set(got).size).toBe(3002);
          expect((await readdir(m.dir)).sort()).toEqual([...names].sort());
          // telldir/seekdir: every noted position resumes at its entry, across reply buffers
          const sd = await run([process.execPath, join(REPO, "test/fixtures/seekdir.ts"), m.dir], { timeoutMs: 60_000 });
          expect(sd.code, describeResult(sd)).toBe(0);
          const r = JSON.parse(sd.stdout) as { names: string[]; checked: number; mismatches: string[] };
          expect(r.mismatches).toEqual([]);
          expect(r.names.length).toBe(3002);
          expect(r.checked).toBeGreaterThan(30);
        });
      });
    }, 120_000);
  });
}
