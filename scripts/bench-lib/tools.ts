/**
 * The client side of the workloads: fio, the compiled metadata loops (fsops.c), tar/find/git,
 * dropping caches. Every call runs in a child process (optionally pinned with taskset -c) and
 * returns a {@link Sample}; a failure throws with the command and its output.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { check, q, sh, type RunOptions } from "./proc.ts";
import type { Sample } from "./model.ts";

export interface FioJob {
  file: string;
  rw: "read" | "write" | "randread" | "randwrite";
  bs: string;
  sizeMiB: number;
  engine?: "psync" | "io_uring";
  iodepth?: number;
  jobs?: number;
  direct?: boolean;
  /** Time-based run of this many seconds; undefined: one pass over the size. */
  seconds?: number;
  /** fio's invalidate (drop the file's page cache before the job): 0 for warm runs. */
  invalidate?: 0 | 1;
  endFsync?: boolean;
}

export class Tools {
  /** Per-command time limit (the runner lowers it to what is left of the workload's budget). */
  timeoutMs = 120_000;
  private fsopsBin = "";
  private tars = new Map<string, { file: string; entries: number }>();

  constructor(
    readonly scratch: string,
    readonly repo: string,
  ) {}

  private opts(cpus: string | undefined, extra: RunOptions = {}): RunOptions {
    return { timeoutMs: this.timeoutMs, ...(cpus !== undefined ? { cpus } : {}), ...extra };
  }

  /** Compiles fsops.c into the scratch directory (gcc -O2). */
  async compile(): Promise<void> {
    const dir = join(this.scratch, "bin");
    mkdirSync(dir, { recursive: true });
    this.fsopsBin = join(dir, "fsops");
    await check(["gcc", "-O2", "-pthread", "-o", this.fsopsBin, join(import.meta.dir, "fsops.c")], { timeoutMs: 60_000 });
  }

  /** Runs an fsops mode; value = operations per second. */
  async fsops(args: (string | number)[], cpus: string | undefined): Promise<Sample> {
    if (!this.fsopsBin) await this.compile();
    const r = await check([this.fsopsBin, ...args.map(String)], this.opts(cpus));
    const line = r.stdout.trim().split("\n").pop() ?? "";
    const j = JSON.parse(line) as { ops: number; ns: number; p50_ns: number; p99_ns: number };
    return { value: j.ns > 0 ? j.ops / (j.ns / 1e9) : 0, ops: j.ops, ...(j.p99_ns > 0 ? { p50_us: j.p50_ns / 1000, p99_us: j.p99_ns / 1000 } : {}) };
  }

  /**
   * `k` processes untar `tar` at once, each into its own DIR/pI (fsops untar), timed from their
   * common start to the last exit. elapsed: value = seconds; rate: value = entries/s, all callers summed.
   */
  async untar(k: number, tar: { file: string; entries: number }, dir: string, cpus: string | undefined, as: "elapsed" | "rate"): Promise<Sample> {
    const s = await this.fsops(["untar", k, tar.file, dir], cpus);
    const seconds = k / s.value;
    return { value: as === "elapsed" ? seconds : (k * tar.entries) / seconds, ops: k * tar.entries };
  }

  /**
   * Runs one fio job; value in `unit` ("MiB/s" or "IOPS", reads and writes summed), p99 of the
   * completion latency.
   */
  async fio(job: FioJob, unit: "MiB/s" | "IOPS", cpus: string | undefined): Promise<Sample> {
    const args = [
      "fio", "--name=bench", `--filename=${job.file}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--size=${job.sizeMiB}m`,
      `--ioengine=${job.engine ?? "psync"}`, `--iodepth=${job.iodepth ?? 1}`, `--numjobs=${job.jobs ?? 1}`, "--group_reporting=1",
      `--direct=${job.direct ? 1 : 0}`, `--invalidate=${job.invalidate ?? 1}`, "--fallocate=none", "--norandommap=1",
      // no disk-utilisation sampling (a /sys scan at start), clock_gettime instead of a TSC calibration
      "--disk_util=0", "--clocksource=clock_gettime",
      "--output-format=json", ...(job.seconds !== undefined ? ["--time_based=1", `--runtime=${Math.max(job.seconds * 1000, 50) | 0}ms`] : []),
      ...(job.endFsync ? ["--end_fsync=1"] : []),
    ];
    const r = await check(args, this.opts(cpus));
    const text = r.stdout.slice(r.stdout.indexOf("{"));
    type Dir = { io_bytes: number; bw_bytes: number; iops: number; total_ios: number; clat_ns?: { percentile?: Record<string, number> } };
    let parsed: { jobs: Array<{ error: number; read: Dir; write: Dir }> };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`fio printed no JSON: ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 500)}`);
    }
    const j = parsed.jobs[0];
    if (!j) throw new Error("fio reported no job");
    if (j.error) throw new Error(`fio job error ${j.error}: ${r.stderr.trim()}`);
    const dirs = [j.read, j.write].filter((d) => d && d.total_ios > 0);
    if (dirs.length === 0) throw new Error(`fio did no I/O: ${r.stderr.trim()}`);
    const value = unit === "MiB/s" ? dirs.reduce((s, d) => s + d.bw_bytes, 0) / 2 ** 20 : dirs.reduce((s, d) => s + d.iops, 0);
    const main = dirs[0]!;
    const p = main.clat_ns?.percentile ?? {};
    const p99 = p["99.000000"];
    const p50 = p["50.000000"];
    return {
      value,
      ops: dirs.reduce((s, d) => s + d.total_ios, 0),
      ...(p50 !== undefined ? { p50_us: p50 / 1000 } : {}),
      ...(p99 !== undefined ? { p99_us: p99 / 1000 } : {}),
    };
  }

  private done = new Map<string, Promise<unknown>>();

  /** Runs `fn` once per key (setup shared by the cases of a workload); a failure is not cached. */
  once<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.done.get(key) as Promise<T> | undefined;
    if (!p) {
      p = fn();
      this.done.set(key, p);
      p.catch(() => this.done.delete(key));
    }
    return p;
  }

  /**
   * Untimed setup of a data file: `sizeMiB` of random bytes written in 1 MiB blocks and fsynced
   * (once per file), then, for warm runs, read once so the page cache holds it.
   */
  async layout(file: string, sizeMiB: number, warm: boolean): Promise<void> {
    await this.once(`layout:${file}`, () =>
      check(["dd", "if=/dev/urandom", `of=${file}`, "bs=1M", `count=${sizeMiB}`, "conv=fsync", "status=none"], this.opts(undefined)),
    );
    if (warm) await sh(`cat ${q(file)} > /dev/null`, this.opts(undefined));
  }

  /** Times a command; value = elapsed seconds. */
  async timed(cmd: string[], cpus: string | undefined, ops: number, extra: RunOptions = {}): Promise<Sample> {
    const r = await check(cmd, this.opts(cpus, extra));
    return { value: r.ms / 1000, ops };
  }

  async mkdir(dir: string): Promise<void> {
    await check(["mkdir", "-p", dir], this.opts(undefined));
  }

  async rmrf(path: string): Promise<void> {
    await check(["rm", "-rf", "--one-file-system", path], this.opts(undefined));
  }

  /**
   * Drops the page, dentry and inode caches (`echo 3 > /proc/sys/vm/drop_caches`), after
   * writing back the given directories' filesystems (`sync -f`; never a global sync, which would
   * wait on every other mount of the machine).
   */
  async dropCaches(syncDirs: string[] = []): Promise<void> {
    const syncs = syncDirs.map((d) => `sync -f ${q(d)}`).join("; ");
    await sh(`${syncs ? syncs + "; " : ""}echo 3 > /proc/sys/vm/drop_caches`, this.opts(undefined));
  }

  /**
   * A tarball of `source` made once per run (sorted, fixed owners and times): the X1 input.
   * With `git`, the tree is also a committed git repository (the X2 input).
   */
  async tarball(source: string, git: boolean): Promise<{ file: string; entries: number }> {
    const key = `${source}|${git}`;
    const have = this.tars.get(key);
    if (have) return have;
    if (!existsSync(source)) throw new Error(`tar source ${source} does not exist`);
    // one file per source (X1 and U2/U3 may tar different trees)
    const file = join(this.scratch, `${git ? "repo" : "tree"}-${this.tars.size}.tar`);
    const base = source.replace(/\/+$/, "");
    const parent = base.slice(0, base.lastIndexOf("/")) || "/";
    const name = base.slice(base.lastIndexOf("/") + 1);
    const fixed = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@1700000000"];
    if (!git) {
      await check(["tar", "-C", parent, "-cf", file, ...fixed, name], { timeoutMs: 300_000 });
    } else {
      const src = join(this.scratch, "gitsrc");
      await this.mkdir(src);
      await sh(`tar -C ${q(parent)} -cf - ${q(name)} | tar -C ${q(src)} -xf -`, { timeoutMs: 300_000 });
      const repo = join(src, name);
      const g = (args: string[]) => check(["git", "-C", repo, ...args], { timeoutMs: 300_000, env: this.gitEnv() });
      await g(["init", "-q"]);
      await g(["add", "-A"]);
      await g(["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "tree"]);
      await check(["tar", "-C", src, "-cf", file, ...fixed, name], { timeoutMs: 300_000 });
      await this.rmrf(src);
    }
    const list = await check(["tar", "-tf", file], { timeoutMs: 60_000 });
    const got = { file, entries: list.stdout.split("\n").filter(Boolean).length };
    this.tars.set(key, got);
    return got;
  }

  /** git without the machine's or the user's configuration. */
  gitEnv(): Record<string, string> {
    return { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", HOME: this.scratch, GIT_TERMINAL_PROMPT: "0" };
  }
}
