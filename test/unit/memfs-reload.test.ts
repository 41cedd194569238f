/**
 * memfs across a hot reload, without a mount: two generations bundled as the plugin host bundles
 * them (each with its own copy of every module), set up on one `ctx.keep` store, as after a swap.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sys from "furing/sys";
import { O_RDWR, type Filesystem, type Plugin, type PluginContext, type Request, type Entry } from "furing";
import { bundlePlugin } from "../../runtime/host/bundle.ts";
import { REPO } from "../helpers/mount.ts";
import { sharedRegion } from "../../runtime/host/host.ts";

const dir = mkdtempSync(join(tmpdir(), "furing-test-memfs-reload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function generation(n: number): Promise<Plugin> {
  const b = await bundlePlugin(join(REPO, "plugins/memfs/index.ts"));
  const file = join(dir, `gen${n}.mjs`);
  writeFileSync(file, b.code);
  return (await import(file)).default as Plugin;
}

const kept = new Map<string, unknown>();
// memfs keeps its tree (and the clock floor) in ctx.shared regions, which outlive a generation
const shared = new Map<string, SharedArrayBuffer>();
function ctx(generation: number): PluginContext {
  return {
    options: { size: "0", inodes: "0" },
    mountpoint: "/nonexistent",
    log() {},
    keep<T>(key: string, init: () => T): T {
      if (!kept.has(key)) kept.set(key, init());
      return kept.get(key) as T;
    },
    shared: (key: string, n: number, max?: number) => sharedRegion(shared, key, n, max, true),
    onDestroy() {},
    generation,
  } as unknown as PluginContext;
}

const req = { op: "test", uid: 0, gid: 0, pid: 0 } as Request;
const ctimeNs = (e: Entry) => BigInt(e.ctimeSec) * 1_000_000_000n + BigInt(e.ctimeNsec);
const coarse = { sec: 0, nsec: 0 };
function coarseNow(): number {
  sys.clockGettime(sys.CLOCK_REALTIME_COARSE, coarse);
  return coarse.sec * 1e9 + coarse.nsec;
}

test("a change after a hot reload is never stamped earlier than a change before it (the clock floor is kept)", async () => {
  const g1 = (await (await generation(1)).setup(ctx(1))) as Filesystem;
  const g2 = (await (await generation(2)).setup(ctx(2))) as Filesystem;
  let checked = 0;
  for (let i = 0; i < 100 && checked < 5; i++) {
    // `b` last changed in an earlier tick of the coarse clock
    const b = g1.create!(req, 1, `b${i}`, 0o644, O_RDWR, 0) as { entry: Entry };
    await Bun.sleep(15);
    const tick = coarseNow();
    const a = g1.create!(req, 1, `a${i}`, 0o644, O_RDWR, 0) as { entry: Entry };
    const created = ctimeNs(a.entry); // (memfs returns its node objects: read the stamps now)
    // a second change of `a` within the tick takes the fine clock, raising the floor ...
    const a2 = ctimeNs(g1.setattr!(req, a.entry.ino, { mode: 0o600 }) as Entry);
    // ... and the new generation's next change, of `b`, must not be stamped below it
    const b2 = ctimeNs(g2.setattr!(req, b.entry.ino, { mode: 0o600 }) as Entry);
    if (coarseNow() !== tick || a2 <= created) continue; // the tick moved on meanwhile: no evidence
    checked++;
    expect(b2).toBeGreaterThanOrEqual(a2);
  }
  expect(checked).toBeGreaterThan(0);
});
