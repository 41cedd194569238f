/**
 * The PostgreSQL test harness (test/helpers/postgres.ts) against a real server: it starts and
 * answers Bun.SQL over the Unix socket and over TCP, a restart keeps what was committed and drops
 * what was not, a SIGKILL is recovered from on the next start, LISTEN/NOTIFY reaches another
 * connection (and survives a restart and a crash of the server), and nothing is left behind: not
 * after stop(), not after removePostgres() or cleanupAll(), not when the test process is
 * interrupted or exits without cleaning up.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { chmod, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupAll, isRoot, REPO, waitFor, withTempDir } from "../helpers/mount.ts";
import { run } from "../helpers/run.ts";
import { alive, removePostgres, serverPids, startPostgres, type PgServer } from "../helpers/postgres.ts";
import { needsPostgres } from "../helpers/skip.ts";

setDefaultTimeout(60_000);
afterAll(cleanupAll);

/** Runs `fn` with a fresh server and a Bun.SQL client on it; both always closed and removed. */
async function withPostgres(fn: (pg: PgServer, sql: Bun.SQL) => Promise<void>, opts: Parameters<typeof startPostgres>[0] = {}): Promise<void> {
  const pg = await startPostgres(opts);
  const sql = new Bun.SQL(pg.url, { max: 2, connectionTimeout: 10 });
  try {
    await fn(pg, sql);
  } catch (e) {
    (e as Error).message += `\n--- postgres.log ---\n${await readFile(join(pg.dir, "postgres.log"), "utf8").catch(() => "")}`;
    throw e;
  } finally {
    await sql.close({ timeout: 0 });
    await removePostgres(pg);
  }
}

/** A query that fails while the server is away: retried until the pool has reconnected. */
async function settle<T>(q: () => Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await q();
    } catch (e) {
      if (Date.now() > end) throw e;
      await Bun.sleep(50);
    }
  }
}

describe.skipIf(needsPostgres("the PostgreSQL harness tests"))("PostgreSQL harness", () => {
  test("starts a fresh cluster that Bun.SQL queries over the Unix socket in its temp dir", async () => {
    const t0 = performance.now();
    const pg = await startPostgres();
    const startMs = performance.now() - t0;
    console.log(`postgres harness: startPostgres() took ${startMs.toFixed(0)} ms (initdb + start)`);
    const sql = new Bun.SQL(pg.url);
    try {
      expect(pg.url).toStartWith("postgres://");
      const [row] = await sql`SELECT current_setting('data_directory') AS data, current_setting('fsync') AS fsync, inet_server_addr() AS addr, current_user AS who`;
      expect(row.data).toBe(join(pg.dir, "data"));
      expect(row.fsync).toBe("on");
      expect(row.addr).toBeNull(); // a Unix socket
      expect(row.who).toBe("postgres");
      expect(existsSync(join(pg.dir, ".s.PGSQL.5432"))).toBe(true);
      await sql`CREATE TABLE t (id int PRIMARY KEY, b bytea)`;
      await sql`INSERT INTO t VALUES (1, ${new Uint8Array([1, 2, 3])})`;
      const [got] = await sql`SELECT b FROM t WHERE id = 1`;
      expect([...got.b]).toEqual([1, 2, 3]);
      // initdb refuses root: as root the server runs as an unprivileged account
      const [pid] = serverPids(pg);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
      if (isRoot()) expect(uid).not.toBe(0);
      else expect(uid).toBe(process.getuid!());
      expect(statSync(join(pg.dir, "data")).uid).toBe(uid);
    } finally {
      await sql.close({ timeout: 0 });
      await removePostgres(pg);
    }
    expect(existsSync(pg.dir)).toBe(false);
  });

  test("with tcp: true it listens on 127.0.0.1 and the url is a TCP one", () =>
    withPostgres(
      async (pg, sql) => {
        expect(pg.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
        const [row] = await sql`SELECT host(inet_server_addr()) AS addr, current_setting('port') AS port`;
        expect(row.addr).toBe("127.0.0.1");
        expect(pg.url).toContain(`:${row.port}/`);
      },
      { tcp: true },
    ));

  test("restart keeps committed rows, drops an open transaction's, and keeps the url working", () =>
    withPostgres(async (pg, sql) => {
      await sql`CREATE TABLE t (id int PRIMARY KEY, v text)`;
      await sql`INSERT INTO t VALUES (1, 'committed')`;
      const other = new Bun.SQL(pg.url, { max: 1 });
      const tx = await other.reserve();
      await tx`BEGIN`;
      await tx`INSERT INTO t VALUES (2, 'open')`;
      const before = serverPids(pg);
      await pg.restart();
      expect(before.some(alive)).toBe(false);
      expect(serverPids(pg).length).toBeGreaterThan(0);
      tx.release();
      await other.close({ timeout: 0 });
      const rows = await settle(() => sql`SELECT id, v FROM t ORDER BY id`);
      expect(rows.map((r: { id: number; v: string }) => [r.id, r.v])).toEqual([[1, "committed"]]);
      const log = await readFile(join(pg.dir, "postgres.log"), "utf8");
      expect(log).not.toContain("automatic recovery in progress"); // a clean shutdown
    }));

  test("kill() is a crash: every server process dies at once, and start() recovers what was committed", () =>
    withPostgres(async (pg, sql) => {
      await sql`CREATE TABLE t (id int PRIMARY KEY, v text)`;
      for (let i = 0; i < 50; i++) await sql`INSERT INTO t VALUES (${i}, ${"row " + i})`;
      const before = serverPids(pg);
      expect(before.length).toBeGreaterThan(1); // the postmaster and its backends
      await pg.kill();
      expect(before.filter(alive)).toEqual([]);
      expect(serverPids(pg)).toEqual([]);
      await expect(sql`SELECT 1`).rejects.toThrow(); // the server is away
      await pg.start();
      const [row] = await settle(() => sql`SELECT count(*)::int AS n, max(v) AS last FROM t`);
      expect(row.n).toBe(50);
      expect(row.last).toBe("row 9");
      const log = await readFile(join(pg.dir, "postgres.log"), "utf8");
      expect(log).toContain("automatic recovery in progress");
    }));

  test("stop() leaves no server process and keeps the data for start(); stop, kill and start are idempotent", () =>
    withPostgres(async (pg, sql) => {
      await sql`CREATE TABLE t (v text)`;
      await sql`INSERT INTO t VALUES ('kept')`;
      const before = serverPids(pg);
      await pg.stop();
      expect(before.filter(alive)).toEqual([]);
      expect(existsSync(join(pg.dir, "data", "postmaster.pid"))).toBe(false);
      expect(existsSync(join(pg.dir, ".s.PGSQL.5432"))).toBe(false);
      await pg.stop();
      await pg.kill();
      await pg.start();
      await pg.start();
      const [row] = await settle(() => sql`SELECT v FROM t`);
      expect(row.v).toBe("kept");
    }));

  test("removePostgres and cleanupAll stop the server and remove its temp dir", async () => {
    const a = await startPostgres();
    const b = await startPostgres();
    const pids = [...serverPids(a), ...serverPids(b)];
    expect(a.dir).not.toBe(b.dir);
    await removePostgres(a);
    expect(existsSync(a.dir)).toBe(false);
    await expect(a.start()).rejects.toThrow(/removed/);
    await cleanupAll(); // what every test file's afterAll runs
    expect(existsSync(b.dir)).toBe(false);
    expect(pids.filter(alive)).toEqual([]);
  });

  test("the safety net kills the server and removes its dir when the test process is interrupted or exits without cleanup", async () => {
    for (const how of ["SIGTERM", "SIGINT", "exit"] as const) {
      const script = `
        import { startPostgres, serverPids } from ${JSON.stringify(join(REPO, "test/helpers/postgres.ts"))};
        const pg = await startPostgres();
        console.log(JSON.stringify({ dir: pg.dir, pids: serverPids(pg) }));
        if (${JSON.stringify(how)} === "exit") process.exit(3);
        setInterval(() => {}, 1000);`;
      const child = Bun.spawn([process.execPath, "-e", script], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
      const reader = child.stdout.getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      const info = JSON.parse(out) as { dir: string; pids: number[] };
      try {
        expect(info.pids.length).toBeGreaterThan(0);
        if (how !== "exit") child.kill(how);
        await child.exited;
        expect(await waitFor(() => info.pids.every((p) => !alive(p)), 10_000)).toBe(true);
        expect(existsSync(info.dir)).toBe(false);
      } finally {
        for (const p of info.pids) if (alive(p)) process.kill(p, "SIGKILL");
        Bun.spawnSync(["rm", "-rf", "--one-file-system", info.dir]);
      }
    }
  });

  test("a server that does not start is reported with its log, and leaves nothing behind", async () => {
    const before = new Set(readdirSync(tmpdir()).filter((e) => e.startsWith("furing-test-pg-")));
    const err = await startPostgres({ settings: { shared_buffers: "lots" } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/exited \(code 1, signal null\); its log:\n[^]*invalid value for parameter "shared_buffers": "lots"/);
    const left = readdirSync(tmpdir()).filter((e) => e.startsWith("furing-test-pg-") && !before.has(e));
    expect(left).toEqual([]);
  });

  test.skipIf(!isRoot())("as root, a TMPDIR the server's account cannot search is a one-line error, and nothing is left", () =>
    withTempDir(async (tmp) => {
      await chmod(tmp, 0o700); // as mkdtemp makes it: root only
      const r = await run([process.execPath, "-e", `import { startPostgres } from ${JSON.stringify(join(REPO, "test/helpers/postgres.ts"))}; await startPostgres();`], {
        cwd: REPO,
        env: { TMPDIR: tmp },
        timeoutMs: 30_000,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error: cannot start PostgreSQL as \w+: it cannot reach \S+ \(every directory above it, TMPDIR included, must be searchable by others, as \/tmp is\)\n/);
      expect(readdirSync(tmp)).toEqual([]);
    }));

  // What Bun.SQL (1.4.4) does with LISTEN/NOTIFY, for sqlfs's coherence between mounts.
  test("LISTEN/NOTIFY: delivered to another client; a notify in a transaction only on commit; re-subscribed after a restart and after a crash", () =>
    withPostgres(async (pg, sql) => {
      const listener = new Bun.SQL(pg.url, { max: 1 });
      const got: string[] = [];
      let subscribed = 0;
      const sub = await listener.listen("sqlfs_changes", (p) => got.push(p), () => subscribed++);
      try {
        expect(subscribed).toBe(1); // onlisten ran before listen() resolved
        expect(sub.channel).toBe("sqlfs_changes");
        await sql.notify("sqlfs_changes", "ino 42");
        expect(await waitFor(() => got.length === 1, 5000, 5)).toBe(true);
        expect(got).toEqual(["ino 42"]);

        // in a transaction: delivered on COMMIT, dropped on ROLLBACK
        await sql.begin(async (tx) => {
          await tx.notify("sqlfs_changes", "in tx");
          await Bun.sleep(100);
          expect(got).toEqual(["ino 42"]);
        });
        await sql
          .begin(async (tx) => {
            await tx.notify("sqlfs_changes", "rolled back");
            throw new Error("roll back");
          })
          .catch(() => {});
        await sql.notify("sqlfs_changes", "marker");
        expect(await waitFor(() => got.includes("marker"), 5000, 5)).toBe(true);
        expect(got).toEqual(["ino 42", "in tx", "marker"]);
        // a payload is at most 7999 bytes; a channel name at most 63
        await expect(sql.notify("sqlfs_changes", "x".repeat(8000))).rejects.toThrow(/payload string too long/);
        await expect(listener.listen("c".repeat(64), () => {})).rejects.toThrow(/at most 63 bytes/);
        const sqlite = new Bun.SQL("sqlite://:memory:");
        await expect(sqlite.listen("sqlfs_changes", () => {})).rejects.toThrow(/not supported by this adapter \(PostgreSQL only\)/);
        await sqlite.close();

        for (const outage of ["restart", "kill"] as const) {
          const n = subscribed;
          if (outage === "restart") await pg.restart();
          else {
            await pg.kill();
            await Bun.sleep(300); // down for a while: the listen connection retries with backoff
            await pg.start();
          }
          expect(await waitFor(() => subscribed === n + 1, 15_000, 10)).toBe(true); // onlisten runs again on re-subscribe
          await settle(() => sql.notify("sqlfs_changes", `after ${outage}`));
          expect(await waitFor(() => got.includes(`after ${outage}`), 5000, 5)).toBe(true);
        }
      } finally {
        await sub.unlisten();
        await listener.close({ timeout: 0 });
      }
    }));
});
