/**
 * One job on a Worker, for the tests that serve a plugin from several threads at once on the same
 * shared regions (test/unit/memfs-shared.test.ts, passthrough-shared.test.ts): the main thread's
 * side (`runOnWorker`), the Worker's side (`serveJobs`), and what the job runners share.
 */

declare const self: Worker;

/** Starts a Worker on `url`, posts it `job`, and settles with its one answer (or its error). */
export function runOnWorker<J, R>(url: URL, job: J): Promise<R> {
  return new Promise((resolve, reject) => {
    const w = new Worker(url.href);
    w.onmessage = (e) => {
      w.terminate();
      const r = e.data as R & { error?: string };
      if (r.error !== undefined) reject(new Error(r.error));
      else resolve(r);
    };
    w.onerror = (e) => {
      w.terminate();
      reject(new Error(e.message));
    };
    w.postMessage(job);
  });
}

/** On a Worker (nothing on the main thread): answers each posted job with `run(job)`, or its error. */
export function serveJobs<J>(run: (job: J) => unknown): void {
  if (Bun.isMainThread) return;
  self.onmessage = async (e: MessageEvent<J>) => {
    try {
      self.postMessage(await run(e.data));
    } catch (err) {
      self.postMessage({ error: `${(err as Error).stack ?? err}` });
    }
  };
}

/** The plugin's `ctx.shared` over the regions a job was posted: each must be there. */
export function postedRegions(regions: Record<string, SharedArrayBuffer>): (key: string) => SharedArrayBuffer {
  return (key) => {
    const r = regions[key];
    if (r === undefined) throw new Error(`no region ${key}`);
    return r;
  };
}

/** A seeded PRNG: `rnd(n)` is an integer in [0, n), the same sequence for the same seed. */
export function lcg(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
}
