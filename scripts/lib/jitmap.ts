/**
 * JIT-compiled JS in perf reports. Bun's JavaScriptCore writes a jitdump file per thread when run
 * with BUN_JSC_useJITDump=1 (BUN_JSC_jitDumpDirectory=DIR: `jit-TID-PID.dump`, TID the thread that opened it), but it does not
 * mmap it, so `perf inject --jit` never finds it. perf does read /tmp/perf-PID.map (one
 * "START SIZE NAME" line per code range, hex) for samples in anonymous memory: this turns the
 * dumps into that map.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The env that makes a Bun process (every thread) write jitdumps into `dir`. */
export function jitDumpEnv(dir: string): Record<string, string> {
  return { BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: dir };
}

const JIT_CODE_LOAD = 0;
const HEADER_MAGIC = 0x4a695444; // "JiTD"

/** Code ranges of one jitdump file: [start, size, name]. */
export function readJitDump(file: string): [bigint, bigint, string][] {
  const b = readFileSync(file);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < 40 || v.getUint32(0, true) !== HEADER_MAGIC) return [];
  const out: [bigint, bigint, string][] = [];
  let o = v.getUint32(8, true); // header's total_size
  while (o + 16 <= b.byteLength) {
    const id = v.getUint32(o, true), size = v.getUint32(o + 4, true);
    if (size < 16 || o + size > b.byteLength) break; // a record cut short by the process's end
    if (id === JIT_CODE_LOAD) {
      const addr = v.getBigUint64(o + 32, true), len = v.getBigUint64(o + 40, true);
      const nameAt = o + 56;
      const end = b.indexOf(0, nameAt);
      out.push([addr, len, b.toString("utf8", nameAt, end < 0 ? nameAt : end)]);
    }
    o += size;
  }
  return out;
}

/** Writes /tmp/perf-PID.map from every `jit-*-PID.dump` in `dir`; returns the map's path (null: no dumps). */
export function writePerfMap(dir: string, pid: number): string | null {
  const dumps = readdirSync(dir).filter((f) => f.startsWith("jit-") && f.endsWith(`-${pid}.dump`));
  if (dumps.length === 0) return null;
  const lines: string[] = [];
  for (const f of dumps) {
    for (const [addr, len, name] of readJitDump(join(dir, f))) lines.push(`${addr.toString(16)} ${len.toString(16)} ${name.replace(/\s+/g, "_")}`);
  }
  const path = `/tmp/perf-${pid}.map`;
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}
