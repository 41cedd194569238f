// The hello example's own test, written the way a plugin author tests a plugin: `furing/testing`
// mounts it in a child daemon over each transport, hands the test the mountpoint, and always
// unmounts. Run: bun test examples/hello   (as root, or with io_uring enabled, see the guide)
import { afterAll, expect, test } from "bun:test";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, transports, withMount } from "furing/testing";

afterAll(cleanupAll);
const plugin = join(import.meta.dir, "index.ts");

for (const transport of transports()) {
  test(`hello.txt reads back, read-only, over ${transport}`, () =>
    withMount({ plugin, transport }, async ({ dir }) => {
      expect(await readdir(dir)).toEqual(["hello.txt"]);
      expect(await readFile(join(dir, "hello.txt"), "utf8")).toBe("Hello from furing!\n");
      expect((await stat(join(dir, "hello.txt"))).mode & 0o777).toBe(0o444);
      // a tree without mutating ops is read-only: defineTree answers every change EROFS
      expect(await open(join(dir, "new.txt"), "w").catch((e) => e.code)).toBe("EROFS");
    }));
}
