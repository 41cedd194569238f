/**
 * `scripts/setup --with-postgres` on a machine without PostgreSQL, which this one is not: the real
 * script runs with `dpkg-query` and `apt-get` replaced by recording stand-ins on PATH, and with
 * FURING_PG_LIB pointing at an empty directory where the stand-in apt-get "installs" the server
 * programs. Checked: it installs `postgresql` only when the programs are missing, says so in one
 * line, fails with one line when apt-get fails or installs no programs, and leaves a machine that
 * has them alone. Then: without the programs, the harness tests skip and say why.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, isRoot, REPO, withTempDir } from "../helpers/mount.ts";
import { run } from "../helpers/run.ts";

setDefaultTimeout(120_000);
afterAll(cleanupAll);

const SETUP = join(REPO, "scripts/setup");

/** Runs scripts/setup with stand-ins for dpkg-query (every package installed) and apt-get (logged; `install ... postgresql` creates the programs unless told not to). */
async function setupWithStandIns(tmp: string, args: string[], apt: "installs" | "installs-nothing" | "fails" = "installs") {
  const shims = join(tmp, "bin");
  const pgLib = join(tmp, "postgresql");
  const aptLog = join(tmp, "apt.log");
  await mkdir(shims, { recursive: true });
  await mkdir(pgLib, { recursive: true });
  await writeFile(join(shims, "dpkg-query"), `#!/bin/sh\nprintf installed\n`);
  await writeFile(
    join(shims, "apt-get"),
    `#!/bin/sh
echo "$*" >> ${aptLog}
[ "$1" = update ] && exit 0
case " $* " in *" postgresql "*) ;; *) exit 0 ;; esac
${apt === "fails" ? 'echo "E: Unable to locate package postgresql" >&2; exit 100' : ""}
${apt === "installs" ? `mkdir -p ${pgLib}/15/bin && for p in initdb pg_ctl postgres; do printf '#!/bin/sh\\n' > ${pgLib}/15/bin/$p; chmod +x ${pgLib}/15/bin/$p; done` : ""}
exit 0
`,
  );
  await chmod(join(shims, "dpkg-query"), 0o755);
  await chmod(join(shims, "apt-get"), 0o755);
  const r = await run([SETUP, ...args], { env: { PATH: `${shims}:${process.env.PATH}`, FURING_PG_LIB: pgLib }, timeoutMs: 110_000 });
  const log = await readFile(aptLog, "utf8").catch(() => "");
  return { ...r, apt: log, pgLib };
}

describe("scripts/setup --with-postgres", () => {
  test("without the server programs it installs postgresql (as root) or says to (as a normal user)", () =>
    withTempDir(async (tmp) => {
      const r = await setupWithStandIns(tmp, ["--with-postgres"]);
      if (isRoot()) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.apt).toContain("install -y -q --no-install-recommends postgresql");
        expect(r.stdout).toContain("setup: installed postgresql");
      } else {
        expect(r.code).toBe(1);
        expect(r.stderr.trim()).toBe("setup: error: missing Debian packages: postgresql; install them as root: apt-get install postgresql");
        expect(r.apt).toBe("");
      }
    }));

  test("with them in place it installs nothing and prints nothing about PostgreSQL; without the option it never looks", () =>
    withTempDir(async (tmp) => {
      const bin = join(tmp, "postgresql", "16", "bin");
      await mkdir(bin, { recursive: true });
      for (const p of ["initdb", "pg_ctl", "postgres"]) {
        await writeFile(join(bin, p), "#!/bin/sh\n");
        await chmod(join(bin, p), 0o755);
      }
      const r = await setupWithStandIns(tmp, ["--with-postgres"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.apt).toBe("");
      expect(r.stdout + r.stderr).not.toMatch(/postgres/i);
      const plain = await setupWithStandIns(join(tmp), []);
      expect(plain.code, plain.stderr).toBe(0);
      expect(plain.apt).toBe("");
    }));

  test("a version directory without all three programs does not count", () =>
    withTempDir(async (tmp) => {
      const bin = join(tmp, "postgresql", "14", "bin");
      await mkdir(bin, { recursive: true });
      await writeFile(join(bin, "initdb"), "#!/bin/sh\n");
      await chmod(join(bin, "initdb"), 0o755);
      const r = await setupWithStandIns(tmp, ["--with-postgres"]);
      if (isRoot()) expect(r.apt).toContain("postgresql");
      else expect(r.stderr).toContain("missing Debian packages: postgresql");
    }));

  describe.skipIf(!isRoot())("as root, apt-get failing", () => {
    test("apt-get fails: exit 1 and a last line naming the package", () =>
      withTempDir(async (tmp) => {
        const r = await setupWithStandIns(tmp, ["--with-postgres"], "fails");
        expect(r.code).toBe(1);
        expect(r.apt).toContain("update"); // retried after refreshing the package lists
        expect(r.stderr.trim().split("\n").at(-1)).toBe("setup: error: could not install: postgresql");
      }));

    test("apt-get succeeds but installs no server programs: exit 1 naming what is missing where", () =>
      withTempDir(async (tmp) => {
        const r = await setupWithStandIns(tmp, ["--with-postgres"], "installs-nothing");
        expect(r.code).toBe(1);
        expect(r.stderr.trim()).toBe(
          `setup: error: PostgreSQL's server programs (initdb, pg_ctl, postgres) are not under ${r.pgLib}/<version>/bin after installing postgresql`,
        );
      }));
  });
});

test("without PostgreSQL's programs the harness tests skip and print why", async () => {
  const r = await run([process.execPath, "test", "test/integration/postgres-harness.test.ts"], {
    cwd: REPO,
    env: { FURING_PG_LIB: "/nonexistent" },
    timeoutMs: 60_000,
  });
  const out = r.stdout + r.stderr;
  expect(out).toContain(
    "furing tests: skipping the PostgreSQL harness tests: no PostgreSQL server programs (initdb, pg_ctl, postgres) under /nonexistent/<version>/bin; scripts/setup --with-postgres installs them",
  );
  expect(out).toMatch(/\b0 pass\b/);
  expect(out).toMatch(/\b0 fail\b/);
  expect(out).toMatch(/\b[1-9]\d* skip\b/);
  expect(r.code).toBe(0);
});
