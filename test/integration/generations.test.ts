/**
 * A generation's life as its plugin sees it: `destroy` (and the releases registered with
 * `ctx.onDestroy`) run exactly once per generation — a retired one when its last request is done,
 * the serving one at unmount, after the others — and a `setup` that throws still releases what
 * it registered. test/fixtures/lifecycle.ts logs each step; it is copied to a temp dir and edited
 * there to reload. Over both transports, the daemon in a child process.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, makeTempDir, mountFs, removeTempDir, transports, unmountFs, waitFor, REPO, type Mount, type Transport } from "../helpers/mount.ts";
import { run } from "../helpers/run.ts";

afterAll(cleanupAll);

/** The fixture in a fresh temp dir; `edit` rewrites its source. */
async function fixture(): Promise<{ dir: string; file: string; edit(from: string, to: string): Promise<void> }> {
  const dir = await makeTempDir("lifecycle");
  const file = join(dir, "lifecycle.ts");
  await copyFile(join(REPO, "test/fixtures/lifecycle.ts"), file);
  return {
    dir,
    file,
    async edit(from, to) {
      const s = await readFile(file, "utf8");
      if (!s.includes(from)) throw new Error(`fixture has no ${from}`);
      await writeFile(file, s.replace(from, to));
    },
  };
}

/** The plugin's own log lines ("[lifecycle] ..."), in order. */
const pluginLines = (log: string) => log.split("\n").filter((l) => l.startsWith("[lifecycle] ")).map((l) => l.slice(12));
const count = (lines: string[], line: string) => lines.filter((l) => l === line).length;

async function waitLog(m: Mount, re: RegExp, ms = 20_000): Promise<void> {
  if (!(await waitFor(() => re.test(m.log()), ms, 20))) throw new Error(`the daemon log shows no ${re} within ${ms} ms:\n${m.log()}`);
}

/** Mount the fixture, run `fn`, unmount (always); returns the daemon's whole log. */
async function withFixtureMount(transport: Transport, file: string, fn: (m: Mount) => Promise<void>): Promise<string> {
  const m = await mountFs({ plugin: file, transport });
  try {
    await fn(m);
  } finally {
    await unmountFs(m);
  }
  return m.log();
}

for (const transport of transports()) {
  describe(`generations over ${transport}`, () => {
    test("reload twice then unmount: each generation is destroyed and released once, the serving one last", async () => {
      const f = await fixture();
      try {
        const log = await withFixtureMount(transport, f.file, async (m) => {
          expect(await readFile(join(m.dir, "info"), "utf8")).toBe("generation 1 (one)\n");
          await f.edit(`const LABEL = "one"`, `const LABEL = "two"`);
          await waitLog(m, /generation 2 serving/);
          await waitLog(m, /destroy generation 1/); // nothing in flight: destroyed at once
          await f.edit(`const LABEL = "two"`, `const LABEL = "three"`);
          await waitLog(m, /generation 3 serving/);
          expect(await readFile(join(m.dir, "info"), "utf8")).toBe("generation 3 (three)\n");
        });
        const lines = pluginLines(log);
        for (const g of [1, 2, 3]) {
          expect({ g, destroy: count(lines, `destroy generation ${g}`), released: count(lines, `released generation ${g}`) }).toEqual({ g, destroy: 1, released: 1 });
          // the plugin's destroy first, then what setup registered
          expect(lines.indexOf(`destroy generation ${g}`)).toBeLessThan(lines.indexOf(`released generation ${g}`));
        }
        // generation 3 was serving: destroyed at unmount, after the others
        expect(lines.slice(-2)).toEqual(["destroy generation 3", "released generation 3"]);
        expect(log).not.toContain("destroy of generation");
      } finally {
        await removeTempDir(f.dir);
      }
    }, 60_000);

    test("reload while a request is in flight: the old generation answers it, and is destroyed only after", async () => {
      const f = await fixture();
      try {
        const log = await withFixtureMount(transport, f.file, async (m) => {
          const slow = run(["cat", join(m.dir, "slow")], { timeoutMs: 20_000 });
          await waitLog(m, /slow read started in generation 1/);
          await f.edit(`const LABEL = "one"`, `const LABEL = "two"`);
          await waitLog(m, /generation 2 serving/);
          // generation 1 still has the read: not destroyed yet, and generation 2 serves new requests
          expect(m.log()).not.toContain("destroy generation 1");
          expect(await readFile(join(m.dir, "info"), "utf8")).toBe("generation 2 (two)\n");
          const r = await slow;
          expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "slow from generation 1\n" });
          await waitLog(m, /destroy generation 1/);
        });
        const lines = pluginLines(log);
        expect(lines.indexOf("slow read done in generation 1")).toBeLessThan(lines.indexOf("destroy generation 1"));
        expect(count(lines, "destroy generation 1")).toBe(1);
        expect(count(lines, "destroy generation 2")).toBe(1);
        expect(lines.at(-1)).toBe("released generation 2");
      } finally {
        await removeTempDir(f.dir);
      }
    }, 60_000);

    test("a setup that throws releases what it registered, on reload (the old generation keeps serving) and at mount", async () => {
      const f = await fixture();
      try {
        const log = await withFixtureMount(transport, f.file, async (m) => {
          await f.edit(`const FAIL = false`, `const FAIL = true`);
          await waitLog(m, /reload rejected, generation 1 keeps serving: .*setup failed.*fails on purpose/);
          await waitLog(m, /released generation 2/);
          expect(await readFile(join(m.dir, "info"), "utf8")).toBe("generation 1 (one)\n");
        });
        const lines = pluginLines(log);
        // generation 2 never had a filesystem: released, not destroyed; generation 1 served to the end
        expect(count(lines, "released generation 2")).toBe(1);
        expect(count(lines, "destroy generation 2")).toBe(0);
        expect(lines.slice(-2)).toEqual(["destroy generation 1", "released generation 1"]);

        // at mount: nothing is mounted, and the release ran before the daemon gave up
        const err = await mountFs({ plugin: f.file, transport, readyTimeoutMs: 15_000 }).then(
          async (m) => {
            await unmountFs(m);
            return "mounted";
          },
          (e: Error) => e.message,
        );
        expect(err).toContain("setup of generation 1 fails on purpose");
        expect(err).toContain("[lifecycle] released generation 1");
      } finally {
        await removeTempDir(f.dir);
      }
    }, 60_000);

    test("a generation whose init fails never serves and is destroyed and released once, on reload and at mount", async () => {
      const f = await fixture();
      try {
        const log = await withFixtureMount(transport, f.file, async (m) => {
          await f.edit(`const INIT_FAIL = false`, `const INIT_FAIL = true`);
          await waitLog(m, /reload rejected, generation 1 keeps serving: init of generation 2 failed/);
          await waitLog(m, /released generation 2/);
          expect(await readFile(join(m.dir, "info"), "utf8")).toBe("generation 1 (one)\n");
        });
        const lines = pluginLines(log);
        expect([count(lines, "destroy generation 2"), count(lines, "released generation 2")]).toEqual([1, 1]);
        expect(lines.slice(-2)).toEqual(["destroy generation 1", "released generation 1"]);

        const err = await mountFs({ plugin: f.file, transport, readyTimeoutMs: 15_000 }).then(
          async (m) => {
            await unmountFs(m);
            return "mounted";
          },
          (e: Error) => e.message,
        );
        expect(err).toContain("init of generation 1 fails on purpose");
        expect(err).toContain("[lifecycle] destroy generation 1\n[lifecycle] released generation 1");
      } finally {
        await removeTempDir(f.dir);
      }
    }, 60_000);
  });
}
