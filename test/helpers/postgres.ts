/**
 * A real PostgreSQL server for a test, never a mock: Debian's binaries
 * (`/usr/lib/postgresql/<ver>/bin`, `scripts/setup --with-postgres`), a fresh cluster made by
 * initdb in a new temp dir, trust auth, listening on a Unix socket in that dir (and on 127.0.0.1
 * with `tcp: true`). `url` is a `postgres://` URL that Bun.SQL (and libpq) take as it is.
 *
 * initdb refuses root: as root the server runs as Debian's `postgres` system account (which
 * postgresql-common creates with the binaries; `nobody` if it is absent), otherwise as the user
 * running the tests. The postmaster is this process's child, started straight from `postgres`
 * rather than through `pg_ctl start`: pg_ctl setsid()s it out of the test run's process group, where
 * CI's timeout would no longer reach it.
 *
 * Every server is torn down: `cleanupAll()` (the `afterAll` of every test file) stops it and
 * removes its temp dir, and the test kit's process-level safety net SIGKILLs it and removes the
 * dir if the run ends or is interrupted first. `stop()` keeps the data dir so that `start()` can
 * bring the same cluster back; {@link removePostgres} ends a server for good.
 *
 *   const pg = await startPostgres();
 *   const sql = new Bun.SQL(pg.url);
 *   await pg.kill(); await pg.start();   // crash and recovery, same data dir and port
 */
import type { Subprocess } from "bun";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync } from "node:fs";
import { chmod, chown, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isRoot, makeTempDir, registerTeardown, removeTempDir, waitFor } from "./mount.ts";

export interface PgServer {
  /** `postgres://postgres@localhost:PORT/postgres?host=DIR` (Unix socket), or `...@127.0.0.1:PORT/...` with `tcp`. */
  url: string;
  /** The server's temp dir: the cluster in `data/`, the socket, `postgres.log`. */
  dir: string;
  /** Fast shutdown (SIGINT: sessions end, checkpoint, exit); waits until every server process is gone. Keeps the data. */
  stop(): Promise<void>;
  /** Starts the postmaster on the data dir and port it had; resolves once it accepts connections. */
  start(): Promise<void>;
  /** {@link stop} then {@link start}. */
  restart(): Promise<void>;
  /** A crash: SIGKILL of the postmaster and of its backends at once; the next start() runs crash recovery. */
  kill(): Promise<void>;
}

/** The name the sqlfs tests (branch pg) first coded against. */
export type Postgres = PgServer;

export interface PgOptions {
  /** Also listen on 127.0.0.1 (a free port), and give a TCP url. Default: the Unix socket only. */
  tcp?: boolean;
  /** Extra server settings (`-c name=value`), after the harness's own. */
  settings?: Record<string, string | number>;
  /** How long start() waits for the server to accept connections (default 30 s: crash recovery included). */
  startTimeoutMs?: number;
}

/** Where Debian installs each PostgreSQL version's server programs (`<ver>/bin`); FURING_PG_LIB overrides it, as for scripts/setup. */
export const PG_LIB = process.env.FURING_PG_LIB || "/usr/lib/postgresql";
const PROGRAMS = ["initdb", "pg_ctl", "postgres"];

/** The newest `/usr/lib/postgresql/<ver>/bin` holding initdb, pg_ctl and postgres, or undefined. */
export function postgresBin(): string | undefined {
  let versions: string[];
  try {
    versions = readdirSync(PG_LIB).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    return undefined;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(PG_LIB, v, "bin");
    if (PROGRAMS.every((p) => isExecutable(join(bin, p)))) return bin;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  if (postgresBin()) return undefined;
  return `no PostgreSQL server programs (${PROGRAMS.join(", ")}) under ${PG_LIB}/<version>/bin; scripts/setup --with-postgres installs them`;
}

/** The account the server runs as when the tests run as root (initdb refuses root). */
function serverAccount(): { name: string; uid: number; gid: number } {
  const passwd = readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":"));
  for (const name of ["postgres", "nobody"]) {
    const f = passwd.find((x) => x[0] === name);
    if (f) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error("cannot run PostgreSQL as root and /etc/passwd has neither a postgres nor a nobody account to run it as");
}

// The server programs' environment: a fixed locale and time zone (initdb otherwise probes the
// zoneinfo tree for one, which costs time, and takes the locale from the caller).
const PG_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C", LANG: "C", TZ: "UTC" };

// Small and quick, but durable: fsync stays on (tests check that committed data survives a crash).
const SETTINGS: Record<string, string | number> = {
  fsync: "on",
  shared_buffers: "32MB",
  wal_level: "minimal",
  max_wal_senders: 0,
  max_connections: 100,
  log_min_messages: "warning",
  log_line_prefix: "%m [%p] ",
};

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** The processes whose parent is `pid` (the postmaster's backends and auxiliary processes). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) === pid && f[0] !== "Z") out.push(Number(e));
    } catch {}
  }
  return out;
}

/** Whether process `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s[s.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {}
}

interface Internal {
  pg: PgServer;
  proc?: Subprocess;
  /** The postmaster's children seen while it ran: they must be gone too before it counts as stopped. */
  children: Set<number>;
  unregister: () => void;
  removed: boolean;
}
const servers = new Map<PgServer, Internal>();

/** The pids of a running server: the postmaster first, then its children (empty when stopped). */
export function serverPids(pg: PgServer): number[] {
  const s = servers.get(pg);
  const pid = s?.proc?.pid;
  if (pid === undefined || !alive(pid)) return [];
  return [pid, ...childrenOf(pid)];
}

/** Starts a fresh PostgreSQL cluster in a new temp dir; see the module comment. */
export async function startPostgres(opts: PgOptions = {}): Promise<PgServer> {
  const bin = postgresBin();
  if (!bin) throw new Error(`cannot start PostgreSQL: ${postgresMissing()}`);
  const dir = await makeTempDir("pg");
  const data = join(dir, "data");
  const logPath = join(dir, "postgres.log");
  const account = isRoot() ? serverAccount() : undefined;
  const asServer = account ? ["setpriv", `--reuid=${account.uid}`, `--regid=${account.gid}`, "--clear-groups", "--"] : [];
  const port = opts.tcp ? freePort() : 5432; // with the Unix socket only, the port just names it: .s.PGSQL.<port> in our own dir
  const socket = join(dir, `.s.PGSQL.${port}`);
  const url = opts.tcp
    ? `postgres://postgres@127.0.0.1:${port}/postgres`
    : `postgres://postgres@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const settings = { ...SETTINGS, listen_addresses: opts.tcp ? "127.0.0.1" : "", ...opts.settings };

  const tail = async () => {
    const log = await readFile(logPath, "utf8").catch(() => "");
    return log.length > 4000 ? `[...]\n${log.slice(-4000)}` : log;
  };

  let s: Internal;
  const stop = async (): Promise<void> => {
    const proc = s.proc;
    if (!proc) return;
    const children = new Set([...s.children, ...childrenOf(proc.pid)]);
    // SIGINT is the fast shutdown; SIGTERM (smart) would wait for every client to disconnect.
    killQuietly(proc.pid, "SIGINT");
    if (!(await Promise.race([proc.exited.then(() => true), Bun.sleep(30_000).then(() => false)]))) {
      killQuietly(proc.pid, "SIGQUIT");
      await Promise.race([proc.exited, Bun.sleep(5000)]);
      killQuietly(proc.pid, "SIGKILL");
      await proc.exited;
    }
    await gone(children);
    s.proc = undefined;
    s.children.clear();
  };

  const kill = async (): Promise<void> => {
    const proc = s.proc;
    if (!proc) return;
    const children = new Set([...s.children, ...childrenOf(proc.pid)]);
    killQuietly(proc.pid, "SIGKILL");
    for (const c of children) killQuietly(c, "SIGKILL");
    await proc.exited;
    // A backend forked in between outlives its parent: take what is left (reparented now) as well.
    await gone(children);
    s.proc = undefined;
    s.children.clear();
  };

  /** Waits until every pid is gone; a new postmaster refuses to start while old backends hold the shared memory. */
  const gone = async (pids: Set<number>) => {
    if (!(await waitFor(() => [...pids].every((p) => !alive(p)), 10_000, 10))) {
      for (const p of pids) killQuietly(p, "SIGKILL");
      if (!(await waitFor(() => [...pids].every((p) => !alive(p)), 5000, 10)))
        throw new Error(`PostgreSQL in ${dir}: processes ${[...pids].filter(alive).join(", ")} did not exit`);
    }
  };

  const start = async (): Promise<void> => {
    if (s.removed) throw new Error(`PostgreSQL in ${dir} was removed; start a new one with startPostgres()`);
    if (s.proc) return;
    const args = [join(bin, "postgres"), "-D", data, "-p", String(port), "-k", dir];
    for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);
    const fd = openSync(logPath, "a");
    let proc: Subprocess;
    try {
      proc = Bun.spawn([...asServer, ...args], { env: PG_ENV, stdin: "ignore", stdout: fd, stderr: fd });
    } finally {
      closeSync(fd);
    }
    s.proc = proc;
    // Ready as pg_ctl judges it: postmaster.pid names this process and its status line says "ready".
    const pidFile = join(data, "postmaster.pid");
    const ready = async () => {
      const lines = (await readFile(pidFile, "utf8").catch(() => "")).split("\n");
      return Number(lines[0]) === proc.pid && lines[7]?.trim() === "ready" && existsSync(socket);
    };
    const t0 = performance.now();
    for (;;) {
      if (await ready()) break;
      if (proc.exitCode !== null || proc.signalCode !== null || performance.now() - t0 > startTimeoutMs) {
        const why = proc.exitCode !== null || proc.signalCode !== null ? `exited (code ${proc.exitCode}, signal ${proc.signalCode})` : `was not ready after ${startTimeoutMs} ms`;
        killQuietly(proc.pid, "SIGKILL");
        await proc.exited;
        s.proc = undefined;
        throw new Error(`PostgreSQL (${args.join(" ")}) ${why}; its log:\n${await tail()}`);
      }
      await Bun.sleep(5);
    }
    for (const c of childrenOf(proc.pid)) s.children.add(c);
  };

  const pg: PgServer = {
    url,
    dir,
    stop: () => stop(),
    start: () => start(),
    restart: async () => {
      await stop();
      await start();
    },
    kill: () => kill(),
  };
  s = {
    pg,
    children: new Set(),
    removed: false,
    unregister: () => {},
  };
  servers.set(pg, s);
  s.unregister = registerTeardown({
    async: () => removePostgres(pg),
    sync: () => {
      const pid = s.proc?.pid;
      if (pid !== undefined) {
        const children = childrenOf(pid);
        killQuietly(pid, "SIGKILL");
        for (const c of [...s.children, ...children]) killQuietly(c, "SIGKILL");
      }
      Bun.spawnSync(["rm", "-rf", "--one-file-system", dir], { stdout: "ignore", stderr: "ignore", timeout: 10_000 });
    },
  });

  try {
    if (account) {
      await chown(dir, account.uid, account.gid);
      await chmod(dir, 0o755); // others may reach the socket (trust auth: it is a test server)
      const reach = Bun.spawnSync([...asServer, "test", "-x", dir], { env: PG_ENV });
      if (!reach.success)
        throw new Error(`cannot start PostgreSQL as ${account.name}: it cannot reach ${dir} (every directory above it, TMPDIR included, must be searchable by others, as /tmp is)`);
    }
    const initdb = Bun.spawn(
      [...asServer, join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      { env: PG_ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(initdb.stdout).text(), new Response(initdb.stderr).text(), initdb.exited]);
    if (code !== 0) {
      const said = (out + err).split("\n").filter((l) => /^initdb: (error|detail|hint)/.test(l));
      throw new Error(`initdb ${data}${account ? ` as ${account.name}` : ""} failed (exit ${code}): ${(said.length ? said : [(out + err).trim()]).join("; ")}`);
    }
    if (socket.length > 107) throw new Error(`the socket path ${socket} is longer than a Unix socket address allows (107 bytes); use a shorter TMPDIR`);
    await start();
  } catch (e) {
    await removePostgres(pg).catch(() => {});
    throw e;
  }
  return pg;
}

/** Stops a server (fast shutdown; SIGKILL if that hangs) and removes its temp dir, for good. Safe to call twice. */
export async function removePostgres(pg: PgServer): Promise<void> {
  const s = servers.get(pg);
  if (!s || s.removed) return;
  s.removed = true;
  try {
    await pg.stop();
  } catch {
    await pg.kill();
  }
  s.unregister();
  servers.delete(pg);
  await removeTempDir(pg.dir);
}
