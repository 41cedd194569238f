/**
 * Bundling a plugin's whole module graph into one ES module, so each generation re-runs every
 * file of the plugin (a plain re-import would re-run only the entry). esbuild when running from
 * source; Bun.build inside a compiled binary, where esbuild's native executable is absent.
 * The `furing` import is bound to the running runtime's API object (a virtual module reading
 * globalThis), never to a second copy of the runtime.
 */
import { resolve, isAbsolute } from "node:path";
import { realpathSync } from "node:fs";
import * as api from "../api/index.ts";
import * as sysApi from "../api/sys.ts";
import { PluginError } from "./loader.ts";
import { isStandalone } from "../standalone.ts";

/** The public modules a plugin may import, bound to this runtime's own copies. */
const PUBLIC_MODULES: Record<string, Record<string, unknown>> = { furing: api, "furing/sys": sysApi };
const VIRTUAL: Record<string, string> = {};
for (const [spec, mod] of Object.entries(PUBLIC_MODULES)) {
  const g = `__furing_module_${spec.replace(/\W/g, "_")}`;
  (globalThis as Record<string, unknown>)[g] = mod;
  VIRTUAL[spec] = `const m = globalThis.${g};\nexport const { ${Object.keys(mod).filter((k) => k !== "default").join(", ")} } = m;\nexport default m;\n`;
}
const PUBLIC_FILTER = /^furing(\/sys)?$/;
/** Bun's own modules, which only the running Bun provides (esbuild's node platform knows node's). */
const BUN_BUILTINS = ["bun", "bun:*"];

export interface Bundle {
  code: string;
  /** Absolute paths of every source file in the graph (what to watch). */
  inputs: string[];
  bundler: "esbuild" | "bun";
}

type Esbuild = typeof import("esbuild");
let esbuildMod: Esbuild | null | undefined;

async function loadEsbuild(): Promise<Esbuild | null> {
  if (esbuildMod !== undefined) return esbuildMod;
  // inside a compiled binary esbuild's native executable is absent: Bun.build does the work
  if (process.env.FURING_BUNDLER === "bun" || isStandalone()) return (esbuildMod = null);
  try {
    esbuildMod = await import("esbuild");
  } catch {
    esbuildMod = null;
  }
  return esbuildMod;
}

function loc(file: string | undefined, line: number | undefined, col: number | undefined): string {
  if (!file) return "";
  return `${isAbsolute(file) ? file : resolve(file)}:${line ?? 0}:${col ?? 0}`;
}

/** Bundle `entry`; a syntax or resolution error becomes a PluginError naming file:line. */
export async function bundlePlugin(entry: string): Promise<Bundle> {
  const esbuild = await loadEsbuild();
  if (esbuild !== null) return bundleWithEsbuild(esbuild, entry);
  return bundleWithBun(entry);
}

async function bundleWithEsbuild(esbuild: Esbuild, entry: string): Promise<Bundle> {
  const cwd = process.cwd();
  try {
    const r = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: "esm",
      platform: "node",
      target: "esnext",
      // the bundle runs in Bun: its built-in modules stay imports (Bun resolves them at import),
      // and npm packages resolve as Bun would (a package's "bun" export condition first)
      external: BUN_BUILTINS,
      conditions: ["bun", "module"],
      metafile: true,
      sourcemap: "inline",
      logLevel: "silent",
      absWorkingDir: cwd,
      plugins: [{
        name: "furing-api",
        setup(b) {
          b.onResolve({ filter: PUBLIC_FILTER }, (a) => ({ path: a.path, namespace: "furing-api" }));
          b.onLoad({ filter: /.*/, namespace: "furing-api" }, (a) => ({ contents: VIRTUAL[a.path]!, loader: "js" }));
        },
      }],
    });
    const inputs = Object.keys(r.metafile!.inputs).filter((p) => !p.startsWith("furing-api:")).map((p) => resolve(cwd, p));
    return { code: r.outputFiles![0]!.text, inputs, bundler: "esbuild" };
  } catch (e) {
    const errs = (e as { errors?: { text: string; location?: { file: string; line: number; column: number; lineText?: string } }[] }).errors;
    if (errs && errs.length > 0) {
      const first = errs[0]!;
      const where = first.location ? loc(first.location.file, first.location.line, first.location.column) : entry;
      throw new PluginError(`${where}: ${first.text}${first.location?.lineText ? `\n    ${first.location.lineText}` : ""}${errs.length > 1 ? ` (+${errs.length - 1} more)` : ""}`);
    }
    throw new PluginError(`${entry}: bundling failed: ${(e as Error).message}`);
  }
}

async function bundleWithBun(entry: string): Promise<Bundle> {
  let r: Awaited<ReturnType<typeof Bun.build>>;
  try {
    r = await Bun.build({
      entrypoints: [entry],
      target: "bun",
      format: "esm",
      sourcemap: "inline",
      metafile: true,
      throw: true,
      plugins: [{
        name: "furing-api",
        setup(b) {
          b.onResolve({ filter: PUBLIC_FILTER }, (a) => ({ path: a.path, namespace: "furing-api" }));
          b.onLoad({ filter: /.*/, namespace: "furing-api" }, (a) => ({ contents: VIRTUAL[a.path]!, loader: "js" }));
        },
      }],
    } as Parameters<typeof Bun.build>[0]);
  } catch (e) {
    const errs = (e as { errors?: { message: string; position?: { file: string; line: number; column: number; lineText?: string } }[] }).errors ?? [];
    const first = errs[0];
    if (first) throw new PluginError(`${first.position ? loc(first.position.file, first.position.line, first.position.column) : entry}: ${first.message}${first.position?.lineText ? `\n    ${first.position.lineText}` : ""}`);
    throw new PluginError(`${entry}: bundling failed: ${(e as Error).message}`);
  }
  const meta = (r as unknown as { metafile?: { inputs: Record<string, unknown> } }).metafile;
  const cwd = process.cwd();
  const inputs = meta ? Object.keys(meta.inputs).filter((p) => !p.startsWith("furing-api:")).map((p) => resolve(cwd, p)) : [entry];
  return { code: await r.outputs[0]!.text(), inputs, bundler: "bun" };
}

/**
 * Import a generation's bundle file, then drop it from the module registry. Bun's loader keeps
 * every module it has imported (its code, bytecode and JIT code, ~300 KiB for memfs) for the life
 * of the thread, keyed by path, and each generation is a new path; once the entry is gone the
 * generation lives exactly as long as something references its exports (its Generation until it
 * is destroyed). `delete require.cache[path]` is the registry's only eviction in Bun 1.4: it
 * removes the ES module entry too. Safe here: the import has settled and no path is imported twice.
 */
export async function importBundle(file: string): Promise<Record<string, unknown>> {
  try {
    return (await import(file)) as Record<string, unknown>;
  } finally {
    forgetModule(file);
  }
}

/** A generation's bundle file (host.ts writes gen-N-ATTEMPT.mjs into its furing-gen-PID-* directory). */
const GENERATION_FILE = /\/furing-gen-\d+-[^/]+\/gen-\d+-\d+\.mjs$/;

/** Generation bundles still in this thread's module registry (status; 0 once each import settled). */
export function bundlesInRegistry(): number {
  let n = 0;
  for (const key of Object.keys(require.cache)) if (GENERATION_FILE.test(key)) n++;
  return n;
}

function forgetModule(file: string): void {
  const cache = require.cache as Record<string, unknown>;
  if (file in cache) {
    delete cache[file];
    return;
  }
  // keyed by the resolved path: a TMPDIR behind a symlink
  try {
    delete cache[realpathSync(file)];
  } catch {
    // the file is gone already and was never registered (a failed import may leave no entry)
  }
}
