/**
 * `furing mount` with libfuse's option vocabulary and its visible effects, and the -d trace.
 *
 * transport.test.ts covers the transports' request counters; this file does not repeat them.
 *
 * Daemons run in child processes; the test never makes a synchronous syscall on a mount. Anything
 * a test mounts or starts is torn down in `finally` (and by a process-exit safety net): the
 * harness is test/helpers/cli-daemon.ts.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmod, mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO, cleanupAll, isMounted, waitFor } from "../helpers/mount.ts";
import { run, sh } from "../helpers/run.ts";
import { FIRST, NOBODY, withDaemon, mountEntry, statusOf } from "../helpers/cli-daemon.ts";

afterAll(cleanupAll);
// bunfig.toml's [test] timeout does not reach every runner; these tests mount and wait for daemons
setDefaultTimeout(60_000);

describe("mount options", () => {
  test("options, flags and plugin options are accepted in any order", async () => {
    await withDaemon(
      (dir) => ["mount", "-o", "fsname=order-test", "-d", "--no-watch", "memfs", "-oro", "-f", dir, "-o", "subtype=ordered", "--mode", "700", "-o", "attr_timeout=0"],
      async (dir, d) => {
        const e = await mountEntry(dir);
        expect(e?.source).toBe("order-test");
        expect(e?.type).toBe("fuse.ordered");
        expect(e?.options).toContain("ro");
        expect((await stat(dir)).mode & 0o7777).toBe(0o700); // --mode reached the plugin
        await waitFor(() => /GETATTR node=1 /.test(d.output()), 5000);
        expect(d.output()).toMatch(/GETATTR node=1 /); // -d took effect
        expect((await statusOf(dir)).watching).toBe(false); // --no-watch took effect
      },
    );
  });

  test("generic mount(8) options are accepted; rw, nosuid, nodev, noexec, noatime show in /proc/mounts; noexec forbids exec", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "defaults,rw,nosuid,nodev,noexec,noatime,_netdev,nofail,auto,relatime,nouser"],
      async (dir) => {
        const e = await mountEntry(dir);
        for (const o of ["rw", "nosuid", "nodev", "noexec", "noatime"]) expect(e?.options, `${o} in ${e?.options}`).toContain(o);
        const script = join(dir, "script.sh");
        await writeFile(script, "#!/bin/sh\necho ran\n");
        await chmod(script, 0o755);
        const direct = await run(["sh", "-c", `exec "$1"`, "sh", script], { timeoutMs: 10_000 });
        expect(direct.code).not.toBe(0);
        expect(direct.stderr).toMatch(/Permission denied/);
      },
    );
  });

  test("ro: writes fail with EROFS, and a later rw overrides an earlier ro", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "ro"],
      async (dir) => {
        expect((await mountEntry(dir))?.options).toContain("ro");
        for (const op of [() => writeFile(join(dir, "f"), "x"), () => mkdir(join(dir, "d"))]) {
          const err = await op().then(() => null, (e) => e as NodeJS.ErrnoException);
          expect(err?.code).toBe("EROFS");
        }
        expect(await readdir(dir)).toEqual([]);
      },
    );
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "ro", "-o", "rw"],
      async (dir) => {
        expect((await mountEntry(dir))?.options).toContain("rw");
        await writeFile(join(dir, "f"), "x");
        expect(await readFile(join(dir, "f"), "utf8")).toBe("x");
      },
    );
  });

  test("fsname= and subtype= show in /proc/mounts; the default subtype is the plugin's name", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "fsname=my-data,subtype=mytype"],
      async (dir) => {
        const e = await mountEntry(dir);
        expect(e?.source).toBe("my-data");
        expect(e?.type).toBe("fuse.mytype");
      },
    );
    await withDaemon(
      (dir) => ["mount", join(REPO, "test/fixtures/hello.ts"), dir],
      async (dir) => {
        const e = await mountEntry(dir);
        expect(e?.type).toBe("fuse.hello");
        expect(e?.source).toBe("hello");
      },
    );
  });

  test("max_read=N caps every READ request (direct_io, seen in the -d trace) and shows in /proc/mounts", async () => {
    const MAX = 16384;
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-d", "-o", `direct_io,max_read=${MAX}`, "-o", FIRST === "classic" ? "io_uring=off" : "io_uring=on"],
      async (dir, d) => {
        expect((await mountEntry(dir))?.options).toContain(`max_read=${MAX}`);
        const data = Buffer.alloc(256 * 1024, 7);
        await writeFile(join(dir, "big"), data);
        const mark = d.output().length;
        await sh(["dd", `if=${join(dir, "big")}`, "of=/dev/null", "bs=256k", "count=1"], { timeoutMs: 20_000 });
        await waitFor(() => [...d.output().slice(mark).matchAll(/ READ node=\d+ .*size=(\d+)/g)].length >= data.length / MAX, 5000);
        const sizes = [...d.output().slice(mark).matchAll(/ READ node=\d+ .*size=(\d+)/g)].map((m) => Number(m[1]));
        expect(sizes.length).toBeGreaterThanOrEqual(data.length / MAX);
        expect(Math.max(...sizes)).toBe(MAX);
      },
    );
  });

  test("without allow_other another user gets EACCES; with allow_other they get in", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir],
      async (dir) => {
        await writeFile(join(dir, "f"), "for everyone");
        await chmod(join(dir, "f"), 0o644);
        const r = await run([...NOBODY, "stat", dir], { timeoutMs: 10_000 });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied/);
        expect((await mountEntry(dir))?.options).not.toContain("allow_other");
      },
    );
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "allow_other"],
      async (dir) => {
        await writeFile(join(dir, "f"), "for everyone");
        await chmod(join(dir, "f"), 0o644);
        expect(await sh([...NOBODY, "cat", join(dir, "f")], { timeoutMs: 10_000 })).toBe("for everyone");
        expect(await sh([...NOBODY, "ls", dir], { timeoutMs: 10_000 })).toBe("f\n");
        // allow_other does not switch default_permissions off: the kernel still checks modes
        const w = await run([...NOBODY, "touch", join(dir, "g")], { timeoutMs: 10_000 });
        expect(w.stderr).toMatch(/Permission denied/);
      },
    );
  });

  test("allow_root (daemon run by root): root gets in, another user gets EACCES", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "allow_root,entry_timeout=0,attr_timeout=0"],
      async (dir) => {
        await writeFile(join(dir, "f"), "owner and root only");
        await chmod(join(dir, "f"), 0o644);
        expect(await readFile(join(dir, "f"), "utf8")).toBe("owner and root only");
        const r = await run([...NOBODY, "cat", join(dir, "f")], { timeoutMs: 10_000 });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied/);
      },
    );
  });

  test("auto_unmount: the mount goes away by itself when the daemon is SIGKILLed", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-o", "auto_unmount"],
      async (dir, d) => {
        await writeFile(join(dir, "f"), "x");
        d.signal("SIGKILL");
        expect(await d.waitExit(10_000)).toBe(true);
        expect(await waitFor(async () => !(await isMounted(dir)), 10_000), `${dir} still mounted after the daemon died`).toBe(true);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe("-d trace", () => {
  const LINE = /^\[(\d+)\] ([A-Z_]+) node=(\d+)(.*) uid=(\d+) pid=(\d+) → (OK \d+ bytes(?: \{.*\})?|-E[A-Z0-9]+|\(no reply\)) (\d+)µs \[(\w+)\]$/;

  test("prints one readable line per request: opcode, node, arguments, result or errno, latency", async () => {
    await withDaemon(
      (dir) => ["mount", "memfs", dir, "-d", "-o", FIRST === "classic" ? "io_uring=off" : "io_uring=on"],
      async (dir, d) => {
        const mark = d.output().length;
        await stat(join(dir, "no-such-name")).catch(() => {});
        await writeFile(join(dir, "traced"), "hello");
        expect(await readFile(join(dir, "traced"), "utf8")).toBe("hello");
        const want = (re: RegExp) => d.output().slice(mark).split("\n").some((l) => re.test(l));
        await waitFor(() => want(/^\[\d+\] RELEASE /) && want(/^\[\d+\] READ /), 5000);
        const lines = d.output().slice(mark).split("\n").filter((l) => l.startsWith("["));
        expect(lines.length).toBeGreaterThanOrEqual(5);
        for (const l of lines) expect(l, "trace line format").toMatch(LINE);
        const parsed = lines.map((l) => LINE.exec(l)!);
        const find = (op: string, pred: (m: RegExpExecArray) => boolean = () => true) => parsed.find((m) => m[2] === op && pred(m));
        const miss = find("LOOKUP", (m) => m[4]!.includes('"no-such-name"'));
        expect(miss?.[3]).toBe("1");
        expect(miss?.[7]).toBe("-ENOENT");
        expect(find("CREATE", (m) => m[4]!.includes('"traced"'))?.[7]).toMatch(/^OK \d+ bytes \{ino=\d+ .*\}$/);
        const write = find("WRITE");
        expect(write?.[4]).toContain("size=5");
        expect(write?.[5]).toBe(String(process.getuid!()));
        expect(find("READ")?.[7]).toMatch(/^OK 5 bytes$/); // data replies: the byte count says it all
        for (const m of parsed) expect(Number(m[8])).toBeLessThan(10_000_000);
      },
    );
  });
});
