/**
 * Diagnostics a plugin author reads: `furing status` (generation, load time, last reload error,
 * error replies by errno with expected answers kept apart from failures, the reactor Workers'
 * counts summed in), stacks folded to the plugin's frames, `-d` decoding replies, `--typecheck`
 * rejecting a type error while the old generation keeps serving, and the CLI's messages for -f /
 * --background and unknown plugin names. Every daemon runs in a child process; every mount is
 * torn down, pass or fail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { withMemfsCopy, STATFS_SOURCE } from "../helpers/reload.ts";
import { chmod, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cleanupAll, cli, isMounted, makeTempDir, removeTempDir, REPO, spawnDaemon, transports, waitFor, withMount, type Mount } from "../helpers/mount.ts";
import { describeResult, run, sh } from "../helpers/run.ts";

afterAll(cleanupAll);

const DIAG = resolve(import.meta.dir, "../fixtures/diag-fs.ts");
const DIAG_SOURCE = readFileSync(DIAG, "utf8").split("\n");
const SHARED = resolve(import.meta.dir, "../fixtures/shared-counter.ts");
const XATTR = resolve(import.meta.dir, "../fixtures/xattr-bytes.ts");

/** "diag-fs.ts:<line>:" of the line marked `@site:<name>`. */
function site(name: string): string {
  const i = DIAG_SOURCE.findIndex((l) => l.includes(`@site:${name}`));
  if (i < 0) throw new Error(`no @site:${name} in ${DIAG}`);
  return `diag-fs.ts:${i + 1}:`;
}

/** Waits until the log after `from` matches `re`. */
async function waitLog(m: Mount, re: RegExp, from = 0, ms = 10_000): Promise<RegExpExecArray> {
  let match: RegExpExecArray | null = null;
  await waitFor(() => (match = re.exec(m.log().slice(from))) !== null, ms, 20);
  if (match === null) throw new Error(`the daemon log shows no ${re} within ${ms} ms:\n${m.log().slice(from).slice(-4000)}`);
  return match;
}

type OpStatus = { count: number; errors: number; failures: number; expected: number; errnos: Record<string, number> };

async function statusText(dir: string): Promise<string> {
  const r = await cli(["status", dir]);
  if (r.code !== 0) throw new Error(describeResult(r));
  return r.stdout;
}

for (const transport of transports()) {
  describe(`diagnostics over ${transport}`, () => {
    test("status shows the generation, when it loaded, the last reload error, and errors by errno (expected apart from failures)", async () => {
      await withMount({ plugin: DIAG, transport }, async (m) => {
        for (const n of ["missing-1", "missing-2", "missing-3"]) await expect(stat(join(m.dir, n))).rejects.toMatchObject({ code: "ENOENT" });
        await expect(readFile(join(m.dir, "eio"))).rejects.toMatchObject({ code: "EIO" });
        const s = await m.status();
        const ops = s.ops as unknown as Record<string, OpStatus>;
        expect(ops.lookup!.errnos.ENOENT).toBeGreaterThanOrEqual(3);
        expect(ops.lookup!.expected).toBe(ops.lookup!.errnos.ENOENT!);
        expect(ops.lookup!.failures).toBe(0);
        expect(ops.read!.errnos.EIO).toBeGreaterThanOrEqual(1);
        expect(ops.read!.failures).toBe(ops.read!.errnos.EIO!);
        expect(ops.read!.expected).toBe(0);
        expect(s.generation).toBe(1);
        expect(Date.now() - Date.parse(s.generationLoadedAt as string)).toBeLessThan(120_000);
        expect(s.lastReloadError).toBeNull();

        const text = await statusText(m.dir);
        expect(text).toMatch(/^ {2}generation 1, loaded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\); 0 reloads, 0 rejected/m);
        expect(text).toMatch(/^ {2}last reload error: none$/m);
        expect(text).toMatch(/^ {2}op +count +failed +expected +p50µs +p99µs$/m);
        expect(text).toMatch(new RegExp(`^ {2}lookup +\\d+ +0 +${ops.lookup!.expected} `, "m"));
        expect(text).toMatch(new RegExp(`^ {4}lookup: expected ENOENT ${ops.lookup!.errnos.ENOENT}$`, "m"));
        expect(text).toMatch(new RegExp(`^ {4}read: failed EIO ${ops.read!.errnos.EIO}$`, "m"));
      });
    }, 60_000);

    test("status sums the reactor Workers' error replies by errno", async () => {
      await withMount({ plugin: SHARED, transport, reactors: 2 }, async (m) => {
        for (let i = 0; i < 6; i++) await expect(stat(join(m.dir, `nothing-${i}`))).rejects.toMatchObject({ code: "ENOENT" });
        const s = await m.status();
        // the Workers serve every LOOKUP (the main thread reads only INIT, FORGET and INTERRUPT)
        expect((s.reactors as { count: number }).count).toBe(2);
        const lookup = (s.ops as unknown as Record<string, OpStatus>).lookup!;
        expect(lookup.errnos.ENOENT).toBeGreaterThanOrEqual(6);
        expect(lookup.expected).toBe(lookup.errnos.ENOENT!);
        expect(await statusText(m.dir)).toMatch(new RegExp(`^ {4}lookup: expected ENOENT ${lookup.errnos.ENOENT}$`, "m"));
      });
    }, 60_000);

    test("a TypeError logs the plugin's frames, then one line for the runtime's", async () => {
      await withMount({ plugin: DIAG, transport }, async (m) => {
        const from = m.log().length;
        await expect(readFile(join(m.dir, "typeerror"))).rejects.toMatchObject({ code: "EIO" });
        const e = (await waitLog(m, /furing: read \(node 2[^\n]*threw: TypeError[\s\S]*?answered EIO/, from))[0];
        const lines = e.split("\n");
        // message, innerHelper, outerHelper, read, the folded runtime
        expect(lines.length, e).toBe(5);
        expect(lines[1], e).toContain(site("inner"));
        expect(lines[1]).toContain("innerHelper");
        expect(lines[2], e).toContain(site("outer"));
        expect(lines[3], e).toContain(site("read"));
        expect(lines[4], e).toMatch(/^ {4}\(\+\d+ furing frames?\) — answered EIO$/);
        expect(e, "no runtime file may be printed").not.toContain("/runtime/");
        expect(e, "frames are the plugin's source, not the bundle").not.toMatch(/gen-\d+/);
      });
    }, 60_000);

    test("-d decodes replies: entries, attributes, open replies, write counts, statfs, xattr sizes; modes octal; FORGET counts", async () => {
      await withMount({ transport, args: ["-d"] }, async (m) => {
        const f = join(m.dir, "traced");
        const from = m.log().length;
        await writeFile(f, "hello", { mode: 0o640 });
        await chmod(f, 0o751);
        expect(await readFile(f, "utf8")).toBe("hello");
        await sh(["stat", "-f", m.dir]);
        await sh([process.execPath, XATTR, "set", Buffer.from(f).toString("hex"), Buffer.from("user.k").toString("hex"), Buffer.from("value").toString("hex")]);
        // getxattr(..., size 0): the size probe
        const probe = `const {dlopen,FFIType:T}=require("bun:ffi");const c=dlopen("libc.so.6",{lgetxattr:{args:[T.cstring,T.cstring,T.ptr,T.u64],returns:T.i64_fast}}).symbols;` +
          `const z=(s)=>Buffer.from(s+"\\0");console.log(Number(c.lgetxattr(z(${JSON.stringify(f)}),z("user.k"),null,0)))`;
        expect((await sh([process.execPath, "-e", probe])).trim()).toBe("5");
        await unlink(f);
        await waitLog(m, /^\[\d+\] (FORGET node=\d+ nlookup=\d+|BATCH_FORGET node=\d+ count=\d+ \[ino:nlookup \d+:\d+)/m, from);
        const log = m.log().slice(from).split("\n").filter((l) => l.startsWith("["));
        const line = (re: RegExp) => {
          const l = log.find((x) => re.test(x));
          if (l === undefined) throw new Error(`no trace line matches ${re}:\n${log.join("\n")}`);
          return l;
        };
        expect(line(/ CREATE .*"traced"/)).toMatch(/"traced" mode=0100640 flags=0\d+ .*→ OK 144 bytes \{ino=(\d+) generation=\d+ entry_valid=1s attr_valid=1s mode=0100640 nlink=1 uid=\d+ gid=\d+ size=0 mtime=\d+\.\d{9} fh=\d+ open_flags=\S+\}/);
        expect(line(/ WRITE /)).toMatch(/size=5 .*→ OK 8 bytes \{count=5\}/);
        expect(line(/ SETATTR node=\d+ mode=/)).toMatch(/ SETATTR node=\d+ mode=0100751 .*→ OK 104 bytes \{attr_valid=1s ino=\d+ mode=0100751 nlink=1 /);
        expect(line(/ OPEN /)).toMatch(/flags=0\d* .*→ OK 16 bytes \{fh=\d+ open_flags=\S+\}/);
        expect(line(/ STATFS /)).toMatch(/→ OK 80 bytes \{blocks=\d+ bfree=\d+ bavail=\d+ files=\d+ ffree=\d+ bsize=\d+ namelen=255 frsize=\d+\}/);
        expect(line(/ GETXATTR .*"user.k" size=0/)).toMatch(/→ OK 8 bytes \{size=5\}/);
        expect(line(/ LOOKUP .*"traced"/)).toMatch(/→ (-ENOENT|OK 128 bytes \{ino=\d+ generation=\d+ .*mode=0100\d{3} )/);
        for (const l of log) for (const mm of l.matchAll(/\bmode=(\S+)/g)) expect(mm[1], l).toMatch(/^0[0-7]*$/);
      });
    }, 60_000);
  });
}

describe("--typecheck", () => {
  for (const transport of transports()) {
    test(`a type error is rejected with file:line and the old generation keeps serving (${transport})`, async () => {
      await withMemfsCopy(async (plugin) => {
        const ops = join(plugin, STATFS_SOURCE);
        await withMount({ plugin, transport, args: ["--typecheck"], readyTimeoutMs: 90_000, timeoutMs: 200_000 }, async (m) => {
          const cold = Number((await waitLog(m, /generation 1 type-checks clean \((\d+) ms\)/))[1]);
          const namelen = async () => Number((await sh(["stat", "-f", "-c", "%l", m.dir])).trim());
          expect(await namelen()).toBe(255);
          // a clean edit serves
          let from = m.log().length;
          await writeFile(ops, (await readFile(ops, "utf8")).replace("namelen: 255", "namelen: 201"));
          const warm = Number((await waitLog(m, /generation 2 type-checks clean \((\d+) ms\)/, from, 60_000))[1]);
          await waitLog(m, /generation 2 serving/, from, 30_000);
          expect(await namelen()).toBe(201);
          // a type error (it bundles and would run: only the checker can refuse it)
          from = m.log().length;
          const text = await readFile(ops, "utf8");
          const line = text.slice(0, text.indexOf("namelen: 201")).split("\n").length;
          await writeFile(ops, text.replace("namelen: 201", 'namelen: "202" as string'));
          const rej = (await waitLog(m, /reload rejected, generation 2 keeps serving: generation 3 has 1 type error \(--typecheck\):\n {2}(\S+): TS2322: /, from, 60_000));
          expect(rej[1]).toMatch(new RegExp(`^${ops.replaceAll("/", "\\/")}:${line}:\\d+$`));
          expect(await namelen(), "generation 2 still answers").toBe(201);
          const s = await m.status();
          expect(s.generation).toBe(2);
          expect(s.lastReloadError).toContain(`${ops}:${line}:`);
          expect(await statusText(m.dir)).toMatch(new RegExp(`^ {2}last reload error \\(.*\\): generation 3 has 1 type error[^\\n]*\\n +${ops.replaceAll("/", "\\/")}:${line}:\\d+: TS2322`, "m"));
          // a type error in types alone bundles to the serving code: still reported, not skipped as identical
          from = m.log().length;
          await writeFile(ops, text + "\ntype Unused = NoSuchType;\n");
          const typeOnly = await waitLog(m, /(reload rejected, generation 2 keeps serving: generation 3 has 1 type error \(--typecheck\):\n {2}\S+: TS2304: Cannot find name 'NoSuchType')|bundle is identical/, from, 60_000);
          expect(typeOnly[1], typeOnly[0]).toBeDefined();
          expect(await namelen()).toBe(201);
          console.log(`--typecheck over ${transport}: first check ${cold} ms, reload check ${warm} ms`);
        });
      });
    }, 240_000);
  }
});

describe("CLI messages", () => {
  test("an unknown plugin name lists the built-ins and the path tried; nothing is mounted", async () => {
    const dir = await makeTempDir("cli");
    try {
      const r = await run([process.execPath, join(REPO, "runtime/cli/main.ts"), "mount", "sqlfs", dir], { cwd: dir, timeoutMs: 30_000 });
      expect(r.code, describeResult(r)).toBe(1);
      expect(r.stderr.trim()).toBe(`furing: plugin sqlfs: not a built-in plugin (built-ins: memfs, passthrough), nor a plugin path: tried ${join(dir, "sqlfs")}, which does not exist`);
      expect(await isMounted(dir)).toBe(false);
    } finally {
      await removeTempDir(dir);
    }
  });

  test("usage reads -f as foreground and --background apart; the two together are refused", async () => {
    const h = await cli(["mount", "--help"]);
    expect(h.stdout).toContain("[-f|--foreground] [--background]");
    expect(h.stdout).not.toContain("-f|--background");
    expect(h.stdout).toMatch(/-f, --foreground +stay in the foreground/);
    const dir = await makeTempDir("cli");
    try {
      const r = await cli(["mount", "memfs", dir, "-f", "--background"]);
      expect(r.code, describeResult(r)).toBe(2);
      expect(r.stderr.trim()).toBe("furing: -f/--foreground and --background contradict each other: -f serves in this process (the default), --background returns once mounted");
      expect(await isMounted(dir)).toBe(false);
    } finally {
      await removeTempDir(dir);
    }
  });

  test("mount.fuse3's form (`furing <plugin> <dir> ...`) with -f stays in the foreground", async () => {
    const dir = await makeTempDir("cli");
    const d = spawnDaemon(["memfs", dir, "-f", "-o", "fsname=fg-test"]);
    try {
      await waitFor(() => d.output().includes("furing: ready ") || !d.alive(), 20_000);
      expect(d.output(), d.output()).toContain(`furing: ready ${dir}`);
      expect(d.output()).not.toContain("mounted in the background");
      expect(d.alive(), "the command itself serves the mount").toBe(true);
      expect(await isMounted(dir)).toBe(true);
    } finally {
      d.signal("SIGTERM");
      await d.waitExit(10_000);
      if (await isMounted(dir)) await run(["umount", "-l", dir], { timeoutMs: 10_000 });
      d.signal("SIGKILL");
      await removeTempDir(dir);
    }
  });
});
