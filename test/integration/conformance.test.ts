/**
 * memfs against tmpfs for behaviours a general filesystem test suite checks (issue #20), over each
 * transport: the same syscalls, made by a small C client (test/fixtures/conformance.c) in a child
 * process, on a memfs mount and on a tmpfs mounted alongside; their printed results must match.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFile, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, isMounted, makeTempDir, removeTempDir, REPO, transports, withMount, type Mount, type Transport } from "../helpers/mount.ts";
import { describeResult, run, sh } from "../helpers/run.ts";
import { needsRoot, skipIf } from "../helpers/skip.ts";
import { Rng } from "../differential/rng.ts";

afterAll(cleanupAll);

let bin = "";
let scratch = "";
beforeAll(async () => {
  if (Bun.which("gcc") === null) return;
  scratch = await makeTempDir("conformance-bin");
  bin = join(scratch, "conformance");
  await sh(["gcc", "-O1", "-Wall", "-o", bin, join(REPO, "test/fixtures/conformance.c")]);
});
afterAll(async () => {
  if (scratch) await removeTempDir(scratch);
});

/**
 * A memfs mount (or the `plugin`'s: "sqlfs" is examples/sqlfs, on the high-level API, with a
 * fresh database) and a fresh tmpfs mounted with the same `options`; both torn down after `fn`.
 */
async function withPair(transport: Transport, options: string[], fn: (m: Mount, ref: string) => Promise<void>, plugin = "memfs"): Promise<void> {
  const ref = await makeTempDir("tmpfs");
  const opts = ["mode=755", ...options].join(",");
  const r = await run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", ref], { timeoutMs: 20_000 });
  if (r.code !== 0) {
    await removeTempDir(ref);
    throw new Error(`cannot mount the reference tmpfs: ${describeResult(r)}`);
  }
  const db = plugin === "sqlfs" ? await makeTempDir("sqlfs-db") : "";
  try {
    if (plugin === "sqlfs") await withMount({ transport, options, plugin: "./examples/sqlfs", cwd: REPO, args: ["--db", join(db, "fs.db")] }, (m) => fn(m, ref));
    else await withMount({ transport, options }, (m) => fn(m, ref));
  } finally {
    if (db) await removeTempDir(db);
    if (await isMounted(ref)) {
      const u = await run(["umount", ref], { timeoutMs: 20_000 });
      if (u.code !== 0) await run(["umount", "-l", ref], { timeoutMs: 20_000 });
    }
    await removeTempDir(ref);
  }
}

/** The client's output for `args` (each `@` replaced by `root`). */
async function client(root: string, ...args: string[]): Promise<string> {
  return sh([bin, ...args.map((a) => a.replaceAll("@", root))], { timeoutMs: 60_000 });
}

/**
 * The same directory on both: f0..f399 created in order, then every 7th from f5 removed. Listed
 * once while empty: the high-level API numbers entries as they are created only in a directory
 * it has listed (the first listing numbers those it finds in the tree's order).
 */
async function bigDir(root: string): Promise<void> {
  await mkdir(join(root, "big"));
  await readdir(join(root, "big"));
  for (let i = 0; i < 400; i++) await writeFile(join(root, "big", `f${i}`), "");
  for (let i = 5; i < 400; i += 7) await Bun.$`rm ${join(root, "big", `f${i}`)}`.quiet();
}

/** Seeded random data ops within 1 MiB: offsets at pages, half pages and odd bytes. */
function randomOps(seed: number, count: number): string[] {
  const rng = new Rng(seed);
  const at = () => [rng.int(256) * 4096, rng.int(512) * 2048, rng.int(1 << 20)][rng.int(3)]!;
  const len = () => [4096, 8192, 2048, 1 + rng.int(70_000), 65536][rng.int(5)]!;
  const ops: string[] = [];
  for (let i = 0; i < count; i++) {
    const k = ["w", "w", "w", "p", "p", "a", "k", "t"][rng.int(8)]!;
    ops.push(k === "t" ? `t:${at()}` : `${k}:${at()}:${len()}`);
  }
  return ops;
}

/** "" if equal, else `what` and the first line that differs (outputs run to thousands of lines). */
function firstDifference(a: string, b: string, what: string): string {
  if (a === b) return "";
  const la = a.split("\n");
  const lb = b.split("\n");
  let i = 0;
  while (la[i] === lb[i]) i++;
  return `${what}\nline ${i + 1}: furing "${la[i]}", tmpfs "${lb[i]}"`;
}

/**
 * Which accesses change atime on `root`: a file read (a fresh open: memfs keeps no page cache
 * across opens, so the read reaches it) and a directory listing, right after creation, again, and
 * after the file is written to; each step waits 30 ms so the clock moves.
 */
async function atimeSteps(root: string): Promise<string[]> {
  const d = join(root, "d");
  const f = join(d, "f");
  await mkdir(d);
  await writeFile(f, "x");
  const times = async () => [(await stat(f, { bigint: true })).atimeNs, (await stat(d, { bigint: true })).atimeNs];
  const out: string[] = [];
  const step = async (name: string) => {
    const [fa, da] = await times();
    await Bun.sleep(30);
    await sh(["cat", f]);
    await sh(["ls", d]);
    const [fb, db] = await times();
    out.push(`${name}: file ${fa !== fb ? "updated" : "kept"}, dir ${da !== db ? "updated" : "kept"}`);
  };
  await step("first access");
  await step("second access");
  await appendFile(f, "y");
  await writeFile(join(d, "g"), "");
  await step("after a change");
  await step("again");
  return out;
}

/** Make the kernel forget every node it does not need (FORGETs reach the daemon). */
async function dropCaches(): Promise<void> {
  await sh(["sync"]);
  await writeFile("/proc/sys/vm/drop_caches", "3");
  await Bun.sleep(100); // the FORGETs are asynchronous
}

/**
 * File handles of `mnt` (the kernel's, through name_to_handle_at) after the kernel dropped its
 * caches: linked files and directories open (also once renamed through the mount, and, with
 * `source` (passthrough), in the source behind its back), deleted ones answer ESTALE, and a
 * stale handle never opens another file, through many deletions and creations. Returns the
 * inode numbers deleted files had and those the files created after them got.
 */
async function exportChecks(mnt: string, source: string | null): Promise<{ deleted: Set<bigint>; created: Set<bigint> }> {
  const p = (s: string) => join(mnt, s);
  await mkdir(p("d/e"), { recursive: true });
  await mkdir(p("md/sub"), { recursive: true });
  await writeFile(p("a"), "file a");
  await writeFile(p("d/x"), "file x in d");
  await writeFile(p("gone"), "deleted later");
  await writeFile(p("mv"), "renamed in the mount");
  await writeFile(p("md/sub/f"), "in a renamed dir");
  const names = ["a", "d", "d/e", "d/x", "gone", "mv", "md", "md/sub", "md/sub/f"];
  if (source !== null) {
    await writeFile(p("bf"), "renamed behind its back");
    await mkdir(p("bd/in"), { recursive: true });
    names.push("bf", "bd", "bd/in");
  }
  const handles = new Map<string, string>();
  const inos = new Map<string, bigint>();
  for (const n of names) {
    handles.set(n, (await client(mnt, "handle", `@/${n}`)).trim());
    inos.set(n, (await stat(p(n), { bigint: true })).ino);
  }
  const open = async (n: string) => (await client(mnt, "openh", "@", handles.get(n)!)).trim();
  await rename(p("mv"), p("d/e/moved"));
  await rename(p("md"), p("d/md2"));
  if (source !== null) {
    await rename(join(source, "bf"), join(source, "d/bf2"));
    await rename(join(source, "bd"), join(source, "d/e/bd2"));
  }
  await dropCaches();
  expect(await open("a")).toBe(`ok ${inos.get("a")} 6 file a`);
  expect(await open("d/x")).toBe(`ok ${inos.get("d/x")} 11 file x in d`);
  expect(await open("d")).toBe(`ok ${inos.get("d")} dir ${source === null ? 5 : 6}`); // ., .., e, x, md2 (, bf2)
  expect(await open("d/e")).toBe(`ok ${inos.get("d/e")} dir ${source === null ? 3 : 4}`);
  expect(await open("mv")).toBe(`ok ${inos.get("mv")} 20 renamed in the mount`);
  expect(await open("md/sub")).toBe(`ok ${inos.get("md/sub")} dir 3`);
  expect(await open("md")).toBe(`ok ${inos.get("md")} dir 3`);
  expect(await open("md/sub/f")).toBe(`ok ${inos.get("md/sub/f")} 16 in a renamed dir`);
  if (source !== null) {
    expect(await open("bd/in")).toBe(`ok ${inos.get("bd/in")} dir 2`);
    expect(await open("bf")).toBe(`ok ${inos.get("bf")} 23 renamed behind its back`);
    expect(await open("bd")).toBe(`ok ${inos.get("bd")} dir 3`);
  }
  // Deleted: ESTALE, also once new files may have taken its inode number.
  await rm(p("gone"));
  for (let i = 0; i < 50; i++) await writeFile(p(`new${i}`), `new ${i}`);
  await dropCaches();
  expect(await open("gone")).toBe("ESTALE");
  // Many deletions and creations reusing ids: a stale handle never opens a new file.
  const deleted = new Set<bigint>([inos.get("gone")!]);
  const created = new Set<bigint>();
  const stale: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 20; i++) {
      await writeFile(p(`r${i}`), `round ${round} file ${i}`);
      created.add((await stat(p(`r${i}`), { bigint: true })).ino);
      stale.push((await client(mnt, "handle", `@/r${i}`)).trim());
    }
    await dropCaches();
    for (let i = 0; i < 20; i++) {
      deleted.add((await stat(p(`r${i}`), { bigint: true })).ino);
      await rm(p(`r${i}`));
    }
    await dropCaches();
  }
  for (let i = 0; i < 20; i++) {
    await writeFile(p(`r${i}`), `final ${i}`);
    created.add((await stat(p(`r${i}`), { bigint: true })).ino);
  }
  await dropCaches();
  for (const h of stale) expect((await client(mnt, "openh", "@", h)).trim()).toBe("ESTALE");
  expect(await open("a")).toBe(`ok ${inos.get("a")} 6 file a`);
  expect(await open("d/e")).toBe(`ok ${inos.get("d/e")} dir ${source === null ? 3 : 4}`);
  return { deleted, created };
}

const skip = needsRoot("memfs vs tmpfs conformance", "mounts a tmpfs reference") || skipIf(Bun.which("gcc") === null, "memfs vs tmpfs conformance", "needs gcc for its C client");

for (const transport of transports()) {
  describe.skipIf(skip)(`memfs vs tmpfs conformance over ${transport}`, () => {
    test("directory offsets: telldir/seekdir to every position up to the largest cookie, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        await bigDir(m.dir);
        await bigDir(ref);
        const a = await client(m.dir, "dirseek", "@/big");
        const b = await client(ref, "dirseek", "@/big");
        // 2 + 343 entries, then every seek position 0..max+2 and the five far ones.
        expect(a.split("\n").length).toBeGreaterThan(2 * 345);
        expect(a).toBe(b);
        // The last entry's offset is above every other (tmpfs's end of directory).
        expect(a.split("\n")[344]).toBe("f0 2147483647");
      });
    }, 60_000);

    test("directory offsets: entries removed and added during a listing, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        for (const root of [m.dir, ref]) {
          await mkdir(join(root, "mut"));
          for (let i = 0; i < 400; i++) await writeFile(join(root, "mut", `f${i}`), "");
        }
        for (const first of ["100", "250"]) {
          const a = await client(m.dir, "dirmut", "@/mut", first);
          const b = await client(ref, "dirmut", "@/mut", first);
          expect(a).toBe(b);
          for (const root of [m.dir, ref]) {
            await Bun.$`rm -rf ${join(root, "mut")}`.quiet();
            await mkdir(join(root, "mut"));
            for (let i = 0; i < 400; i++) await writeFile(join(root, "mut", `f${i}`), "");
          }
        }
      });
    }, 60_000);

    test("holes: SEEK_DATA/SEEK_HOLE and st_blocks exact at 4 KiB pages, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        const cases: Array<[string, string[]]> = [
          // the issue's cases: data from the middle of a large hole; one page punched in a chunk
          ["far", ["w:4243456:100"]],
          ["punch1", ["w:0:65536", "p:4096:4096"]],
          ["pages", ["w:20480:1", "w:53248:4096", "w:131072:10", "p:131072:4096"]],
          ["partial", ["w:0:65536", "p:1000:10000", "p:30000:4096", "t:50000", "t:90000"]],
          ["alloc", ["k:8192:4096", "a:204800:100", "w:300000:5", "p:0:1000000"]],
        ];
        for (let seed = 1; seed <= 30; seed++) cases.push([`seed${seed}`, randomOps(seed, 60)]);
        for (const [name, ops] of cases) {
          const a = await client(m.dir, "holes", `@/${name}`, ...ops);
          const b = await client(ref, "holes", `@/${name}`, ...ops);
          expect(firstDifference(a, b, `${name}: ${ops.join(" ")}`)).toBe("");
        }
        expect(await client(m.dir, "holes", "@/far")).toContain("\n0 data 4243456 hole 0\n");
        expect(await client(m.dir, "holes", "@/punch1")).toContain("\n4096 data 8192 hole 4096\n");
      });
    }, 60_000);

    for (const mode of ["relatime", "noatime", "strictatime", "nodiratime", "strictatime,nodiratime"]) {
      test(`atime: -o ${mode} updates access times as tmpfs does`, async () => {
        await withPair(transport, [mode], async (m, ref) => {
          const a = await atimeSteps(m.dir);
          const b = await atimeSteps(ref);
          expect(a).toEqual(b);
          // what tmpfs does, so the comparison above is not vacuous
          const file = mode.startsWith("noatime") ? "kept" : "updated";
          expect(b[0]).toBe(`first access: file ${file}, dir ${mode.includes("nodiratime") || mode === "noatime" ? "kept" : "updated"}`);
          expect(b[1]!.startsWith(`second access: file ${mode.startsWith("strictatime") ? "updated" : "kept"}`)).toBe(true);
        });
      }, 60_000);
    }

    test("file handles: open_by_handle_at after the kernel dropped its caches (export support)", async () => {
      await withMount({ transport }, async (m) => {
        await exportChecks(m.dir, null);
      });
    }, 90_000);
  });
}

for (const transport of transports()) {
  describe.skipIf(skip)(`defineTree (examples/sqlfs) vs tmpfs conformance over ${transport}`, () => {
    test("directory offsets: telldir/seekdir to every position up to the largest cookie, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        await bigDir(m.dir);
        await bigDir(ref);
        const a = await client(m.dir, "dirseek", "@/big");
        expect(a.split("\n").length).toBeGreaterThan(2 * 345);
        expect(firstDifference(a, await client(ref, "dirseek", "@/big"), "dirseek")).toBe("");
        expect(a.split("\n")[344]).toBe("f0 2147483647");
      }, "sqlfs");
    }, 60_000);

    test("directory offsets: entries removed and added during a listing, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        for (const first of ["100", "250"]) {
          for (const root of [m.dir, ref]) {
            await mkdir(join(root, "mut"));
            await readdir(join(root, "mut"));
            for (let i = 0; i < 400; i++) await writeFile(join(root, "mut", `f${i}`), "");
          }
          const a = await client(m.dir, "dirmut", "@/mut", first);
          expect(firstDifference(a, await client(ref, "dirmut", "@/mut", first), `dirmut ${first}`)).toBe("");
          for (const root of [m.dir, ref]) await Bun.$`rm -rf ${join(root, "mut")}`.quiet();
        }
      }, "sqlfs");
    }, 60_000);

    for (const mode of ["relatime", "noatime", "strictatime", "nodiratime"]) {
      test(`atime: -o ${mode} updates access times as tmpfs does`, async () => {
        await withPair(transport, [mode], async (m, ref) => {
          expect(await atimeSteps(m.dir)).toEqual(await atimeSteps(ref));
        }, "sqlfs");
      }, 60_000);
    }

    test("file handles: open_by_handle_at after the kernel dropped its caches (export support: find, parent)", async () => {
      const db = await makeTempDir("sqlfs-db");
      try {
        await withMount({ transport, plugin: "./examples/sqlfs", cwd: REPO, args: ["--db", join(db, "fs.db")] }, async (m) => {
          await exportChecks(m.dir, null);
        });
      } finally {
        await removeTempDir(db);
      }
    }, 90_000);
  });
}

const skipPt = needsRoot("passthrough file handles", "open_by_handle_at needs CAP_DAC_READ_SEARCH") || skipIf(Bun.which("gcc") === null, "passthrough file handles", "needs gcc for its C client");

for (const transport of transports()) {
  describe.skipIf(skipPt)(`passthrough file handles over ${transport}`, () => {
    test("open_by_handle_at after the kernel dropped its caches (export support)", async () => {
      const src = await makeTempDir("pt-export-src");
      try {
        await withMount({ plugin: "passthrough", transport, args: ["--source", src] }, async (m) => {
          const { deleted, created } = await exportChecks(m.dir, src);
          // the source (ext4 here) gave deleted files' inode numbers, which are passthrough's
          // node ids, to new files: the stale handles above named ids that are in use again
          expect([...created].some((ino) => deleted.has(ino))).toBe(true);
        });
      } finally {
        await removeTempDir(src);
      }
    }, 90_000);
  });
}
