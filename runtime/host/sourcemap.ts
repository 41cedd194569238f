/**
 * Stack traces of bundled plugin code mapped back to the plugin's own files. Bun does not apply
 * inline source maps to imported modules, so the host registers each generation's map here and
 * error logs run their stacks through `mapStack` ("gen-3.mjs:26:30" → "src/ops.ts:41:11").
 */
import { resolve } from "node:path";
import type { StackFormat } from "../dispatch/ops.ts";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/** Per generated line: [generatedColumn, sourceIndex, originalLine, originalColumn] segments. */
type Segment = [number, number, number, number];

interface SourceMap {
  sources: string[];
  /** Raw VLQ mappings until a stack trace needs them (most generations never throw). */
  mappings: string;
  lines: Segment[][] | null;
}

const maps = new Map<string, SourceMap>();

function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let src = 0, oLine = 0, oCol = 0;
  for (const line of mappings.split(";")) {
    const segs: Segment[] = [];
    let gCol = 0;
    for (const seg of line.split(",")) {
      if (seg === "") continue;
      const v: number[] = [];
      let value = 0, shift = 0;
      for (let i = 0; i < seg.length; i++) {
        const d = B64_VALUE[seg.charCodeAt(i)]!;
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          v.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      gCol += v[0]!;
      if (v.length >= 4) {
        src += v[1]!;
        oLine += v[2]!;
        oCol += v[3]!;
        segs.push([gCol, src, oLine, oCol]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

/** Register the inline source map of `code`, generated as file `file`. */
export function registerSourceMap(file: string, code: string, cwd = process.cwd()): void {
  const m = /\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  if (!m) return;
  try {
    const json = JSON.parse(Buffer.from(m[1]!, "base64").toString("utf8")) as { sources: string[]; mappings: string };
    maps.set(file, { sources: json.sources.map((s) => resolve(cwd, s)), mappings: json.mappings, lines: null });
  } catch {
    // a map we cannot read leaves stacks as they are
  }
}

/** Forget the map of a generation that is gone. */
export function unregisterSourceMap(file: string): void {
  maps.delete(file);
}

/** Generations whose source map is held (status: a retired generation's goes when it is destroyed). */
export function sourceMapCount(): number {
  return maps.size;
}

/** Original position of generated (1-based line, 1-based column) in `file`, if mapped. */
export function originalPosition(file: string, line: number, column: number): string | null {
  const map = maps.get(file);
  if (map !== undefined && map.lines === null) map.lines = decodeMappings(map.mappings);
  const segs = map?.lines?.[line - 1];
  if (!map || !segs || segs.length === 0) return null;
  let best = segs[0]!;
  for (const s of segs) if (s[0] <= column - 1) best = s;
  return `${map.sources[best[1]] ?? "?"}:${best[2] + 1}:${best[3] + 1}`;
}

/** Replace every mapped "file:line:col" in a stack trace with the original position. */
export function mapStack(stack: string): string {
  if (maps.size === 0) return stack;
  return stack.replace(/((?:\/|file:\/\/)[^\s():]+):(\d+):(\d+)/g, (all, f: string, l: string, c: string) => originalPosition(f.replace(/^file:\/\//, ""), Number(l), Number(c)) ?? all);
}

/** The frames of `stack` that lie in plugin code (registered generations), mapped; "" if none. */
export function pluginFrames(stack: string | undefined): string {
  if (stack === undefined || maps.size === 0) return "";
  const out: string[] = [];
  for (const line of stack.split("\n")) {
    const m = /((?:\/|file:\/\/)[^\s():]+):(\d+):(\d+)/.exec(line);
    if (m !== null && maps.has(m[1]!.replace(/^file:\/\//, ""))) out.push(mapStack(line));
  }
  return out.join("\n");
}

/** The runtime's own source (frames here are furing's, not the plugin's). */
const RUNTIME_DIR = resolve(import.meta.dir, "..") + "/";
const FRAME = /^\s+at /;
const FRAME_FILE = /((?:\/|file:\/\/)[^\s():]+):(\d+):(\d+)/;

/**
 * A plugin error's stack for the log: the message, the plugin's frames (mapped to its files) and
 * whatever it called that is not furing (node:fs, native), with furing's own frames folded into
 * one "(+N furing frames)" line per run. A stack with no plugin frame is only mapped.
 */
export function foldStack(stack: string): string {
  if (maps.size === 0) return stack;
  const lines = stack.split("\n");
  const fileOf = (l: string) => FRAME_FILE.exec(l)?.[1]?.replace(/^file:\/\//, "");
  const isPlugin = (l: string) => {
    const f = fileOf(l);
    return f !== undefined && maps.has(f);
  };
  let last = -1;
  for (let i = 0; i < lines.length; i++) if (FRAME.test(lines[i]!) && isPlugin(lines[i]!)) last = i;
  if (last < 0) return mapStack(stack);
  const out: string[] = [];
  let folded = 0;
  const flush = () => {
    if (folded > 0) out.push(`    (+${folded} furing frame${folded === 1 ? "" : "s"})`);
    folded = 0;
  };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (!FRAME.test(l)) {
      flush();
      out.push(mapStack(l));
      continue;
    }
    const f = fileOf(l);
    // after the plugin's outermost frame everything is the runtime calling it
    const furing = i > last || (f !== undefined && !maps.has(f) && (f.startsWith(RUNTIME_DIR) || f.startsWith("/$bunfs/")));
    if (furing) folded++;
    else {
      flush();
      out.push(mapStack(l));
    }
  }
  flush();
  return out.join("\n");
}

/** The dispatcher's stack format when plugins are bundled generations (injected through its config). */
export const SOURCE_MAPPED_STACKS: StackFormat = { fold: foldStack, pluginFrames };
