/**
 * memfs against tmpfs for behaviours a general filesystem test suite checks (issue #20), over each
 * transport: the same syscalls, made by a small C client (test/fixtures/conformance.c) in a child
 * process, on a memfs mount and on a tmpfs mounted alongside; their printed results must match.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, isMounted, makeTempDir, removeTempDir, REPO, transports, withMount, type Mount, type Transport } from "../helpers/mount.ts";
import { describeResult, run, sh } from "../helpers/run.ts";
import { needsRoot, skipIf } from "../helpers/skip.ts";

afterAll(cleanupAll);

let bin = "";
let scratch = "";
beforeAll(async () => {
  if (Bun.which("gcc") === null) return;
  scratch = await makeTempDir("conformance-bin");
  bin = join(scratch, "conformance");
  await sh(["gcc", "-O1", "-Wall", "-o", bin, join(REPO, "test/fixtures/conformance.c")]);
});
afterAll(async () => {
  if (scratch) await removeTempDir(scratch);
});

/** A memfs mount and a fresh tmpfs mounted with the same `options`; both torn down after `fn`. */
async function withPair(transport: Transport, options: string[], fn: (m: Mount, ref: string) => Promise<void>): Promise<void> {
  const ref = await makeTempDir("tmpfs");
  const opts = ["mode=755", ...options].join(",");
  const r = await run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", ref], { timeoutMs: 20_000 });
  if (r.code !== 0) {
    await removeTempDir(ref);
    throw new Error(`cannot mount the reference tmpfs: ${describeResult(r)}`);
  }
  try {
    await withMount({ transport, options }, (m) => fn(m, ref));
  } finally {
    if (await isMounted(ref)) {
      const u = await run(["umount", ref], { timeoutMs: 20_000 });
      if (u.code !== 0) await run(["umount", "-l", ref], { timeoutMs: 20_000 });
    }
    await removeTempDir(ref);
  }
}

/** The client's output for `args` (each `@` replaced by `root`). */
async function client(root: string, ...args: string[]): Promise<string> {
  return sh([bin, ...args.map((a) => a.replaceAll("@", root))], { timeoutMs: 60_000 });
}

/** The same directory on both: f0..f399 created in order, then every 7th from f5 removed. */
async function bigDir(root: string): Promise<void> {
  await mkdir(join(root, "big"));
  for (let i = 0; i < 400; i++) await writeFile(join(root, "big", `f${i}`), "");
  for (let i = 5; i < 400; i += 7) await Bun.$`rm ${join(root, "big", `f${i}`)}`.quiet();
}

const skip = needsRoot("memfs vs tmpfs conformance", "mounts a tmpfs reference") || skipIf(Bun.which("gcc") === null, "memfs vs tmpfs conformance", "needs gcc for its C client");

for (const transport of transports()) {
  describe.skipIf(skip)(`memfs vs tmpfs conformance over ${transport}`, () => {
    test("directory offsets: telldir/seekdir to every position up to the largest cookie, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        await bigDir(m.dir);
        await bigDir(ref);
        const a = await client(m.dir, "dirseek", "@/big");
        const b = await client(ref, "dirseek", "@/big");
        // 2 + 343 entries, then every seek position 0..max+2 and the five far ones.
        expect(a.split("\n").length).toBeGreaterThan(2 * 345);
        expect(a).toBe(b);
        // The last entry's offset is above every other (tmpfs's end of directory).
        expect(a.split("\n")[344]).toBe("f0 2147483647");
      });
    });

    test("directory offsets: entries removed and added during a listing, as tmpfs", async () => {
      await withPair(transport, [], async (m, ref) => {
        for (const root of [m.dir, ref]) {
          await mkdir(join(root, "mut"));
          for (let i = 0; i < 400; i++) await writeFile(join(root, "mut", `f${i}`), "");
        }
        for (const first of ["100", "250"]) {
          const a = await client(m.dir, "dirmut", "@/mut", first);
          const b = await client(ref, "dirmut", "@/mut", first);
          expect(a).toBe(b);
          for (const root of [m.dir, ref]) {
            await Bun.$`rm -rf ${join(root, "mut")}`.quiet();
            await mkdir(join(root, "mut"));
            for (let i = 0; i < 400; i++) await writeFile(join(root, "mut", `f${i}`), "");
          }
        }
      });
    });
  });
}
