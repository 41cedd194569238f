/**
 * `furing check` and `checkPlugin` (furing/testing): the checker finds the bugs seeded into memfs
 * by test/fixtures/broken-memfs.ts (wrong link counts after a directory rename, a lost write past
 * EOF, a mode that ignores the umask), shrinks each to a short sequence with both sides' answers,
 * exits non-zero for them, passes memfs itself, summarises refusals, and names bad options.
 * The daemons are child processes (through the test kit); every mount is torn down.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { checkPlugin, FAMILY_NAMES, type Family } from "furing/testing";
import { cleanupAll, cli, isMounted, isRoot, REPO, transports } from "../helpers/mount.ts";

afterAll(cleanupAll);

const BROKEN = join(REPO, "test/fixtures/broken-memfs.ts");
const NO_CONCURRENCY = FAMILY_NAMES.filter((f): f is Family => f !== "concurrency" && f !== "space");

/** Each bug, what the difference is about, and an op its shortest sequence must contain. */
const BUGS = [
  { bug: "rename-nlink", sig: /nlink/, op: /^renameat2\(/ },
  { bug: "write-past-eof", sig: /size|content/, op: /^p?write\(/ },
  { bug: "ignore-umask", sig: /mode/, op: /(open|mkdir|mknod)\(/ },
];

/** The mounts a run's progress lines name: plugin and tmpfs, per transport. */
function mountsNamed(stderr: string): string[] {
  return [...stderr.matchAll(/over \S+ \((\S+)\) vs tmpfs \((\S+)\)/g)].flatMap((m) => [m[1]!, m[2]!]);
}

describe.skipIf(!isRoot())("checkPlugin", () => {
  for (const transport of transports()) {
    test(`finds each bug seeded into memfs over ${transport} and shrinks it to a few ops`, async () => {
      for (const { bug, sig, op } of BUGS) {
        const r = await checkPlugin({ plugin: BROKEN, pluginArgs: ["--bug", bug], transports: [transport], seeds: [1], ops: 1500, families: NO_CONCURRENCY, shrinkMs: 15_000 });
        expect(r.ok).toBe(false);
        expect(r.differences.length).toBe(1);
        const d = r.differences[0]!;
        if (!sig.test(d.sig) || !d.confirmed || d.sequence.length > 8) throw new Error(`${bug}: ${d.report}`);
        // the last line shows the difference; the ones before include the op that causes it
        expect(d.sequence.slice(0, -1).some((l) => op.test(l.replace(/^\[as \d+:\d+\] /, "").replace(/^fd\d+ = /, "")))).toBe(true);
        expect(d.report).toContain("Shortest sequence found");
        console.error(`check.test (${transport}): ${bug}: ${d.sig}, ${d.sequence.length} ops`);
      }
    }, 90_000);

    test(`memfs shows no difference over ${transport} (concurrent writers included)`, async () => {
      const r = await checkPlugin({ plugin: "memfs", transports: [transport], seeds: [1, 2], ops: 2000, writers: 2, writerOps: 300 });
      if (!r.ok) throw new Error(r.differences.map((d) => d.report).join("\n\n"));
      expect(r.refusals).toEqual([]);
      expect(r.runs.map((x) => String(x.seed))).toEqual(["1", "2", expect.stringMatching(/^concurrent /)]);
      expect(r.ops).toBeGreaterThan(4000);
    }, 60_000);
  }

  test("refusals by design are summarised, not reported as differences", async () => {
    const r = await checkPlugin({ plugin: BROKEN, pluginArgs: ["--no-xattrs"], transports: ["classic"], seeds: [1, 2], ops: 1500, families: NO_CONCURRENCY });
    if (!r.ok) throw new Error(r.differences.map((d) => d.report).join("\n\n"));
    expect(r.refusals.map((x) => x.kind).sort()).toEqual(["getxattr", "listxattr", "removexattr", "setxattr"]);
    for (const x of r.refusals) expect(x.errno).toBe("EOPNOTSUPP");
  }, 60_000);
});

describe.skipIf(!isRoot())("furing check (command line)", () => {
  test("a bug: exit 1, the shortest sequence with the plugin's and tmpfs's answers, nothing left mounted", async () => {
    const r = await cli(["check", "test/fixtures/broken-memfs.ts", "--bug", "write-past-eof", "--transport", "classic", "--seed", "1"], 60_000);
    expect(r.code).toBe(1);
    // the bug would show again in every concurrent writer: those runs are left out, said once
    expect(r.stderr).toContain("check: classic: concurrent writers skipped (the sequential runs already differ)");
    expect(r.stdout).toContain("DIFFERENCE: test/fixtures/broken-memfs.ts over classic vs tmpfs, seed 1");
    expect(r.stdout).toContain("(A: test/fixtures/broken-memfs.ts, served by furing; B: tmpfs, the reference)");
    expect(r.stdout).toMatch(/Shortest sequence found: [2-8] ops/);
    expect(r.stdout).toMatch(/size A 0 B \d+/);
    expect(r.stdout).toMatch(/furing check test\/fixtures\/broken-memfs.ts: 1 run, \d+ ops compared with tmpfs, 1 difference\n$/);
    const dirs = mountsNamed(r.stderr);
    expect(dirs.length).toBe(2);
    for (const d of dirs) expect(await isMounted(d)).toBe(false);
    // the replay line re-runs the shortest sequence: it differs on the broken plugin, not on memfs
    const line = /^Replay: furing (check .* --replay (\S+))$/m.exec(r.stdout);
    expect(line).not.toBeNull();
    const again = await cli(line![1]!.split(" "), 30_000);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/size A 0 B \d+/);
    const fixed = await cli(["check", "memfs", "--transport", "classic", "--replay", line![2]!], 30_000);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toMatch(/1 run, [2-8] ops compared with tmpfs, 0 differences/);
  }, 60_000);

  test("memfs by name and by path: exit 0, zero differences", async () => {
    for (const plugin of ["memfs", "plugins/memfs"]) {
      const r = await cli(["check", plugin, "--ops", "500", "--seed", "3", "--transport", "io_uring", "--writers", "2", "--writer-ops", "100"], 60_000);
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      expect(r.stdout).toMatch(new RegExp(`furing check ${plugin}: 2 runs, \\d+ ops compared with tmpfs, 0 differences\\n$`));
    }
  }, 60_000);

  test("refusals: one summary line per op kind, exit 0", async () => {
    const r = await cli(["check", "test/fixtures/broken-memfs.ts", "--no-xattrs", "--transport", "classic", "--seed", "1", "--only", "xattrs,data"], 60_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Refused by design");
    expect(r.stdout.split("\n").filter((l) => l.includes("EOPNOTSUPP")).length).toBe(4);
    expect(r.stdout).toMatch(/0 differences, 4 op kinds refused\n$/);
  }, 60_000);

  test("a read-only filesystem: exit 1 with one line saying why it cannot be checked", async () => {
    const r = await cli(["check", "test/fixtures/hello.ts", "--transport", "classic", "-q"], 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^furing check: cannot make the run's directory in the mount \(ENOSYS\)/);
  }, 30_000);

  test("bad options: exit 2 and one line naming the option", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--transport", "uring"], /--transport is io_uring, classic or both, not 'uring'/],
      [["--only", "data,bogus"], /--only: unknown family 'bogus'/],
      [["--skip", "tree"], /--skip: the tree family is always on/],
      [["--ops", "many"], /--ops wants a positive integer, not 'many'/],
      [["--seed", "1,x"], /--seed wants a non-negative integer, not 'x'/],
      [["--seed"], /--seed needs a value/],
      [["-x"], /unknown flag '-x'/],
      [["--opss", "3"], /plugin memfs: unknown option '--opss'/], // the plugin's options are the daemon's to check
    ];
    for (const [args, msg] of cases) {
      const r = await cli(["check", "memfs", ...(args[0] === "--transport" ? [] : ["--transport", "classic"]), ...args], 30_000);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split("\n")[0]).toMatch(/^furing: /);
    }
    const none = await cli(["check"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("check needs one <plugin>");
    const help = await cli(["check", "--help"]);
    expect(help.code).toBe(0);
    for (const f of FAMILY_NAMES) expect(help.stdout).toContain(`  ${f} `);
  }, 60_000);
});
