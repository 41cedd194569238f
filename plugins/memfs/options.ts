/**
 * Command-line options of memfs, parsed the way tmpfs parses its mount options: sizes and counts
 * take binary k/m/g/t/p/e suffixes (memparse), a size may be a percentage of RAM, and 0 means
 * no limit.
 */
import { totalmem } from "node:os";
import { PAGE } from "./data.ts";
import type { MemfsLimits } from "./state.ts";

export interface MemfsOptions {
  /** Data size limit: "512M", "2G", "50%", "0" (unlimited). Default: half of RAM. */
  size?: string | number;
  /** Node limit: "100k", "1m", "0" (unlimited). Default: half the number of RAM pages. */
  inodes?: string | number;
  /** Root directory permissions, octal ("755", "1777"). Default 755. */
  mode?: string | number;
}

const SUFFIX = "kmgtpe";

/** "64k" → 65536 (binary suffixes, optional "b"/"ib"), or NaN. */
function memparse(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) return NaN;
  const unit = (m[2] ?? "").toLowerCase();
  return Number(m[1]) * 1024 ** (unit === "" ? 0 : SUFFIX.indexOf(unit) + 1);
}

/** Size limit in bytes, rounded up to whole pages; Infinity for 0 (unlimited). */
export function parseSize(value: string | number | undefined, ram = totalmem()): number {
  let bytes: number;
  if (value === undefined || value === "") bytes = ram / 2;
  else if (typeof value === "number") bytes = value;
  else {
    const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    bytes = pct !== null ? (ram * Number(pct[1])) / 100 : memparse(value);
  }
  if (!Number.isFinite(bytes) || bytes < 0 || bytes > Number.MAX_SAFE_INTEGER)
    throw new Error(`memfs: invalid --size ${JSON.stringify(value)} (use e.g. 512M, 2G, 50% or 0 for no limit)`);
  if (bytes === 0) return Infinity;
  return Math.ceil(bytes / PAGE) * PAGE;
}

/** Node limit; Infinity for 0 (unlimited). */
export function parseInodes(value: string | number | undefined, ram = totalmem()): number {
  let n: number;
  if (value === undefined || value === "") n = Math.floor(ram / PAGE / 2);
  else n = typeof value === "number" ? value : memparse(value);
  if (!Number.isFinite(n) || n < 0 || n > Number.MAX_SAFE_INTEGER / 1024)
    throw new Error(`memfs: invalid --inodes ${JSON.stringify(value)} (use e.g. 100k, 1m or 0 for no limit)`);
  n = Math.floor(n);
  return n === 0 ? Infinity : Math.max(n, 1);
}

/** Root permissions from an octal string. */
export function parseMode(value: string | number | undefined): number {
  if (value === undefined || value === "") return 0o755;
  const n = typeof value === "number" ? value : /^\s*[0-7]{1,4}\s*$/.test(value) ? parseInt(value, 8) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0o7777)
    throw new Error(`memfs: invalid --mode ${JSON.stringify(value)} (use octal permissions, e.g. 755 or 1777)`);
  return n;
}

export function limitsFromOptions(options: MemfsOptions | undefined): MemfsLimits {
  const o = options ?? {};
  return {
    maxBytes: parseSize(o.size),
    maxInodes: parseInodes(o.inodes),
    rootMode: parseMode(o.mode),
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
  };
}
