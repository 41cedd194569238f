/**
 * The command line as an operator meets it, before anything mounts: --help and --version of
 * every command, and the usage errors (exit 2, a message naming the cause and what is valid).
 *
 * Daemons run in child processes; the test never makes a synchronous syscall on a mount. Anything
 * a test mounts or starts is torn down in `finally` (and by a process-exit safety net): the
 * harness is test/helpers/cli-daemon.ts.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { REPO, cleanupAll, cli, makeTempDir, removeTempDir } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";
import { mustFail } from "../helpers/cli-daemon.ts";
import pkg from "../../package.json" with { type: "json" };

afterAll(cleanupAll);
// bunfig.toml's [test] timeout does not reach every runner; these tests mount and wait for daemons
setDefaultTimeout(60_000);

describe("--help and --version", () => {
  test("`furing --help` and `furing -h` list every command; `furing` alone prints it with exit 2", async () => {
    for (const flag of ["--help", "-h", "help"]) {
      const r = await cli([flag]);
      expect(r.code, describeResult(r)).toBe(0);
      for (const c of ["furing mount", "furing unmount", "furing status", "furing compile", "--version"]) expect(r.stdout).toContain(c);
    }
    const bare = await cli([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toContain("furing mount");
  });

  const commands: Record<string, string[]> = {
    mount: ["furing mount", "-o opt", "-f", "--background", "--log", "-d", "--no-watch",
      // the mount option list, libfuse vocabulary plus the generic mount(8) ones
      "allow_other", "allow_root", "default_permissions", "ro", "fsname=", "subtype=", "max_read=", "max_write=",
      "writeback_cache", "auto_unmount", "entry_timeout=", "attr_timeout=", "io_uring=", "noexec", "noatime", "_netdev", "nofail", "defaults"],
    unmount: ["furing unmount", "-z"],
    status: ["furing status", "--json"],
    compile: ["furing compile", "-o"],
  };
  for (const [cmd, wanted] of Object.entries(commands)) {
    test(`\`furing ${cmd} --help\` exits 0 and names its options`, async () => {
      for (const flag of ["--help", "-h"]) {
        const r = await cli([cmd, flag]);
        expect(r.code, describeResult(r)).toBe(0);
        expect(r.stderr).toBe("");
        for (const w of wanted) expect(r.stdout, `${cmd} ${flag} should mention ${w}`).toContain(w);
      }
    });
  }

  test("`furing umount` is an alias of unmount", async () => {
    const r = await cli(["umount", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("furing unmount");
  });

  test("`furing --version` / `-V` name the package version and the git commit", async () => {
    const head = await run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]);
    for (const flag of ["--version", "-V"]) {
      const r = await cli([flag]);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.trim()).toMatch(/^furing \d+\.\d+\.\d+ \(commit (?:[0-9a-f]{7,}(?:-dirty)?|source), bun \d+\.\d+\.\d+/);
      expect(r.stdout).toContain(`furing ${pkg.version} `);
      if (head.code === 0) expect(r.stdout).toContain(`commit ${head.stdout.trim()}`);
    }
  });

  test("an unknown command is a usage error (exit 2) that shows the usage", async () => {
    const r = await cli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    expect(r.stderr).toContain("furing mount");
  });
});

// ---------------------------------------------------------------------------------------------

describe("usage errors: exit 2, naming the cause and what is valid", () => {
  const VALID = ["allow_other", "allow_root", "ro", "rw", "fsname", "subtype", "max_read", "max_write", "writeback_cache",
    "auto_unmount", "entry_timeout", "noexec", "nosuid", "nodev", "noatime", "defaults", "_netdev", "nofail"];

  test("an unknown -o option names it and lists every valid option", async () => {
    const dir = await makeTempDir("usage");
    try {
      for (const opts of [["-o", "ro,frobnicate=3"], ["-o", "ro", "-o", "frobnicate"], ["-ofrobnicate"]]) {
        const r = await mustFail(["mount", "memfs", dir, ...opts], dir);
        expect(r.code, describeResult(r)).toBe(2);
        expect(r.mounted).toBe(false);
        expect(r.stderr).toContain("'frobnicate'");
        for (const v of VALID) expect(r.stderr, `valid option ${v} not listed`).toContain(v);
      }
    } finally {
      await removeTempDir(dir);
    }
  });

  const badValues: Array<[string, string, RegExp]> = [
    ["entry_timeout=soon", "entry_timeout", /seconds/],
    ["attr_timeout=-1", "attr_timeout", /seconds/],
    ["max_read=12", "max_read", /4096\.\./],
    ["max_write=lots", "max_write", /integer/],
    ["io_uring=maybe", "io_uring", /'on' or 'off'/],
    ["io_uring_q_depth=0", "io_uring_q_depth", /1\.\.1024/],
    ["fsname=", "fsname", /value/],
    ["ro=1", "ro", /takes no value/],
    ["allow_other=yes", "allow_other", /takes no value/],
  ];
  test("a bad option value names the option and what it takes", async () => {
    const dir = await makeTempDir("badval");
    try {
      for (const [opt, name, valid] of badValues) {
        const r = await mustFail(["mount", "memfs", dir, "-o", `rw,${opt}`], dir);
        expect(r.code, `-o ${opt}: ${describeResult(r)}`).toBe(2);
        expect(r.mounted).toBe(false);
        expect(r.stderr, `-o ${opt}`).toContain(`'${name}'`);
        expect(r.stderr, `-o ${opt}`).toMatch(valid);
      }
    } finally {
      await removeTempDir(dir);
    }
  });

  test("malformed command lines of each command exit 2", async () => {
    const dir = await makeTempDir("argv");
    try {
      const cases: Array<[string[], RegExp]> = [
        [["mount", "memfs"], /mount needs <plugin> and <mountpoint>/],
        [["mount", "memfs", dir, "-o"], /-o needs/],
        [["mount", "memfs", dir, "-x"], /unknown flag '-x'/],
        [["mount", "memfs", dir, "--log"], /--log needs/],
        [["unmount"], /exactly one mountpoint/],
        [["unmount", dir, dir], /exactly one mountpoint/],
        [["unmount", "-x", dir], /unknown flag '-x'/],
        [["status", "--bogus"], /unknown flag '--bogus'/],
      ];
      for (const [args, msg] of cases) {
        const r = await mustFail(args, dir);
        expect(r.code, describeResult(r)).toBe(2);
        expect(r.stderr, describeResult(r)).toMatch(msg);
        expect(r.mounted).toBe(false);
      }
    } finally {
      await removeTempDir(dir);
    }
  });
});
