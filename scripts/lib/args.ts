/**
 * Command lines of the scripts: node:util parseArgs plus what every script repeated by hand.
 * `--help` prints the script's header comment (its usage), a usage problem exits 2 with one line
 * naming the cause, and typed getters check values as they are read.
 *
 *   const cli = scriptArgs(import.meta, { requests: { type: "string", short: "n" }, json: { type: "boolean" } });
 *   const requests = cli.int("requests", 1_000_000, 1);
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface ScriptArgs {
  /** The script's name, for messages. */
  name: string;
  positionals: string[];
  /** A usage problem: `name: msg (see --help)` on stderr, exit 2. */
  fail(msg: string): never;
  str(name: string): string | undefined;
  flag(name: string): boolean;
  /** An integer ≥ `min`, or `dflt` when absent. */
  int(name: string, dflt: number, min?: number): number;
  /** A finite number ≥ `min`, or `dflt` when absent. */
  num(name: string, dflt: number, min?: number): number;
  /** One of `choices`, or `dflt` when absent. */
  oneOf<const T extends string>(name: string, choices: readonly T[], dflt: T): T;
  /** Exits 2 unless running as root; `why` says what needs it. */
  needRoot(why: string): void;
}

/** The comment block after the shebang, without its comment markers: the script's usage. */
export function helpText(path: string): string {
  const lines = readFileSync(path, "utf8").split("\n").slice(1);
  const end = lines.findIndex((l) => !/^(\/\/|#)/.test(l));
  return lines.slice(0, end < 0 ? lines.length : end).map((l) => l.replace(/^(\/\/|#) ?/, "")).join("\n");
}

export function scriptArgs(meta: { path: string }, options: Options, opts: { positionals?: boolean; args?: string[] } = {}): ScriptArgs {
  const name = basename(meta.path);
  const fail = (msg: string): never => {
    console.error(`${name}: ${msg} (see --help)`);
    process.exit(2);
  };
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: opts.args ?? process.argv.slice(2),
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: opts.positionals ?? false,
      strict: true,
    }) as typeof parsed;
  } catch (e) {
    fail((e as Error).message.split("\n")[0]!.replace(/\. To specify a positional argument.*$/, ""));
  }
  const { values, positionals } = parsed!;
  if (values.help === true) {
    console.log(helpText(meta.path));
    process.exit(0);
  }
  const str = (k: string) => values[k] as string | undefined;
  const number = (k: string, dflt: number, min: number, int: boolean): number => {
    const v = str(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min)
      fail(`--${k} needs ${int ? "an integer" : "a number"} ≥ ${min}, not '${v}'`);
    return n;
  };
  return {
    name,
    positionals,
    fail,
    str,
    flag: (k) => values[k] === true,
    int: (k, dflt, min = 0) => number(k, dflt, min, true),
    num: (k, dflt, min = 0) => number(k, dflt, min, false),
    oneOf: (k, choices, dflt) => {
      const v = str(k) ?? dflt;
      if (!(choices as readonly string[]).includes(v)) fail(`--${k} is ${choices.join(", ").replace(/, ([^,]*)$/, " or $1")}, not '${v}'`);
      return v as (typeof choices)[number];
    },
    needRoot: (why) => {
      if (process.getuid?.() !== 0) {
        console.error(`${name}: run as root (${why})`);
        process.exit(2);
      }
    },
  };
}
