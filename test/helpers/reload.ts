/**
 * Hot reload from a plugin author's side, shared by test/integration/hot-reload.test.ts and the
 * reload scripts (scripts/reload-soak, scripts/reload-latency): a temporary copy of memfs to edit,
 * edits, the generation log lines, and a soak of many reloads in a row.
 */
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO, waitFor, withTempDir, type Mount } from "./mount.ts";
import { rssKiB, settledRssKiB } from "./proc.ts";
import { sh } from "./run.ts";

export const MEMFS = join(REPO, "plugins/memfs");
/** The memfs source file holding statfs (f_namelen 255), which reload tests and scripts edit. */
export const STATFS_SOURCE = "ops/attributes.ts";
/** Generous: the latency itself is measured by scripts/reload-latency, not asserted by the tests. */
export const RELOAD_DEADLINE_MS = 10_000;

/** Runs `fn` with a temporary copy of memfs's source files, removed afterwards. */
export function withMemfsCopy<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  return withTempDir(async (dir) => {
    await cp(MEMFS, dir, { recursive: true });
    return fn(dir);
  }, "plugin");
}

/** Replace `from` (which must occur) with `to` in `file`; returns the line number of the change. */
export async function edit(file: string, from: string, to: string): Promise<number> {
  const text = await readFile(file, "utf8");
  const at = text.indexOf(from);
  if (at < 0) throw new Error(`${file} does not contain ${JSON.stringify(from)}`);
  await writeFile(file, text.slice(0, at) + to + text.slice(at + from.length));
  return text.slice(0, at).split("\n").length;
}

/** statfs f_namelen of the mount, through a spawned `stat -f` (never this thread). */
export async function namelen(dir: string): Promise<number> {
  return Number((await sh(["stat", "-f", "-c", "%l", dir], { timeoutMs: 10_000 })).trim());
}

/** Waits until the daemon's log, after offset `from`, matches `re`; returns the match. */
export async function waitLog(m: Mount, re: RegExp, from = 0, ms = RELOAD_DEADLINE_MS): Promise<RegExpExecArray> {
  let match: RegExpExecArray | null = null;
  await waitFor(() => (match = re.exec(m.log().slice(from))) !== null, ms, 10);
  if (match === null) throw new Error(`the daemon log shows no ${re} within ${ms} ms:\n${m.log().slice(from).slice(-3000)}`);
  return match;
}

export interface SoakResult {
  reloads: number;
  seconds: number;
  /** Daemon RSS in KiB after a full GC, and raw (whenever the collector last ran). */
  beforeKiB: number;
  afterKiB: number;
  rawBeforeKiB: number;
  rawAfterKiB: number;
  /** Raw RSS every 10 reloads. */
  curve: { reloads: number; rss_kib: number }[];
}

/**
 * Reloads the plugin copy `plugin` mounted at `m` `reloads` times in a row (ops.ts rewritten with a
 * changing comment, each time waiting for the next "generation N serving"); throws at a rejected
 * reload. `progress` hears the raw RSS every 10 reloads.
 */
export async function reloadSoak(m: Mount, plugin: string, reloads: number, progress?: (reloads: number, rssKiB: number) => void): Promise<SoakResult> {
  const ops = join(plugin, "ops.ts");
  const original = await readFile(ops, "utf8");
  const first = (await m.status()).generation as number;
  const rawBeforeKiB = await rssKiB(m.daemon.pid);
  const beforeKiB = await settledRssKiB(m.daemon.pid, m.dir);
  const curve = [{ reloads: 0, rss_kib: rawBeforeKiB }];
  const t0 = performance.now();
  for (let i = 1; i <= reloads; i++) {
    const from = m.log().length;
    await writeFile(ops, `// reload ${i}\n${original}`);
    const [line] = await waitLog(m, new RegExp(`generation ${first + i} serving|reload rejected`), from);
    if (line.includes("rejected")) throw new Error(`reload ${i} was rejected:\n${m.log().slice(from)}`);
    if (i % 10 === 0 || i === reloads) {
      curve.push({ reloads: i, rss_kib: await rssKiB(m.daemon.pid) });
      progress?.(i, curve.at(-1)!.rss_kib);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const rawAfterKiB = await rssKiB(m.daemon.pid);
  const afterKiB = await settledRssKiB(m.daemon.pid, m.dir);
  return { reloads, seconds, beforeKiB, afterKiB, rawBeforeKiB, rawAfterKiB, curve };
}
