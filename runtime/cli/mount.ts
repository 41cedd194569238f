/**
 * `furing mount <plugin> <mountpoint> [-o opts] [-f] [-d] [plugin options]`: load the plugin,
 * mount, serve in the foreground until unmounted.
 */
import { parseMountOptions, defaultMountOptions, optionHelp, UsageError } from "../mount/options.ts";
import { checkMountpoint } from "../mount/mount.ts";
import { loadPlugin, instantiate, parsePluginOptions, pluginOptionHelp, PluginError } from "../host/loader.ts";
import { Session } from "../session/session.ts";
import { serveControl } from "../control/socket.ts";

export const MOUNT_USAGE = "  furing mount <plugin> <mountpoint> [-o opt[,opt...]] [-f] [-d] [plugin options]";

const HELP = `Usage:
${MOUNT_USAGE}

Serves <plugin> (memfs, passthrough, a plugin directory or a .ts/.js file) at <mountpoint>,
in the foreground, until it is unmounted (Ctrl-C, SIGTERM, umount, furing unmount).

  -o opt,...   mount options (below)
  -f           foreground (the default)
  -d, --debug  trace every request and reply
  -h, --help   this help

Mount options:
${optionHelp()}`;

const log = (line: string) => console.error(line);

export async function mountCommand(argv: string[]): Promise<number> {
  const positional: string[] = [];
  const optLists: string[] = [];
  const pluginArgs: string[] = [];
  let debug = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-h" || a === "--help") {
      console.log(HELP);
      return 0;
    } else if (a === "-o") {
      const v = argv[++i];
      if (v === undefined) throw new UsageError("-o needs a comma-separated option list");
      optLists.push(v);
    } else if (a.startsWith("-o") && a.length > 2) optLists.push(a.slice(2));
    else if (a === "-f" || a === "--foreground") continue;
    else if (a === "-d" || a === "--debug") debug = true;
    else if (a.startsWith("--")) {
      pluginArgs.push(a);
      // a value follows unless the option is --flag or --key=value; decided against the plugin's spec below
      if (!a.includes("=") && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("-")) pluginArgs.push(argv[++i]!);
    } else if (a.startsWith("-")) throw new UsageError(`unknown flag '${a}'\n\n${HELP}`);
    else positional.push(a);
  }
  if (positional.length !== 2) throw new UsageError(`mount needs <plugin> and <mountpoint>\n\n${HELP}`);
  const [spec, dir] = positional as [string, string];
  const options = parseMountOptions(optLists, defaultMountOptions());
  const mountpoint = checkMountpoint(dir);

  const lp = await loadPlugin(spec);
  let pluginOptions: Record<string, unknown>;
  try {
    pluginOptions = parsePluginOptions(lp.name, lp.plugin.options, pluginArgs);
  } catch (e) {
    if (e instanceof PluginError && lp.plugin.options) throw new UsageError(`${e.message}`);
    throw e;
  }
  void pluginOptionHelp;
  const fs = await instantiate(lp, {
    options: pluginOptions,
    mountpoint,
    log: (...args: unknown[]) => log(`[${lp.name}] ${args.map((a) => (typeof a === "string" ? a : Bun.inspect(a))).join(" ")}`),
  });

  const session = new Session({ mountpoint, options, debug, pluginName: lp.name, fs, log });
  session.start();
  const control = serveControl(mountpoint, () => session.status());
  const onSignal = (sig: string) => () => void session.onSignal(sig);
  process.on("SIGINT", onSignal("SIGINT"));
  process.on("SIGTERM", onSignal("SIGTERM"));
  process.on("SIGHUP", () => {}); // keep serving when the terminal goes away
  try {
    await session.ready;
    const st = session.status();
    log(`furing: ready ${mountpoint} (${lp.name}, transport ${st.transport}${st.transport === "io_uring" ? `: ${st.queues} queues x ${st.depth}` : ""})`);
  } catch (e) {
    log(`furing: ${(e as Error).message}`);
    control.close();
    return 1;
  }
  const code = await session.done;
  control.close();
  log(`furing: ${mountpoint} unmounted, exiting`);
  process.exit(code);
}
