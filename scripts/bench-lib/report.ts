/** Statistics and the markdown report. */
import type { CaseResult, RatioResult, WorkloadResult } from "./model.ts";
import type { Environment } from "./env.ts";

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function geomean(xs: number[]): number {
  const ok = xs.filter((x) => x > 0 && Number.isFinite(x));
  if (ok.length === 0) return NaN;
  return Math.exp(ok.reduce((s, x) => s + Math.log(x), 0) / ok.length);
}

/** Rounds to `n` significant digits. */
export function sig(x: number, n = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const p = Math.pow(10, n - 1 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * p) / p;
}

export interface GroupScore {
  group: string;
  kind: RatioResult["kind"];
  label: string;
  ratios: number;
  geomean: number;
}

const KIND_LABEL: Record<RatioResult["kind"], string> = { baseline: "vs baseline", transport: "io_uring vs classic", placement: "CPU placement / callers", config: "furing -o B vs A" };

export function groupScores(workloads: WorkloadResult[]): GroupScore[] {
  const out: GroupScore[] = [];
  for (const g of ["U", "D", "M", "X", "P"])
    for (const kind of ["baseline", "transport", "placement", "config"] as const) {
      const rs = workloads.filter((w) => w.group === g).flatMap((w) => w.ratios.filter((r) => r.kind === kind));
      if (rs.length === 0) continue;
      const base = [...new Set(rs.map((r) => r.b))].join("/");
      out.push({ group: g, kind, label: `${g}: ${KIND_LABEL[kind]}${kind === "baseline" ? ` (${base})` : ""}`, ratios: rs.length, geomean: sig(geomean(rs.map((r) => r.value)), 3) });
    }
  return out;
}

function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString("en-US");
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

function fmtRatio(x: number): string {
  return x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2);
}

/** The target and whether it is met; for times against a baseline, as issue 14 states them (≤ N × tmpfs's). */
function verdict(r: RatioResult, better: "higher" | "lower" = "higher"): string {
  if (r.target === undefined) return "";
  const met = r.pass ? "pass" : "**miss**";
  if (better === "lower" && r.kind === "baseline") return `time ≤ ${sig(1 / r.target, 2)} × ${r.b}'s (${fmt(1 / r.value)} ×) ${met}`;
  return `≥ ${fmtRatio(r.target)} ${met}`;
}

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export interface ReportMeta {
  profile: string;
  rounds: number;
  warmup: number;
  plugin: string;
  json: string;
  duration_s: number;
  /** -o options every furing daemon got (--furing-opts), and the compared sets (--compare-opts). */
  furingOpts: string[];
  variants: Array<{ label: string; options: string[] }>;
  configs: Array<{ key: string; options: string[]; caches: string }>;
  daemons: Array<{ key: string; pid: number; transport: string; reason: string; passthrough: unknown }>;
}

export function markdown(env: Environment, meta: ReportMeta, workloads: WorkloadResult[]): string {
  const L: string[] = [];
  L.push(`## furing benchmark (${meta.profile} profile)`);
  L.push("");
  L.push(
    `kernel ${env.kernel} · ${env.cpu_model}, ${env.vcpus} vCPUs (${env.cpus_online}) · enable_uring=${env.enable_uring} · Bun ${env.bun} · furing ${env.furing_commit.slice(0, 12)}${env.furing_dirty ? " (modified tree)" : ""} · ${env.fio}`,
  );
  const transports = [...new Set(meta.daemons.map((d) => `${d.transport} (${d.reason})`))];
  L.push(`transports in use (furing status): ${transports.join("; ") || "none"}${Object.keys(env.furing_env).length ? ` · ${Object.entries(env.furing_env).map(([k, v]) => `${k}=${v}`).join(" ")}` : ""}`);
  L.push(
    `load average ${env.loadavg_start.join(" ")} → ${(env.loadavg_end ?? []).join(" ")} · ${meta.rounds} alternating rounds per target after ${meta.warmup} discarded warm-up · medians · ${meta.duration_s} s`,
  );
  // Busy vCPUs never halt, so cross-CPU wake-ups (what unpinned and parallel callers pay) get
  // cheaper and a second caller finds no free CPU: such a run says little about either.
  const load = Math.max(env.loadavg_start[0] ?? 0, env.loadavg_end?.[0] ?? 0);
  if (load > 0.5) L.push(`**busy machine** (1-minute load average up to ${load} on ${env.vcpus} vCPUs): absolute numbers and ratios are noise, the unpinned and parallel rows most of all`);
  if (meta.furingOpts.length) L.push(`every furing daemon also ran with -o ${meta.furingOpts.join(",")}`);
  if (meta.variants.length === 2)
    L.push(`compared side by side: furing with -o ${meta.variants[0]!.label} (A, targets named [${meta.variants[0]!.label}]) and with -o ${meta.variants[1]!.label} (B); the "config" rows are B / A`);
  L.push("");
  L.push("Ratio = median(furing) / median(baseline) for rates, median(baseline) / median(furing) for times: higher is better.");
  L.push("p99 is per operation (fio completion latency, or the C loop's per-call time); server CPU is the daemon's utime+stime per operation.");
  L.push("");
  L.push("| id | case | caches | placement | furing | baseline | ratio | target | p99 µs furing / base | server µs/op |");
  L.push("|---|---|---|---|---|---|---|---|---|---|");
  for (const w of workloads) {
    if (w.status === "skipped") {
      L.push(`| ${w.id} | skipped: ${cell(w.error ?? "")} | | | | | | | | |`);
      continue;
    }
    for (const c of w.cases) {
      if (c.error) {
        L.push(`| ${w.id} | ${c.id}: **ERROR** ${cell(c.error.split("\n")[0] ?? "").slice(0, 160)} | | | | | | | | |`);
        continue;
      }
      for (const r of c.ratios) L.push(row(w, c, r));
    }
    for (const r of w.ratios.filter((x) => x.kind === "placement")) {
      L.push(`| ${w.id} | ${cell(r.name)} | | | ${cell(r.a)} | ${cell(r.b)} | ${fmtRatio(r.value)} | ${verdict(r)} | | |`);
    }
    if (w.status === "error" && !w.cases.some((c) => c.error)) L.push(`| ${w.id} | **ERROR** ${cell(w.error ?? "").slice(0, 200)} | | | | | | | | |`);
  }
  L.push("");
  const scores = groupScores(workloads);
  if (scores.length) {
    L.push("| group | ratios | geometric mean |");
    L.push("|---|---|---|");
    for (const s of scores) L.push(`| ${s.label} | ${s.ratios} | ${fmtRatio(s.geomean)} |`);
    L.push("");
  }
  const all = workloads.flatMap((w) => w.ratios).filter((r) => r.target !== undefined);
  const misses = all.filter((r) => !r.pass);
  L.push(`targets: ${all.length - misses.length} met, ${misses.length} missed${misses.length ? ` (${misses.map((r) => `${r.case} ${r.name} ${fmtRatio(r.value)} < ${fmtRatio(r.target!)}`).join("; ")})` : ""}`);
  const errors = workloads.filter((w) => w.status === "error");
  if (errors.length) L.push(`errors: ${errors.map((w) => `${w.id} (${(w.error ?? "").split("\n")[0]})`).join("; ")}`);
  L.push("");
  L.push("caches: " + meta.configs.map((c) => `**${c.key}** = ${c.options.length ? `-o ${c.options.join(",")}` : "no options"} (${c.caches})`).join("; "));
  L.push("");
  L.push(`JSON: ${meta.json}`);
  return L.join("\n");
}

function row(w: WorkloadResult, c: CaseResult, r: RatioResult): string {
  const a = c.targets.find((t) => t.name === r.a);
  const b = c.targets.find((t) => t.name === r.b);
  const unit = c.metric.unit;
  const cpu = [a, b].filter((t) => t?.cpu_us_per_op !== undefined).map((t) => `${t!.name} ${fmt(t!.cpu_us_per_op)}`).join(", ");
  const p99 = a?.p99_us !== undefined || b?.p99_us !== undefined ? `${fmt(a?.p99_us)} / ${fmt(b?.p99_us)}` : "";
  return `| ${w.id} | ${cell(`${c.id}: ${c.title}`)} | ${c.config} | ${cell(c.placement)} | ${fmt(a?.median)} ${unit} (${r.a}) | ${fmt(b?.median)} ${unit} (${r.b}) | ${fmtRatio(r.value)} | ${verdict(r, c.metric.better)} | ${p99} | ${cpu} |`;
}
