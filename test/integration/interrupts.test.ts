/**
 * Interrupts and timeouts, with real callers in child processes.
 *
 * What the kernel does (fs/fuse/dev.c request_wait_answer): a caller waiting for an answer first
 * sleeps interruptibly; any signal then makes the kernel send FUSE_INTERRUPT for the request (the
 * runtime fires the request's AbortSignal, reason code EINTR) and the caller keeps waiting for the
 * answer. A handled signal: the caller waits (killably) for the answer and gets whatever the
 * daemon replies: -EINTR from an op that honours its signal. A fatal signal (SIGKILL, or SIGINT
 * with its default action): a request the daemon has already read cannot be withdrawn, so the
 * dying caller waits, unkillable (D state), until the daemon answers; an op that ignores its
 * signal keeps it there until -o op_timeout answers ETIMEDOUT (or the connection ends).
 *
 * Plugins: test/fixtures/stall.ts (/abortable, /stuck) and test/fixtures/timing.ts (late results,
 * a slow file, and it logs every abort it sees). Callers: test/fixtures/interruptible-read.ts
 * (read(2) through libc, reporting the errno) and test/fixtures/write-then-read.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cleanupAll, mountFs, transports, unmountFs, waitFor, type Mount } from "../helpers/mount.ts";
import { killChildren, procState, spawnChild, waitingOnFuse, type Child } from "../load/children.ts";

afterAll(cleanupAll);

const FIX = resolve(import.meta.dir, "../fixtures");
const STALL = join(FIX, "stall.ts");
const TIMING = join(FIX, "timing.ts");
const READER = join(FIX, "interruptible-read.ts");
const WRITER = join(FIX, "write-then-read.ts");
const EINTR = 4, ETIMEDOUT = 110;

afterAll(killChildren);

/** A reader child on `file`; resolves once it is about to read. */
async function reader(file: string, mode: "handle" | "default", count = 1, cpu?: number): Promise<Child> {
  const cmd = [process.execPath, READER, file, mode, String(count)];
  const c = spawnChild(cpu === undefined ? cmd : ["taskset", "-c", String(cpu), ...cmd]);
  await c.line((l) => l.ready === true);
  return c;
}

/** Per-test limit (bun's default is 5 s; these wait for timeouts and children). */
const LIMIT = 30_000;

const count = (s: string, re: RegExp) => (s.match(new RegExp(re.source, "g")) ?? []).length;

for (const transport of transports()) {
  describe(`interrupts over ${transport} (stall.ts)`, () => {
    let m: Mount;
    beforeAll(async () => {
      m = await mountFs({ plugin: STALL, transport, args: ["-d"] });
    }, LIMIT);
    afterAll(async () => {
      if (m) await unmountFs(m);
    }, LIMIT);

    test("a caller interrupted by a handled signal gets EINTR from an op that honours its AbortSignal", async () => {
      const c = await reader(join(m.dir, "abortable"), "handle");
      await waitingOnFuse(c.pid);
      const interrupts = count(m.log(), /INTERRUPT /);
      c.proc.kill("SIGUSR1");
      const r = await c.line((l) => "errno" in l, 10_000);
      expect(r).toMatchObject({ n: -1, errno: EINTR });
      expect(await c.exited(5000)).toBe(true);
      expect(c.proc.exitCode).toBe(0);
      // the daemon got FUSE_INTERRUPT and answered the read -EINTR
      await waitFor(() => new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`).test(m.log()), 5000);
      expect(m.log()).toMatch(new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`));
      expect(count(m.log(), /INTERRUPT /)).toBeGreaterThan(interrupts);
      expect((await stat(join(m.dir, "abortable"))).size).toBe(100);
    }, LIMIT);

    test("SIGINT with its default action: the daemon aborts the op, the caller dies of SIGINT", async () => {
      const c = await reader(join(m.dir, "abortable"), "default");
      await waitingOnFuse(c.pid);
      c.proc.kill("SIGINT");
      expect(await c.exited(10_000), "the caller must not hang").toBe(true);
      expect(c.proc.signalCode).toBe("SIGINT");
      await waitFor(() => new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`).test(m.log()), 5000);
      expect(m.log()).toMatch(new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`));
    }, LIMIT);

    test("SIGKILL of the caller: the daemon sees the interrupt, nothing stays in flight, the mount keeps serving", async () => {
      const c = await reader(join(m.dir, "abortable"), "default");
      await waitingOnFuse(c.pid);
      c.proc.kill("SIGKILL");
      expect(await c.exited(10_000), "the killed caller must be reaped").toBe(true);
      expect(c.proc.signalCode).toBe("SIGKILL");
      await waitFor(() => new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`).test(m.log()), 5000);
      expect(m.log()).toMatch(new RegExp(`READ node=2 .*pid=${c.pid} → -EINTR`));
      expect(await waitFor(async () => (await m.status()).inflight === 0, 5000)).toBe(true);
      expect(m.daemon.alive()).toBe(true);
      // several at once, killed together
      const many = await Promise.all(Array.from({ length: 6 }, () => reader(join(m.dir, "abortable"), "default")));
      for (const k of many) await waitingOnFuse(k.pid);
      for (const k of many) k.proc.kill("SIGKILL");
      for (const k of many) expect(await k.exited(10_000)).toBe(true);
      expect(await waitFor(async () => (await m.status()).inflight === 0, 5000)).toBe(true);
      expect((await stat(join(m.dir, "stuck"))).size).toBe(100);
    }, LIMIT);
  });

  describe(`op_timeout over ${transport} (timing.ts, op_timeout=1)`, () => {
    let m: Mount;
    beforeAll(async () => {
      m = await mountFs({ plugin: TIMING, transport, options: ["op_timeout=1"], args: ["--delay-ms", "1600", "--hold-ms", "800"] });
    }, LIMIT);
    afterAll(async () => {
      if (m) await unmountFs(m);
    }, LIMIT);

    test("an op that never settles and ignores its signal is answered ETIMEDOUT", async () => {
      const before = (await m.status()).timedOut as number;
      const t0 = performance.now();
      const c = await reader(join(m.dir, "stuck"), "handle");
      const r = await c.line((l) => "errno" in l, 10_000);
      const s = (performance.now() - t0) / 1000;
      expect(r).toMatchObject({ n: -1, errno: ETIMEDOUT });
      expect(s).toBeGreaterThan(0.9);
      expect(s).toBeLessThan(4);
      await waitFor(() => m.log().includes("read (node 3) did not settle within 1 s — answered ETIMEDOUT"), 5000);
      expect(m.log()).toContain("read (node 3) did not settle within 1 s — answered ETIMEDOUT");
      expect(((await m.status()).timedOut as number) - before).toBe(1);
    }, LIMIT);

    test("a SIGKILLed caller of such an op stays (D state) until op_timeout answers, then is reaped", async () => {
      const c = await reader(join(m.dir, "stuck"), "default");
      await waitingOnFuse(c.pid);
      c.proc.kill("SIGKILL");
      const killed = performance.now();
      await Bun.sleep(300);
      // the request is in the daemon: the kernel cannot withdraw it, the dying caller waits
      expect((await procState(c.pid)).state, "the killed caller should wait uninterruptibly").toBe("D");
      expect(await c.exited(5000), "op_timeout must bound the wait").toBe(true);
      expect(performance.now() - killed, "reaped only once op_timeout answered").toBeGreaterThan(500);
      expect(c.proc.signalCode).toBe("SIGKILL");
    }, LIMIT);

    test("results that settle after the timeout are discarded and logged; an abortable op sees ETIMEDOUT", async () => {
      const late = await reader(join(m.dir, "late"), "handle");
      const lateError = await reader(join(m.dir, "late-error"), "handle");
      const abortable = await reader(join(m.dir, "abortable"), "handle");
      for (const c of [late, lateError, abortable]) expect(await c.line((l) => "errno" in l)).toMatchObject({ n: -1, errno: ETIMEDOUT });
      // /late writes into its `dest` after the timeout: the view was revoked, so that write throws
      // and the op's (late) error is what gets discarded — never bytes in another request's buffer
      expect(await waitFor(() => /read \(node 4\) settled after its timeout; its (result|error .*detached.*) was discarded/.test(m.log()), 5000)).toBe(true);
      expect(await waitFor(() => m.log().includes("read (node 5) settled after its timeout; its error (timing: late failure) was discarded"), 5000)).toBe(true);
      // the plugin's AbortSignal fired with reason code ETIMEDOUT; its rejection came late
      expect(m.log()).toContain("timing: abort read node 2: ETIMEDOUT");
      expect(await waitFor(() => m.log().includes("read (node 2) settled after its timeout; its error (request timed out (op_timeout)) was discarded"), 5000)).toBe(true);
      expect(m.daemon.alive()).toBe(true);
    }, LIMIT);

    test("a write answered ETIMEDOUT may still be applied when the op completes late", async () => {
      const w = spawnChild([process.execPath, WRITER, join(m.dir, "late-write"), "6", "Z"]);
      await w.line((l) => l.ready === true);
      w.proc.stdin.write("go\n");
      w.proc.stdin.flush();
      expect(await w.line((l) => "error" in l || "written" in l)).toMatchObject({ error: "ETIMEDOUT", op: "write" });
      expect(await waitFor(() => m.log().includes("timing: late write of 6 bytes at 0 stored"), 5000)).toBe(true);
      expect(m.log()).toContain("write (node 6) settled after its timeout; its result was discarded");
      // the caller was told the write timed out, yet the data is there
      expect(await readFile(join(m.dir, "late-write"), "utf8")).toBe("ZZZZZZ");
    }, LIMIT);

    test("interrupts for requests already answered are ignored (signal flood on fast reads)", async () => {
      const c = await reader(join(m.dir, "slow"), "handle", 1000);
      const before = (await m.status()).ops.interrupt?.count ?? 0;
      let sent = 0;
      while (c.proc.exitCode === null && c.proc.signalCode === null && sent < 20_000) {
        c.proc.kill("SIGUSR1");
        sent++;
        if (sent % 4 === 0) await Bun.sleep(1);
      }
      expect(await c.exited(20_000)).toBe(true);
      const r = await c.line((l) => "reads" in l);
      // /slow ignores its signal: every read succeeds with the right bytes
      expect(r).toMatchObject({ reads: 1000, ok: 1000, eintr: 0, other: 0, bad: 0, data: "slow\n" });
      const s = await m.status();
      expect((s.ops.interrupt?.count ?? 0) - before, "the daemon should have received interrupts").toBeGreaterThan(0);
      expect(s.inflight).toBe(0);
      expect(m.daemon.alive()).toBe(true);
      expect((await stat(join(m.dir, "slow"))).size).toBe(100);
    }, LIMIT);

    // The dispatcher retires a timed-out Call but hands its slot (buffers included) to the next
    // request while the plugin still holds views into it (`dest` for reads, `data` for writes).
    test("a result that arrives after its timeout never lands in another request's buffers", async () => {
      const writer = spawnChild(["taskset", "-c", "0", process.execPath, WRITER, join(m.dir, "hold"), "4096", "W"]);
      await writer.line((l) => l.ready === true);
      const mark = m.log().length;
      // a 64 KiB read of /late: answered ETIMEDOUT at ~1 s; at 1.6 s the plugin fills its `dest`
      const late = await reader(join(m.dir, "late"), "handle", 1, 0);
      expect(await waitFor(() => m.log().slice(mark).includes("read (node 4) did not settle"), 5000)).toBe(true);
      // next request on the same CPU: a write whose op holds its data view for 0.8 s
      writer.proc.stdin.write("go\n");
      writer.proc.stdin.flush();
      const r = await writer.line((l) => "written" in l || "error" in l, 10_000);
      expect(await late.line((l) => "errno" in l)).toMatchObject({ errno: ETIMEDOUT });
      expect(r, "the write was accepted; its bytes must be the ones written").toEqual({ written: 4096, read: 4096, counts: { W: 4096 } });
    }, LIMIT);
  });
}
