/**
 * scripts/sqlfs-bench keeps working: `--smoke` (tiny counts, one round) measures the SQLite backend
 * through a real mount and, when PostgreSQL and examples/sqlfs's PostgreSQL backend are there, the
 * PostgreSQL parts too; otherwise it says why it skips them. It leaves no mount, server or scratch
 * dir behind, and a bad argument is a one-line usage error. Never fails on the numbers.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { chmod, readFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, mounts, REPO, withTempDir } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { describeResult, run } from "../helpers/run.ts";

setDefaultTimeout(120_000);
afterAll(cleanupAll);

const SCRIPT = join(REPO, "scripts/sqlfs-bench");

test.skipIf(needsRoot("the sqlfs-bench smoke run", "mounts through mount(2) and compares with FUSE-over-io_uring on"))(
  "--smoke measures sqlite (and PostgreSQL when it can, or says why not) and leaves nothing behind",
  () =>
    withTempDir(async (tmp) => {
      // its own TMPDIR, so that whatever it leaves is found there (other tests share /tmp); the
      // PostgreSQL server's account must reach its temp dir through it
      await chmod(tmp, 0o755);
      const json = join(tmp, "out.json");
      const t0 = performance.now();
      const r = await run([SCRIPT, "--smoke", "--json", json], { cwd: REPO, env: { TMPDIR: tmp }, timeoutMs: 110_000 });
      const s = (performance.now() - t0) / 1000;
      console.log(`sqlfs-bench --smoke: ${s.toFixed(1)} s`);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout).toContain("### (a) backends");
      for (const op of ["create", "stat", "unlink", "write", "read"]) expect(r.stdout).toMatch(new RegExp(`^\\| ${op} \\| [0-9.]+ (ops|MiB)/s;`, "m"));
      const doc = JSON.parse(await readFile(json, "utf8")) as { backends: Array<{ target: string; op: string; values: number[] }> };
      const sqlite = doc.backends.filter((x) => x.target === "sqlite");
      expect(sqlite.map((x) => x.op).sort()).toEqual(["create", "read", "stat", "unlink", "write"]);
      for (const row of sqlite) expect(row.values.every((v) => v > 0)).toBe(true);
      const skipped = /skipping the PostgreSQL backend: (.+)/.exec(r.stderr);
      if (skipped) {
        expect(r.stdout).toContain("(b) and (c) need the PostgreSQL backend: skipped");
        console.log(`sqlfs-bench --smoke skipped PostgreSQL: ${skipped[1]}`);
      } else {
        expect(doc.backends.some((x) => x.target === "postgres")).toBe(true);
        expect(r.stdout).toContain("### (b) cross-mount visibility");
        expect(r.stdout).toContain("### (c) 1..2 mounts");
      }
      expect((await mounts()).filter((m) => m.dir.startsWith(tmp + "/"))).toEqual([]);
      expect(readdirSync(tmp)).toEqual(["out.json"]);
    }),
);

test("a bad argument is a one-line usage error, exit 2", async () => {
  for (const [args, msg] of [
    [["--only", "d"], "sqlfs-bench: --only takes a, b and c, not 'd' (see --help)"],
    [["--options", "bogus"], "sqlfs-bench: --options: unknown mount option 'bogus' (see --help)"],
    [["--files", "0"], "sqlfs-bench: --files needs an integer ≥ 1, not '0' (see --help)"],
  ] as const) {
    const r = await run([SCRIPT, ...args], { cwd: REPO, timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(msg);
  }
});
