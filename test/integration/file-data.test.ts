/**
 * File contents through a real memfs mount: what is written is what is read back, at every size
 * and offset, over each transport.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { open, readFile, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes, sha256, sha256File } from "../helpers/data.ts";
import { cleanupAll, transports, withMount, withTempDir } from "../helpers/mount.ts";
import { sh } from "../helpers/run.ts";

afterAll(cleanupAll);

const MiB = 1 << 20;

for (const transport of transports()) {
  describe(`memfs file data over ${transport}`, () => {
    test("files from 0 B to 8 MiB read back byte for byte", async () => {
      await withMount({ transport }, async (m) => {
        const sizes = [0, 1, 511, 4095, 4096, 4097, 65_537, 131_072 + 3, MiB + 1, 8 * MiB - 7];
        for (const [i, size] of sizes.entries()) {
          const data = randomBytes(size, 100 + i);
          const path = join(m.dir, `f${size}`);
          await writeFile(path, data);
          expect((await stat(path)).size).toBe(size);
          const back = new Uint8Array(await readFile(path));
          expect(back.length).toBe(size);
          expect(sha256(back)).toBe(sha256(data));
        }
      });
    });

    test("a 64 MiB file written in odd-sized chunks reads back with the same hash, also by cmp", async () => {
      await withTempDir(async (scratch) => {
        await withMount({ transport }, async (m) => {
          const size = 64 * MiB;
          const data = randomBytes(size, 64);
          const path = join(m.dir, "big");
          const fh = await open(path, "w");
          try {
            // Chunks that straddle page and 128 KiB boundaries: 1 MiB + 4093 bytes each.
            for (let off = 0; off < size; ) {
              const n = Math.min(MiB + 4093, size - off);
              const { bytesWritten } = await fh.write(data, off, n, off);
              expect(bytesWritten).toBe(n);
              off += n;
            }
          } finally {
            await fh.close();
          }
          expect((await stat(path)).size).toBe(size);
          const back = await sha256File(path, 3 * 65_536 + 17);
          expect(back.size).toBe(size);
          expect(back.hash).toBe(sha256(data));
          const ref = join(scratch, "big");
          await writeFile(ref, data);
          await sh(["cmp", ref, path], { timeoutMs: 60_000 });
        });
      });
    }, 110_000);

    test("writes and reads at unaligned offsets match a model, including holes past EOF", async () => {
      await withMount({ transport }, async (m) => {
        const path = join(m.dir, "patchwork");
        let model = new Uint8Array(0);
        const rnd = randomBytes(4096, 7);
        let r = 0;
        const next = (n: number) => {
          const v = (rnd[r % rnd.length]! | (rnd[(r + 1) % rnd.length]! << 8) | (rnd[(r + 2) % rnd.length]! << 16)) % n;
          r += 3;
          return v;
        };
        const fh = await open(path, "w+");
        try {
          for (let i = 0; i < 200; i++) {
            // Offsets up to 3 MiB (often beyond the current end: a hole), lengths up to 300 KiB.
            const off = next(3 * MiB);
            const len = 1 + next(300 * 1024);
            const chunk = randomBytes(len, 1000 + i);
            const { bytesWritten } = await fh.write(chunk, 0, len, off);
            expect(bytesWritten).toBe(len);
            if (off + len > model.length) {
              const grown = new Uint8Array(off + len);
              grown.set(model);
              model = grown;
            }
            model.set(chunk, off);
            if (i % 20 === 19) {
              // Read back a random unaligned window through the same open file.
              const roff = next(model.length);
              const rlen = Math.min(1 + next(500 * 1024), model.length - roff);
              const buf = new Uint8Array(rlen);
              const { bytesRead } = await fh.read(buf, 0, rlen, roff);
              expect(bytesRead).toBe(rlen);
              expect(sha256(buf)).toBe(sha256(model.subarray(roff, roff + rlen)));
            }
          }
        } finally {
          await fh.close();
        }
        expect((await stat(path)).size).toBe(model.length);
        expect(sha256(new Uint8Array(await readFile(path)))).toBe(sha256(model));
        // A read that starts before EOF and asks for more returns only up to EOF.
        const fh2 = await open(path, "r");
        try {
          const buf = new Uint8Array(10_000);
          const { bytesRead } = await fh2.read(buf, 0, 10_000, model.length - 1234);
          expect(bytesRead).toBe(1234);
          expect(sha256(buf.subarray(0, 1234))).toBe(sha256(model.subarray(model.length - 1234)));
          expect((await fh2.read(buf, 0, 100, model.length + 5)).bytesRead).toBe(0);
        } finally {
          await fh2.close();
        }
      });
    });

    test("truncate shrinks a file and grows it with zeros", async () => {
      await withMount({ transport }, async (m) => {
        const path = join(m.dir, "t");
        const data = randomBytes(300_001, 3);
        await writeFile(path, data);
        await truncate(path, 70_003);
        expect((await stat(path)).size).toBe(70_003);
        await truncate(path, 200_000);
        const back = new Uint8Array(await readFile(path));
        expect(back.length).toBe(200_000);
        expect(sha256(back.subarray(0, 70_003))).toBe(sha256(data.subarray(0, 70_003)));
        expect(back.subarray(70_003).every((b) => b === 0)).toBe(true);
        // O_TRUNC on open empties it.
        await writeFile(path, "x");
        expect(await readFile(path, "utf8")).toBe("x");
      });
    });

    test("appends land at the end of the file", async () => {
      await withMount({ transport }, async (m) => {
        const path = join(m.dir, "log");
        const parts = [randomBytes(1000, 1), randomBytes(70_000, 2), randomBytes(3, 3)];
        for (const p of parts) {
          const fh = await open(path, "a");
          try {
            await fh.write(p);
          } finally {
            await fh.close();
          }
        }
        const want = new Uint8Array(71_003);
        want.set(parts[0]!, 0);
        want.set(parts[1]!, 1000);
        want.set(parts[2]!, 71_000);
        expect(sha256(new Uint8Array(await readFile(path)))).toBe(sha256(want));
      });
    });

    test("an unlinked file stays readable and writable through a descriptor opened before", async () => {
      await withMount({ transport }, async (m) => {
        const path = join(m.dir, "ghost");
        const data = randomBytes(100_000, 9);
        await writeFile(path, data);
        const fh = await open(path, "r+");
        try {
          await unlink(path);
          await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });
          const buf = new Uint8Array(100_000);
          expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(100_000);
          expect(sha256(buf)).toBe(sha256(data));
          await fh.write(new Uint8Array([1, 2, 3]), 0, 3, 50_000);
          const small = new Uint8Array(3);
          await fh.read(small, 0, 3, 50_000);
          expect([...small]).toEqual([1, 2, 3]);
          expect((await fh.stat()).nlink).toBe(0);
        } finally {
          await fh.close();
        }
      });
    });
  });
}
