/**
 * Per-opcode request counters, error replies by errno and latency histograms (log2 buckets of
 * microseconds), cheap enough for the hot path: a few typed-array increments per request.
 *
 * Error replies are split into *expected answers* (ENOENT from lookup, ENODATA from getxattr, ...:
 * the filesystem answering a question, see EXPECTED) and *failures* (everything else).
 */
import { Op, opName } from "../kernel/abi.ts";
import { Errno, errnoName } from "../api/errno.ts";

const MAX_OP = 64;
const BUCKETS = 32; // bucket b holds latencies in [2^(b-1), 2^b) µs; bucket 0 is < 1 µs
/** Errno slots per op; larger errnos share the last one. */
const ERRNOS = 256;

/**
 * Error replies that are answers, not failures, by op. Every op: ENOSYS (the plugin lacks the op;
 * the kernel stops asking) and EINTR (the caller interrupted the request). Documented in
 * docs/plugin-guide.md ("Status").
 */
export const EXPECTED: Partial<Record<number, readonly number[]>> = {
  [Op.LOOKUP]: [Errno.ENOENT],
  [Op.ACCESS]: [Errno.EACCES, Errno.EROFS],
  [Op.GETXATTR]: [Errno.ENODATA, Errno.ERANGE, Errno.EOPNOTSUPP],
  [Op.LISTXATTR]: [Errno.ERANGE, Errno.EOPNOTSUPP],
  [Op.SETXATTR]: [Errno.EEXIST, Errno.ENODATA, Errno.EOPNOTSUPP],
  [Op.REMOVEXATTR]: [Errno.ENODATA, Errno.EOPNOTSUPP],
  [Op.MKNOD]: [Errno.EEXIST],
  [Op.MKDIR]: [Errno.EEXIST],
  [Op.SYMLINK]: [Errno.EEXIST],
  [Op.LINK]: [Errno.EEXIST],
  [Op.CREATE]: [Errno.EEXIST],
  [Op.RMDIR]: [Errno.ENOTEMPTY],
  [Op.RENAME]: [Errno.ENOTEMPTY, Errno.EEXIST],
  [Op.RENAME2]: [Errno.ENOTEMPTY, Errno.EEXIST, Errno.EINVAL],
  [Op.SETLK]: [Errno.EAGAIN, Errno.EACCES],
  [Op.LSEEK]: [Errno.ENXIO],
  [Op.FALLOCATE]: [Errno.EOPNOTSUPP],
  [Op.COPY_FILE_RANGE]: [Errno.EOPNOTSUPP, Errno.EXDEV],
  [Op.COPY_FILE_RANGE_64]: [Errno.EOPNOTSUPP, Errno.EXDEV],
  [Op.TMPFILE]: [Errno.EOPNOTSUPP],
};
const ALWAYS_EXPECTED = [Errno.ENOSYS, Errno.EINTR];

/** expectedMask[op * ERRNOS + errno] = 1 for an expected answer. */
const expectedMask = new Uint8Array((MAX_OP + 1) * ERRNOS);
for (let op = 0; op <= MAX_OP; op++) {
  for (const e of [...ALWAYS_EXPECTED, ...(EXPECTED[op] ?? [])]) expectedMask[op * ERRNOS + e] = 1;
}

/** Whether `errno` from `opcode` is an expected answer rather than a failure. */
export function isExpectedError(opcode: number, errno: number): boolean {
  return expectedMask[(opcode > MAX_OP ? MAX_OP : opcode) * ERRNOS + (errno >= ERRNOS ? ERRNOS - 1 : errno)] === 1;
}

export interface OpStats {
  count: number;
  /** Every error reply (expected + failures). */
  errors: number;
  /** Error replies that are failures (not in the op's expected list). */
  failures: number;
  /** Error replies that are expected answers (ENOENT from lookup, ...). */
  expected: number;
  /** Error replies by errno name ("ENOENT": 3). */
  errnos: Record<string, number>;
  p50_us: number;
  p99_us: number;
  max_us: number;
}

/** The counters `raw()` hands over (a reactor Worker posts them to the main thread). */
export interface RawStats {
  count: Float64Array;
  errors: Float64Array;
  maxUs: Float64Array;
  hist: Uint32Array;
  byErrno: Uint32Array;
}

export class Stats {
  readonly count = new Float64Array(MAX_OP + 1);
  readonly errors = new Float64Array(MAX_OP + 1);
  readonly maxUs = new Float64Array(MAX_OP + 1);
  private readonly hist = new Uint32Array((MAX_OP + 1) * BUCKETS);
  private readonly byErrno = new Uint32Array((MAX_OP + 1) * ERRNOS);

  /** `error`: 0, or the reply's negative errno. */
  record(opcode: number, error: number, micros: number): void {
    const op = opcode > MAX_OP ? MAX_OP : opcode;
    this.count[op]!++;
    if (error !== 0) {
      this.errors[op]!++;
      const e = error < 0 ? -error : error;
      this.byErrno[op * ERRNOS + (e >= ERRNOS ? ERRNOS - 1 : e)]!++;
    }
    const b = micros < 1 ? 0 : Math.min(BUCKETS - 1, 32 - Math.clz32(micros | 0));
    this.hist[op * BUCKETS + b]!++;
    if (micros > this.maxUs[op]!) this.maxUs[op] = micros;
  }

  /** The raw counters (for summing another reactor's statistics into these). */
  raw(): RawStats {
    return { count: this.count, errors: this.errors, maxUs: this.maxUs, hist: this.hist, byErrno: this.byErrno };
  }

  /** Add another instance's `raw()` counters. */
  add(r: RawStats): void {
    for (let i = 0; i <= MAX_OP; i++) {
      this.count[i]! += r.count[i]!;
      this.errors[i]! += r.errors[i]!;
      if (r.maxUs[i]! > this.maxUs[i]!) this.maxUs[i] = r.maxUs[i]!;
    }
    for (let i = 0; i < this.hist.length; i++) this.hist[i]! += r.hist[i]!;
    for (let i = 0; i < this.byErrno.length; i++) this.byErrno[i]! += r.byErrno[i]!;
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
      const errnos: Record<string, number> = {};
      let expected = 0;
      for (let e = 1; e < ERRNOS; e++) {
        const k = this.byErrno[op * ERRNOS + e]!;
        if (k === 0) continue;
        errnos[e === ERRNOS - 1 ? `E${ERRNOS - 1}+` : errnoName(e)] = k;
        if (expectedMask[op * ERRNOS + e] === 1) expected += k;
      }
      out[opName(op)] = {
        count: n,
        errors: this.errors[op]!,
        failures: this.errors[op]! - expected,
        expected,
        errnos,
        p50_us: Math.round(Math.min(this.quantile(op, 0.5), this.maxUs[op]!)),
        p99_us: Math.round(Math.min(this.quantile(op, 0.99), this.maxUs[op]!)),
        max_us: Math.round(this.maxUs[op]!),
      };
    }
    return out;
  }
}
