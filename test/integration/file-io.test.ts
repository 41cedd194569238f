/**
 * ctx.io through a real mount, over each transport: test/fixtures/staged-io.ts keeps file data in
 * backing files and moves it with ctx.io through buffers of its own, so parallel writers put more
 * staged bytes in flight than ctx.io's 4 MiB bounce arena holds, and mixed request sizes used to
 * make it map a new arena (never unmapped) every few writes.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cleanupAll, transports, withMount, withTempDir } from "../helpers/mount.ts";
import { run, describeResult } from "../helpers/run.ts";

afterAll(cleanupAll);

const FIXTURE = resolve(import.meta.dir, "../fixtures/staged-io.ts");
const MiB = 1 << 20;

/** Bytes whose every 4-byte word names the file and its position. */
function pattern(file: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  for (let o = 0; o + 4 <= size; o += 4) dv.setUint32(o, (file * 0x9e3779b1 + o) >>> 0, true);
  return b;
}

async function ok(cmd: string[], timeoutMs = 60_000): Promise<void> {
  const r = await run(cmd, { timeoutMs });
  if (r.code !== 0) throw new Error(describeResult(r));
}

for (const transport of transports()) {
  describe(`ctx.io through a mount over ${transport}`, () => {
    test("12 parallel writers of 8 MiB (1 MiB and 600 KiB writes) and direct 700-byte reads: every byte intact, daemon RSS bounded", async () => {
      await withTempDir(async (src) => {
        await withMount({ transport, plugin: FIXTURE }, async (m) => {
          const N = 12, SIZE = 8 * MiB;
          for (let i = 0; i < N; i++) await writeFile(join(src, `s${i}`), pattern(i, SIZE));
          const rssBefore = Number((await readFile(join(m.dir, "rss"), "utf8")).trim()) / 1024;
          // 1 MiB and 600 KiB writes from 12 processes at once, each to its own file
          await Promise.all(
            Array.from({ length: N }, (_, i) => ok(["dd", `if=${join(src, `s${i}`)}`, `of=${join(m.dir, `f${i}`)}`, i % 2 ? "bs=1M" : "bs=600K", "status=none"])),
          );
          // read back through the page cache (large reads) and with O_DIRECT in 700-byte pieces (staged reads)
          let mismatches = 0;
          await Promise.all(
            Array.from({ length: N }, async (_, i) => {
              const r = await run(["cmp", join(src, `s${i}`), join(m.dir, `f${i}`)], { timeoutMs: 60_000 });
              if (r.code !== 0) mismatches++;
            }),
          );
          const out = join(src, "direct");
          await ok(["dd", `if=${join(m.dir, "f3")}`, `of=${out}`, "bs=700", "count=300", "skip=11", "iflag=direct", "status=none"]);
          const direct = new Uint8Array(await readFile(out));
          expect(direct.length).toBe(700 * 300);
          if (Buffer.compare(direct, pattern(3, SIZE).subarray(700 * 11, 700 * 311)) !== 0) mismatches++;
          // more mixed sizes, one file at a time: the arena must be reused, not replaced
          for (let k = 0; k < 4; k++) await ok(["dd", `if=${join(src, `s${k}`)}`, `of=${join(m.dir, "again")}`, `bs=${[600, 700, 900, 300][k]}K`, "status=none"]);
          const rssAfter = Number((await readFile(join(m.dir, "rss"), "utf8")).trim()) / 1024;
          console.log(`${transport}: ${mismatches} mismatched files; daemon RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB`);
          expect(mismatches).toBe(0);
          expect(rssAfter - rssBefore).toBeLessThan(64);
          expect(m.log()).not.toContain("EIO");
        });
      });
    }, 120_000);
  });
}
