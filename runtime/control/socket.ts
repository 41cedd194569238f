/**
 * The daemon's control socket: a Unix socket only its owner can use (in the runtime directory,
 * 0700, see rundir.ts; socket 0600), named after the mountpoint, answering `status` with JSON.
 * `furing status` is its client.
 */
import { chmodSync, rmSync, readdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { ensureRuntimeDir, existingRuntimeDir, runtimeDirPath } from "./rundir.ts";

/** The control socket of `mountpoint` (and, with `.log`, its background log) in the runtime directory. */
export function controlPath(mountpoint: string, suffix = ".sock"): string {
  const h = createHash("sha256").update(resolve(mountpoint)).digest("hex").slice(0, 16);
  return join(runtimeDirPath(), `${h}${suffix}`);
}

export interface ControlServer {
  close(): void;
}

/**
 * Serve control requests for a mount: `status`, and `gc` (a full garbage collection on this
 * thread and, through `gcOthers`, on every reactor Worker, then the status: how the heap
 * settles, for leak checks).
 */
export function serveControl(mountpoint: string, status: () => unknown | Promise<unknown>, gcOthers: () => Promise<void> = async () => {}): ControlServer {
  ensureRuntimeDir();
  const path = controlPath(mountpoint);
  rmSync(path, { force: true }); // a stale socket from a killed daemon
  const server = Bun.listen<{ buf: string }>({
    unix: path,
    socket: {
      open(s) {
        s.data = { buf: "" };
      },
      data(s, chunk) {
        s.data.buf += chunk.toString();
        if (!s.data.buf.includes("\n")) return;
        const cmd = s.data.buf.trim();
        s.data.buf = "";
        let reply: Promise<string>;
        if (cmd === "status") reply = Promise.resolve(status()).then((v) => JSON.stringify(v));
        else if (cmd === "gc") {
          const t0 = performance.now();
          Bun.gc(true);
          const gcMs = Math.round((performance.now() - t0) * 100) / 100;
          reply = gcOthers().then(() => status()).then((v) => JSON.stringify({ ...(v as object), gc_ms: gcMs }));
        }
        else reply = Promise.resolve(JSON.stringify({ error: `unknown command ${JSON.stringify(cmd)}` }));
        // (status with reactor Workers asks each of them: it answers asynchronously)
        void reply.then((r) => s.end(r + "\n"), (e) => s.end(JSON.stringify({ error: (e as Error).message }) + "\n"));
      },
    },
  });
  chmodSync(path, 0o600);
  return {
    close() {
      server.stop(true);
      rmSync(path, { force: true });
    },
  };
}

/** Ask the daemon serving `mountpoint` for its status; null when no daemon answers. */
export async function queryStatus(mountpoint: string, timeoutMs = 5000, command = "status"): Promise<unknown | null> {
  if (existingRuntimeDir() === null) return null; // and never a socket in a directory that is not ours
  return querySocket(controlPath(mountpoint), timeoutMs, command);
}

export async function querySocket(path: string, timeoutMs = 5000, command = "status"): Promise<unknown | null> {
  if (!existsSync(path)) return null;
  return new Promise((res) => {
    let buf = "";
    const timer = setTimeout(() => res(null), timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          s.write(command + "\n");
        },
        data(_s, chunk) {
          buf += chunk.toString();
        },
        close() {
          clearTimeout(timer);
          try {
            res(JSON.parse(buf));
          } catch {
            res(null);
          }
        },
        error() {
          clearTimeout(timer);
          res(null);
        },
      },
    }).catch(() => {
      clearTimeout(timer);
      res(null);
    });
  });
}

/** Control sockets of all running daemons of this user. */
export function listControlSockets(): string[] {
  const dir = existingRuntimeDir();
  if (dir === null) return [];
  return readdirSync(dir).filter((f) => f.endsWith(".sock")).map((f) => join(dir, f));
}
