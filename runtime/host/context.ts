/**
 * The `ctx` a plugin's `setup` receives, built the same way on the main thread (host.ts) and on a
 * reactor Worker (host/reactor-worker.ts); only where its parts come from differs.
 */
import type { AtimeMode, FileIO, Notifier, PluginContext } from "../api/types.ts";

export interface ContextParts {
  options: Record<string, unknown>;
  mountpoint: string;
  generation: number;
  notify: Notifier;
  io: FileIO;
  passthrough: () => boolean;
  isOpen: (ino: number) => boolean;
  /** Prefix of every line the plugin logs ("memfs", "memfs worker 1"). */
  logName: string;
  log: (line: string) => void;
  /** This instance's `ctx.keep` store (per thread; it survives reloads). */
  kept: Map<string, unknown>;
  /** `ctx.shared` regions; only the main thread's setup may create keys. */
  regions: Map<string, SharedArrayBuffer>;
  reactor: PluginContext["reactor"];
  atime: AtimeMode;
  nodiratime: boolean;
}

/** The context, and the releases its setup registers with `ctx.onDestroy` (run by the generation's destroy, or after a failed setup). */
export function pluginContext(p: ContextParts): { ctx: PluginContext<Record<string, unknown>>; cleanups: Array<() => unknown> } {
  const cleanups: Array<() => unknown> = [];
  const ctx: PluginContext<Record<string, unknown>> = {
    options: p.options,
    mountpoint: p.mountpoint,
    generation: p.generation,
    notify: p.notify,
    io: p.io,
    passthrough: p.passthrough,
    isOpen: p.isOpen,
    log: (...args: unknown[]) => p.log(`[${p.logName}] ${args.map((a) => (typeof a === "string" ? a : Bun.inspect(a))).join(" ")}`),
    keep: <T>(key: string, init: () => T): T => {
      if (p.kept.has(key)) return p.kept.get(key) as T;
      const v = init();
      p.kept.set(key, v);
      return v;
    },
    shared: (key: string, byteLength: number, maxByteLength?: number) => sharedRegion(p.regions, key, byteLength, maxByteLength, p.reactor.primary),
    reactor: p.reactor,
    atime: p.atime,
    nodiratime: p.nodiratime,
    onDestroy: (fn) => {
      if (typeof fn !== "function") throw new TypeError("ctx.onDestroy needs a function");
      cleanups.push(fn);
    },
  };
  return { ctx, cleanups };
}

/** Largest growable region JSC reserves address space for here. */
const MAX_SHARED = 4 * 2 ** 30;

/**
 * `ctx.shared`: the region under `key`, created (zero-filled) when `mayCreate` and absent. A
 * larger `byteLength` grows a growable region; anything else that does not fit is an error.
 */
export function sharedRegion(regions: Map<string, SharedArrayBuffer>, key: string, byteLength: number, maxByteLength: number | undefined, mayCreate: boolean): SharedArrayBuffer {
  if (typeof key !== "string" || key === "") throw new TypeError("ctx.shared: key must be a non-empty string");
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) throw new RangeError(`ctx.shared("${key}"): byteLength must be a non-negative integer, got ${byteLength}`);
  if (maxByteLength !== undefined && (!Number.isSafeInteger(maxByteLength) || maxByteLength < byteLength || maxByteLength > MAX_SHARED)) {
    throw new RangeError(`ctx.shared("${key}"): maxByteLength must be an integer from byteLength (${byteLength}) to 4 GiB, got ${maxByteLength}`);
  }
  let r = regions.get(key);
  if (r === undefined) {
    if (!mayCreate) throw new Error(`ctx.shared("${key}"): a Worker cannot create a region; create it in setup on the main thread (ctx.reactor.primary), which runs first`);
    r = maxByteLength === undefined ? new SharedArrayBuffer(byteLength) : new SharedArrayBuffer(byteLength, { maxByteLength });
    regions.set(key, r);
    return r;
  }
  if (byteLength > r.byteLength) {
    if (!r.growable || byteLength > r.maxByteLength) throw new RangeError(`ctx.shared("${key}"): the region holds ${r.byteLength} bytes${r.growable ? ` (at most ${r.maxByteLength})` : " and is not growable"}; ${byteLength} asked`);
    r.grow(byteLength);
  }
  return r;
}
