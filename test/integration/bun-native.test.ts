/**
 * Plugins are Bun programs: a plugin that imports `bun:sqlite`, uses Bun's globals and an npm
 * package from its own node_modules (whose "bun" export condition must win) is mounted from
 * source with the README's command (`bun furing mount <plugin> <mountpoint>`, in the repository)
 * and hot-reloaded once, over both transports. (dist/furing and `furing compile` run the same
 * fixture in binary.test.ts.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, removeTempDir, transports, waitFor, withMount } from "../helpers/mount.ts";
import { bunNativePlugin } from "../helpers/bun-native.ts";

afterAll(cleanupAll);

for (const transport of transports()) {
  describe(`a Bun-native plugin over ${transport}`, () => {
    test("bun furing mount <plugin> from source: bun:sqlite, Bun globals and its own npm package, across a hot reload", async () => {
      const plugin = await bunNativePlugin();
      try {
        // `bun furing ...` is the package.json script, as the README shows
        await withMount({ plugin, transport, command: [process.execPath, "furing"] }, async (m) => {
          const info = async () => JSON.parse(await readFile(join(m.dir, "info"), "utf8"));
          expect(await info()).toEqual({ label: "first", sqlite: expect.stringMatching(/^3\.\d+/), generation: 1, bun: Bun.version, hash: Bun.hash("furing").toString(16), dep: "bun" });
          const src = join(plugin, "index.ts");
          await writeFile(src, (await readFile(src, "utf8")).replace(`const LABEL = "first"`, `const LABEL = "second"`));
          let got: Record<string, unknown> = {};
          const ok = await waitFor(async () => (got = await info()).generation === 2, 20_000, 50);
          if (!ok) throw new Error(`no second generation: ${JSON.stringify(got)}\n${m.log()}`);
          expect(got).toMatchObject({ label: "second", generation: 2, dep: "bun" });
          expect(m.log()).toMatch(/generation 2 serving \(index\.ts changed/);
        });
      } finally {
        await removeTempDir(plugin);
      }
    }, 60_000);
  });
}
