/**
 * Runs a workload's cases side by side: every target of a case is mounted at once, then rounds
 * alternate over the targets (A B C A B C ...), after discarded warm-up rounds. Around each timed
 * run it reads the daemon's utime+stime (/proc/PID/stat) and its request counters (`status`).
 */
import { queryStatus } from "../../runtime/control/socket.ts";
import { affinity, cpuMicros, pin, type Daemon, type Mounts, type Plugin, type Role, type Target } from "./mounts.ts";
import { killAllChildren, sleep } from "./proc.ts";
import type { BenchEnv, CaseDef, CaseResult, Ctx, RatioResult, RoundRecord, TargetResult, WorkloadDef, WorkloadResult } from "./model.ts";
import { CONFIGS } from "./workloads.ts";
import { median } from "./report.ts";
import { Watchdog, describeHang } from "./watchdog.ts";

export interface RunnerOptions {
  /** The native directory (passthrough's source and baseline). */
  nativeDir: string;
  nativeFs: string;
  /** Pin every daemon at start (taskset -c); undefined: unpinned. */
  daemonCpu?: string;
  /** `-o` options added to every furing daemon (--furing-opts), after the configuration's. */
  furingOpts?: string[];
  /** Two furing option sets compared side by side (--compare-opts): every furing target runs once with each. */
  variants?: Variant[];
  log: (line: string) => void;
}

/** One side of --compare-opts: its `-o` options and how the output names it. */
export interface Variant {
  label: string;
  options: string[];
}

type StatusJson = { requests?: { io_uring: number; classic: number }; ops?: Record<string, { count: number }>; transport?: string; passthrough?: unknown };

export class Runner {
  private aborted: string | null = null;
  /** Lost requests the watchdog found (and acted on) since the current case began. */
  private hangNotes: string[] = [];
  private readonly watchdog = new Watchdog(
    () => this.mounts.live(),
    (h) => {
      const note = describeHang(h);
      this.hangNotes.push(note);
      this.opts.log(`  watchdog: ${note}; killing the client and tearing that daemon down`);
      try {
        process.kill(h.pid, "SIGKILL");
      } catch {}
      killAllChildren();
      void this.mounts.close(h.daemon).catch(() => {});
    },
  );
  private debug = process.env.BENCH_DEBUG === "1";

  constructor(
    readonly mounts: Mounts,
    readonly b: BenchEnv,
    readonly opts: RunnerOptions,
  ) {}

  /** The furing daemons' `-o` option sets for a configuration: one per compared variant (or one). */
  optionSets(config: string): Array<{ variant?: Variant; options: string[] }> {
    const cfg = CONFIGS[config];
    if (!cfg) throw new Error(`unknown configuration ${config}`);
    const base = [...cfg.options, ...(this.opts.furingOpts ?? [])];
    const vs = this.opts.variants ?? [];
    return vs.length ? vs.map((v) => ({ variant: v, options: [...base, ...v.options] })) : [{ options: base }];
  }

  /** Which furing daemons (plugin|options) a workload needs (to close the others between workloads). */
  daemonsOf(w: WorkloadDef, plugin: Plugin): string[] {
    const p = w.plugin ?? plugin;
    return [...new Set(w.cases(this.b, p).flatMap((c) => (c.roles.some((r) => r !== "base") ? this.optionSets(c.config).map((o) => `${p}|${o.options.join(",")}`) : [])))];
  }

  private async targets(plugin: Plugin, config: string, roles: Role[]): Promise<Target[]> {
    const sets = this.optionSets(config);
    const all = await Promise.all(
      roles.map(async (role): Promise<Target[]> => {
        if (role === "base") {
          if (plugin === "memfs") return [{ role, name: "tmpfs", label: "tmpfs", root: await this.mounts.tmpfs("tmpfs", this.b.profile.tmpfsSize) }];
          return [{ role, name: "native", label: `native dir (${this.opts.nativeFs})`, root: this.opts.nativeDir }];
        }
        const args = plugin === "memfs" ? ["--size", this.b.profile.memfsSize] : ["--source", this.opts.nativeDir];
        return Promise.all(
          sets.map(async ({ variant, options }): Promise<Target> => {
            const daemon = await this.mounts.furing({ plugin, transport: role, options, args, ...(this.opts.daemonCpu !== undefined ? { cpus: this.opts.daemonCpu } : {}) });
            const t: Target = { role, name: variant ? `${role}[${variant.label}]` : role, label: `furing ${plugin} (${role}${variant ? `, ${variant.label}` : ""})`, root: daemon.dir, daemon, config };
            if (variant) t.variant = variant.label;
            return t;
          }),
        );
      }),
    );
    return all.flat();
  }

  async runWorkload(w: WorkloadDef, runPlugin: Plugin): Promise<WorkloadResult> {
    const plugin = w.plugin ?? runPlugin;
    const t0 = performance.now();
    const result: WorkloadResult = { id: w.id, title: w.title, group: w.group, plugin, status: "ok", duration_s: 0, cases: [], ratios: [] };
    const budgetMs = this.b.profile.workloadTimeoutS * 1000;
    const deadline = Date.now() + budgetMs;
    this.aborted = null;
    const workDirs = new Set<string>();
    const used = new Set<Daemon>();
    const warmed = new Set<string>();

    this.watchdog.start();
    const body = (async () => {
      for (const cd of w.cases(this.b, plugin)) {
        if (this.aborted) break;
        this.opts.log(`  ${cd.id}: ${cd.title}`);
        const cr = await this.runCase(w, cd, plugin, deadline, workDirs, used, warmed);
        result.cases.push(cr);
        if (cr.error) {
          result.status = "error";
          result.error ??= `${cd.id}: ${cr.error}`;
          this.opts.log(`  ${cd.id}: ERROR ${cr.error.split("\n")[0]}`);
        }
      }
    })();

    let timer: Timer | undefined;
    const timedOut = await Promise.race([
      body.then(() => false, () => false),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(true), budgetMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.aborted = `workload ${w.id} exceeded its time limit of ${this.b.profile.workloadTimeoutS} s`;
      result.status = "error";
      result.error = this.aborted;
      this.opts.log(`  ${w.id}: ${this.aborted}; stopping it`);
      killAllChildren();
      // The daemons may be hung (a client stuck on one only returns once the connection goes):
      // tear them down; a later workload that needs them mounts them afresh.
      for (const d of used) {
        result.error += `\n--- ${d.transport} daemon (pid ${d.pid}) output ---\n${d.log().slice(-2000)}`;
        await this.mounts.close(d).catch(() => {});
      }
      await Promise.race([body.catch(() => {}), sleep(15_000)]);
    }
    await body.catch((e) => {
      result.status = "error";
      result.error ??= String(e);
    });

    // Remove the workload's files (through the mounts, so the daemons stay consistent).
    this.b.tools.timeoutMs = this.b.profile.commandTimeoutS * 1000;
    this.hangNotes = [];
    for (const dir of workDirs) {
      const failed = await this.b.tools.rmrf(dir).then(() => false, (e) => {
        this.opts.log(`  cleanup of ${dir} failed: ${(e as Error).message.split("\n")[0]}`);
        return true;
      });
      // whatever serves it is suspect: the next workload mounts afresh
      if (failed) for (const d of this.mounts.live()) if (dir.startsWith(d.dir + "/")) await this.mounts.close(d).catch(() => {});
    }
    if (this.hangNotes.length) {
      result.status = "error";
      result.error ??= `cleanup: ${this.hangNotes.join("; ")}`;
    }
    this.watchdog.stop();

    for (const cr of result.cases) result.ratios.push(...cr.ratios);
    const cross = typeof w.cross === "function" ? w.cross(this.b) : (w.cross ?? []);
    for (const x of cross) {
      const ca = result.cases.find((c) => c.id === x.a.case);
      const cb = result.cases.find((c) => c.id === x.b.case);
      if (!ca || !cb || ca.error || cb.error) continue;
      // one ratio per compared option set (the same set on both sides)
      for (const ta of ca.targets.filter((t) => t.role === x.a.role)) {
        const tb = cb.targets.find((t) => t.role === x.b.role && (t.role === "base" || t.variant === ta.variant));
        if (!tb || !(ta.median > 0) || !(tb.median > 0)) continue;
        const value = ca.metric.better === "higher" ? ta.median / tb.median : tb.median / ta.median;
        const name = ta.variant !== undefined ? `${x.name} [${ta.variant}]` : x.name;
        result.ratios.push(ratio(w.id, x.a.case.replace(/\.[^.]+$/, ""), name, `${x.a.case} ${ta.name}`, `${x.b.case} ${tb.name}`, value, "placement", x.target, x.note));
      }
    }
    result.duration_s = Math.round((performance.now() - t0) / 100) / 10;
    return result;
  }

  private async runCase(w: WorkloadDef, cd: CaseDef, plugin: Plugin, deadline: number, workDirs: Set<string>, used: Set<Daemon>, warmed: Set<string>): Promise<CaseResult> {
    const cfg = CONFIGS[cd.config];
    const cr: CaseResult = {
      id: cd.id, title: cd.title, config: cd.config, caches: cfg?.caches ?? cd.config,
      placement: cd.placement ?? (cd.client !== undefined ? `client CPU ${cd.client}` : "client unpinned"),
      metric: cd.metric, targets: [], ratios: [], duration_s: 0,
    };
    const tc = performance.now();
    const restore: Array<[number, string]> = [];
    let targets: Target[] = [];
    this.hangNotes = [];
    try {
      const tm = performance.now();
      targets = await this.targets(plugin, cd.config, cd.roles);
      if (this.debug) this.opts.log(`    targets ready in ${(performance.now() - tm).toFixed(0)} ms`);
      const slug = (x: string) => x.replace(/[^\w.-]/g, "_");
      const workOf = (t: Target) => `${t.root}/bench-${w.id}-${slug(t.name)}`;
      const ctxs: Ctx[] = targets.map((t) => ({ target: t, work: workOf(t), dir: `${workOf(t)}/${slug(cd.id)}`, round: 0, client: cd.client }));
      for (const t of targets) {
        workDirs.add(workOf(t));
        if (t.daemon) used.add(t.daemon);
      }
      const left = () => Math.max(1000, Math.min(deadline - Date.now(), this.b.profile.commandTimeoutS * 1000));
      for (const c of ctxs) {
        this.b.tools.timeoutMs = left();
        const ts = performance.now();
        await this.b.tools.mkdir(c.dir);
        await cd.setup?.(c);
        if (this.debug) this.opts.log(`    ${cd.id} ${c.target.name} setup in ${(performance.now() - ts).toFixed(0)} ms`);
      }
      if (cd.daemonCpus !== undefined)
        for (const t of targets)
          if (t.daemon) {
            // back to the mask it started with (its main thread's current mask may be one the
            // reactor chose itself when following its callers)
            restore.push([t.daemon.pid, this.opts.daemonCpu ?? this.b.allCpus]);
            await pin(t.daemon.pid, cd.daemonCpus);
          }
      const recs = new Map<Target, RoundRecord[]>(targets.map((t) => [t, []]));
      const opDeltas = new Map<Target, Record<string, number>>(targets.map((t) => [t, {}]));
      const lastStatus = new Map<Target, StatusJson>();
      const warmKey = (t: Target) => `${t.name}|${t.daemon?.key ?? ""}`;
      const skipWarmup = new Set(this.b.profile.warmupEach === "workload" ? targets.filter((t) => warmed.has(warmKey(t))) : []);
      const warmup = this.b.profile.warmup;
      let round = 0;
      for (let r = -warmup; r < this.b.profile.rounds; r++, round++) {
        for (const c of ctxs) {
          if (this.aborted) throw new Error(this.aborted);
          if (r < 0 && skipWarmup.has(c.target)) continue;
          this.b.tools.timeoutMs = left();
          c.round = round;
          await cd.before?.(c);
          const d = c.target.daemon;
          const s0 = d ? await status(d) : undefined;
          const cpu0 = d ? cpuMicros(d.pid) : NaN;
          const tr0 = performance.now();
          const sample = await cd.run(c);
          if (this.debug) this.opts.log(`    ${cd.id} ${c.target.name} round ${r}: ${sample.value.toFixed(1)} ${cd.metric.unit} in ${(performance.now() - tr0).toFixed(0)} ms`);
          const cpu1 = d ? cpuMicros(d.pid) : NaN;
          const s1 = d ? await status(d) : undefined;
          await cd.after?.(c);
          if (d && !d.alive()) throw new Error(`the ${c.target.name} daemon died`);
          if (s1) lastStatus.set(c.target, s1);
          if (r < 0) continue;
          const rec: RoundRecord = { value: sample.value, ops: sample.ops, wall_ms: Math.round(performance.now() - tr0) };
          if (sample.p50_us !== undefined) rec.p50_us = round2(sample.p50_us);
          if (sample.p99_us !== undefined) rec.p99_us = round2(sample.p99_us);
          if (d && Number.isFinite(cpu0) && Number.isFinite(cpu1)) rec.cpu_us = cpu1 - cpu0;
          if (s0?.requests && s1?.requests) {
            rec.requests = { io_uring: s1.requests.io_uring - s0.requests.io_uring, classic: s1.requests.classic - s0.requests.classic };
            const acc = opDeltas.get(c.target)!;
            for (const [op, v] of Object.entries(s1.ops ?? {})) {
              const dv = v.count - (s0.ops?.[op]?.count ?? 0);
              if (dv > 0) acc[op] = (acc[op] ?? 0) + dv;
            }
          }
          recs.get(c.target)!.push(rec);
        }
      }
      for (const t of targets) warmed.add(warmKey(t));
      for (const t of targets) {
        const rounds = recs.get(t)!;
        const tr: TargetResult = { name: t.name, label: t.label, role: t.role, rounds, median: median(rounds.map((x) => x.value)) };
        if (t.variant !== undefined) tr.variant = t.variant;
        const p99s = rounds.flatMap((x) => (x.p99_us !== undefined ? [x.p99_us] : []));
        if (p99s.length) tr.p99_us = round2(median(p99s));
        const ops = rounds.reduce((s, x) => s + x.ops, 0);
        if (t.daemon && ops > 0) {
          const cpu = rounds.reduce((s, x) => s + (x.cpu_us ?? 0), 0);
          tr.cpu_us_per_op = round3(cpu / ops);
          const req = rounds.reduce((s, x) => s + (x.requests ? x.requests.io_uring + x.requests.classic : 0), 0);
          if (rounds.some((x) => x.requests)) {
            tr.requests_per_op = round3(req / ops);
            const per: Record<string, number> = {};
            for (const [op, n] of Object.entries(opDeltas.get(t)!)) if (n / ops >= 0.005) per[op] = round3(n / ops);
            tr.ops_per_op = per;
          }
          const pt = lastStatus.get(t)?.passthrough;
          tr.daemon = { pid: t.daemon.pid, transport: String(t.daemon.status.transport), affinity: affinity(t.daemon.pid), mount_options: t.daemon.options, ...(pt !== undefined ? { passthrough: String(pt) } : {}) };
        }
        cr.targets.push(tr);
      }
      const push = (a: TargetResult | undefined, b: TargetResult | undefined, kind: RatioResult["kind"], target?: number, note?: string) => {
        if (!a || !b || !(a.median > 0) || !(b.median > 0)) return;
        const value = cd.metric.better === "higher" ? a.median / b.median : b.median / a.median;
        cr.ratios.push(ratio(w.id, cd.id, `${a.name} / ${b.name}`, a.name, b.name, value, kind, target, note));
      };
      for (const rd of cd.ratios)
        // with compared option sets, one ratio per set (furing against furing: the same set)
        for (const a of cr.targets.filter((t) => t.role === rd.a))
          push(a, cr.targets.find((t) => t.role === rd.b && (t.role === "base" || t.variant === a.variant)), rd.b === "base" ? "baseline" : "transport", rd.target, rd.note);
      // the second option set against the first, per transport
      const [va, vb] = this.opts.variants ?? [];
      if (va && vb)
        for (const role of new Set(cr.targets.map((t) => t.role)))
          if (role !== "base")
            push(cr.targets.find((t) => t.role === role && t.variant === vb.label), cr.targets.find((t) => t.role === role && t.variant === va.label), "config");
    } catch (e) {
      cr.error = (e as Error).message ?? String(e);
      if (this.hangNotes.length) cr.error = `${this.hangNotes.join("; ")}\n${cr.error}`;
      // What the daemons were doing (a client stuck on a daemon idling with requests queued is a
      // lost wake-up), then tear them down: the next case mounts afresh instead of hanging too.
      for (const d of targets.flatMap((t) => (t.daemon ? [t.daemon] : []))) {
        const st = d.alive() ? ((await queryStatus(d.dir, 3000).catch(() => null)) as Record<string, unknown> | null) : null;
        const brief = st ? `state ${String(st.state)}, inflight ${String(st.inflight)}, requests ${JSON.stringify(st.requests)}, reactor ${JSON.stringify(st.reactor)}` : d.alive() ? "status: no answer" : "exited";
        cr.error += `\n--- ${d.transport} daemon (pid ${d.pid}): ${brief}; output:\n${d.log().slice(-1500)}`;
        used.delete(d);
        await this.mounts.close(d).catch((x) => (cr.error += `\nclosing it: ${(x as Error).message}`));
      }
    } finally {
      for (const [pid, cpus] of restore) await pin(pid, cpus).catch(() => {});
    }
    cr.duration_s = Math.round((performance.now() - tc) / 100) / 10;
    return cr;
  }
}

function ratio(workload: string, kase: string, name: string, a: string, b: string, value: number, kind: RatioResult["kind"], target?: number, note?: string): RatioResult {
  const r: RatioResult = { workload, case: kase, name, a, b, value: round3(value), kind };
  if (target !== undefined) {
    r.target = round3(target);
    r.pass = value >= target;
  }
  if (note) r.note = note;
  return r;
}

async function status(d: Daemon): Promise<StatusJson | undefined> {
  try {
    return ((await queryStatus(d.dir, 5000)) ?? undefined) as StatusJson | undefined;
  } catch {
    return undefined;
  }
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
