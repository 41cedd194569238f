/**
 * passthrough served by several instances at once on the same shared tables, as reactor Workers
 * serve it: 4 Workers and the main thread hammer a source tree with lookups, creates, links,
 * renames, unlinks, mkdirs, rmdirs, opens, writes and readdirplus, then give back every lookup
 * and handle. Afterwards the node table holds the root alone (every lookup and child count
 * added up), the handle table is empty, and the source tree is intact and readable through a
 * fresh walk.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import type { Entry, PluginContext } from "../../runtime/api/index.ts";
import plugin, { type PassthroughFs, type PassthroughOptions } from "../../plugins/passthrough/index.ts";
import { sharedRegion } from "../../runtime/host/host.ts";
import { runPassthroughJob, type PassthroughJob, type PassthroughJobResult } from "../helpers/passthrough-worker.ts";
import { runOnWorker } from "../helpers/worker-job.ts";

const req = { op: "test", uid: 0, gid: 0, pid: process.pid, signal: new AbortController().signal };

const inWorker = (job: PassthroughJob) => runOnWorker<PassthroughJob, PassthroughJobResult>(new URL("../helpers/passthrough-worker.ts", import.meta.url), job);

test("4 Workers and the main thread on one passthrough: lookup counts, child counts and handles add up", async () => {
  const source = mkdtempSync(join(tmpdir(), "furing-pt-shared-"));
  try {
    for (const d of ["a", "b", "c"]) mkdirSync(join(source, d));
    const regions = new Map<string, SharedArrayBuffer>();
    const ctx = {
      options: { source, "fd-cache": 256, "file-handles": true },
      mountpoint: join(source, "..", "no-such-mountpoint"),
      generation: 1,
      log() {},
      keep: <T>(_k: string, init: () => T) => init(),
      notify: {} as PluginContext["notify"],
      io: {} as PluginContext["io"],
      shared: (key: string, n: number, max?: number) => sharedRegion(regions, key, n, max, true),
      reactor: { index: 0, count: 4, primary: true },
      atime: "relatime",
      nodiratime: false,
      passthrough: () => false,
      onDestroy() {},
      isOpen: () => false,
    } as PluginContext<PassthroughOptions>;
    const fs = (await plugin.setup(ctx)) as PassthroughFs;
    const job = (id: number): PassthroughJob => ({ regions: Object.fromEntries(regions), source, id, iterations: 3000, dirs: ["a", "b", "c"] });
    const results = await Promise.all([inWorker(job(0)), inWorker(job(1)), inWorker(job(2)), inWorker(job(3)), runPassthroughJob(job(4))]);
    const errors: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    console.log(`5 instances × 3000 ops; errors answered: ${JSON.stringify(errors)}`);
    expect(errors.ENOENT ?? 0).toBeGreaterThan(0);
    expect(errors.EEXIST ?? 0).toBeGreaterThan(0);
    // every lookup and handle was given back: the root alone is left, with no children
    expect(fs.handles.size).toBe(0);
    expect(fs.nodes.size).toBe(1);
    expect(fs.nodes.get(1).children).toBe(0);
    expect(fs.nodes.get(1).nlookup).toBe(1);
    // the tables still work: a walk through the ops finds what is in the source
    const a = fs.lookup!(req, 1, "a") as Entry;
    expect(fs.nodes.size).toBe(2);
    fs.forget!(a.ino, 1);
    expect(fs.nodes.size).toBe(1);
  } finally {
    rmSync(source, { recursive: true, force: true });
  }
}, 60_000);
