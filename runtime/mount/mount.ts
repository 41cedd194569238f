/**
 * Mounting and unmounting. mount(2) is made directly (root); unmounting is always done by a child
 * process, because the kernel may need this daemon to answer requests before umount returns, and
 * the daemon's only thread must keep serving meanwhile.
 */
import { statSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { resolve } from "node:path";
import { libc, errno, cstr, SyscallError } from "../ffi/libc.ts";
import type { MountOptions } from "./options.ts";

export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MountError";
  }
}

/** Decode the octal escapes /proc/self/mountinfo uses for spaces and the like. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** Current mounts of this mount namespace. */
export function listMounts(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    if (!line) continue;
    const [pre, post] = line.split(" - ");
    const f = pre!.split(" ");
    const g = (post ?? "").split(" ");
    out.push({ mountpoint: unescapeMountPath(f[4]!), fstype: g[0] ?? "", source: unescapeMountPath(g[1] ?? "") });
  }
  return out;
}

export function findMount(dir: string): MountEntry | undefined {
  const abs = resolve(dir);
  return listMounts().findLast((m) => m.mountpoint === abs);
}

/** Check a mountpoint before mounting; returns its absolute path. Never touches a FUSE mount. */
export function checkMountpoint(dir: string): string {
  const abs = resolve(dir);
  const existing = findMount(abs);
  if (existing !== undefined && existing.fstype.startsWith("fuse")) throw new MountError(`${abs}: already mounted (${existing.fstype} from ${existing.source}; if its daemon is gone: furing unmount ${abs})`);
  let st;
  try {
    st = statSync(abs);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") throw new MountError(`${abs}: mountpoint does not exist`);
    if (code === "ENOTCONN") throw new MountError(`${abs}: a dead FUSE mount is there (run: furing unmount ${abs})`);
    throw new MountError(`${abs}: cannot use as mountpoint: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new MountError(`${abs}: mountpoint is not a directory`);
  return abs;
}

/** Options fusermount3 takes for an unprivileged mount (it adds fd, rootmode, user_id, group_id). */
export function fusermountOptions(o: MountOptions, defaultSubtype: string): string {
  const subtype = o.subtype ?? defaultSubtype;
  const opts = [`fsname=${o.fsname ?? subtype}`, `subtype=${subtype}`, "nosuid", "nodev"];
  if (o.mountFlags & 1) opts.push("ro");
  if (o.mountFlags & 8) opts.push("noexec");
  if (o.mountFlags & 1024) opts.push("noatime");
  if (o.defaultPermissions) opts.push("default_permissions");
  if (o.allowOther) opts.push("allow_other");
  if (o.allowRoot && !o.allowOther) opts.push("allow_other"); // narrowed to owner + root by the dispatcher
  if (o.maxRead !== undefined) opts.push(`max_read=${o.maxRead}`);
  return opts.join(",");
}

/** mount(2) a FUSE filesystem served through `fd`. */
export function mountFuse(fd: number, mountpoint: string, o: MountOptions, defaultSubtype: string): void {
  const uid = process.getuid!(), gid = process.getgid!();
  const subtype = o.subtype ?? defaultSubtype;
  const source = o.fsname ?? subtype;
  const data = [`fd=${fd}`, "rootmode=40000", `user_id=${uid}`, `group_id=${gid}`];
  if (o.defaultPermissions) data.push("default_permissions");
  if (o.allowOther || o.allowRoot) data.push("allow_other"); // allow_root: the kernel knows allow_other only; root is let in below
  if (o.maxRead !== undefined) data.push(`max_read=${o.maxRead}`);
  const rc = libc.mount(cstr(source), cstr(mountpoint), cstr(`fuse.${subtype}`), o.mountFlags, cstr(data.join(",")));
  if (rc !== 0) {
    const e = errno();
    if (e === 1) throw new MountError(`${mountpoint}: mount: permission denied`);
    throw new MountError(`${mountpoint}: ${new SyscallError("mount", e).message}`);
  }
}

export interface UnmountResult {
  ok: boolean;
  /** The mount is in use (EBUSY). */
  busy: boolean;
  message: string;
}

/**
 * Unmount from a child process (never on the reactor: the kernel may wait for this daemon).
 * `lazy` detaches now and lets the kernel finish when the last user is gone.
 */
export async function unmountInChild(dir: string, lazy = false): Promise<UnmountResult> {
  const root = process.getuid!() === 0;
  const cmd = root ? ["umount", ...(lazy ? ["-l"] : []), dir] : ["fusermount3", "-u", ...(lazy ? ["-z"] : []), dir];
  let proc;
  try {
    proc = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  } catch (e) {
    return { ok: false, busy: false, message: `cannot run ${cmd[0]}: ${(e as Error).message}` };
  }
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  const message = err.trim();
  return { ok: code === 0, busy: /busy/i.test(message), message };
}

/**
 * auto_unmount: a watchdog process that lazily unmounts `dir` once this daemon is gone, however it
 * died (its stdin is a pipe from us; EOF means we exited). Harmless after a clean unmount.
 */
export function spawnAutoUnmount(dir: string): void {
  const root = process.getuid!() === 0;
  const cmd = root ? `umount -l -- "$1"` : `fusermount3 -u -z -- "$1"`;
  const p = Bun.spawn(["sh", "-c", `cat >/dev/null; ${cmd} 2>/dev/null`, "furing-auto-unmount", dir], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
    detached: true,
  } as Parameters<typeof Bun.spawn>[1]);
  p.unref();
  autoUnmountKeep.push(p);
}
const autoUnmountKeep: unknown[] = []; // the pipe must stay open as long as we live

/** Synchronous umount2(2) for `furing unmount` (a process that does not serve the mount). */
export function umountNow(dir: string, lazy: boolean): void {
  const rc = libc.umount2(cstr(dir), lazy ? 2 : 0);
  if (rc !== 0) {
    const e = errno();
    if (e === 16) throw new MountError(`${dir}: mount is busy${describeHolders(dir)} (use -z to detach lazily)`);
    if (e === 22) throw new MountError(`${dir}: not a mountpoint`);
    throw new MountError(`${dir}: ${new SyscallError("umount2", e).message}`);
  }
}

/** Processes whose cwd, root, open files or mappings lie under `dir` (read from /proc only). */
export function findHolders(dir: string): { pid: number; comm: string }[] {
  const abs = resolve(dir);
  const under = (p: string) => p === abs || p.startsWith(abs + "/");
  const out: { pid: number; comm: string }[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let hit = false;
    try {
      for (const l of ["cwd", "root"]) if (under(readlinkSync(`/proc/${pid}/${l}`))) hit = true;
      if (!hit) for (const fd of readdirSync(`/proc/${pid}/fd`)) if (under(readlinkSync(`/proc/${pid}/fd/${fd}`))) { hit = true; break; }
      if (!hit) for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
        const i = line.indexOf("/");
        if (i > 0 && under(line.slice(i))) { hit = true; break; }
      }
      if (hit) out.push({ pid, comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim() });
    } catch {
      // process gone or not ours to look at
    }
  }
  return out;
}

export function describeHolders(dir: string): string {
  const h = findHolders(dir);
  return h.length === 0 ? "" : `: held by ${h.map((p) => `${p.pid} (${p.comm})`).join(", ")}`;
}
