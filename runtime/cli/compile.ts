/**
 * `furing compile <plugin> [-o <file>]`: link a plugin and the furing runtime into one executable
 * (`bun build --compile`) that mounts that filesystem: `<file> <mountpoint> [options]`.
 *
 * The entry is generated: it imports the plugin statically and hands its module to
 * runPluginProgram (./program.ts). Bun.build runs in this process, so it works from source and
 * inside the furing binary alike (a compiled Bun carries its bundler and makes executables from
 * its own image, offline). From source the runtime is linked from its files; inside the binary from
 * the prebuilt runtime that scripts/build embedded (furing-runner.js).
 *
 * Also the build pieces scripts/build shares (Bun.build plugins, defines).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { BunPlugin } from "bun";
import { UsageError } from "../mount/options.ts";
import { PluginError, resolvePluginEntry } from "../host/loader.ts";
import { isStandalone } from "../standalone.ts";
import { commit } from "./version.ts";

export const COMPILE_USAGE = "  furing compile <plugin> [-o <file>]";

const HELP = `Usage:
${COMPILE_USAGE}

Builds <plugin> (a plugin directory or a .ts/.js file) with the furing runtime into one
executable <file> (default ./<plugin name>) that mounts that filesystem:

  <file> <mountpoint> [-o opt[,opt...]] [-f|--foreground] [--background] [-d] [plugin options]

The executable needs no Bun and no source tree (only liburing, and fusermount3 for unprivileged
mounts), and does not hot-reload. compile works from source (bun runtime/cli/main.ts compile ...)
and inside the furing binary (which carries Bun's bundler and a prebuilt runtime), offline.

  -o, --outfile FILE   where to write the executable
  -h, --help           this help`;

/** Name of the prebuilt runtime scripts/build embeds in the furing binary. */
export const RUNNER_ASSET = "furing-runner.js";

const SOURCE_API = resolve(import.meta.dir, "../api/index.ts");
const SOURCE_PROGRAM = resolve(import.meta.dir, "program.ts");

/** What the build inlines: the commit `furing --version` names (see version.ts). */
export function buildDefines(sha = commit()): Record<string, string> {
  return { "process.env.FURING_BUILD_COMMIT": JSON.stringify(sha) };
}

/**
 * Replaces the built-in plugins that runtime/host/builtin.ts imports by a module whose setup
 * fails with `reason`: for programs that never serve them (compiled plugins), or a binary built
 * before a built-in plugin exists (scripts/build --without-passthrough).
 */
export function stubBuiltins(names: string[], reason: (name: string) => string): BunPlugin {
  const re = new RegExp(`/plugins/(${names.join("|")})/index\\.ts$`);
  return {
    name: "furing-stub-builtins",
    setup(b) {
      b.onResolve({ filter: re }, (args) => {
        if (!/runtime\/host\/builtin\.ts$/.test(args.importer)) return undefined;
        return { path: re.exec(args.path)![1]!, namespace: "furing-stub-builtin" };
      });
      b.onLoad({ filter: /.*/, namespace: "furing-stub-builtin" }, (args) => ({
        contents: `export default { name: ${JSON.stringify(args.path)}, setup() { throw new Error(${JSON.stringify(reason(args.path))}); } };\n`,
        loader: "js",
      }));
    },
  };
}

/**
 * Binds a plugin's `furing` and `furing/sys` imports to the runtime linked into the program: to
 * its files from source; inside the binary to the prebuilt runtime, whose `__furing_sys` export is
 * re-exported by name as `furing/sys` (`sys` is then the module text).
 */
function bindFuring(rt: RuntimeFiles): BunPlugin {
  return {
    name: "furing-api",
    setup(b) {
      b.onResolve({ filter: /^furing$/ }, () => ({ path: rt.api }));
      b.onResolve({ filter: /^furing\/sys$/ }, () => (rt.sysModule === null ? { path: rt.sys } : { path: "furing/sys", namespace: "furing-sys" }));
      b.onLoad({ filter: /.*/, namespace: "furing-sys" }, () => ({ contents: rt.sysModule!, loader: "js" }));
    },
  };
}

/** Bun.build's error (an AggregateError of BuildMessages) as one PluginError naming file:line. */
export function buildError(e: unknown, what: string): PluginError {
  const errs = (e as { errors?: { message: string; position?: { file: string; line: number; column: number; lineText?: string } | null }[] }).errors ?? [];
  const first = errs[0];
  if (first) {
    const p = first.position;
    const where = p ? `${isAbsolute(p.file) ? p.file : resolve(p.file)}:${p.line}:${p.column}: ` : `${what}: `;
    return new PluginError(`${where}${first.message}${p?.lineText ? `\n    ${p.lineText}` : ""}${errs.length > 1 ? ` (+${errs.length - 1} more)` : ""}`);
  }
  return new PluginError(`${what}: build failed: ${(e as Error)?.message ?? String(e)}`);
}

/** The plugin's display name, as the host derives it: its directory for index.*, else its file name. */
function pluginName(entry: string): string {
  return basename(entry).startsWith("index.") ? basename(dirname(entry)) : basename(entry).replace(/\.[^.]+$/, "");
}

interface RuntimeFiles {
  /** Module exporting runPluginProgram. */
  program: string;
  /** What `furing` resolves to. */
  api: string;
  /** What `furing/sys` resolves to (a file), or the text of a module re-exporting it (sysModule). */
  sys: string;
  sysModule: string | null;
}

/** Where the runtime to link comes from: the source tree, or the binary's embedded prebuilt copy. */
async function runtimeFiles(tmp: string): Promise<RuntimeFiles> {
  if (!isStandalone()) return { program: SOURCE_PROGRAM, api: SOURCE_API, sys: resolve(import.meta.dir, "../api/sys.ts"), sysModule: null };
  const asset = Bun.embeddedFiles.find((f) => (f as Blob & { name?: string }).name === RUNNER_ASSET);
  if (asset === undefined) throw new PluginError(`this furing binary carries no prebuilt runtime (${RUNNER_ASSET}); run compile from source: bun runtime/cli/main.ts compile ...`);
  const file = join(tmp, RUNNER_ASSET);
  writeFileSync(file, new Uint8Array(await asset.arrayBuffer()));
  const names = Object.keys(await import("../api/sys.ts")).filter((k) => k !== "default");
  const sysModule = `import { __furing_sys as sys } from ${JSON.stringify(file)};\nexport const { ${names.join(", ")} } = sys;\n`;
  return { program: file, api: file, sys: file, sysModule };
}

/** Fail now rather than when the program starts: the entry must have a default export. */
function checkDefaultExport(entry: string): void {
  let exports: string[];
  try {
    const loader = /\.(m?js|jsx)$/.test(entry) ? (entry.endsWith("x") ? "jsx" : "js") : entry.endsWith("x") ? "tsx" : "ts";
    exports = new Bun.Transpiler({ loader }).scan(readFileSync(entry, "utf8")).exports;
  } catch {
    return; // a syntax error: the build reports it with file:line
  }
  if (!exports.includes("default")) throw new PluginError(`${entry}: the module has no default export (export default defineFilesystem({...}) or definePlugin({...}))`);
}

export interface Compiled {
  outfile: string;
  name: string;
  bytes: number;
  ms: number;
}

/** Compile the plugin `spec` into the executable `outfile` (default ./<name>). */
export async function compilePlugin(spec: string, outfile?: string): Promise<Compiled> {
  const t0 = performance.now();
  const entry = resolvePluginEntry(spec);
  const name = pluginName(entry);
  const out = resolve(outfile ?? name);
  if (out === entry) throw new UsageError(`the executable ${out} would overwrite the plugin's source`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`${out} is a directory; -o names the executable to write`);
  checkDefaultExport(entry);
  const tmp = mkdtempSync(join(tmpdir(), "furing-compile-"));
  const hadMap = existsSync(`${out}.map`);
  try {
    const rt = await runtimeFiles(tmp);
    const main = join(tmp, `${name}.ts`);
    writeFileSync(
      main,
      `// generated by furing compile\nimport * as plugin from ${JSON.stringify(entry)};\nimport { runPluginProgram } from ${JSON.stringify(rt.program)};\n` +
        `await runPluginProgram(plugin, ${JSON.stringify(name)});\n`,
    );
    try {
      await Bun.build({
        entrypoints: [main],
        target: "bun",
        format: "esm",
        external: ["esbuild"],
        define: buildDefines(),
        sourcemap: "inline",
        throw: true,
        compile: { outfile: out, autoloadDotenv: false, autoloadBunfig: false },
        plugins: [bindFuring(rt), stubBuiltins(["memfs", "passthrough"], (n) => `the built-in plugin ${n} is not part of this program (it serves ${name})`)],
      } as Parameters<typeof Bun.build>[0]);
    } catch (e) {
      throw buildError(e, entry);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    // the source map is embedded in the executable; Bun also writes it next to it
    if (!hadMap) rmSync(`${out}.map`, { force: true });
  }
  if (!existsSync(out)) throw new PluginError(`${entry}: the build reported success but wrote no ${out}`);
  return { outfile: out, name, bytes: statSync(out).size, ms: performance.now() - t0 };
}

export async function compileCommand(argv: string[]): Promise<number> {
  const positional: string[] = [];
  let outfile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-h" || a === "--help") {
      console.log(HELP);
      return 0;
    } else if (a === "-o" || a === "--outfile") {
      outfile = argv[++i];
      if (outfile === undefined) throw new UsageError(`${a} needs a file`);
    } else if (a.startsWith("--outfile=")) outfile = a.slice("--outfile=".length);
    else if (a.startsWith("-")) throw new UsageError(`unknown flag '${a}'\n\n${HELP}`);
    else positional.push(a);
  }
  if (positional.length !== 1) throw new UsageError(`compile needs one <plugin>\n\n${HELP}`);
  const r = await compilePlugin(positional[0]!, outfile);
  console.error(`furing: compiled ${r.name} into ${r.outfile} (${(r.bytes / 1e6).toFixed(1)} MB, ${(r.ms / 1000).toFixed(1)} s); run: ${r.outfile} <mountpoint>`);
  return 0;
}
