/**
 * `ctx.io` (RingFileIO) on a real io_uring against real files: buffers on the JS heap are staged
 * through native bounce memory or held until their completion. These cases failed before the
 * staging slices were tracked (1,100 concurrent 4 KiB writes left blocks holding another write's
 * bytes), arenas were unmapped (200 writes of one 3 MiB buffer took RSS to 800+ MiB) and read
 * destinations were held (a dropped `dest` was collected while the kernel still wrote into it).
 *
 * No mount is involved: RingFileIO only needs a reactor, and the files live in a temp directory.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Reactor } from "../../runtime/reactor/reactor.ts";
import { RingFileIO } from "../../runtime/io/file-io.ts";

let reactor: Reactor;
let io: RingFileIO;
let dir: string;

beforeAll(() => {
  // the SQ of a session on a large machine (64 CPUs × 64 entries): a whole burst of operations is
  // queued before one submit, so every staging slice is handed out before the kernel reads any
  reactor = new Reactor(4096);
  reactor.start();
  io = new RingFileIO(reactor);
  dir = mkdtempSync(join(tmpdir(), "furing-test-fileio-"));
});
afterAll(() => {
  reactor.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Resident set size in MiB, after a full collection (so only memory that is really held counts). */
function rssMiB(): number {
  Bun.gc(true);
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m![1]) / 1024;
}

/** A block whose every 4-byte word says which block it is and where in it the word sits. */
function pattern(block: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  for (let o = 0; o + 4 <= size; o += 4) dv.setUint32(o, (block * 2654435761 + o) >>> 0, true);
  for (let o = size & ~3; o < size; o++) b[o] = (block + o) & 0xff;
  return b;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function file(name: string): { path: string; fd: number } {
  const path = join(dir, name);
  const fd = openSync(path, "w+");
  return { path, fd };
}

test("1,100 concurrent 4 KiB writes of heap buffers (more than the 4 MiB bounce arena holds) land byte for byte", async () => {
  const N = 1100, B = 4096;
  const { path, fd } = file("concurrent-writes");
  try {
    const blocks = Array.from({ length: N }, (_, i) => pattern(i, B));
    const counts = await Promise.all(blocks.map((b, i) => io.write(fd, b, i * B)));
    expect(counts.every((n) => n === B)).toBe(true);
    const disk = readFileSync(path);
    let mismatches = 0;
    for (let i = 0; i < N; i++) if (!equal(disk.subarray(i * B, (i + 1) * B), blocks[i]!)) mismatches++;
    console.log(`concurrent 4 KiB writes: ${mismatches} of ${N} blocks mismatched`);
    expect(mismatches).toBe(0);
    // the arena was full and writes waited for room; every slice came back
    expect(io.bounce.waits).toBeGreaterThan(0);
    expect(io.bounce.inUse).toBe(0);
  } finally {
    closeSync(fd);
  }
});

test("1,500 concurrent small reads (staged) each get their own bytes", async () => {
  const N = 1500, B = 4096, R = 700; // 700-byte destinations live in the GC heap and are staged
  const { path, fd } = file("concurrent-reads");
  try {
    const all = new Uint8Array(N * B);
    for (let i = 0; i < N; i++) all.set(pattern(i, B), i * B);
    writeFileSync(path, all);
    const dests = Array.from({ length: N }, () => new Uint8Array(R));
    const counts = await Promise.all(dests.map((d, i) => io.read(fd, d, i * B + 100)));
    expect(counts.every((n) => n === R)).toBe(true);
    let mismatches = 0;
    for (let i = 0; i < N; i++) if (!equal(dests[i]!, all.subarray(i * B + 100, i * B + 100 + R))) mismatches++;
    console.log(`concurrent staged reads: ${mismatches} of ${N} mismatched`);
    expect(mismatches).toBe(0);
  } finally {
    closeSync(fd);
  }
});

test("200 writes of one 3 MiB buffer keep RSS flat; concurrent 3 MiB and 6 MiB writes land intact", async () => {
  const MiB = 1 << 20;
  const { path, fd } = file("large");
  try {
    const big = pattern(7, 3 * MiB);
    const before = rssMiB();
    for (let i = 0; i < 200; i++) expect(await io.write(fd, big, 0)).toBe(3 * MiB);
    const after = rssMiB();
    console.log(`200 × 3 MiB writes: RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
    expect(equal(readFileSync(path).subarray(0, 3 * MiB), big)).toBe(true);
    expect(after - before).toBeLessThan(48);

    // more large writes at once than the arena holds, and writes larger than the arena itself
    for (const size of [3 * MiB, 6 * MiB]) {
      const bufs = Array.from({ length: 6 }, (_, i) => pattern(100 + i, size));
      const counts = await Promise.all(bufs.map((b, i) => io.write(fd, b, i * size)));
      expect(counts).toEqual(bufs.map(() => size));
      const disk = readFileSync(path);
      let mismatches = 0;
      for (let i = 0; i < bufs.length; i++) if (!equal(disk.subarray(i * size, (i + 1) * size), bufs[i]!)) mismatches++;
      expect(mismatches).toBe(0);
    }
    expect(io.ownMappings).toBeGreaterThanOrEqual(6);
    const end = rssMiB();
    console.log(`after concurrent 6 × 3 MiB and 6 × 6 MiB writes: RSS ${end.toFixed(0)} MiB`);
    expect(end - before).toBeLessThan(96);
  } finally {
    closeSync(fd);
  }
});

test("a read destination dropped by its caller is held until the kernel has written it", async () => {
  // a FIFO opened read-write: reads wait in the kernel until the test writes, so they are
  // certainly in flight while the collector runs
  const fifo = join(dir, "fifo");
  expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
  const fd = openSync(fifo, "r+");
  const collected: number[] = [];
  const reg = new FinalizationRegistry<number>((i) => collected.push(i));
  const N = 8, B = 4096; // > 1000 bytes: the kernel writes straight into the destination
  const results: Promise<number>[] = [];
  let written = false;
  try {
    const start = (i: number) => {
      const dest = new Uint8Array(B); // nothing but ctx.io keeps it
      reg.register(dest, i);
      results.push(io.read(fd, dest, 0));
    };
    for (let i = 0; i < N; i++) start(i);
    for (let k = 0; k < 3; k++) {
      Bun.gc(true);
      await Bun.sleep(5);
    }
    expect(collected).toEqual([]);
    writeSync(fd, new Uint8Array(N * B).fill(0x5a));
    written = true;
    const counts = await Promise.all(results);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(N * B);
    // once completed, nothing holds them any more
    for (let k = 0; k < 10 && collected.length < N; k++) {
      Bun.gc(true);
      await Bun.sleep(5);
    }
    expect(collected.length).toBe(N);
  } finally {
    if (!written) writeSync(fd, new Uint8Array(N * B)); // finish the reads before closing
    await Promise.allSettled(results);
    closeSync(fd);
  }
});

test("reads into fresh buffers stay correct while the collector runs", async () => {
  const { path, fd } = file("gc-reads");
  const B = 64 * 1024, N = 64;
  try {
    const all = new Uint8Array(N * B);
    for (let i = 0; i < N; i++) all.set(pattern(i, B), i * B);
    writeFileSync(path, all);
    let mismatches = 0;
    for (let round = 0; round < 20; round++) {
      const sizes = [B, 1000, 800, 5000];
      const work = Array.from({ length: N }, (_, i) => {
        const size = sizes[i % sizes.length]!;
        const dest = new Uint8Array(size);
        return io.read(fd, dest, i * B).then((n) => {
          if (n !== size || !equal(dest, all.subarray(i * B, i * B + size))) mismatches++;
        });
      });
      Bun.gc(true);
      await Promise.all(work);
    }
    expect(mismatches).toBe(0);
  } finally {
    closeSync(fd);
  }
});

test("RSS stays bounded over 10,000 mixed staged operations", async () => {
  const { path, fd } = file("mixed");
  const MiB = 1 << 20;
  const sizes = [1, 100, 999, 4096, 70_000, 600 * 1024, 1 * MiB + 3, 3 * MiB, 5 * MiB];
  const src = sizes.map((s, i) => pattern(i, s));
  try {
    writeFileSync(path, new Uint8Array(8 * MiB));
    const before = rssMiB();
    let mismatches = 0, ops = 0;
    const lanes = Array.from({ length: 16 }, async (_, lane) => {
      for (let k = 0; k < 10_000 / 16; k++) {
        const i = (lane * 7 + k * 3) % sizes.length;
        const size = sizes[i]!;
        // each lane owns its own 512-byte-aligned window in the first 8 MiB for small sizes,
        // big sizes go to offset 0 and are only checked by count
        if (size <= 70_000) {
          const off = lane * 80_000;
          expect(await io.write(fd, src[i]!, off)).toBe(size);
          const back = new Uint8Array(size);
          expect(await io.read(fd, back, off)).toBe(size);
          if (!equal(back, src[i]!)) mismatches++;
          ops += 2;
        } else {
          expect(await io.write(fd, src[i]!, 2 * MiB)).toBe(size);
          ops++;
        }
      }
    });
    await Promise.all(lanes);
    const after = rssMiB();
    console.log(`${ops} mixed operations: RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB, ${mismatches} mismatches`);
    expect(ops).toBeGreaterThanOrEqual(10_000);
    expect(mismatches).toBe(0);
    expect(after - before).toBeLessThan(96);
  } finally {
    closeSync(fd);
  }
}, 120_000);
