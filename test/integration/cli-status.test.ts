/**
 * `furing status` checked against the daemon's real state, and its control socket.
 *
 * Daemons run in child processes; the test never makes a synchronous syscall on a mount. Anything
 * a test mounts or starts is torn down in `finally` (and by a process-exit safety net): the
 * harness is test/helpers/cli-daemon.ts.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, cli, isRoot, makeTempDir, possibleCpus, removeTempDir, withMount } from "../helpers/mount.ts";
import { describeResult, run } from "../helpers/run.ts";
import { ALL, FIRST, NOBODY, statusOf } from "../helpers/cli-daemon.ts";
import { controlPath } from "../../runtime/control/socket.ts";

afterAll(cleanupAll);
// bunfig.toml's [test] timeout does not reach every runner; these tests mount and wait for daemons
setDefaultTimeout(60_000);

describe("furing status against the daemon's real state", () => {
  const N = 40;
  const MISSES = 25;

  for (const transport of ALL) {
    test(`transport, queues, generation and per-op counts after ${N} stats and ${MISSES} failed lookups (${transport})`, async () => {
      await withMount({ transport, options: ["attr_timeout=0"] }, async (m) => {
        const f = join(m.dir, "f");
        await writeFile(f, "x");
        const s0 = await statusOf(m.dir);
        for (let i = 0; i < N; i++) await stat(f);
        for (let i = 0; i < MISSES; i++) await stat(join(m.dir, `missing-${i}`)).catch(() => {});
        const s1 = await statusOf(m.dir);

        expect(s1.mountpoint).toBe(m.dir);
        expect(s1.plugin).toBe("memfs");
        expect(s1.pid).toBe(m.daemon.pid);
        expect(s1.state).toBe("serving");
        expect(s1.transport).toBe(transport);
        expect(s1.generation).toBe(1);
        expect(typeof s1.uptime_s).toBe("number");
        expect(s1.uptime_s).toBeGreaterThanOrEqual(0);
        if (transport === "io_uring") {
          expect(s1.queues).toBe(await possibleCpus());
          expect(s1.depth).toBe(8);
          expect(s1.requests.io_uring - s0.requests.io_uring).toBeGreaterThanOrEqual(N + MISSES);
        } else {
          expect(s1.requests.io_uring).toBe(0);
          expect(s1.requests.classic - s0.requests.classic).toBeGreaterThanOrEqual(N + MISSES);
          expect(s1.transportReason).toContain("io_uring=off");
        }
        const d = (op: string, k: "count" | "errors") => (s1.ops[op]?.[k] ?? 0) - (s0.ops[op]?.[k] ?? 0);
        expect(d("getattr", "count")).toBeGreaterThanOrEqual(N);
        expect(d("getattr", "errors")).toBe(0);
        expect(d("lookup", "errors")).toBeGreaterThanOrEqual(MISSES);
        for (const o of Object.values(s1.ops) as Array<Record<string, number>>) {
          expect(o.errors).toBeLessThanOrEqual(o.count!);
          expect(o.p50_us).toBeLessThanOrEqual(o.p99_us!);
        }

        // the text form says the same
        const t = await cli(["status", m.dir], 15_000);
        expect(t.code, describeResult(t)).toBe(0);
        const head = t.stdout.split("\n")[0]!;
        expect(head).toContain(`${m.dir}: memfs (pid ${m.daemon.pid}), transport ${transport}`);
        if (transport === "io_uring") expect(head).toContain(`${s1.queues}x${s1.depth}`);
        const row = t.stdout.split("\n").find((l) => /^\s+getattr\s/.test(l));
        const [count, errors] = row!.trim().split(/\s+/).slice(1).map(Number);
        expect(count).toBeGreaterThanOrEqual(s1.ops.getattr.count);
        expect(errors).toBe(0);

        // `furing status` without a mountpoint lists it among all mounts
        const all = await cli(["status"], 20_000);
        expect(all.stdout).toContain(`${m.dir}: memfs (pid ${m.daemon.pid})`);
      });
    });
  }

  test("the control socket is usable only by the daemon's owner", async () => {
    await withMount({ transport: FIRST }, async (m) => {
      const sock = controlPath(m.dir);
      const st = await stat(sock);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.uid).toBe(process.getuid!());
      const parent = await stat(join(sock, ".."));
      expect(parent.mode & 0o777).toBe(0o700);
      if (isRoot()) {
        const probe = `Bun.connect({ unix: ${JSON.stringify(sock)}, socket: { data() {}, open(s) { s.write("status\\n"); } } }).then(() => console.log("connected"), (e) => console.log("refused", e.code));`;
        const r = await run([...NOBODY, "env", "HOME=/tmp", process.execPath, "-e", probe], { cwd: "/tmp", timeoutMs: 15_000 });
        expect(r.stdout, describeResult(r)).toContain("refused EACCES");
      }
    });
  });

  test("`furing status <dir>` of a directory no daemon serves is an error naming it", async () => {
    const dir = await makeTempDir("nostatus");
    try {
      const r = await cli(["status", dir, "--json"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(dir);
      expect(r.stdout).toBe("");
    } finally {
      await removeTempDir(dir);
    }
  });
});
