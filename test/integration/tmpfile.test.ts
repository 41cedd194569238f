/**
 * open(O_TMPFILE) and linkat of the unnamed file into the tree (FUSE_TMPFILE, then LINK), on
 * memfs and passthrough (kernel passthrough on and off), over both transports. The syscalls run in
 * a child process (test/fixtures/tmpfile-client.ts): the test's own thread never blocks on a mount.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdir, readFile, readlink, statfs, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, makeTempDir, removeTempDir, transports, waitFor, REPO, type Mount } from "../helpers/mount.ts";
import { withMount } from "../helpers/mount.ts";
import { run, describeResult } from "../helpers/run.ts";

afterAll(cleanupAll);

const CLIENT = join(REPO, "test/fixtures/tmpfile-client.ts");

async function client(dir: string): Promise<Record<string, unknown>> {
  const r = await run([process.execPath, CLIENT, dir], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(describeResult(r));
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

/** What every plugin must show (see the client for the steps). */
function expectTmpfileSemantics(out: Record<string, unknown>): void {
  expect(out).toMatchObject({
    readBack: "unnamed at first",
    nlinkBefore: 0,
    isFile: true,
    mode: "640",
    namesWhileUnnamed: [],
    linkEmptyPath: "ok",
    nlinkAfter: 1,
    byName: "unnamed at first",
    sameInode: true,
    byNameAfterWrite: "changed after link",
    linkProc: "ok",
    viaProc: "through proc",
    exclReadBack: "exclusive",
    // O_TMPFILE|O_EXCL: the kernel never makes it linkable
    linkExcl: "ENOENT",
    linkExclProc: "ENOENT",
    // linked, then unlinked while open: still stats and reads (passthrough answered ESTALE once)
    linkAgain: "ok",
    afterUnlink: { size: 17, nlink: 0, read: "named for a while" },
    // the file closed without a name and the O_EXCL one left nothing
    names: ["linked", "viaproc"],
  });
}

/** Descriptors the daemon holds on unlinked files in `dir` (readlink "... (deleted)"). */
async function deletedFds(m: Mount, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir(`/proc/${m.daemon.pid}/fd`).catch(() => [])) {
    const t = await readlink(`/proc/${m.daemon.pid}/fd/${fd}`).catch(() => "");
    if (t.startsWith(dir + "/") && t.endsWith(" (deleted)")) out.push(t);
  }
  return out;
}

for (const transport of transports()) {
  describe(`O_TMPFILE over ${transport}`, () => {
    test("memfs: an unnamed file is written, read, linked by AT_EMPTY_PATH and /proc/self/fd; unlinked ones are freed", async () => {
      await withMount({ transport }, async (m) => {
        const sub = join(m.dir, "sub");
        await mkdir(sub);
        const before = await statfs(m.dir);
        const out = await client(sub);
        expectTmpfileSemantics(out);
        expect(await readFile(join(sub, "linked"), "utf8")).toBe("changed after link");
        // the 1 MiB written to the file closed without a name is given back (freed on release)
        expect(await waitFor(async () => {
          const now = await statfs(m.dir);
          return before.bfree - now.bfree <= 2;
        }, 5000)).toBe(true);
        const s = await m.status();
        expect(s.ops.tmpfile?.count).toBe(5);
        expect(s.ops.tmpfile?.errors).toBe(0);
      });
    }, 30_000);

    for (const kernelPassthrough of [true, false]) {
      const label = kernelPassthrough ? "kernel passthrough" : "no_passthrough";
      test(`passthrough (${label}): the unnamed file lives in the source directory, linked there by name`, async () => {
        const src = await makeTempDir("src");
        try {
          await mkdir(join(src, "sub"));
          await withMount({ plugin: "passthrough", transport, options: kernelPassthrough ? [] : ["no_passthrough"], args: ["--source", src] }, async (m) => {
            const out = await client(join(m.dir, "sub"));
            expectTmpfileSemantics(out);
            // the links are real names in the source, with the data
            expect((await readdir(join(src, "sub"))).sort()).toEqual(["linked", "viaproc"]);
            expect(await readFile(join(src, "sub/linked"), "utf8")).toBe("changed after link");
            expect(await readFile(join(src, "sub/viaproc"), "utf8")).toBe("through proc");
            // no descriptor of an unnamed file stays behind in the daemon once all are closed
            expect(await waitFor(async () => (await deletedFds(m, src)).length === 0, 5000)).toBe(true);
            if (kernelPassthrough) expect(m.log()).not.toContain("kernel passthrough unavailable");
          });
        } finally {
          await removeTempDir(src);
        }
      }, 30_000);
    }
  });
}
