/**
 * `furing mount <plugin> <mountpoint> [-o opts] [-f] [-d] [--no-watch] [plugin options]`: build the
 * plugin, mount, serve in the foreground until unmounted, reloading the plugin when it changes.
 */
import { parseMountOptions, defaultMountOptions, optionHelp, UsageError, reactorCount } from "../mount/options.ts";
import { ReactorPool } from "../session/reactors.ts";
import { cpuList } from "../transport/fuse-ring.ts";
import { checkMountpoint, spawnAutoUnmount, unmountInChild, findMount } from "../mount/mount.ts";
import { mapStack, sourceMapCount, SOURCE_MAPPED_STACKS } from "../host/sourcemap.ts";
import { bundlesInRegistry } from "../host/bundle.ts";
import { PluginError, errorLocation } from "../host/loader.ts";
import { PluginHost, REACTOR_WORKER_ENTRY } from "../host/host.ts";
import { Session, createReactor } from "../session/session.ts";
import { RingFileIO } from "../io/file-io.ts";
import { startInBackground, backgroundLogPath } from "./background.ts";
import { serveControl } from "../control/socket.ts";
import { ensureRuntimeDir } from "../control/rundir.ts";
import { createSharedCounts } from "../dispatch/shared-counts.ts";

export const MOUNT_USAGE = "  furing mount <plugin> <mountpoint> [-o opt[,opt...]] [-f|--foreground] [--background] [-d] [--typecheck] [--no-watch] [plugin options]";

const HELP = `Usage:
${MOUNT_USAGE}

Serves <plugin> (memfs, passthrough, a plugin directory or a .ts/.js file) at <mountpoint>,
in the foreground, until it is unmounted (Ctrl-C, SIGTERM, umount, furing unmount).
Editing the plugin's source swaps the new code in without unmounting.

  -o opt,...        mount options (below)
  -f, --foreground  stay in the foreground, serving until unmounted (the default,
                    as libfuse's -f)
  --background      return once mounted; the daemon logs to --log FILE (default: next
                    to its control socket). mount.fuse3 and fstab entries run this way
  -d, --debug       trace every request and its decoded reply
  --typecheck       type-check the plugin (tsc) before each generation serves; a
                    type error rejects it and the old generation keeps serving
  --no-watch        do not reload the plugin when its files change
  -h, --help        this help

Mount options:
${optionHelp()}`;

const log = (line: string) => console.error(line);

/** A plugin linked into the program (`furing compile`): the command line names only the mountpoint. */
export interface PreloadedPlugin {
  name: string;
  load: () => Promise<Record<string, unknown>>;
}

export async function mountCommand(argv: string[], preloaded?: PreloadedPlugin): Promise<number> {
  const positional: string[] = [];
  const optLists: string[] = [];
  const pluginArgs: string[] = [];
  let debug = false;
  let watch = true;
  let typecheck = false;
  let background = false;
  let foreground = false;
  let logFile: string | undefined;
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
    else if (a === "-f" || a === "--foreground") {
      foreground = true;
      continue;
    } else if (a === "--background") {
      background = true;
      continue;
    } else if (a === "--log") {
      logFile = argv[++i];
      if (logFile === undefined) throw new UsageError("--log needs a file");
      continue;
    } else if (a === "-d" || a === "--debug") debug = true;
    else if (a === "--no-watch") watch = false;
    else if (a === "--typecheck") typecheck = true;
    else if (a.startsWith("--")) {
      pluginArgs.push(a);
      // `--key value` unless the next word is another flag; the plugin's option spec decides later
      if (!a.includes("=") && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("-")) pluginArgs.push(argv[++i]!);
    } else if (a.startsWith("-")) throw new UsageError(`unknown flag '${a}'\n\n${HELP}`);
    else positional.push(a);
  }
  if (foreground && background) throw new UsageError("-f/--foreground and --background contradict each other: -f serves in this process (the default), --background returns once mounted");
  if (preloaded !== undefined) {
    if (positional.length !== 1) throw new UsageError(`needs one <mountpoint> (got ${positional.length} arguments); see --help`);
    positional.unshift(preloaded.name);
  }
  if (positional.length !== 2) throw new UsageError(`mount needs <plugin> and <mountpoint>\n\n${HELP}`);
  const [spec, dir] = positional as [string, string];
  const options = parseMountOptions(optLists, defaultMountOptions());
  const mountpoint = checkMountpoint(dir);
  // before mounting: a runtime directory that cannot be made must not leave a mount behind
  ensureRuntimeDir();
  if (background) {
    const log = logFile ?? backgroundLogPath(mountpoint);
    const args = [spec, mountpoint, ...optLists.flatMap((l) => ["-o", l]), ...(debug ? ["-d"] : []), ...(watch ? [] : ["--no-watch"]), ...(typecheck ? ["--typecheck"] : []), ...pluginArgs];
    const pid = await startInBackground(args, mountpoint, log);
    console.error(`furing: ${mountpoint} mounted in the background (pid ${pid}, log ${log})`);
    return 0;
  }

  const reactor = createReactor(options);
  const fileIO = new RingFileIO(reactor);
  let session: Session | null = null;
  // lookups and open handles summed over every reactor: only when Workers serve the plugin
  let nodeCounts: SharedArrayBuffer | undefined;
  const possible = cpuList("possible"), online = cpuList("online");
  const reactors = reactorCount(options, online.length, possible[possible.length - 1]! + 1);
  const host: PluginHost = new PluginHost({
    spec, pluginArgs, mountpoint, log, io: fileIO, passthrough: () => session?.passthrough ?? false,
    isOpen: (ino) => session?.dispatcher.isOpen(ino) ?? false, module: preloaded?.load,
    reactors, atime: options.atime, nodiratime: options.nodiratime,
    typecheck,
    startReactors: async (file, generation, shared) => {
      nodeCounts = createSharedCounts();
      const pool = new ReactorPool({
        workerEntry: REACTOR_WORKER_ENTRY,
        count: reactors, possible: possible[possible.length - 1]! + 1, online, log,
        base: { options, debug, pluginArgs, mountpoint, name: host.name || spec, entry: host.entry, nodeCounts },
        notify: host.notify,
        onNotifyReply: (lo, hi, data) => void session?.notifier?.onNotifyReply(lo, hi, data),
        onInterrupt: (lo, hi) => void session?.dispatcher.interruptUnique(lo, hi),
        onWorkerLost: (index, why) => {
          // its CPUs' queues would hang their callers for good: ending the daemon aborts the connection
          log(`furing: reactor Worker ${index} ${why} while serving; exiting (the kernel fails the requests it held; 'furing unmount ${mountpoint}' removes the mount)`);
          process.exit(70);
        },
      });
      await pool.start(file, generation, shared);
      return pool;
    },
  });
  // reading or watching a file through our own mount from the reactor would wait on ourselves
  const inside = (f: string) => f === mountpoint || f.startsWith(mountpoint + "/");
  if (inside(host.entry)) {
    host.close();
    throw new UsageError(`plugin ${host.entry} lies inside its own mountpoint ${mountpoint}: serving it would read the plugin through itself`);
  }
  let first;
  try {
    first = await host.start();
  } catch (e) {
    host.close();
    if (e instanceof PluginError && /unknown option|needs --|needs a value|needs a number|unexpected argument/.test(e.message)) throw new UsageError(e.message);
    throw e;
  }
  const innerInput = host.inputs.find(inside);
  if (innerInput !== undefined) {
    host.close();
    throw new UsageError(`plugin ${host.entry} imports ${innerInput}, which lies inside the mountpoint ${mountpoint}: serving it would read the plugin through itself`);
  }
  host.forbidInputsUnder(mountpoint);

  session = new Session({ reactor, fileIO, mountpoint, options, debug, stacks: SOURCE_MAPPED_STACKS, pluginName: first.name, fs: first.fs, log, pool: host.pool ?? undefined, nodeCounts });
  session.dispatcher.gen.cleanups.push(...host.takeFirstCleanups());
  session.extraStatus = () => ({
    generation: host.generation, generationLoadedAt: new Date(host.loadedAt).toISOString(), reloads: host.reloads, rejectedReloads: host.rejected,
    lastReloadError: host.lastError, lastReloadErrorAt: host.lastErrorAt === 0 ? null : new Date(host.lastErrorAt).toISOString(), watching: watch,
    generationsHeld: { modules: bundlesInRegistry(), sourceMaps: sourceMapCount() },
  });
  await session.start();
  if (options.autoUnmount) spawnAutoUnmount(mountpoint);
  const control = serveControl(mountpoint, () => session.statusWithWorkers(), () => session.gcWorkers());
  const onSignal = (sig: string) => () => void session!.onSignal(sig);
  process.on("SIGINT", onSignal("SIGINT"));
  process.on("SIGTERM", onSignal("SIGTERM"));
  process.on("SIGHUP", () => {}); // keep serving when the terminal goes away
  // a plugin's timer or stray promise failing must not take the mount down (replaces fatal.ts's)
  process.removeAllListeners("uncaughtException");
  process.removeAllListeners("unhandledRejection");
  const stray = (kind: string) => (e: unknown) => log(`furing: ${kind} outside any request (a plugin timer or stray promise?), still serving: ${e instanceof Error ? mapStack(e.stack ?? e.message) : String(e)}`);
  process.on("uncaughtException", stray("uncaught exception"));
  process.on("unhandledRejection", stray("unhandled rejection"));
  try {
    await session.ready;
  } catch (e) {
    // mounted already (init runs once the kernel connection is up): take the mount down again
    const where = mapStack(errorLocation(e));
    log(`furing: plugin ${first.name}: init failed${where ? ` at ${where}` : ""}: ${(e as Error)?.message ?? String(e)}`);
    await unmountInChild(mountpoint, true);
    await session.dispatcher.gen.destroy(log); // set up, never served: destroyed all the same
    control.close();
    host.close();
    return 1;
  }
  host.notify.bind(session.notifier!);
  host.attach(session.dispatcher, () => session.invalidateCaches());
  if (watch) host.watch();
  const st = session.status();
  const workers = host.pool !== null ? `, ${host.pool.count} reactor Workers` : "";
  log(`furing: ready ${mountpoint} (${first.name}, transport ${st.transport}${st.transport === "io_uring" ? `: ${st.queues} queues x ${st.depth}` : ""}${workers})`);
  const code = await session.done;
  control.close();
  host.close();
  // still listed: the connection ended without an unmount (request_timeout, fusectl abort)
  if (findMount(mountpoint)?.fstype.startsWith("fuse")) log(`furing: the kernel aborted the connection of ${mountpoint}; the mount is dead until 'furing unmount ${mountpoint}'. Exiting`);
  else log(`furing: ${mountpoint} unmounted, exiting`);
  process.exit(code);
}
