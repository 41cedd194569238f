/**
 * A real PostgreSQL for tests, from the Debian packages (/usr/lib/postgresql/<version>/bin), in a
 * temporary directory: initdb and the server run as an unprivileged user (initdb refuses root),
 * listening only on a unix socket inside that directory, trust auth. `stop()` in afterAll, always.
 */
import { chown, mkdtemp, readdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeResult, run } from "./run.ts";

export interface Postgres {
  /** postgres://postgres@localhost:PORT/postgres?host=<socket dir> */
  url: string;
  /** Fast shutdown (clients are disconnected, committed work is flushed). */
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILL of the postmaster (a crash: the next start replays the WAL). */
  kill(): Promise<void>;
  /** The temp dir: data in `data/`, the socket in `sock/`, the log in `log`. */
  dir: string;
}

/** The directory holding initdb and pg_ctl (newest version), or undefined when none is installed. */
export function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin/pg_ctl")) && existsSync(join(root, v, "bin/initdb")));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], "bin");
}

const USER = "nobody";
const live = new Set<Postgres & { immediateStop(): void }>();
process.on("exit", () => {
  for (const pg of live) pg.immediateStop();
});

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBin();
  if (!bin) throw new Error("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl)");
  const dir = await mkdtemp(join(tmpdir(), "furing-pg-"));
  const data = join(dir, "data"), sock = join(dir, "sock"), log = join(dir, "log");
  const root = process.getuid?.() === 0;
  const as = (cmd: string[]) => (root ? ["setpriv", `--reuid=${USER}`, `--regid=nogroup`, "--clear-groups", "--", ...cmd] : cmd);
  await chown(dir, 65534, 65534).catch(() => {});
  const mk = await run(as(["mkdir", "-p", sock]));
  if (mk.code !== 0) throw new Error(`postgres: mkdir ${sock}: ${describeResult(mk)}`);
  const init = await run(as([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]), { timeoutMs: 60_000 });
  if (init.code !== 0) throw new Error(`postgres: initdb failed: ${describeResult(init)}`);
  // a port of its own only names the socket file; nothing listens on TCP
  const port = 20000 + (process.pid % 20000);
  const opts = `-c listen_addresses='' -c unix_socket_directories='${sock}' -p ${port} -c fsync=on -c max_connections=100`;
  const ctl = async (...args: string[]) => {
    const r = await run(as([join(bin, "pg_ctl"), "-D", data, "-l", log, ...args]), { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`postgres: pg_ctl ${args[0]} failed: ${describeResult(r)}\n${await Bun.file(log).text().catch(() => "")}`);
  };
  const postmasterPid = async () => Number((await Bun.file(join(data, "postmaster.pid")).text().catch(() => "")).split("\n")[0]) || 0;
  const pg = {
    url: `postgres://postgres@localhost:${port}/postgres?host=${encodeURIComponent(sock)}`,
    dir,
    start: () => ctl("start", "-w", "-o", opts),
    stop: async () => {
      if (await postmasterPid()) await ctl("stop", "-w", "-m", "fast");
    },
    restart: () => ctl("restart", "-w", "-m", "fast", "-o", opts),
    async kill() {
      const pid = await postmasterPid();
      if (!pid) return;
      const children = await childrenOf(pid);
      process.kill(pid, "SIGKILL");
      // the backends notice that their postmaster died and exit; a new one may start only then
      for (let i = 0; i < 200 && children.some((c) => existsSync(`/proc/${c}`)); i++) await Bun.sleep(25);
      await rm(join(data, "postmaster.pid"), { force: true });
    },
    immediateStop() {
      Bun.spawnSync(as([join(bin, "pg_ctl"), "-D", data, "stop", "-m", "immediate"]));
      Bun.spawnSync(["rm", "-rf", dir]);
    },
  };
  const stop = pg.stop;
  pg.stop = async () => {
    try {
      await stop();
    } finally {
      live.delete(pg);
      await rm(dir, { recursive: true, force: true });
    }
  };
  live.add(pg);
  await pg.start();
  return pg;
}

/** The pids of a running server: the postmaster first, then its children (empty when stopped). */
export function serverPids(pg: Postgres): number[] {
  const { readFileSync } = require("node:fs") as typeof import("node:fs");
  let pid = 0;
  try {
    pid = Number(readFileSync(join(pg.dir, "data/postmaster.pid"), "utf8").split("\n")[0]) || 0;
  } catch {
    return [];
  }
  return pid && existsSync(`/proc/${pid}`) ? [pid, ...childrenOfSync(pid)] : [];
}

function childrenOfSync(pid: number): number[] {
  const { readdirSync, readFileSync } = require("node:fs") as typeof import("node:fs");
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    let stat = "";
    try {
      stat = readFileSync(`/proc/${e}/stat`, "utf8");
    } catch {
      continue;
    }
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
  }
  return out;
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await Bun.file(`/proc/${e}/stat`).text().catch(() => "");
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
  }
  return out;
}

/** Whether a PostgreSQL server exists to test against (binaries installed). */
export async function postgresInstalled(): Promise<boolean> {
  return postgresBin() !== undefined && (await readdir(postgresBin()!)).includes("initdb");
}
