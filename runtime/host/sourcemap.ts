/**
 * Stack traces of bundled plugin code mapped back to the plugin's own files. Bun does not apply
 * inline source maps to imported modules, so the host registers each generation's map here and
 * error logs run their stacks through `mapStack` ("gen-3.mjs:26:30" → "src/ops.ts:41:11").
 */
import { resolve } from "node:path";

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
