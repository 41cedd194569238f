/**
 * Finding, loading and starting a plugin. A plugin is a directory with index.ts (or the file its
 * package.json names as main) or a single .ts/.js file; `memfs` and `passthrough` name the
 * built-in plugins. Its default export is a Filesystem, or a Plugin whose setup builds one.
 */
import { existsSync, statSync, readFileSync } from "node:fs";
import { resolve, join } from "node:path";
import type { Filesystem, Plugin, PluginContext, PluginOption } from "../api/types.ts";
import { mapStack } from "./sourcemap.ts";

export const BUILTIN_PLUGINS = ["memfs", "passthrough"] as const;
const PLUGINS_DIR = resolve(import.meta.dir, "../../plugins");

export class PluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PluginError";
  }
}

export interface LoadedPlugin {
  /** Display name (plugin.name, else the directory or file name). */
  name: string;
  /** Entry file. */
  entry: string;
  plugin: Plugin<Record<string, unknown>>;
}

/** A built-in plugin name (memfs, passthrough) rather than a path. */
export function isBuiltinName(spec: string): boolean {
  return !spec.includes("/") && !spec.startsWith(".") && (BUILTIN_PLUGINS as readonly string[]).includes(spec);
}

/** Resolve a plugin argument to its entry file. */
export function resolvePluginEntry(spec: string): string {
  const looksBuiltin = isBuiltinName(spec);
  const p = looksBuiltin ? join(PLUGINS_DIR, spec) : resolve(spec);
  if (!existsSync(p)) throw new PluginError(notFound(spec, p));
  if (statSync(p).isDirectory()) {
    const pkg = join(p, "package.json");
    if (existsSync(pkg)) {
      let main: unknown;
      try {
        main = JSON.parse(readFileSync(pkg, "utf8")).main;
      } catch (e) {
        throw new PluginError(`plugin ${spec}: ${pkg}: ${(e as Error).message}`);
      }
      if (typeof main === "string") {
        const m = resolve(p, main);
        if (!existsSync(m)) throw new PluginError(`plugin ${spec}: main ${m} (from ${pkg}) does not exist`);
        return m;
      }
    }
    for (const f of ["index.ts", "index.js", "index.mts", "index.mjs"]) if (existsSync(join(p, f))) return join(p, f);
    throw new PluginError(`plugin ${spec}: ${p} has no index.ts (or package.json main)`);
  }
  if (!/\.(ts|js|mts|mjs|tsx|jsx)$/.test(p)) throw new PluginError(`plugin ${spec}: ${p} is not a .ts or .js file`);
  return p;
}

/**
 * A plugin argument that names nothing: a bare word may be a mistyped built-in, so the message
 * lists the built-ins; every form says which path was tried.
 */
function notFound(spec: string, tried: string): string {
  const bare = !spec.includes("/") && !spec.startsWith(".");
  if (!bare) return `plugin ${spec}: ${tried} does not exist`;
  return `plugin ${spec}: not a built-in plugin (built-ins: ${BUILTIN_PLUGINS.join(", ")}), nor a plugin path: tried ${tried}, which does not exist`;
}

/** Where in the plugin's source an error happened ("file:line:col"), if known. */
export function errorLocation(e: unknown): string {
  const o = e as { position?: { file?: string; line?: number; column?: number }; errors?: unknown[]; stack?: string };
  if (o?.position?.file) return `${o.position.file}:${o.position.line}:${o.position.column}`;
  if (Array.isArray(o?.errors) && o.errors.length > 0) return errorLocation(o.errors[0]);
  const m = /\(?((?:\/|file:\/\/)[^\s()]+:\d+:\d+)\)?/.exec(o?.stack ?? "");
  return m ? m[1]!.replace(/^file:\/\//, "") : "";
}

function isFilesystem(v: unknown): v is Filesystem {
  if (typeof v !== "object" || v === null) return false;
  return Object.values(v).some((x) => typeof x === "function");
}

/** Turn a module's default export into a Plugin (wrapping a bare Filesystem). */
export function pluginFromModule(mod: Record<string, unknown>, entry: string): Plugin<Record<string, unknown>> {
  const d = mod.default;
  if (d === undefined) throw new PluginError(`${entry}: the module has no default export (export default defineFilesystem({...}) or definePlugin({...}))`);
  if (typeof d === "object" && d !== null && typeof (d as Plugin).setup === "function") return d as Plugin<Record<string, unknown>>;
  if (isFilesystem(d)) return { setup: () => d };
  throw new PluginError(`${entry}: the default export is not a filesystem (an object of ops) nor a plugin (an object with setup())`);
}

/** Parse `--name value` / `--name=value` / `--flag` arguments against a plugin's declared options. */
export function parsePluginOptions(name: string, decl: Record<string, PluginOption> | undefined, args: string[]): Record<string, unknown> {
  const spec = decl ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, o] of Object.entries(spec)) if (o.default !== undefined) out[k] = o.default;
  const valid = () => (Object.keys(spec).length === 0 ? `plugin ${name} takes no options` : `plugin ${name} options:\n${pluginOptionHelp(spec)}`);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) throw new PluginError(`unexpected argument '${a}'. ${valid()}`);
    const eq = a.indexOf("=");
    const key = a.slice(2, eq < 0 ? undefined : eq);
    const o = spec[key];
    if (o === undefined) throw new PluginError(`unknown option '--${key}'. ${valid()}`);
    let raw: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
    if (o.type === "boolean") {
      out[key] = raw === undefined ? true : raw === "true" || raw === "1";
      continue;
    }
    if (raw === undefined) {
      raw = args[++i];
      if (raw === undefined) throw new PluginError(`option '--${key}' needs a value (${o.help})`);
    }
    if (o.type === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new PluginError(`option '--${key}' needs a number (got ${JSON.stringify(raw)})`);
      out[key] = n;
    } else out[key] = raw;
  }
  for (const [k, o] of Object.entries(spec)) if (o.required && out[k] === undefined) throw new PluginError(`plugin ${name} needs --${k} (${o.help})`);
  return out;
}

export function pluginOptionHelp(spec: Record<string, PluginOption>): string {
  return Object.entries(spec).map(([k, o]) => `  --${k}${o.type === "boolean" ? "" : ` <${o.type}>`}`.padEnd(28) + ` ${o.help}${o.required ? " (required)" : ""}`).join("\n");
}

/** Run a plugin's setup; errors name the plugin and where they happened. */
export async function instantiate(lp: LoadedPlugin, ctx: PluginContext<Record<string, unknown>>): Promise<Filesystem> {
  let fs: unknown;
  try {
    fs = await lp.plugin.setup(ctx);
  } catch (e) {
    const loc = mapStack(errorLocation(e));
    throw new PluginError(`plugin ${lp.name}: setup failed${loc ? ` at ${loc}` : ""}: ${(e as Error)?.message ?? String(e)}`);
  }
  if (!isFilesystem(fs)) throw new PluginError(`plugin ${lp.name}: setup() must return an object of filesystem ops`);
  return fs;
}
