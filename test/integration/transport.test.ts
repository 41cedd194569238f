/**
 * Which transport carries the requests, proven by the daemon's own counters
 * (`furing status --json`): requests.io_uring counts requests that arrived through the ring,
 * requests.classic those read from /dev/fuse.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, possibleCpus, transports, withMount } from "../helpers/mount.ts";
import { skipIf } from "../helpers/skip.ts";

afterAll(cleanupAll);

const WORK = 200;

/** Creates WORK files and stats each one twice: at least 2 * WORK requests reach the daemon. */
async function work(dir: string, tag: string): Promise<void> {
  for (let i = 0; i < WORK; i++) await writeFile(join(dir, `${tag}${i}`), "x");
  for (let i = 0; i < WORK; i++) await stat(join(dir, `${tag}-missing${i}`)).catch(() => {});
}

const all = transports();

describe.skipIf(skipIf(!all.includes("io_uring"), "the io_uring transport tests", "io_uring is off and only root can turn it on"))("io_uring transport", () => {
  test("the ring carries the requests: requests.io_uring grows with the work, /dev/fuse reads do not", async () => {
    await withMount({ transport: "io_uring" }, async (m) => {
      const s0 = await m.status();
      expect(s0.transport).toBe("io_uring");
      expect(s0.plugin).toBe("memfs");
      await work(m.dir, "a");
      const s1 = await m.status();
      const viaRing = s1.requests.io_uring - s0.requests.io_uring;
      const viaDev = s1.requests.classic - s0.requests.classic;
      expect(viaRing).toBeGreaterThanOrEqual(2 * WORK);
      expect(viaDev).toBeLessThan(viaRing / 10);
      // Per-op counters see the same work.
      expect(s1.ops.lookup!.count - (s0.ops.lookup?.count ?? 0)).toBeGreaterThanOrEqual(WORK);
    });
  });

  test("one queue per possible CPU, with the default depth of at least 8", async () => {
    await withMount({ transport: "io_uring" }, async (m) => {
      const s = await m.status();
      expect(s.queues).toBe(await possibleCpus());
      expect(s.depth).toBeGreaterThanOrEqual(8);
    });
  });

  test("-o io_uring_q_depth=N sets the depth of each queue", async () => {
    await withMount({ transport: "io_uring", options: ["io_uring_q_depth=16"] }, async (m) => {
      const s = await m.status();
      expect(s.transport).toBe("io_uring");
      expect(s.depth).toBe(16);
      await work(m.dir, "q");
      expect((await m.status()).requests.io_uring).toBeGreaterThan(2 * WORK);
    });
  });
});

describe.skipIf(skipIf(!all.includes("classic"), "the classic transport tests", "transports() left classic out"))("classic transport", () => {
  test("-o io_uring=off serves every request through /dev/fuse reads", async () => {
    await withMount({ transport: "classic" }, async (m) => {
      const s0 = await m.status();
      expect(s0.transport).toBe("classic");
      await work(m.dir, "c");
      const s1 = await m.status();
      expect(s1.requests.classic - s0.requests.classic).toBeGreaterThanOrEqual(2 * WORK);
      expect(s1.requests.io_uring).toBe(0);
      expect(s1.ops.lookup!.count - (s0.ops.lookup?.count ?? 0)).toBeGreaterThanOrEqual(WORK);
    });
  });
});

for (const transport of all) {
  describe(`debug trace over ${transport}`, () => {
    test("-d traces each request with its op and the name it looks up", async () => {
      await withMount({ transport, args: ["-d"] }, async (m) => {
        const name = "furing-trace-probe";
        await stat(join(m.dir, name)).catch(() => {});
        const traced = () => m.log().split("\n").some((l) => /lookup/i.test(l) && l.includes(name));
        for (let i = 0; i < 50 && !traced(); i++) await Bun.sleep(100);
        expect(traced()).toBe(true);
      });
    });
  });
}
