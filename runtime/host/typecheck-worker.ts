/**
 * The --typecheck Worker: type-checks a plugin's own files with the TypeScript compiler, off the
 * thread that serves the mount. It keeps parsed source files (lib and @types declarations, the
 * runtime's API) between checks and hands the last Program to the next as `oldProgram`, so a
 * reload re-reads only the files that changed.
 */
import { parentPort } from "node:worker_threads";
import { dirname, join, resolve } from "node:path";
import { statSync } from "node:fs";
import type * as TS from "typescript";

export interface CheckRequest {
  id: number;
  /** The plugin's own source files (its bundle's inputs outside node_modules). */
  files: string[];
}
export type CheckAnswer = { id: number; ms: number; errors: string[] } | { id: number; unavailable: string };

const REPO = resolve(import.meta.dir, "../..");
/** `furing` and `furing/sys` are this runtime's API, wherever the plugin lives. */
const FURING_PATHS = { furing: [join(REPO, "runtime/api/index.ts")], "furing/sys": [join(REPO, "runtime/api/sys.ts")] };

let ts: typeof TS | null = null;
let old: TS.Program | undefined;
/** Parsed files by path, with the mtime they were parsed at. */
const cache = new Map<string, { mtimeMs: number; sf: TS.SourceFile }>();

function compilerOptions(t: typeof TS, first: string): TS.CompilerOptions {
  const cfgPath = t.findConfigFile(dirname(first), t.sys.fileExists);
  let options: TS.CompilerOptions;
  if (cfgPath !== undefined) {
    const read = t.readConfigFile(cfgPath, t.sys.readFile);
    options = t.parseJsonConfigFileContent(read.config ?? {}, t.sys, dirname(cfgPath)).options;
  } else {
    options = {
      target: t.ScriptTarget.ESNext, module: t.ModuleKind.Preserve, moduleResolution: t.ModuleResolutionKind.Bundler,
      lib: ["lib.esnext.d.ts"], types: ["bun"], typeRoots: [join(REPO, "node_modules/@types")], strict: true,
      allowImportingTsExtensions: true, verbatimModuleSyntax: false,
    };
  }
  return { ...options, noEmit: true, skipLibCheck: true, paths: { ...options.paths, ...FURING_PATHS } };
}

function check(t: typeof TS, files: string[]): string[] {
  const options = compilerOptions(t, files[0]!);
  const host = t.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, fresh) => {
    let mtimeMs = -1;
    try {
      mtimeMs = statSync(name).mtimeMs;
    } catch {
      // absent: let the compiler say so
    }
    const hit = cache.get(name);
    if (hit !== undefined && hit.mtimeMs === mtimeMs && !fresh) return hit.sf;
    const sf = getSourceFile(name, lang, onError, fresh);
    if (sf !== undefined) cache.set(name, { mtimeMs, sf });
    return sf;
  };
  const program = t.createProgram({ rootNames: files, options, host, oldProgram: old });
  old = program;
  const out: string[] = [];
  const diags = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  for (const f of files) {
    const sf = program.getSourceFile(f);
    if (sf === undefined) continue;
    diags.push(...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf));
  }
  for (const d of diags) {
    const msg = t.flattenDiagnosticMessageText(d.messageText, "\n  ");
    if (d.file !== undefined && d.start !== undefined) {
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      out.push(`${d.file.fileName}:${line + 1}:${character + 1}: TS${d.code}: ${msg}`);
    } else out.push(`TS${d.code}: ${msg}`);
  }
  return out;
}

parentPort!.on("message", async (req: CheckRequest) => {
  if (ts === null) {
    try {
      ts = (await import("typescript")) as unknown as typeof TS;
      ts = ((ts as unknown as { default?: typeof TS }).default ?? ts) as typeof TS;
    } catch (e) {
      parentPort!.postMessage({ id: req.id, unavailable: `the typescript package cannot be loaded (${(e as Error).message.split("\n")[0]}); install it next to furing (bun add -d typescript) or drop --typecheck` } satisfies CheckAnswer);
      return;
    }
  }
  const t0 = performance.now();
  try {
    const errors = check(ts, req.files);
    parentPort!.postMessage({ id: req.id, ms: performance.now() - t0, errors } satisfies CheckAnswer);
  } catch (e) {
    parentPort!.postMessage({ id: req.id, ms: performance.now() - t0, errors: [`the type-check itself failed: ${(e as Error)?.message ?? String(e)}`] } satisfies CheckAnswer);
  }
});
