/**
 * Mounting as a normal user, through fusermount3: the daemon runs as `nobody`, fusermount3 mounts
 * and passes the /dev/fuse descriptor back over a socket pair, and `allow_other` / `allow_root`
 * are allowed exactly when /etc/fuse.conf has `user_allow_other`.
 *
 * The program runs from a copy of the repository that every user can read (the checkout may live
 * under /root, mode 0700). The test needs root (to switch user with setpriv and to write
 * /etc/fuse.conf, which is restored afterwards, even if the run is interrupted) and /dev/fuse
 * mode 0666 (scripts/setup).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Subprocess } from "bun";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { chmod, chown, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO, isMounted, makeTempDir, mountedType, removeTempDir, transports, waitFor, type Transport } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { describeResult, run, sh } from "../helpers/run.ts";

setDefaultTimeout(60_000);

const NOBODY_UID = 65534;
const NOBODY_GID = 65534;
/** A uid/gid with no account: "some other user" for allow_other / allow_root checks. */
const STRANGER = 4242;
const FUSE_CONF = "/etc/fuse.conf";
const READY = "furing: ready ";
/** setpriv flags that leave nobody CAP_SYS_NICE (ambient, so it survives the exec). */
const NICE_CAP = ["--inh-caps=+sys_nice", "--ambient-caps=+sys_nice"];

let base = "";
let app = "";
let home = "";
let originalConf: string | null = null;

function as(uid: number, gid: number, cmd: string[], setprivFlags: string[] = []): string[] {
  return [
    "setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", ...setprivFlags,
    "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", `HOME=${home}`, `TMPDIR=${home}`, `XDG_RUNTIME_DIR=${join(home, "run")}`,
    ...cmd,
  ];
}
const asNobody = (cmd: string[], setprivFlags: string[] = []) => as(NOBODY_UID, NOBODY_GID, cmd, setprivFlags);
/** `furing <args>` run by nobody from the world-readable copy. */
const furingAsNobody = (args: string[], timeoutMs = 30_000) =>
  run(asNobody([process.execPath, join(app, "runtime/cli/main.ts"), ...args]), { cwd: app, timeoutMs });

// ---------------------------------------------------------------------------------------------
// /etc/fuse.conf, restored whatever happens

function writeConf(userAllowOther: boolean): void {
  const kept = (originalConf ?? "").split("\n").filter((l) => l.trim() !== "user_allow_other").join("\n");
  writeFileSync(FUSE_CONF, `${kept.trimEnd()}\n# furing unprivileged.test.ts (temporary)\n${userAllowOther ? "user_allow_other\n" : ""}`);
}

function restoreConf(): void {
  if (originalConf !== null) writeFileSync(FUSE_CONF, originalConf);
}
process.on("exit", restoreConf);

// ---------------------------------------------------------------------------------------------
// Daemons run by nobody

interface UserDaemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  mnt: string;
  output(): string;
  alive(): boolean;
}
const live = new Set<UserDaemon>();
process.on("exit", () => {
  for (const d of live) {
    try { Bun.spawnSync(["umount", "-l", d.mnt], { stdout: "ignore", stderr: "ignore", timeout: 5000 }); } catch {}
    try { d.proc.kill("SIGKILL"); } catch {}
  }
});

/** A mountpoint owned by nobody. */
async function userMountpoint(name: string): Promise<string> {
  const mnt = join(base, name);
  await mkdir(mnt);
  await chown(mnt, NOBODY_UID, NOBODY_GID);
  return mnt;
}

/** `setprivFlags`: more of setpriv's flags (e.g. capabilities nobody keeps). */
function spawnAsNobody(args: string[], mnt: string, setprivFlags: string[] = []): UserDaemon {
  const proc = Bun.spawn(asNobody([process.execPath, join(app, "runtime/cli/main.ts"), ...args], setprivFlags), {
    cwd: app, stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    try { for await (const c of s) out += dec.decode(c, { stream: true }); } catch {}
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const d: UserDaemon = { proc, mnt, output: () => out, alive: () => proc.exitCode === null && proc.signalCode === null };
  live.add(d);
  return d;
}

/** Mounts as nobody and waits until it serves; throws with the daemon's output otherwise. */
async function mountAsNobody(mnt: string, opts: string[], transport: Transport, setprivFlags: string[] = []): Promise<UserDaemon> {
  const o = [...opts, transport === "classic" ? "io_uring=off" : "io_uring=on"];
  const d = spawnAsNobody(["mount", "memfs", mnt, "-o", o.join(",")], mnt, setprivFlags);
  await waitFor(() => d.output().includes(READY) || !d.alive(), 20_000);
  if (!d.output().includes(READY) || (await mountedType(mnt)) === undefined) {
    await stop(d);
    throw new Error(`mount as nobody (-o ${o.join(",")}) did not get ready:\n${d.output()}`);
  }
  return d;
}

/** SIGTERM, lazy unmount, SIGKILL: whatever it takes; never throws. */
async function stop(d: UserDaemon): Promise<void> {
  if (d.alive()) {
    d.proc.kill("SIGTERM");
    await waitFor(() => !d.alive(), 10_000);
  }
  if (await isMounted(d.mnt)) await run(["umount", "-l", d.mnt], { timeoutMs: 10_000 });
  if (d.alive()) {
    d.proc.kill("SIGKILL");
    await waitFor(() => !d.alive(), 5000);
  }
  live.delete(d);
}

async function withUserMount(name: string, opts: string[], transport: Transport, fn: (d: UserDaemon) => Promise<void>, setprivFlags: string[] = []): Promise<void> {
  const mnt = await userMountpoint(name);
  let d: UserDaemon | undefined;
  try {
    d = await mountAsNobody(mnt, opts, transport, setprivFlags);
    await fn(d);
  } catch (e) {
    if (d) (e as Error).message += `\n--- daemon output ---\n${d.output().slice(-6000)}`;
    throw e;
  } finally {
    if (d) await stop(d);
    else if (await isMounted(mnt)) await run(["umount", "-l", mnt], { timeoutMs: 10_000 });
  }
}

async function mountOptions(dir: string): Promise<string[]> {
  const lines = (await readFile("/proc/self/mounts", "utf8")).split("\n");
  const hit = lines.filter((l) => l.split(" ")[1] === dir).pop();
  return hit?.split(" ")[3]?.split(",") ?? [];
}

// ---------------------------------------------------------------------------------------------

const devFuseOpen = (() => {
  try {
    return (statSync("/dev/fuse").mode & 0o666) === 0o666;
  } catch {
    return false;
  }
})();

describe.skipIf(needsRoot("unprivileged mounts through fusermount3", "switches to user nobody with setpriv"))("unprivileged mounts through fusermount3", () => {
  beforeAll(async () => {
    expect(devFuseOpen, "/dev/fuse must be mode 0666 for normal users (run scripts/setup as root)").toBe(true);
    originalConf = (() => {
      try {
        return readFileSync(FUSE_CONF, "utf8");
      } catch {
        return null;
      }
    })();
    base = await makeTempDir("unpriv");
    await chmod(base, 0o755);
    app = join(base, "app");
    home = join(base, "home");
    await mkdir(join(app, "test"), { recursive: true });
    await sh(["cp", "-a", "runtime", "plugins", "package.json", "tsconfig.json", "node_modules", app], { cwd: REPO, timeoutMs: 60_000 });
    await sh(["cp", "-a", "test/fixtures", join(app, "test")], { cwd: REPO });
    await sh(["chmod", "-R", "a+rX", app]);
    await mkdir(join(home, "run"), { recursive: true });
    await sh(["chown", "-R", `${NOBODY_UID}:${NOBODY_GID}`, home]);
    await chmod(join(home, "run"), 0o700);
    const v = await furingAsNobody(["--version"]);
    expect(v.code, `nobody cannot run the copied program: ${describeResult(v)}`).toBe(0);
  });

  afterAll(async () => {
    for (const d of [...live]) await stop(d);
    restoreConf();
    if (base) await removeTempDir(base);
  });

  for (const transport of transports()) {
    test(`nobody mounts memfs (${transport}), uses it, root is kept out, and \`furing unmount\` as nobody unmounts it`, async () => {
      await withUserMount(`plain-${transport}`, [], transport, async (d) => {
        const { mnt } = d;
        expect(d.output()).toContain(`transport ${transport}`);
        expect(await mountedType(mnt)).toBe("fuse.memfs");
        const opts = await mountOptions(mnt);
        for (const o of [`user_id=${NOBODY_UID}`, `group_id=${NOBODY_GID}`, "nosuid", "nodev", "default_permissions"]) expect(opts).toContain(o);
        expect(opts).not.toContain("allow_other");

        // usable by its owner
        await sh(asNobody(["sh", "-c", `mkdir "$1/dir" && echo unprivileged > "$1/dir/f"`, "sh", mnt]), { timeoutMs: 10_000 });
        expect(await sh(asNobody(["cat", join(mnt, "dir/f")]), { timeoutMs: 10_000 })).toBe("unprivileged\n");
        expect(await sh(asNobody(["stat", "-c", "%u:%g %a", join(mnt, "dir/f")]), { timeoutMs: 10_000 })).toBe(`${NOBODY_UID}:${NOBODY_GID} 644\n`);
        expect(await sh(asNobody(["ls", mnt]), { timeoutMs: 10_000 })).toBe("dir\n");

        // root is another user here: without allow_other the kernel keeps it out
        const r = await run(["stat", mnt], { timeoutMs: 10_000 });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied/);

        // status, through nobody's own control socket
        const s = await furingAsNobody(["status", mnt, "--json"]);
        expect(s.code, describeResult(s)).toBe(0);
        const st = JSON.parse(s.stdout);
        expect(st.pid).toBe(d.proc.pid);
        expect(st.transport).toBe(transport);
        expect(st.state).toBe("serving");
        if (transport === "io_uring") expect(st.fixedBuffers).not.toBe("registered"); // RLIMIT_MEMLOCK: a normal user cannot pin them
        // SCHED_IDLE could not be left again without CAP_SYS_NICE or RLIMIT_NICE ≥ 20: Workers stay normal, saying why
        for (const w of st.reactors.workers) expect(w.sched).toMatchObject({ policy: "SCHED_OTHER", note: "leaving SCHED_IDLE when a Worker starves needs CAP_SYS_NICE or RLIMIT_NICE ≥ 20 (it is 0)" });

        const u = await furingAsNobody(["unmount", mnt]);
        expect(u.code, describeResult(u)).toBe(0);
        expect(await isMounted(mnt)).toBe(false);
        expect(await waitFor(() => !d.alive(), 10_000)).toBe(true);
        expect(d.proc.exitCode).toBe(0);
      });
    });
  }

  test("an unprivileged daemon with CAP_SYS_NICE runs its reactor Workers in SCHED_IDLE, and can move them back", async () => {
    await withUserMount("nice", [], "io_uring", async (d) => {
      type Row = { sched: { tid: number; policy: string } };
      const workers = async (): Promise<Row[]> => {
        const s = await furingAsNobody(["status", d.mnt, "--json"]);
        expect(s.code, describeResult(s)).toBe(0);
        return JSON.parse(s.stdout).reactors.workers;
      };
      // (a CPU burst next to a Worker, the status command's own start included, may move it for its 1 s hold)
      let ws: Row[] = [];
      const idle = await waitFor(async () => (ws = await workers()).length > 0 && ws.every((w) => w.sched.policy === "SCHED_IDLE"), 5000);
      expect(idle, JSON.stringify(ws)).toBe(true);
      // what the guard does when one starves, done by nobody from outside with the same capability
      const tid = ws[0]!.sched.tid;
      const r = await run(asNobody(["chrt", "--other", "-p", "0", String(tid)], NICE_CAP), { timeoutMs: 10_000 });
      expect(r.code, describeResult(r)).toBe(0);
      expect(await readFile(`/proc/${d.proc.pid}/task/${tid}/sched`, "utf8")).toMatch(/^policy\s*:\s*0$/m);
    }, NICE_CAP);
  });

  test("allow_other and allow_root are refused by fusermount3 when /etc/fuse.conf lacks user_allow_other", async () => {
    writeConf(false);
    try {
      for (const opt of ["allow_other", "allow_root"]) {
        const mnt = await userMountpoint(`refused-${opt}`);
        const r = await furingAsNobody(["mount", "memfs", mnt, "-o", opt]);
        const mounted = await isMounted(mnt);
        if (mounted) await run(["umount", "-l", mnt], { timeoutMs: 10_000 });
        expect(r.code, describeResult(r)).toBe(1);
        expect(mounted).toBe(false);
        expect(r.stderr).toContain(mnt);
        expect(r.stderr).toContain("user_allow_other");
        expect(r.stderr).toContain("/etc/fuse.conf");
      }
    } finally {
      restoreConf();
    }
  });

  test("with user_allow_other in /etc/fuse.conf, allow_other lets root and other users in", async () => {
    writeConf(true);
    try {
      await withUserMount("allow-other", ["allow_other"], transports()[0]!, async ({ mnt }) => {
        expect(await mountOptions(mnt)).toContain("allow_other");
        await sh(asNobody(["sh", "-c", `echo shared > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
        expect(await sh(["cat", join(mnt, "f")], { timeoutMs: 10_000 })).toBe("shared\n");
        expect(await sh(as(STRANGER, STRANGER, ["cat", join(mnt, "f")]), { timeoutMs: 10_000 })).toBe("shared\n");
        // default_permissions still applies: the stranger may read, not write
        const w = await run(as(STRANGER, STRANGER, ["sh", "-c", `echo x > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
        expect(w.stderr).toMatch(/Permission denied/);
      });
    } finally {
      restoreConf();
    }
  });

  test("with user_allow_other, allow_root lets root in and keeps other users out (EACCES)", async () => {
    writeConf(true);
    try {
      await withUserMount("allow-root", ["allow_root", "entry_timeout=0", "attr_timeout=0"], transports()[0]!, async ({ mnt }) => {
        await sh(asNobody(["sh", "-c", `echo owner-and-root > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
        expect(await sh(["cat", join(mnt, "f")], { timeoutMs: 10_000 })).toBe("owner-and-root\n");
        expect(await sh(asNobody(["cat", join(mnt, "f")]), { timeoutMs: 10_000 })).toBe("owner-and-root\n");
        const r = await run(as(STRANGER, STRANGER, ["cat", join(mnt, "f")]), { timeoutMs: 10_000 });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied/);
      });
    } finally {
      restoreConf();
    }
  });

  test("an unprivileged daemon killed with SIGKILL: `furing unmount` as that user recovers the mountpoint, and a new mount works", async () => {
    const transport = transports()[0]!;
    await withUserMount("killed", [], transport, async (d) => {
      const { mnt } = d;
      await sh(asNobody(["sh", "-c", `echo before > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
      d.proc.kill("SIGKILL");
      expect(await waitFor(() => !d.alive(), 10_000)).toBe(true);
      expect(await isMounted(mnt)).toBe(true);
      const dead = await run(asNobody(["ls", mnt]), { timeoutMs: 10_000 });
      expect(dead.code).not.toBe(0);

      const u = await furingAsNobody(["unmount", mnt]);
      expect(u.code, describeResult(u)).toBe(0);
      expect(await isMounted(mnt)).toBe(false);

      const again = await mountAsNobody(mnt, [], transport);
      try {
        expect(await sh(asNobody(["ls", "-A", mnt]), { timeoutMs: 10_000 })).toBe("");
        await sh(asNobody(["sh", "-c", `echo after > "$1/f"`, "sh", mnt]), { timeoutMs: 10_000 });
        expect(await sh(asNobody(["cat", join(mnt, "f")]), { timeoutMs: 10_000 })).toBe("after\n");
      } finally {
        await stop(again);
      }
    });
  });
});
