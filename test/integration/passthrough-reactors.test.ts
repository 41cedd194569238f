/**
 * passthrough served by reactor Workers (`concurrency: "shared"`, `-o reactors=2`: one Worker
 * pinned to each CPU), over both transports, with callers pinned by taskset so that over io_uring
 * each CPU's requests are served by its own Worker (the two-CPU backing-file share is tested in
 * passthrough.test.ts):
 * - callers on both CPUs racing create/write/rename/link/unlink/mkdir/rmdir/open on shared names
 *   (test/fixtures/pt-stress.ts): every file holds exactly what was written, both Workers served,
 *   and the daemon's descriptors come back to where they were once the kernel forgets the nodes
 *   (no descriptor leaks across Workers);
 * - a hot reload reaches both Workers, keeps node ids, and a file open on CPU 1 stays readable.
 *
 * Needs root (kernel passthrough, drop_caches) and 2 usable CPUs (skipped otherwise, saying why).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync, existsSync, cpSync } from "node:fs";
import { join, resolve } from "node:path";
import { cleanupAll, REPO, transports, waitFor, withMount, withTempDir, type Mount, type Transport } from "../helpers/mount.ts";
import { needsCpus, needsRoot } from "../helpers/skip.ts";
import { run, describeResult } from "../helpers/run.ts";

afterAll(cleanupAll);

const STRESS = resolve(import.meta.dir, "../fixtures/pt-stress.ts");
const skip = needsRoot("passthrough on reactor Workers", "kernel passthrough, drop_caches") || needsCpus(2, "passthrough on reactor Workers", "callers on CPU 0 and CPU 1 reach two Workers");

const mountOpts = (transport: Transport, src: string, options: string[] = [], args: string[] = []) => ({ plugin: "passthrough", transport, reactors: 2, options, args: ["--source", src, ...args] });
const fds = (m: Mount) => readdirSync(`/proc/${m.daemon.pid}/fd`).length;

async function onCpu(cpu: number, cmd: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(["taskset", "-c", String(cpu), ...cmd], { timeoutMs });
  if (r.code !== 0) throw new Error(describeResult(r));
  return r.stdout;
}

describe.skipIf(skip).each(transports())("passthrough on reactor Workers over %s", (transport: Transport) => {
  // kernel passthrough with 16 cached descriptors: every op evicts one another Worker may be
  // using, and opens share backing files across Workers
  test("callers on both CPUs race create/rename/link/unlink/mkdir/open/write (--fd-cache 16): exact contents, both Workers serve, no descriptor leak", async () => {
    await withTempDir(async (src) => {
      await withMount(mountOpts(transport, src, [], ["--fd-cache", "16"]), async (m) => {
        expect(String((await m.status()).passthrough)).toMatch(/^on /);
        const before = fds(m);
        const rounds = 2000;
        const out = await Promise.all([0, 1].map((cpu) => onCpu(cpu, [process.execPath, STRESS, m.dir, String(cpu), String(rounds)], 120_000)));
        expect(out.map((s) => s.trim())).toEqual([`ok ${rounds}`, `ok ${rounds}`]);
        // in the source: the logs are exact, every shared name holds one whole record
        for (const id of [0, 1]) {
          const want = Array.from({ length: rounds }, (_, r) => `${id} ${r}\n`).join("");
          expect(readFileSync(join(src, `log-${id}`), "latin1")).toBe(want);
        }
        const names = readdirSync(src).sort();
        expect(names.filter((n) => !/^(log-[01]|shared-[0-7])$/.test(n))).toEqual([]);
        for (const n of names.filter((x) => x.startsWith("shared-"))) {
          const s = readFileSync(join(src, n), "latin1");
          const token = /^\d+:\d+\|/.exec(s)?.[0] ?? "?";
          expect(s).toBe(token.repeat(s.length / token.length));
        }
        // both Workers served requests
        const st = (await m.status()) as { reactors?: { workers: { requests: { io_uring: number; classic: number } }[] } };
        expect(st.reactors?.workers.length).toBe(2);
        expect(st.reactors!.workers.map((w) => w.requests.io_uring + w.requests.classic > 0)).toEqual([true, true]);
        // once the kernel forgets the nodes, every descriptor the tables held is closed again
        writeFileSync("/proc/sys/vm/drop_caches", "2");
        const back = await waitFor(() => fds(m) <= before, 10_000);
        if (!back) throw new Error(`daemon descriptors: ${before} before, ${fds(m)} after the run and drop_caches`);
      });
    }, "pt-stress");
  }, 120_000);

  test("hot reload on every Worker: node ids and a file open on CPU 1 survive; both CPUs get the new code", async () => {
    await withTempDir(async (dir) => {
      const plugin = join(dir, "plugin"), src = join(dir, "source");
      cpSync(join(REPO, "plugins/passthrough"), plugin, { recursive: true });
      cpSync(join(REPO, "plugins/passthrough"), src, { recursive: true }); // something to serve
      await withMount({ ...mountOpts(transport, src, ["no_passthrough"]), plugin }, async (m) => {
        const f = join(m.dir, "ops.ts"), go = join(dir, "go");
        const ino = (await onCpu(0, ["stat", "-c", "%i", f])).trim();
        const holder = Bun.spawn(["taskset", "-c", "1", "bash", "-c", 'exec 3<"$0" || exit 3; : > "$1.open"; while [ ! -e "$1" ]; do sleep 0.05; done; head -c 20 <&3', f, go], { stdout: "pipe", stderr: "pipe" });
        try {
          expect(await waitFor(() => existsSync(go + ".open"), 10_000)).toBe(true);
          const from = m.log().length;
          const ops = join(plugin, "ops.ts");
          const code = readFileSync(ops, "utf8");
          expect(code).toContain("namelen: v.namemax");
          writeFileSync(ops, code.replace("namelen: v.namemax", "namelen: 200"));
          expect(await waitFor(() => /generation 2 serving/.test(m.log().slice(from)), 20_000)).toBe(true);
          // statfs from each CPU: each Worker answers with the new code
          for (const cpu of [0, 1]) expect((await onCpu(cpu, ["stat", "-f", "-c", "%l", m.dir])).trim()).toBe("200");
          expect((await onCpu(1, ["stat", "-c", "%i", f])).trim()).toBe(ino);
          writeFileSync(go, "");
          expect(await holder.exited).toBe(0);
          expect(await new Response(holder.stdout).text()).toBe(readFileSync(join(src, "ops.ts"), "latin1").slice(0, 20));
        } finally {
          holder.kill();
        }
      });
    }, "pt-reload");
  }, 60_000);
});
