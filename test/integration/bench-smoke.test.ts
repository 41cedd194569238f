/**
 * CI smoke test of the benchmark suite: `scripts/bench --quick` (every workload, 3 alternating
 * rounds, about 2.5 minutes on an idle machine; FURING_BENCH_PROFILE=smoke for the tiny variant)
 * must run every workload without an error and leave no mount behind. It never looks at the
 * numbers: timing cannot fail it. A second run compares two furing option sets side by side
 * (--compare-opts) on the parallel callers' workload, with the tiny sizes.
 *
 * Workloads whose tools are missing (fio comes from `scripts/setup --bench`) are skipped, not
 * failed. Needs root, as the suite does (tmpfs, drop_caches, FUSE over io_uring).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, makeTempDir, mounts, removeTempDir } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";

const BENCH = join(REPO, "scripts/bench");
const PROFILE = process.env.FURING_BENCH_PROFILE === "smoke" ? "--smoke" : "--quick";
/** The quick run takes about 2 minutes on an idle machine; leave room for a busy one. */
const LIMIT_MS = PROFILE === "--quick" ? 480_000 : 150_000;

interface Ratio {
  name: string;
  a: string;
  b: string;
  value: number;
  target?: number;
  kind: string;
}

interface BenchJson {
  workloads: Array<{
    id: string;
    status: "ok" | "error" | "skipped";
    error?: string;
    cases: Array<{ id: string; error?: string; placement: string; targets: Array<{ name: string; variant?: string; rounds: unknown[]; median: number }>; ratios: Ratio[] }>;
    ratios: Ratio[];
  }>;
  environment: { kernel: string; enable_uring: string; bun: string; furing_commit: string };
}

describe.skipIf(needsRoot(`scripts/bench ${PROFILE}`, "the benchmark mounts tmpfs, drops caches and uses FUSE over io_uring"))(`scripts/bench ${PROFILE}`, () => {
  test(
    "every workload runs side by side with its baseline, results in JSON and markdown, no mount left",
    async () => {
      const dir = await makeTempDir("bench");
      const out = join(dir, "bench.json");
      try {
        const proc = Bun.spawn([process.execPath, BENCH, PROFILE, "--skip-missing", "--out", out], {
          cwd: REPO,
          stdin: "ignore",
          stdout: "pipe",
          stderr: "pipe",
        });
        // On overrun: SIGINT lets the suite unmount everything; SIGKILL if even that hangs.
        const soft = setTimeout(() => proc.kill("SIGINT"), LIMIT_MS - 15_000);
        const hard = setTimeout(() => proc.kill("SIGKILL"), LIMIT_MS - 5_000);
        const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
        clearTimeout(soft);
        clearTimeout(hard);

        const scratch = /scratch (\S+)/.exec(stderr)?.[1];
        const leaked = scratch ? (await mounts()).filter((m) => m.dir.startsWith(scratch)) : [];
        expect(leaked.map((m) => m.dir)).toEqual([]);

        const json: BenchJson | undefined = existsSync(out) ? JSON.parse(readFileSync(out, "utf8")) : undefined;
        const failures = (json?.workloads ?? [])
          .filter((w) => w.status === "error")
          .map((w) => `${w.id}: ${w.error}\n${w.cases.filter((c) => c.error).map((c) => `  ${c.id}: ${c.error}`).join("\n")}`);
        if (proc.exitCode !== 0 || failures.length)
          throw new Error(`scripts/bench ${PROFILE} exited ${proc.exitCode}${proc.signalCode ? ` (${proc.signalCode})` : ""}\n${failures.join("\n")}\n--- stderr ---\n${stderr.slice(-6000)}`);

        expect(json).toBeDefined();
        const skipped = json!.workloads.filter((w) => w.status === "skipped");
        if (skipped.length) console.warn(`bench smoke: skipped ${skipped.map((w) => `${w.id} (${w.error})`).join(", ")}`);
        // Every workload of the suite was attempted, and each that ran measured every target.
        expect(json!.workloads.map((w) => w.id)).toEqual(["U1", "U2", "U3", "D1", "D2", "D3", "D4", "D5", "D6", "M1", "M2", "M3", "M4", "X1", "X2", "P1", "P2"]);
        for (const w of json!.workloads.filter((x) => x.status === "ok")) {
          expect(w.cases.length).toBeGreaterThan(0);
          for (const c of w.cases)
            for (const t of c.targets) {
              expect(t.rounds.length).toBeGreaterThanOrEqual(1);
              expect(t.median).toBeGreaterThan(0);
            }
        }
        // Issue 14's rows: every U case has its ratio to tmpfs from the same run; unpinned comes
        // first and carries the targets, pinned rows follow; 2 callers / 1 has its target.
        const u = json!.workloads.filter((w) => w.id.startsWith("U") && w.status === "ok");
        for (const w of u) for (const c of w.cases) expect(c.ratios.map((r) => `${r.a} / ${r.b}`)).toEqual(["io_uring / tmpfs"]);
        const u1 = u.find((w) => w.id === "U1");
        if (u1) {
          expect(u1.cases[0]!.placement).toStartWith("client unpinned");
          expect(u1.cases.at(-1)!.placement).toStartWith("client CPU");
          expect(u1.cases.filter((c) => c.ratios[0]!.target !== undefined).map((c) => c.id)).toEqual(["U1.create.zero.unpinned", "U1.stat.zero.unpinned", "U1.open.zero.unpinned", "U1.unlink.zero.unpinned"]);
        }
        const u3 = u.find((w) => w.id === "U3");
        if (u3) expect(u3.ratios.filter((r) => r.target === 1.7).map((r) => r.a)).toEqual(["U3.meta.2p io_uring", "U3.untar.2p io_uring"]);
        expect(json!.environment.kernel).toBeTruthy();
        expect(json!.environment.furing_commit).toBeTruthy();
        // The markdown table on stdout, with the JSON's path.
        expect(stdout).toContain("| id | case | caches | placement | furing | baseline | ratio | target |");
        expect(stdout).toContain(`JSON: ${out}`);
      } finally {
        await removeTempDir(dir);
      }
    },
    LIMIT_MS + 10_000,
  );
});

describe.skipIf(needsRoot("scripts/bench --compare-opts", "it mounts tmpfs and FUSE"))("scripts/bench --compare-opts", () => {
  test("runs every furing target once per option set, side by side, with its own ratios and B / A", async () => {
    const dir = await makeTempDir("bench-compare");
    const out = join(dir, "bench.json");
    try {
      const proc = Bun.spawn([process.execPath, BENCH, "--smoke", "--only", "U3", "--compare-opts", "follow_cpu", "no_follow_cpu", "--out", out], { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const soft = setTimeout(() => proc.kill("SIGINT"), 50_000);
      const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(soft);
      const scratch = /scratch (\S+)/.exec(stderr)?.[1];
      expect(scratch ? (await mounts()).filter((m) => m.dir.startsWith(scratch)).map((m) => m.dir) : []).toEqual([]);
      if (proc.exitCode !== 0) throw new Error(`scripts/bench --compare-opts exited ${proc.exitCode}\n${stderr.slice(-4000)}`);
      const json = JSON.parse(readFileSync(out, "utf8")) as BenchJson;
      const [w] = json.workloads;
      expect(w!.status).toBe("ok");
      for (const c of w!.cases) {
        expect(c.targets.map((t) => t.name)).toEqual(["tmpfs", "io_uring[follow_cpu]", "io_uring[no_follow_cpu]"]);
        expect(c.ratios.map((r) => `${r.kind}: ${r.a} / ${r.b}`)).toEqual([
          "baseline: io_uring[follow_cpu] / tmpfs",
          "baseline: io_uring[no_follow_cpu] / tmpfs",
          "config: io_uring[no_follow_cpu] / io_uring[follow_cpu]",
        ]);
      }
      // 2 callers / 1 for each option set, each against its own single caller
      expect(w!.ratios.filter((r) => r.target === 1.7).map((r) => `${r.a} / ${r.b}`)).toEqual([
        "U3.meta.2p io_uring[follow_cpu] / U3.meta.1p io_uring[follow_cpu]",
        "U3.meta.2p io_uring[no_follow_cpu] / U3.meta.1p io_uring[no_follow_cpu]",
        "U3.untar.2p io_uring[follow_cpu] / U3.untar.1p io_uring[follow_cpu]",
        "U3.untar.2p io_uring[no_follow_cpu] / U3.untar.1p io_uring[no_follow_cpu]",
      ]);
      expect(stdout).toContain("compared side by side: furing with -o follow_cpu (A");
    } finally {
      await removeTempDir(dir);
    }
  }, 60_000);

  test("a -o option the daemon does not know is a usage error before anything mounts", async () => {
    const proc = Bun.spawn([process.execPath, BENCH, "--smoke", "--compare-opts", "follow_cpu", "no_such_option=1"], { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stderr] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(proc.exitCode).toBe(2);
    expect(stderr.split("\n")[0]).toBe("bench: --compare-opts: unknown mount option 'no_such_option'");
  });
});

describe.skipIf(needsRoot("scripts/queue-layout", "it mounts FUSE over io_uring"))("scripts/queue-layout", () => {
  test("serves the same filesystem with one reactor and with a pinned Worker per queue, measures every placement, leaves no mount", async () => {
    const proc = Bun.spawn([process.execPath, join(REPO, "scripts/queue-layout"), "--calls", "2000", "--rounds", "1"], {
      cwd: REPO,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const hard = setTimeout(() => proc.kill("SIGKILL"), 110_000);
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(hard);
    expect((await mounts()).filter((m) => m.dir.includes("furing-test-queue-layout-")).map((m) => m.dir)).toEqual([]);
    if (proc.exitCode !== 0) throw new Error(`scripts/queue-layout exited ${proc.exitCode}\n${stderr}`);
    // a row per placement, each with a rate for both layouts
    const rows = stdout.split("\n").filter((l) => /^\| (one|two) caller/.test(l));
    expect(rows.length).toBe(5);
    for (const r of rows) {
      const [, , single, perQueue] = r.split("|").map((c) => Number(c.trim().replace(/,/g, "")));
      expect(single).toBeGreaterThan(0);
      expect(perQueue).toBeGreaterThan(0);
    }
  }, 120_000);
});
