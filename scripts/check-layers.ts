#!/usr/bin/env bun
// The layer rule, checked over the import graph of runtime/, plugins/ and examples/:
// - a runtime layer imports only the layers above it in ARCHITECTURE.md's "Layers" table (the
//   table lists them from the bottom up; this script reads it, so the table is the one source);
// - a plugin (plugins/*, examples/*) imports only `furing`, `furing/sys`, node builtins, `bun`,
//   `bun:*`, npm packages and its own files (its tests also `furing/testing`).
// Type-only imports count: a layer that names another's types knows of it.
// Prints each violating import as `file: imports X (layer A may not import layer B)`; exits 1 on
// any, 0 when there is none, 2 for a usage problem.
//
//   scripts/check-layers.ts                 # the repository this script lives in
//   scripts/check-layers.ts --root DIR      # another tree (DIR/ARCHITECTURE.md, DIR/runtime, ...)
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { scriptArgs } from "./lib/args.ts";

const SOURCE = /\.(ts|tsx|mts|js|mjs)$/;

export interface Layer {
  name: string;
  /** Folder relative to the root, with a trailing slash (`runtime/ffi/`), or one file (a package entry). */
  folder: string;
}

/** The rows of ARCHITECTURE.md's "## Layers" table that name a `runtime/` folder or file, in table order. */
export function layersFromTable(markdown: string): Layer[] {
  const start = markdown.search(/^## Layers\b/m);
  if (start < 0) throw new Error("ARCHITECTURE.md has no '## Layers' section");
  const section = markdown.slice(start).split(/\n## /)[0]!;
  const layers: Layer[] = [];
  for (const line of section.split("\n")) {
    const m = /^\|\s*([^|]+?)\s*\|\s*`(runtime\/[^`]+?)\/?`\s*\|/.exec(line);
    if (m !== null) layers.push({ name: m[1]!, folder: SOURCE.test(m[2]!) ? m[2]! : m[2]!.replace(/\/?$/, "/") });
  }
  if (layers.length === 0) throw new Error("ARCHITECTURE.md's Layers table names no runtime/ folder");
  return layers;
}

/**
 * Every module specifier `source` imports or re-exports: import/export-from statements (type-only
 * ones too), side-effect imports, `import("x")` (calls and type positions) and `require("x")`.
 * A small tokenizer skips comments, strings, template literals and regular expressions, so code
 * quoted inside them (generated entries, examples in comments) is not taken for an import.
 */
export function importSpecifiers(source: string): string[] {
  type Tok = { k: "id" | "str" | "punct"; v: string };
  const toks: Tok[] = [];
  const s = source;
  let i = 0;
  const regexCanFollow = () => {
    const t = toks[toks.length - 1];
    if (t === undefined) return true;
    if (t.k === "punct") return !/^[)\]]$/.test(t.v);
    return t.k === "id" && /^(return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await|instanceof)$/.test(t.v);
  };
  const skipTemplate = () => {
    // at the opening backtick; skips to after the closing one, `${...}` nesting included
    i++;
    while (i < s.length && s[i] !== "`") {
      if (s[i] === "\\") i += 2;
      else if (s[i] === "$" && s[i + 1] === "{") {
        i += 2;
        let depth = 1;
        while (i < s.length && depth > 0) {
          const c = s[i]!;
          if (c === "`") { skipTemplate(); continue; }
          if (c === '"' || c === "'") { readString(); continue; }
          if (c === "{") depth++;
          else if (c === "}") depth--;
          i++;
        }
      } else i++;
    }
    i++;
  };
  const readString = (): string => {
    const q = s[i]!;
    let out = "";
    i++;
    while (i < s.length && s[i] !== q && s[i] !== "\n") {
      if (s[i] === "\\") { out += s[i + 1] ?? ""; i += 2; }
      else out += s[i++];
    }
    i++;
    return out;
  };
  while (i < s.length) {
    const c = s[i]!;
    if (c === "/" && s[i + 1] === "/") { const e = s.indexOf("\n", i); i = e < 0 ? s.length : e; }
    else if (c === "/" && s[i + 1] === "*") { const e = s.indexOf("*/", i + 2); i = e < 0 ? s.length : e + 2; }
    else if (c === '"' || c === "'") toks.push({ k: "str", v: readString() });
    else if (c === "`") { skipTemplate(); toks.push({ k: "id", v: "`template`" }); }
    else if (c === "/" && regexCanFollow()) {
      i++;
      let cls = false;
      while (i < s.length && s[i] !== "\n" && (cls || s[i] !== "/")) {
        if (s[i] === "\\") i++;
        else if (s[i] === "[") cls = true;
        else if (s[i] === "]") cls = false;
        i++;
      }
      i++;
      while (/[a-z]/.test(s[i] ?? "")) i++;
      toks.push({ k: "id", v: "`regex`" });
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][\w$]*/.exec(s.slice(i, i + 64))!;
      toks.push({ k: "id", v: m[0] });
      i += m[0].length;
    } else if (/\s/.test(c)) i++;
    else if (/[0-9]/.test(c)) { while (/[\w.]/.test(s[i] ?? "")) i++; toks.push({ k: "id", v: "0" }); }
    else { toks.push({ k: "punct", v: c }); i++; }
  }
  const specs: string[] = [];
  for (let t = 0; t < toks.length; t++) {
    const tok = toks[t]!, next = toks[t + 1], after = toks[t + 2];
    const prev = toks[t - 1];
    if (prev !== undefined && prev.k === "punct" && prev.v === ".") continue; // a property named import/from
    if (tok.k !== "id") continue;
    if ((tok.v === "import" || tok.v === "require") && next?.v === "(" && next.k === "punct" && after?.k === "str") specs.push(after.v);
    else if (tok.v === "import" && next?.k === "str") specs.push(next.v);
    else if (tok.v === "from" && next?.k === "str") {
      // belongs to the nearest import/export before it in the same statement
      for (let b = t - 1; b >= 0; b--) {
        const p = toks[b]!;
        if (p.k === "punct" && p.v === ";") break;
        if (p.k === "id" && (p.v === "import" || p.v === "export")) { specs.push(next.v); break; }
      }
    }
  }
  return specs;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) sourceFiles(p, out);
    else if (e.isFile() && SOURCE.test(e.name) && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** `runtime/x/...` → the layer whose folder holds it (a row naming the file itself first). */
function layerOf(layers: Layer[], rel: string): Layer | undefined {
  return layers.find((l) => l.folder === rel) ?? layers.find((l) => l.folder.endsWith("/") && rel.startsWith(l.folder));
}

/** The plugin a file belongs to: `plugins/<name>/` or `examples/<name>/`, or undefined. */
function pluginOf(rel: string): string | undefined {
  const m = /^(plugins|examples)\/[^/]+\//.exec(rel);
  return m?.[0];
}

const PLUGIN_PACKAGES = new Set(["furing", "furing/sys"]);

export function checkTree(root: string): string[] {
  root = resolve(root);
  const layers = layersFromTable(readFileSync(join(root, "ARCHITECTURE.md"), "utf8"));
  const rank = new Map(layers.map((l, i) => [l.name, i]));
  const relOf = (p: string) => relative(root, p).split(sep).join("/");
  const problems: string[] = [];
  const files = ["runtime", "plugins", "examples"].flatMap((d) => sourceFiles(join(root, d)));
  for (const file of files) {
    const rel = relOf(file);
    const specs = importSpecifiers(readFileSync(file, "utf8"));
    const plugin = pluginOf(rel);
    if (plugin !== undefined) {
      const isTest = /\.test\.[mc]?[jt]sx?$/.test(rel);
      for (const spec of specs) {
        if (spec.startsWith(".") || spec.startsWith("/")) {
          const target = relOf(resolve(dirname(file), spec));
          if (!target.startsWith(plugin)) problems.push(`${rel}: imports ${spec} (a plugin imports only furing, furing/sys, node builtins, npm packages and its own files)`);
        } else if (spec === "furing" || spec.startsWith("furing/")) {
          if (!PLUGIN_PACKAGES.has(spec) && !(isTest && spec === "furing/testing")) {
            problems.push(`${rel}: imports ${spec} (a plugin imports only furing and furing/sys of furing's modules${isTest ? ", its tests furing/testing too" : ""})`);
          }
        }
      }
      continue;
    }
    if (!rel.startsWith("runtime/")) continue;
    const from = layerOf(layers, rel);
    if (from === undefined) {
      problems.push(`${rel}: is in no layer (add its folder to ARCHITECTURE.md's Layers table)`);
      continue;
    }
    for (const spec of specs) {
      if (!spec.startsWith(".")) {
        if (spec === "furing" || spec.startsWith("furing/")) problems.push(`${rel}: imports ${spec} (the runtime imports its own files, not its package names)`);
        continue; // node builtins, bun, npm packages
      }
      const targetPath = resolve(dirname(file), spec);
      const target = relOf(targetPath);
      if (!SOURCE.test(target)) continue; // package.json and other data
      const to = layerOf(layers, target);
      if (to === undefined) {
        // the plugin host embeds the built-in plugins; nothing else in the runtime knows a plugin
        const builtin = pluginOf(target) !== undefined && target.startsWith("plugins/") && from.folder === "runtime/host/";
        if (!builtin) problems.push(`${rel}: imports ${spec} (layer ${from.name} may not import ${target.startsWith("runtime/") ? "a file in no layer" : "outside runtime/"})`);
        continue;
      }
      if (to === from) continue;
      if (rank.get(to.name)! > rank.get(from.name)!) problems.push(`${rel}: imports ${spec} (layer ${from.name} may not import layer ${to.name})`);
    }
  }
  return problems;
}

if (import.meta.main) {
  const cli = scriptArgs(import.meta, { root: { type: "string" } });
  const root = cli.str("root") ?? resolve(import.meta.dir, "..");
  if (!existsSync(join(root, "ARCHITECTURE.md")) || !statSync(root).isDirectory()) cli.fail(`--root ${root} holds no ARCHITECTURE.md`);
  let problems: string[];
  try {
    problems = checkTree(root);
  } catch (e) {
    console.error(`check-layers: ${(e as Error).message}`);
    process.exit(1);
  }
  for (const p of problems) console.log(p);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} import${problems.length === 1 ? "" : "s"} against the layer rule`);
    process.exit(1);
  }
  console.log("check-layers: every import keeps the layer rule");
}
