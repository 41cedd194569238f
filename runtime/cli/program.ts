/**
 * The program `furing compile` makes of a plugin:
 *
 *   <prog> <mountpoint> [-o opt[,opt...]] [-f|--foreground] [--background] [-d] [plugin options]
 *
 * The generated entry links the plugin statically and calls {@link runPluginProgram}; the plugin's
 * `furing` import resolves to this module, which re-exports the API, so plugin and runtime share
 * one copy of it. Inside the furing binary this module is embedded prebuilt (scripts/build) as the
 * runtime that `furing compile` links user plugins with.
 */
import { basename } from "node:path";
import { mountCommand } from "./mount.ts";
import { optionHelp } from "../mount/options.ts";
import { pluginFromModule, pluginOptionHelp } from "../host/loader.ts";
import { catchStrayErrors, exitOnError } from "./fatal.ts";
import { VERSION, commit } from "./version.ts";

export * from "../api/index.ts";
/** `furing/sys`, for plugins linked with the prebuilt runtime inside the furing binary (compile.ts). */
export * as __furing_sys from "../api/sys.ts";

function help(prog: string, mod: Record<string, unknown>, name: string): string {
  let pluginOpts = "";
  try {
    const spec = pluginFromModule(mod, name).options ?? {};
    pluginOpts = Object.keys(spec).length === 0 ? "\nThis filesystem takes no plugin options." : `\nPlugin options:\n${pluginOptionHelp(spec)}`;
  } catch (e) {
    pluginOpts = `\n(${(e as Error).message})`;
  }
  return `Usage:
  ${prog} <mountpoint> [-o opt[,opt...]] [-f|--foreground] [--background] [-d] [plugin options]
  ${prog} --version

Serves the ${name} filesystem (built with furing ${VERSION}) at <mountpoint>, in the foreground,
until it is unmounted (Ctrl-C, SIGTERM, umount).

  -o opt,...        mount options (below)
  -f, --foreground  stay in the foreground, serving until unmounted (the default,
                    as libfuse's -f)
  --background      return once mounted; the daemon logs to --log FILE
  -d, --debug       trace every request and its decoded reply
  -h, --help        this help
${pluginOpts}

Mount options:
${optionHelp()}`;
}

/** Run the compiled program: parse the command line and serve `mod` (the plugin's module). */
export async function runPluginProgram(mod: Record<string, unknown>, name: string): Promise<never> {
  const prog = basename(process.execPath);
  let argv = process.argv.slice(2);
  // --background re-runs this program as `<prog> mount <name> <mountpoint> ... --foreground`
  if (argv[0] === "mount" && argv[1] === name) argv = argv.slice(2);
  catchStrayErrors(prog, "mount");
  try {
    if (argv.length === 0 || argv.includes("-h") || argv.includes("--help")) {
      console.log(help(prog, mod, name));
      process.exit(argv.length === 0 ? 2 : 0);
    }
    if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
      console.log(`${prog} (${name}; furing ${VERSION}, commit ${commit()}, bun ${Bun.version})`);
      process.exit(0);
    }
    process.exit(await mountCommand(argv, { name, load: async () => mod }));
  } catch (e) {
    exitOnError(prog, "mount", e);
  }
}
