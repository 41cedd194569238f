/**
 * memfs's chunk pool: full chunks come from reusable page memory, come back when a file lets go
 * of them (unlink + forget, truncate, punch, trim), read as zeros when reused, and freed memory
 * beyond the pool's dirty limit goes back to the kernel.
 */
import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { O_CREAT, O_RDWR, type Entry, type Filesystem, type Request } from "../../runtime/api/index.ts";
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, mapPages, discardPages, pagesAddress, viewPages } from "../../runtime/api/sys.ts";
import { createOps } from "../../plugins/memfs/ops.ts";
import { createState } from "../../plugins/memfs/state.ts";
import { CHUNK } from "../../plugins/memfs/data.ts";

const req: Request = { op: "test", uid: 0, gid: 0, pid: 1, signal: new AbortController().signal };
const ROOT = 1;

function memfs(maxInodes = 1000) {
  const state = createState({ maxBytes: 1 << 30, maxInodes, rootMode: 0o755, uid: 0, gid: 0 });
  return { fs: createOps(state) as Required<Filesystem>, state };
}
function fill(n: number, v: number): Uint8Array {
  return new Uint8Array(n).fill(v);
}
function create(fs: Required<Filesystem>, name: string): { ino: number; fh: number } {
  const r = fs.create(req, ROOT, name, 0o644, O_CREAT | O_RDWR, 0) as { entry: Entry; fh?: number };
  return { ino: r.entry.ino, fh: r.fh ?? 0 };
}
function readAll(fs: Required<Filesystem>, ino: number, fh: number, off: number, n: number): Uint8Array {
  const d = new Uint8Array(n).fill(0xee);
  const got = fs.read(req, ino, fh, off, n, d) as number;
  return d.subarray(0, got);
}

describe("page memory (furing/sys)", () => {
  test("mapPages gives zeroed memory; discardPages zeroes it again", () => {
    const m = mapPages(3 << 20, { hugepages: true });
    expect(m.length).toBe(3 << 20);
    expect(m.every((b) => b === 0)).toBe(true);
    m.fill(7, 4096, 3 * 4096);
    discardPages(m, 4096, 2 * 4096);
    expect(m.subarray(4096, 3 * 4096).every((b) => b === 0)).toBe(true);
    expect(() => discardPages(m, 100, 4096)).toThrow(RangeError);
    expect(() => discardPages(new Uint8Array(4096))).toThrow(TypeError);
    expect(() => mapPages(0)).toThrow(RangeError);
  });
});

describe("page memory across threads (furing/sys)", () => {
  test("viewPages(pagesAddress(m)) is the same memory, on this thread and on a Worker", async () => {
    const m = mapPages(1 << 20);
    const a = pagesAddress(m.subarray(8192));
    expect(a % 4096).toBe(0);
    const v = viewPages(a, 4096);
    m[8192 + 7] = 42;
    expect(v[7]).toBe(42);
    v[8] = 43;
    expect(m[8192 + 8]).toBe(43);
    discardPages(v); // a view from viewPages is page memory too
    expect(m[8192 + 7]).toBe(0);
    // a Worker writes through its own view of the address
    const src = `import { viewPages } from ${JSON.stringify(new URL("../../runtime/api/sys.ts", import.meta.url).pathname)};
      self.onmessage = (e) => { viewPages(e.data, 4096).fill(9, 0, 100); postMessage("done"); };`;
    const file = `${process.env.TMPDIR ?? "/tmp"}/furing-viewpages-${process.pid}.ts`;
    await Bun.write(file, src);
    try {
      const w = new Worker(file);
      const done = new Promise((r) => (w.onmessage = (e) => r(e.data)));
      w.postMessage(a);
      expect(await done).toBe("done");
      w.terminate();
    } finally {
      rmSync(file, { force: true });
    }
    expect(m.subarray(8192, 8192 + 100).every((x) => x === 9)).toBe(true);
    expect(m[8192 + 100]).toBe(0);
    expect(() => viewPages(a + 1, 4096)).toThrow(/bad address/);
    expect(() => viewPages(a, 0)).toThrow(/bad size/);
    expect(() => pagesAddress(new Uint8Array(8))).toThrow(/not memory from mapPages/);
  });
});

describe("memfs chunk pool", () => {
  test("take() is zeroed even for a reused dirty chunk; short blocks are reused by size and zeroed too", () => {
    const p = memfs().state.pool;
    const a = p.take();
    const v = p.view(a);
    const o = p.offset(a);
    v.fill(9, o, o + CHUNK);
    p.give(a);
    expect(p.idle).toBeGreaterThan(0);
    const b = p.take();
    expect(b).toBe(a);
    expect(v.subarray(o, o + CHUNK).every((x) => x === 0)).toBe(true);
    // blocks of 1..15 pages come from other slabs and go back to a list per size
    const s = p.takePages(3);
    expect(p.view(s)).not.toBe(v);
    const so = p.offset(s);
    p.view(s).fill(5, so, so + 3 * 4096);
    p.givePages(s, 3);
    expect(p.takePages(2)).not.toBe(s);
    expect(p.takePages(3)).toBe(s);
    expect(p.view(s).subarray(so, so + 3 * 4096).every((x) => x === 0)).toBe(true);
  });

  test("full chunks of an unlinked file are reused by the next file, with no new mapping", () => {
    const { fs, state } = memfs();
    const f = create(fs, "f");
    expect(fs.write(req, f.ino, f.fh, 0, fill(8 * CHUNK, 0xab), 0)).toBe(8 * CHUNK);
    fs.release(req, f.ino, f.fh, 0);
    const mapped = state.pool!.mapped;
    expect(mapped).toBeGreaterThan(0);
    fs.unlink(req, ROOT, "f");
    fs.forget(f.ino, 1);
    expect(state.nodes.has(f.ino)).toBe(false);
    expect(state.pool!.idle).toBeGreaterThanOrEqual(8);
    const g = create(fs, "g");
    // a short write into a fresh chunk: the rest must read as zeros, not as the old file's bytes
    fs.write(req, g.ino, g.fh, 0, fill(CHUNK - 100, 1), 0);
    fs.write(req, g.ino, g.fh, CHUNK * 3 + 10, fill(CHUNK - 10, 2), 0);
    expect(state.pool!.mapped).toBe(mapped);
    const all = readAll(fs, g.ino, g.fh, 0, 4 * CHUNK);
    expect(all.length).toBe(4 * CHUNK);
    expect(all.subarray(0, CHUNK - 100).every((x) => x === 1)).toBe(true);
    expect(all.subarray(CHUNK - 100, CHUNK * 3 + 10).every((x) => x === 0)).toBe(true);
    expect(all.subarray(CHUNK * 3 + 10).every((x) => x === 2)).toBe(true);
  });

  test("truncate, punch and trim hand their chunks back, and reused chunks read as zeros", () => {
    const { fs, state } = memfs();
    const f = create(fs, "f");
    fs.write(req, f.ino, f.fh, 0, fill(6 * CHUNK, 0x5a), 0);
    const idle0 = state.pool!.idle;
    fs.setattr(req, f.ino, { size: 2 * CHUNK + 5, fh: f.fh });
    expect(state.pool!.idle).toBe(idle0 + 4); // chunks 3..5 dropped, chunk 2 trimmed to a page
    fs.fallocate(req, f.ino, f.fh, 0, CHUNK, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    expect(state.pool!.idle).toBe(idle0 + 5);
    fs.setattr(req, f.ino, { size: 6 * CHUNK, fh: f.fh });
    fs.fallocate(req, f.ino, f.fh, 0, 6 * CHUNK, FALLOC_FL_KEEP_SIZE);
    const back = readAll(fs, f.ino, f.fh, 0, 6 * CHUNK);
    expect(back.subarray(0, CHUNK).every((x) => x === 0)).toBe(true);
    expect(back.subarray(CHUNK, 2 * CHUNK + 5).every((x) => x === 0x5a)).toBe(true);
    expect(back.subarray(2 * CHUNK + 5).every((x) => x === 0)).toBe(true);
  });

  test("freed chunks past the dirty limit go back to the kernel and still read as zeros when reused", () => {
    const { fs, state } = memfs();
    const f = create(fs, "big");
    const n = 1100; // > MAX_DIRTY (1024)
    fs.write(req, f.ino, f.fh, 0, fill(n * CHUNK, 0x33), 0);
    fs.setattr(req, f.ino, { size: 0, fh: f.fh });
    expect(state.pool!.discarded).toBe(n - 1024);
    expect(state.pool!.idle).toBeGreaterThanOrEqual(n);
    fs.write(req, f.ino, f.fh, 0, fill(10, 1), 0);
    fs.fallocate(req, f.ino, f.fh, 0, n * CHUNK, 0);
    const back = readAll(fs, f.ino, f.fh, 10, n * CHUNK - 10);
    expect(back.every((x) => x === 0)).toBe(true);
  });
});

describe("short blocks", () => {
  test("copy_file_range inside one file whose chunk grows and moves copies the source bytes (the old block may be discarded)", () => {
    const { fs, state } = memfs(10_000);
    // fill the pool's short-block reserve (64 MiB) with 2-page blocks, so that the next freed
    // block of another size goes back to the kernel
    const two = fill(8192, 7);
    const held: number[] = [];
    for (let i = 0; i < 8192; i++) {
      const f = create(fs, `s${i}`);
      fs.write(req, f.ino, f.fh, 0, two, 0);
      fs.release(req, f.ino, f.fh, 0);
      held.push(f.ino);
    }
    for (let i = 0; i < 8192; i++) {
      fs.unlink(req, ROOT, `s${i}`);
      fs.forget(held[i]!, 1);
    }
    const discarded = state.pool.discarded;
    const f = create(fs, "f");
    fs.write(req, f.ino, f.fh, 0, fill(4096, 0x41), 0); // chunk 0: one page
    // copy page 0 to page 2: chunk 0 grows to 3 pages, moves to a new block, the old one is discarded
    expect(fs.copyFileRange(req, f.ino, f.fh, 0, f.ino, f.fh, 8192, 4096, 0)).toBe(4096);
    expect(state.pool.discarded).toBe(discarded + 1);
    const back = readAll(fs, f.ino, f.fh, 0, 3 * 4096);
    expect(back.subarray(0, 4096).every((x) => x === 0x41)).toBe(true);
    expect(back.subarray(4096, 8192).every((x) => x === 0)).toBe(true);
    expect(back.subarray(8192).every((x) => x === 0x41)).toBe(true);
  });
});
