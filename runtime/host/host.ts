/**
 * The plugin host: builds generations of the plugin's code and swaps them in while mounted.
 *
 * Each generation is the plugin's whole module graph bundled into one module and imported from a
 * fresh file. Every input file is watched; a change (debounced) builds, imports and initialises a
 * new generation and then swaps it in atomically through the dispatcher: requests in flight finish
 * on the old code, new requests go to the new code, and the old generation is destroyed when its
 * last request ends. State survives through `ctx.keep`. A generation that fails to bundle, import,
 * set up or init is rejected with file:line, and the old one keeps serving.
 */
import { mkdtempSync, writeFileSync, rmSync, readdirSync, watch, type FSWatcher } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, basename } from "node:path";
import { createHash } from "node:crypto";
import type { AtimeMode, Filesystem, Notifier, Plugin, FileIO } from "../api/types.ts";
import { FuseError } from "../api/errno.ts";
import { bundlePlugin, importBundle } from "./bundle.ts";
import { pluginContext } from "./context.ts";
export { sharedRegion } from "./context.ts";
import { resolvePluginEntry, pluginFromModule, parsePluginOptions, instantiate, errorLocation, isBuiltinName, PluginError } from "./loader.ts";
import { EMBEDDED_PLUGINS } from "./builtin.ts";
import { isStandalone } from "../standalone.ts";
import { registerSourceMap, unregisterSourceMap, mapStack } from "./sourcemap.ts";
import { Generation, destroyFilesystem, type Dispatcher } from "../dispatch/dispatcher.ts";
import { ReactorError, type ReactorPool } from "../session/reactors.ts";
import { TypeChecker } from "./typecheck.ts";

/** The program each reactor Worker runs (the session starts them; what they load is the host's). */
export const REACTOR_WORKER_ENTRY = isStandalone()
  ? // the furing binary embeds it as a second entrypoint (scripts/build), at its path under runtime/
    join(dirname(Bun.main), "host", "reactor-worker.ts")
  : join(import.meta.dir, "reactor-worker.ts");

export interface HostOptions {
  /** Plugin argument: memfs, passthrough, a directory or a file. */
  spec: string;
  /** Plugin options from the command line (`--source DIR`, ...). */
  pluginArgs: string[];
  mountpoint: string;
  log: (line: string) => void;
  /** File I/O on the runtime's ring, handed to plugins. */
  io: FileIO;
  /** Whether kernel passthrough is in effect (known after INIT). */
  passthrough: () => boolean;
  /** Whether a node has open handles (the session's dispatcher; false before the mount). */
  isOpen?: (ino: number) => boolean;
  /** The plugin's module, already linked into this program (`furing compile`): no files to bundle or watch. */
  module?: () => Promise<Record<string, unknown>>;
  /** Reactor Workers for a plugin with `concurrency: "shared"` (0: the main thread serves all). */
  reactors?: number;
  /** The mount's atime mode, for ctx.atime / ctx.nodiratime (default relatime). */
  atime?: AtimeMode;
  nodiratime?: boolean;
  /** Start the Workers with the first generation (its bundle file stays until they imported it). */
  startReactors?: (file: string, generation: number, shared: Map<string, SharedArrayBuffer>) => Promise<ReactorPool>;
  /** --typecheck: a generation with type errors is rejected before it is set up. */
  typecheck?: boolean;
}

/** Notifier handed to plugins before the kernel connection exists; calls wait until it does. */
class DeferredNotifier implements Notifier {
  private real: Notifier | null = null;
  private readonly ready: Promise<Notifier>;
  private resolveReady!: (n: Notifier) => void;
  constructor() {
    this.ready = new Promise((r) => (this.resolveReady = r));
  }
  bind(n: Notifier): void {
    this.real = n;
    this.resolveReady(n);
  }
  private get n(): Promise<Notifier> {
    return this.real !== null ? Promise.resolve(this.real) : this.ready;
  }
  invalInode(ino: number, offset?: number, length?: number) { return this.n.then((n) => n.invalInode(ino, offset, length)); }
  invalEntry(parent: number, name: string, expireOnly?: boolean) { return this.n.then((n) => n.invalEntry(parent, name, expireOnly)); }
  delete(parent: number, child: number, name: string) { return this.n.then((n) => n.delete(parent, child, name)); }
  store(ino: number, offset: number, data: Uint8Array) { return this.n.then((n) => n.store(ino, offset, data)); }
  retrieve(ino: number, offset: number, size: number) { return this.n.then((n) => n.retrieve(ino, offset, size)); }
}

interface Built {
  /** The generated module file (key of its source map); "" for embedded plugins. */
  file: string;
  plugin: Plugin<Record<string, unknown>>;
  name: string;
  inputs: string[];
  hash: string;
  buildMs: number;
}

/** A private directory for generation files; removes those of daemons that died (SIGKILL). */
function makeGenerationDir(): string {
  const base = tmpdir();
  try {
    for (const d of readdirSync(base)) {
      const m = /^furing-gen-(\d+)-/.exec(d);
      if (m === null) continue;
      try {
        process.kill(Number(m[1]), 0);
      } catch {
        rmSync(join(base, d), { recursive: true, force: true });
      }
    }
  } catch {
    // an unreadable tmpdir only means nothing gets cleaned
  }
  return mkdtempSync(join(base, `furing-gen-${process.pid}-`));
}

export class PluginHost {
  readonly entry: string;
  readonly notify = new DeferredNotifier();
  name = "";
  generation = 0;
  /** Files of the current generation's module graph. */
  inputs: string[] = [];
  private readonly kept = new Map<string, unknown>();
  /** `ctx.shared` regions by key (the main thread's; Workers receive them). */
  readonly sharedRegions = new Map<string, SharedArrayBuffer>();
  /** Generation files' directory, made on the first bundle: an embedded plugin needs no TMPDIR. */
  private genDir = "";
  private get dir(): string {
    return (this.genDir ||= makeGenerationDir());
  }
  private hash = "";
  private watchers: FSWatcher[] = [];
  private dispatcher: Dispatcher | null = null;
  private afterSwap: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private building = false;
  private again = false;
  /** Reloads attempted / rejected (status). */
  reloads = 0;
  rejected = 0;
  lastError: string | null = null;
  /** When the serving generation was loaded, and when the last reload was rejected (ms since the epoch). */
  loadedAt = 0;
  lastErrorAt = 0;

  /** Serving a plugin embedded in the binary (no files to bundle or watch). */
  readonly embedded: boolean;
  private readonly checker: TypeChecker | null;

  constructor(private readonly o: HostOptions) {
    this.embedded = o.module !== undefined || (isStandalone() && isBuiltinName(o.spec));
    this.entry = this.embedded ? `embedded:${o.spec}` : resolvePluginEntry(o.spec);
    if (o.typecheck === true && this.embedded) throw new PluginError(`--typecheck needs the plugin's source files, and ${o.spec} is built into this program`);
    // typescript is a development dependency: the single-file binary does not carry it
    if (o.typecheck === true && isStandalone()) throw new PluginError("--typecheck is not available in the furing binary (it does not include the TypeScript compiler); run from source (bun furing mount --typecheck ...) to type-check on reload");
    this.checker = o.typecheck === true ? new TypeChecker() : null;
    process.on("exit", () => this.genDir && rmSync(this.genDir, { recursive: true, force: true }));
  }

  /** Build attempts, so every attempt imports a fresh module path (a rejected one stays cached). */
  private attempts = 0;
  /** Generated file of the generation serving now (its source map is dropped when it retires). */
  private currentFile = "";

  private async build(n: number): Promise<Built> {
    const t0 = performance.now();
    if (this.embedded) {
      const plugin = pluginFromModule(await (this.o.module ?? EMBEDDED_PLUGINS[this.o.spec]!)(), this.entry);
      return { plugin, name: plugin.name ?? this.o.spec, inputs: [], hash: this.entry, buildMs: performance.now() - t0, file: "" };
    }
    const b = await bundlePlugin(this.entry);
    const hash = createHash("sha256").update(b.code).digest("hex");
    const file = join(this.dir, `gen-${n}-${++this.attempts}.mjs`);
    writeFileSync(file, b.code);
    registerSourceMap(file, b.code);
    let mod: Record<string, unknown>;
    try {
      mod = await importBundle(file);
    } catch (e) {
      rmSync(file, { force: true });
      const where = mapStack(errorLocation(e));
      unregisterSourceMap(file);
      throw new PluginError(`${where ? where + ": " : ""}loading ${this.entry} failed: ${(e as Error)?.message ?? String(e)}`);
    }
    let plugin: Plugin<Record<string, unknown>>;
    try {
      plugin = pluginFromModule(mod, this.entry);
    } catch (e) {
      rmSync(file, { force: true });
      unregisterSourceMap(file);
      throw e;
    } finally {
      // reactor Workers import the same file: it goes once they have (releaseFile)
      if (!this.sharedPlugin(plugin!)) rmSync(file, { force: true });
    }
    const name = plugin.name ?? (basename(this.entry).startsWith("index.") ? basename(dirname(this.entry)) : basename(this.entry).replace(/\.[^.]+$/, ""));
    return { plugin, name, inputs: b.inputs, hash, buildMs: performance.now() - t0, file };
  }

  /** Reactor Workers serving this mount (a plugin with `concurrency: "shared"`), or null. */
  pool: ReactorPool | null = null;

  /** Whether `plugin` gets reactor Workers on this mount. */
  private sharedPlugin(plugin: Plugin<Record<string, unknown>> | undefined): boolean {
    // a plugin linked into a `furing compile` program has no Worker program beside it; the
    // furing binary's built-ins have (their Workers import the embedded module by name)
    return plugin?.concurrency === "shared" && (this.o.reactors ?? 0) > 0 && this.o.module === undefined;
  }

  private releaseFile(b: Built): void {
    if (b.file !== "") rmSync(b.file, { force: true });
  }

  /** The generation's filesystem and the releases its setup registered (ctx.onDestroy). */
  private async setUp(b: Built, n: number): Promise<{ fs: Filesystem; cleanups: Array<() => unknown> }> {
    const options = parsePluginOptions(b.name, b.plugin.options, this.o.pluginArgs);
    const { ctx, cleanups } = pluginContext({
      options,
      mountpoint: this.o.mountpoint,
      generation: n,
      notify: this.notify,
      io: this.o.io,
      passthrough: this.o.passthrough,
      isOpen: (ino: number) => this.o.isOpen?.(ino) ?? false,
      logName: b.name,
      log: this.o.log,
      kept: this.kept,
      regions: this.sharedRegions,
      reactor: { index: 0, count: this.sharedPlugin(b.plugin) ? this.o.reactors! : 0, primary: true },
      atime: this.o.atime ?? "relatime",
      nodiratime: this.o.nodiratime ?? false,
    });
    try {
      return { fs: await instantiate({ name: b.name, entry: this.entry, plugin: b.plugin }, ctx), cleanups };
    } catch (e) {
      // a setup that threw releases what it had registered
      await destroyFilesystem(null, cleanups, `the failed setup of generation ${n}`, this.o.log);
      throw e;
    }
  }

  /** The first generation's releases, until the session's dispatcher holds its Generation. */
  private firstCleanups: Array<() => unknown> = [];

  /** Build and set up the first generation (errors are PluginErrors: nothing is mounted). */
  async start(): Promise<{ name: string; fs: Filesystem; options: Record<string, unknown>; plugin: Plugin<Record<string, unknown>> }> {
    const b = await this.build(1);
    try {
      await this.typecheck(b, 1);
    } catch (e) {
      this.releaseFile(b);
      throw e;
    }
    this.name = b.name;
    if (b.plugin.concurrency === "shared" && (this.o.reactors ?? 0) > 0 && this.o.module !== undefined) {
      this.o.log(`furing: ${b.name} is linked into this program: reactor Workers need the plugin's module, so the main thread serves every queue`);
    }
    let fs: Filesystem;
    try {
      const made = await this.setUp(b, 1);
      fs = made.fs;
      this.firstCleanups = made.cleanups;
      if (this.sharedPlugin(b.plugin)) {
        try {
          this.pool = await this.o.startReactors!(b.file, 1, this.sharedRegions);
        } catch (e) {
          await destroyFilesystem(fs, this.takeFirstCleanups(), "generation 1 (its reactor Workers failed to start)", this.o.log);
          throw e;
        }
      }
    } finally {
      this.releaseFile(b);
    }
    this.currentFile = b.file;
    this.generation = 1;
    this.loadedAt = Date.now();
    this.name = b.name;
    this.inputs = b.inputs;
    this.hash = b.hash;
    return { name: b.name, fs, options: parsePluginOptions(b.name, b.plugin.options, this.o.pluginArgs), plugin: b.plugin };
  }

  private forbidden: string | null = null;

  /**
   * Reject generations with inputs under `dir` and never watch there: the daemon reading or
   * watching a file through its own mount would wait on itself.
   */
  forbidInputsUnder(dir: string): void {
    this.forbidden = dir;
  }

  private isForbidden(f: string): boolean {
    const d = this.forbidden;
    return d !== null && (f === d || f.startsWith(d + "/"));
  }

  /** Start serving reloads into `dispatcher`; `afterSwap` invalidates kernel caches. */
  attach(dispatcher: Dispatcher, afterSwap: () => void): void {
    this.dispatcher = dispatcher;
    this.afterSwap = afterSwap;
  }

  /** The releases the first generation's setup registered (ctx.onDestroy), for its Generation. */
  takeFirstCleanups(): Array<() => unknown> {
    const c = this.firstCleanups;
    this.firstCleanups = [];
    return c;
  }

  /** Watch every input file; changes reload (debounced 50 ms). */
  watch(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    const byDir = new Map<string, Set<string>>();
    for (const f of this.inputs) {
      if (f.includes("/node_modules/") || this.isForbidden(f)) continue;
      const d = dirname(f);
      if (!byDir.has(d)) byDir.set(d, new Set());
      byDir.get(d)!.add(basename(f));
    }
    for (const [d, names] of byDir) {
      try {
        this.watchers.push(watch(d, (_ev, file) => {
          if (file === null || names.has(String(file))) this.schedule(join(d, String(file ?? "")));
        }));
      } catch (e) {
        this.o.log(`furing: cannot watch ${d}: ${(e as Error).message}`);
      }
    }
  }

  private schedule(file: string): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reload(file);
    }, 50);
  }

  /** Build, set up and swap in a new generation. Returns true when it is serving. */
  async reload(trigger = "request"): Promise<boolean> {
    if (this.building) {
      this.again = true;
      return false;
    }
    this.building = true;
    this.reloads++;
    const n = this.generation + 1;
    const t0 = performance.now();
    let built: Built | null = null;
    let made: { fs: Filesystem; cleanups: Array<() => unknown> } | null = null;
    try {
      const b = (built = await this.build(n));
      const inner = b.inputs.find((f) => this.isForbidden(f));
      if (inner !== undefined) throw new PluginError(`${inner} lies inside the mountpoint ${this.forbidden}: the plugin cannot import files it serves`);
      // before the identical-bundle check: an edit of types alone bundles the same code
      await this.typecheck(b, n);
      if (b.hash === this.hash) {
        unregisterSourceMap(b.file);
        this.o.log(`furing: ${basename(trigger)} changed but the bundle is identical; generation ${this.generation} keeps serving (${(performance.now() - t0).toFixed(0)} ms)`);
        return false;
      }
      made = await this.setUp(b, n);
      const fs = made.fs;
      const serving = this.dispatcher?.fs;
      if (serving !== undefined && (fs.killPrivileges === true) !== (serving.killPrivileges === true)) {
        // negotiated at INIT (FUSE_HANDLE_KILLPRIV_V2): a generation that stops clearing setuid bits would leave them
        throw new PluginError(`killPrivileges is ${fs.killPrivileges === true} in the new code but ${serving.killPrivileges === true} for this mount (fixed at mount time); remount to change it`);
      }
      try {
        await fs.init?.();
      } catch (e) {
        const where = mapStack(errorLocation(e));
        throw new PluginError(`init of generation ${n} failed${where ? ` at ${where}` : ""}: ${(e as Error)?.message ?? String(e)}`);
      }
      const d = this.dispatcher;
      if (d === null) throw new PluginError("not mounted yet");
      if (this.sharedPlugin(b.plugin) !== (this.pool !== null)) {
        throw new PluginError(`concurrency is "${b.plugin.concurrency ?? "single"}" in the new code but the mount was started ${this.pool !== null ? "with" : "without"} reactor Workers; remount to change it`);
      }
      if (this.pool !== null) {
        // on every Worker, or on none: a failure anywhere destroys the prepared instances
        // (a failure destroys this generation's main-thread instance below, as for a failed init)
        await this.pool.prepare(n, b.file, this.sharedRegions);
        this.pool.commit(n);
      }
      const oldFile = this.currentFile;
      this.currentFile = b.file;
      const next = new Generation(n, fs);
      next.cleanups.push(...made.cleanups);
      made = null; // the generation owns them now
      d.swap(next, (old) => {
        unregisterSourceMap(oldFile);
        void old.destroy(this.o.log);
      });
      this.generation = n;
      this.loadedAt = Date.now();
      this.name = b.name;
      this.hash = b.hash;
      this.lastError = null;
      const changedInputs = b.inputs.join("\0") !== this.inputs.join("\0");
      this.inputs = b.inputs;
      if (changedInputs) this.watch();
      this.afterSwap?.();
      this.o.log(`furing: generation ${n} serving (${basename(trigger)} changed; reload took ${(performance.now() - t0).toFixed(0)} ms)`);
      return true;
    } catch (e) {
      if (built !== null) unregisterSourceMap(built.file);
      // set up but never served (init failed, ...): destroyed all the same
      if (made !== null) void destroyFilesystem(made.fs, made.cleanups, `rejected generation ${n}`, this.o.log);
      this.rejected++;
      const msg = e instanceof PluginError || e instanceof ReactorError || e instanceof FuseError ? mapStack(e.message) : mapStack(`${(e as Error)?.stack ?? String(e)}`);
      this.lastError = msg;
      this.lastErrorAt = Date.now();
      this.o.log(`furing: reload rejected, generation ${this.generation} keeps serving: ${msg}`);
      return false;
    } finally {
      if (built !== null) this.releaseFile(built);
      this.building = false;
      if (this.again) {
        this.again = false;
        this.schedule(trigger);
      }
    }
  }

  /** --typecheck of generation `n`'s own files; type errors throw (the generation is rejected). */
  private async typecheck(b: Built, n: number): Promise<void> {
    if (this.checker === null) return;
    const ms = await this.checker.check(b.inputs, `generation ${n}`);
    this.o.log(`furing: generation ${n} type-checks clean (${ms.toFixed(0)} ms)`);
  }

  close(): void {
    this.checker?.close();
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.genDir) rmSync(this.genDir, { recursive: true, force: true });
  }
}
