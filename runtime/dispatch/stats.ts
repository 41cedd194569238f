/**
 * Per-opcode request counters and latency histograms (log2 buckets of microseconds), cheap
 * enough for the hot path: a few typed-array increments per request.
 */
import { opName } from "../kernel/abi.ts";

const MAX_OP = 64;
const BUCKETS = 32; // bucket b holds latencies in [2^(b-1), 2^b) µs; bucket 0 is < 1 µs

export interface OpStats {
  count: number;
  errors: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
}

export class Stats {
  readonly count = new Float64Array(MAX_OP + 1);
  readonly errors = new Float64Array(MAX_OP + 1);
  readonly maxUs = new Float64Array(MAX_OP + 1);
  private readonly hist = new Uint32Array((MAX_OP + 1) * BUCKETS);

  record(opcode: number, error: number, micros: number): void {
    const op = opcode > MAX_OP ? MAX_OP : opcode;
    this.count[op]!++;
    if (error !== 0) this.errors[op]!++;
    const b = micros < 1 ? 0 : Math.min(BUCKETS - 1, 32 - Math.clz32(micros | 0));
    this.hist[op * BUCKETS + b]!++;
    if (micros > this.maxUs[op]!) this.maxUs[op] = micros;
  }

  /** The raw counters (for summing another reactor's statistics into these). */
  raw(): { count: Float64Array; errors: Float64Array; maxUs: Float64Array; hist: Uint32Array } {
    return { count: this.count, errors: this.errors, maxUs: this.maxUs, hist: this.hist };
  }

  /** Add another instance's `raw()` counters. */
  add(r: { count: Float64Array; errors: Float64Array; maxUs: Float64Array; hist: Uint32Array }): void {
    for (let i = 0; i <= MAX_OP; i++) {
      this.count[i]! += r.count[i]!;
      this.errors[i]! += r.errors[i]!;
      if (r.maxUs[i]! > this.maxUs[i]!) this.maxUs[i] = r.maxUs[i]!;
    }
    for (let i = 0; i < this.hist.length; i++) this.hist[i]! += r.hist[i]!;
  }

  /** Upper bound of the bucket holding quantile q. */
  private quantile(op: number, q: number): number {
    const n = this.count[op]!;
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.hist[op * BUCKETS + b]!;
      if (seen >= q * n) return b === 0 ? 1 : 2 ** b;
    }
    return this.maxUs[op]!;
  }

  snapshot(): Record<string, OpStats> {
    const out: Record<string, OpStats> = {};
    for (let op = 0; op <= MAX_OP; op++) {
      const n = this.count[op]!;
      if (n === 0) continue;
      out[opName(op)] = {
        count: n,
        errors: this.errors[op]!,
        p50_us: Math.round(Math.min(this.quantile(op, 0.5), this.maxUs[op]!)),
        p99_us: Math.round(Math.min(this.quantile(op, 0.99), this.maxUs[op]!)),
        max_us: Math.round(this.maxUs[op]!),
      };
    }
    return out;
  }
}
