/**
 * File names are bytes: names that are not UTF-8 go through real mounts (memfs, passthrough, a
 * notifying fixture) byte for byte, over both transports, with the daemon in a child process.
 *
 * node:fs would mangle such names in this process too (it decodes them as UTF-8), so every name is
 * a Buffer here: node:fs/promises takes Buffer paths, `readdir`/`readlink` answer Buffers with
 * `encoding: "buffer"`, and xattrs go through test/fixtures/xattr-bytes.ts (raw libc calls on hex
 * arguments, in a child process). Comparisons are on hex, so a replaced byte cannot hide.
 */
import { afterAll, describe, expect, test } from "bun:test";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import {
  cleanupAll, makeTempDir, removeTempDir, REPO, transports, withMount, type Mount, type Transport,
} from "../helpers/mount.ts";
import { run, describeResult } from "../helpers/run.ts";

afterAll(cleanupAll);

/** Bytes from text and byte lists: N("caf", [0xe9], ".txt"). */
const N = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => Buffer.from(p as string)));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const under = (dir: string, ...names: Buffer[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from("/"), n])]);
const errno = (p: Promise<unknown>) => p.then(() => "ok", (e: NodeJS.ErrnoException) => e.code);
const listing = async (dir: Buffer | string) => (await fsp.readdir(dir, { encoding: "buffer" })).map(hex).sort();

const XATTR = join(REPO, "test/fixtures/xattr-bytes.ts");
async function xattr(...args: string[]): Promise<{ hex?: string; errno?: number }> {
  const r = await run([process.execPath, XATTR, ...args], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(describeResult(r));
  return JSON.parse(r.stdout);
}

// The names under test: Latin-1, a pair that differs only in one invalid byte, an overlong
// encoding, an encoded surrogate, a truncated 4-byte sequence, a lone continuation byte, a real
// U+FFFD (EF BF BD, which a decoder's replacement would also produce) and valid UTF-8.
const LATIN1 = N("caf", [0xe9], ".txt");
const A_E9 = N("a", [0xe9]);
const A_E8 = N("a", [0xe8]);
const OVERLONG = N("o", [0xc0, 0x80]);
const SURROGATE = N("s", [0xed, 0xa0, 0x80]);
const TRUNCATED = N("t", [0xf0, 0x9f, 0x98]);
const CONT = N([0x80], "c");
const FFFD = N("r", [0xef, 0xbf, 0xbd]);
const UTF8 = N("caf", [0xc3, 0xa9], ".txt");
const FILES = [LATIN1, A_E9, A_E8, OVERLONG, SURROGATE, TRUNCATED, CONT, FFFD, UTF8];

/** Creates, lists, reads, renames, links, symlinks and unlinks such names in `root` (a mount). */
async function namespaceOps(root: string, source?: string): Promise<void> {
  const p = (...names: Buffer[]) => under(root, ...names);
  for (const [i, name] of FILES.entries()) await fsp.writeFile(p(name), `file ${i}`);
  // every name is its own file: listed with its exact bytes, and read back with its own content
  expect(await listing(root)).toEqual(FILES.map(hex).sort());
  for (const [i, name] of FILES.entries()) expect(await fsp.readFile(p(name), "utf8")).toBe(`file ${i}`);
  // the pair differing only in an invalid byte: writing one leaves the other alone
  await fsp.writeFile(p(A_E9), "only e9");
  expect(await fsp.readFile(p(A_E8), "utf8")).toBe(`file ${FILES.indexOf(A_E8)}`);
  expect((await fsp.stat(p(A_E9))).ino).not.toBe((await fsp.stat(p(A_E8))).ino);
  // the mangled spelling names nothing
  expect(await errno(fsp.stat(p(N("caf", [0xef, 0xbf, 0xbd], ".txt"))))).toBe("ENOENT");

  // directories, rename, hard links
  const DIR = N("d", [0xff]);
  await fsp.mkdir(p(DIR));
  await fsp.rename(p(LATIN1), p(DIR, N("r", [0xfd])));
  expect(await errno(fsp.stat(p(LATIN1)))).toBe("ENOENT");
  expect(await fsp.readFile(p(DIR, N("r", [0xfd])), "utf8")).toBe("file 0");
  await fsp.rename(p(DIR, N("r", [0xfd])), p(DIR, N("r", [0xfc])));
  expect(await listing(p(DIR))).toEqual([hex(N("r", [0xfc]))]);
  await fsp.link(p(A_E8), p(DIR, N("h", [0xe8])));
  const [s1, s2] = await Promise.all([fsp.stat(p(A_E8)), fsp.stat(p(DIR, N("h", [0xe8])))]);
  expect(s2.ino).toBe(s1.ino);
  expect(s1.nlink).toBe(2);

  // symlinks whose names and targets are not UTF-8; readlink gives the exact target back
  const TARGET = N("../", [0xed, 0xa0, 0x80], "/x", [0xff, 0xc3]);
  await fsp.symlink(TARGET, p(N("l", [0xfe])));
  expect(hex(await fsp.readlink(p(N("l", [0xfe])), { encoding: "buffer" }))).toBe(hex(TARGET));
  expect((await fsp.lstat(p(N("l", [0xfe])))).size).toBe(TARGET.length);
  // a link to a non-UTF-8 name reaches that file
  await fsp.symlink(A_E9, p(N("to", [0xe9])));
  expect(await fsp.readFile(p(N("to", [0xe9])), "utf8")).toBe("only e9");

  // a name of 255 invalid bytes is exactly NAME_MAX (not 765 bytes of U+FFFD); 256 is too long
  const LONG = Buffer.alloc(255, 0xe9);
  await fsp.writeFile(p(LONG), "long");
  expect(await fsp.readFile(p(LONG), "utf8")).toBe("long");
  expect(await errno(fsp.writeFile(p(Buffer.alloc(256, 0xe9)), "x"))).toBe("ENAMETOOLONG");

  // unlink one of the pair: the other stays
  await fsp.unlink(p(A_E9));
  expect(await errno(fsp.stat(p(A_E9)))).toBe("ENOENT");
  expect(await fsp.readFile(p(A_E8), "utf8")).toBe(`file ${FILES.indexOf(A_E8)}`);

  if (source !== undefined) {
    // passthrough: the source holds exactly these bytes
    const expected = [...FILES.filter((n) => n !== LATIN1 && n !== A_E9), DIR, N("l", [0xfe]), N("to", [0xe9]), LONG].map(hex).sort();
    expect(await listing(source)).toEqual(expected);
    expect(await listing(under(source, DIR))).toEqual([hex(N("h", [0xe8])), hex(N("r", [0xfc]))].sort());
    expect(hex(await fsp.readlink(under(source, N("l", [0xfe])), { encoding: "buffer" }))).toBe(hex(TARGET));
  }
}

/** xattr names and values with invalid bytes on a file whose name is not UTF-8 either. */
async function xattrOps(root: string, source?: string): Promise<void> {
  const file = under(root, N("x", [0xe9]));
  await fsp.writeFile(file, "x");
  const f = hex(file);
  const n1 = hex(N("user.", [0xe9], "k"));
  const n2 = hex(N("user.", [0xe8], "k"));
  const v1 = hex(N([0xff, 0x00, 0xe9, 0xc0, 0x80]));
  const v2 = hex(N([0xed, 0xa0, 0x80]));
  expect(await xattr("set", f, n1, v1)).toEqual({});
  expect(await xattr("set", f, n2, v2)).toEqual({});
  expect(await xattr("get", f, n1)).toEqual({ hex: v1 });
  expect(await xattr("get", f, n2)).toEqual({ hex: v2 });
  // the replaced spelling is not there
  expect((await xattr("get", f, hex(N("user.", [0xef, 0xbf, 0xbd], "k")))).errno).toBe(61); // ENODATA
  const names = (await xattr("list", f)).hex!.split("00").filter(Boolean).sort();
  expect(names).toEqual([n1, n2].sort());
  if (source !== undefined) {
    const sf = hex(under(source, N("x", [0xe9])));
    expect(await xattr("get", sf, n1)).toEqual({ hex: v1 });
    expect(await xattr("get", sf, n2)).toEqual({ hex: v2 });
  }
  expect(await xattr("remove", f, n1)).toEqual({});
  expect((await xattr("get", f, n1)).errno).toBe(61);
  expect(await xattr("get", f, n2)).toEqual({ hex: v2 });
}

async function withSource(fn: (src: string) => Promise<void>): Promise<void> {
  const src = await makeTempDir("src");
  try {
    await fn(src);
  } finally {
    await removeTempDir(src);
  }
}
const passthrough = (transport: Transport, src: string) => ({ plugin: "passthrough", transport, args: ["--source", src] });

for (const transport of transports()) {
  describe(`names are bytes: memfs over ${transport}`, () => {
    test("create, lookup, readdir, rename, link, symlink, readlink, unlink with names that are not UTF-8", async () => {
      await withMount({ transport }, (m) => namespaceOps(m.dir));
    }, 60_000);

    test("xattr names and values with invalid bytes", async () => {
      await withMount({ transport }, (m) => xattrOps(m.dir));
    }, 60_000);
  });

  describe(`names are bytes: passthrough over ${transport}`, () => {
    test("names created through the mount have the exact bytes in the source", async () => {
      await withSource((src) => withMount(passthrough(transport, src), (m) => namespaceOps(m.dir, src)));
    }, 60_000);

    test("xattr names and values with invalid bytes reach the source exactly", async () => {
      await withSource((src) => withMount(passthrough(transport, src), (m) => xattrOps(m.dir, src)));
    }, 60_000);

    test("a source holding Latin-1 names: listed, opened, followed and created with their exact bytes", async () => {
      await withSource(async (src) => {
        const s = (...names: Buffer[]) => under(src, ...names);
        await fsp.writeFile(s(LATIN1), "latin-1 file");
        await fsp.mkdir(s(N("d", [0xe8])));
        await fsp.writeFile(s(N("d", [0xe8]), N("x", [0xff])), "inside");
        await fsp.symlink(LATIN1, s(N("l", [0xe9])));
        await withMount(passthrough(transport, src), async (m: Mount) => {
          const p = (...names: Buffer[]) => under(m.dir, ...names);
          expect(await listing(m.dir)).toEqual([LATIN1, N("d", [0xe8]), N("l", [0xe9])].map(hex).sort());
          expect(await fsp.readFile(p(LATIN1), "utf8")).toBe("latin-1 file");
          expect(await listing(p(N("d", [0xe8])))).toEqual([hex(N("x", [0xff]))]);
          expect(await fsp.readFile(p(N("d", [0xe8]), N("x", [0xff])), "utf8")).toBe("inside");
          expect(hex(await fsp.readlink(p(N("l", [0xe9])), { encoding: "buffer" }))).toBe(hex(LATIN1));
          expect(await fsp.readFile(p(N("l", [0xe9])), "utf8")).toBe("latin-1 file");
          // created through the mount: new\xff.bin, not new\xef\xbf\xbd.bin
          await fsp.writeFile(p(N("new", [0xff], ".bin")), "new");
          expect(await listing(src)).toEqual([LATIN1, N("d", [0xe8]), N("l", [0xe9]), N("new", [0xff], ".bin")].map(hex).sort());
          expect(await fsp.readFile(s(N("new", [0xff], ".bin")), "utf8")).toBe("new");
          // renamed through the mount
          await fsp.rename(p(LATIN1), p(N("caf", [0xe8], ".txt")));
          expect(await fsp.readFile(s(N("caf", [0xe8], ".txt")), "utf8")).toBe("latin-1 file");
          expect(await errno(fsp.stat(s(LATIN1)))).toBe("ENOENT");
        });
      });
    }, 60_000);
  });

  describe(`names are bytes: notifications over ${transport}`, () => {
    // test/fixtures/notify-fs.ts renames and removes entries behind the kernel's back on command
    // and tells the kernel with invalEntry / delete; the names here are not UTF-8.
    const PLUGIN = join(REPO, "test/fixtures/notify-fs.ts");
    const opts = { plugin: PLUGIN, transport, options: ["attr_timeout=60", "entry_timeout=60", "kernel_cache"], timeoutMs: 30_000 };
    const ctl = (m: Mount, ...parts: (string | number[])[]) => fsp.writeFile(join(m.dir, "ctl"), N(...parts));

    test("invalEntry drops exactly the cached entry whose name is not UTF-8", async () => {
      await withMount(opts, async (m) => {
        const o = under(m.dir, N("dir"), N("o", [0xe9]));
        await ctl(m, "rename old o", [0xe9]);
        const ino = (await fsp.stat(o)).ino; // looked up: the kernel caches o\xe9
        await ctl(m, "rename o", [0xe9], " p", [0xe8]);
        expect(await errno(fsp.stat(o))).toBe("ok"); // still cached
        await ctl(m, "inval-entry o", [0xe9]);
        expect(await errno(fsp.stat(o))).toBe("ENOENT");
        expect((await fsp.stat(under(m.dir, N("dir"), N("p", [0xe8])))).ino).toBe(ino);
      });
    }, 40_000);

    test("delete unhashes exactly the entry whose name is not UTF-8", async () => {
      await withMount(opts, async (m) => {
        const g = under(m.dir, N("dir"), N("g", [0xff]));
        await ctl(m, "rename gone g", [0xff]);
        expect(await errno(fsp.stat(g))).toBe("ok");
        await ctl(m, "remove g", [0xff]);
        expect(await errno(fsp.stat(g))).toBe("ok"); // still cached
        await ctl(m, "delete g", [0xff]);
        expect(await errno(fsp.stat(g))).toBe("ENOENT");
        expect(await listing(under(m.dir, N("dir")))).toEqual([hex(N("old"))]);
      });
    }, 40_000);
  });
}
