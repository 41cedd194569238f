/**
 * Fault containment: a plugin op that throws, rejects, returns the wrong type or more than it was
 * asked for gets EIO for that request only; the daemon logs the op, the node and the cause (the
 * stack, mapped to the plugin's own file:line, when the plugin threw); the mount keeps serving.
 *
 * The plugin is test/fixtures/faults.ts (one file per fault). Lines marked `@site:<name>` there are
 * where the logged stacks must point; their numbers are read from the file, not hard-coded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { open, readFile, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cleanupAll, mountFs, transports, unmountFs, waitFor, type Mount } from "../helpers/mount.ts";
import { expectErrno } from "../helpers/data.ts";

afterAll(cleanupAll);

const FIXTURE = resolve(import.meta.dir, "../fixtures/faults.ts");
const SOURCE = readFileSync(FIXTURE, "utf8").split("\n");

/** "faults.ts:<line>:" of the line marked `@site:<name>` in the fixture. */
function site(name: string): string {
  const i = SOURCE.findIndex((l) => l.includes(`@site:${name}`));
  if (i < 0) throw new Error(`no @site:${name} in ${FIXTURE}`);
  return `${FIXTURE}:${i + 1}:`;
}

/** The daemon's log entry that starts with `head` (up to its "— answered ..." end), or "". */
function entry(log: string, head: string): string {
  const i = log.lastIndexOf(head);
  if (i < 0) return "";
  const end = log.indexOf("— answered", i);
  return end < 0 ? log.slice(i) : log.slice(i, log.indexOf("\n", end) < 0 ? undefined : log.indexOf("\n", end));
}

/** Waits (bounded) for the log entry starting with `head` and returns it. */
async function logged(m: Mount, head: string): Promise<string> {
  await waitFor(() => entry(m.log(), head).includes("— answered"), 5000);
  const e = entry(m.log(), head);
  expect(e, `the daemon should log "${head} ..."; its log:\n${m.log()}`).toContain("— answered EIO");
  return e;
}

/** One read(2) of `size` bytes at offset 0 (the fixture's files are direct_io: it reaches the op). */
async function readOnce(path: string, size = 4096): Promise<string> {
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    return new TextDecoder().decode(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** The mount still serves: the control file reads, the root lists, the daemon is alive. */
async function stillServing(m: Mount): Promise<void> {
  expect(m.daemon.alive()).toBe(true);
  expect(await readOnce(join(m.dir, "ok"))).toBe("ok\n");
  expect((await readdir(m.dir)).sort()).toContain("ok");
}

for (const transport of transports()) {
  describe(`fault containment over ${transport}`, () => {
    let m: Mount;
    beforeAll(async () => {
      m = await mountFs({ plugin: FIXTURE, transport });
    });
    afterAll(async () => {
      if (m) await unmountFs(m);
    });

    test("an op that throws: EIO, logged with op, node and a stack at the plugin's own line", async () => {
      await expectErrno(readOnce(join(m.dir, "throw")), "EIO");
      const e = await logged(m, "furing: read (node 3) threw: Error: faults: read threw on purpose");
      expect(e).toContain(site("throw"));
      expect(e, "the stack must name the plugin's source, not the generated bundle").not.toMatch(/gen-\d+\.mjs/);
      await stillServing(m);
    });

    test("an op whose promise rejects: EIO, logged with op, node and a stack at the plugin's own line", async () => {
      await expectErrno(readOnce(join(m.dir, "reject")), "EIO");
      const e = await logged(m, "furing: read (node 4) threw: Error: faults: read rejected on purpose");
      expect(e).toContain(site("reject"));
      expect(e).not.toMatch(/gen-\d+\.mjs/);
      await stillServing(m);
    });

    test("an op that throws something that is not an Error: EIO, logged with op, node and the value", async () => {
      await expectErrno(readOnce(join(m.dir, "throwstr")), "EIO");
      await logged(m, "furing: read (node 5) threw: faults: a string, not an Error");
      await stillServing(m);
    });

    test("read returning the wrong type: EIO, logged with op, node and what was wrong", async () => {
      await expectErrno(readOnce(join(m.dir, "wrongtype")), "EIO");
      const e = await logged(m, "furing: read (node 6) returned an invalid reply");
      expect(e).toContain("must return a string or Uint8Array (got object)");
      await stillServing(m);
    });

    test("read returning more bytes than asked: EIO, nothing beyond the request reaches the caller", async () => {
      await expectErrno(readOnce(join(m.dir, "toomuch"), 4096), "EIO");
      const e = await logged(m, "furing: read (node 7) returned an invalid reply");
      expect(e).toContain("read returned 4097 bytes, more than the 4096 asked");
      await expectErrno(readOnce(join(m.dir, "toomany"), 4096), "EIO");
      expect(await logged(m, "furing: read (node 8) returned an invalid reply")).toContain("byte count 0..4096 (got 4097)");
      await stillServing(m);
    });

    test("write claiming more bytes than it was given: EIO", async () => {
      const fh = await open(join(m.dir, "badwrite"), "r+");
      try {
        await expectErrno(fh.write(new TextEncoder().encode("abc"), 0, 3, 0), "EIO");
      } finally {
        await fh.close();
      }
      expect(await logged(m, "furing: write (node 10) returned an invalid reply")).toContain("byte count 0..3 (got 4)");
      await stillServing(m);
    });

    test("getattr returning a mode without a file type: EIO", async () => {
      await expectErrno(stat(join(m.dir, "nomode")), "EIO");
      expect(await logged(m, "furing: getattr (node 9) returned an invalid reply")).toContain("mode 644 has no valid file type");
      await stillServing(m);
    });

    test("lookup returning null: EIO", async () => {
      await expectErrno(stat(join(m.dir, "nulllookup")), "EIO");
      expect(await logged(m, "furing: lookup (node 1) returned an invalid reply")).toContain("expected an entry, got null");
      await stillServing(m);
    });

    test("readdir adding a name with '/': EIO, logged with op, node and the name", async () => {
      await expectErrno(readdir(join(m.dir, "baddir")), "EIO");
      expect(await logged(m, "furing: readdir (node 11) returned an invalid reply")).toContain(`directory entry name "a/b" contains '/'`);
      await stillServing(m);
    });

    // The name was rejected inside the plugin's own call to out.add(), so a stack pointing at the
    // plugin's line exists; the runtime logs only the message for a ReplyError (dispatcher.ts fail()).
    test("readdir adding a name with '/': the log points at the plugin line that added it", async () => {
      await expectErrno(readdir(join(m.dir, "baddir")), "EIO");
      expect(await logged(m, "furing: readdir (node 11) returned an invalid reply")).toContain(site("readdir"));
    });

    test("faults hit only their own request: concurrent good and bad requests, counted per op", async () => {
      const before = (await m.status()).ops.read ?? { count: 0, errors: 0 };
      const kinds = ["ok", "throw", "reject", "wrongtype", "toomuch", "throwstr"];
      const jobs: Promise<string>[] = [];
      for (let i = 0; i < 60; i++) {
        const k = kinds[i % kinds.length]!;
        jobs.push(readOnce(join(m.dir, k)).then((d) => `${k}:${d}`, (e) => `${k}:${(e as { code?: string }).code}`));
      }
      const results = await Promise.all(jobs);
      for (const r of results) {
        const [k, v] = r.split(":");
        expect(`${k}:${v}`).toBe(k === "ok" ? "ok:ok\n" : `${k}:EIO`);
      }
      const after = (await m.status()).ops.read!;
      expect(after.count - before.count).toBe(60);
      expect(after.errors - before.errors).toBe(50);
      await stillServing(m);
    });

    // An exception thrown from plugin code that runs outside any op (a timer) has no request to
    // fail. The daemon must survive it and log it like op errors, with the plugin's own file:line.
    test("an exception thrown from a plugin timer does not take the mount down", async () => {
      expect(await readOnce(join(m.dir, "escape"))).toBe("");
      await waitFor(() => m.log().includes("faults: thrown from a timer"), 5000);
      await Bun.sleep(200);
      await stillServing(m);
    });

    test("an exception thrown from a plugin timer is logged with the plugin's own file:line", async () => {
      expect(await readOnce(join(m.dir, "escape"))).toBe("");
      await waitFor(() => m.log().includes("faults: thrown from a timer"), 5000);
      const log = m.log();
      const at = log.lastIndexOf("faults: thrown from a timer");
      const tail = log.slice(at, at + 600);
      expect(tail, `log after the timer's exception:\n${tail}`).toContain(site("escape"));
    });

    test("the whole session: every fault logged, nothing else failed, the root still lists", async () => {
      const names = (await readdir(m.dir)).sort();
      expect(names).toEqual(["baddir", "badwrite", "escape", "nomode", "ok", "reject", "throw", "throwstr", "toomany", "toomuch", "wrongtype"]);
      expect(await readFile(join(m.dir, "ok"), "utf8")).toBe("ok\n");
      expect(m.daemon.alive()).toBe(true);
    });
  });
}
