/**
 * Worker side of test/unit/passthrough-shared.test.ts: a passthrough instance on the regions it
 * is posted (attaching, as a reactor Worker does), hammering a few source directories with
 * lookups, creates, links, renames, unlinks, mkdirs, rmdirs, opens and directory listings. It
 * gives back every lookup and handle at the end and posts a summary (or the error).
 */
import { readSync, writeSync, fsyncSync, fdatasyncSync } from "node:fs";
import { FuseError, O_CREAT, O_RDWR, type DirListPlus, type Entry, type FileIO, type Request } from "../../runtime/api/index.ts";
import { createOps } from "../../plugins/passthrough/ops.ts";
import { openSource } from "../../plugins/passthrough/state.ts";
import { lcg, postedRegions, serveJobs } from "./worker-job.ts";

export interface PassthroughJob {
  regions: Record<string, SharedArrayBuffer>;
  source: string;
  id: number;
  iterations: number;
  /** Names (relative to the source root) of the directories to work in. */
  dirs: string[];
}

export interface PassthroughJobResult {
  errors: Record<string, number>;
}

const req: Request = { op: "test", uid: 0, gid: 0, pid: process.pid, signal: new AbortController().signal };
const io: FileIO = {
  read: async (fd, dest, offset) => readSync(fd, dest, 0, dest.length, offset),
  write: async (fd, src, offset) => writeSync(fd, src, 0, src.length, offset),
  fsync: async (fd, datasync) => (datasync ? fdatasyncSync(fd) : fsyncSync(fd)),
};

export async function runPassthroughJob(job: PassthroughJob): Promise<PassthroughJobResult> {
  const state = openSource({ source: job.source, "fd-cache": 64, "file-handles": true }, "/nonexistent-mountpoint", () => {}, postedRegions(job.regions));
  const fs = createOps(state, { io, passthrough: () => false, reactor: { index: job.id + 1, count: 4, primary: false } });
  const rnd = lcg((job.id + 7) * 2654435761);
  const lookups = new Map<number, number>();
  const looked = (e: Entry) => lookups.set(e.ino, (lookups.get(e.ino) ?? 0) + 1);
  const errors: Record<string, number> = {};
  const opens: [number, number][] = [];
  // the top directories, looked up once (held for the whole run)
  const dirs = job.dirs.map((d) => {
    const e = fs.lookup!(req, 1, d) as Entry;
    looked(e);
    return e.ino;
  });
  const dir = () => dirs[rnd(dirs.length)] as number;
  const name = () => `n${rnd(10)}`;
  const plus: DirListPlus = {
    add(n, e) {
      if (e !== null && n !== "." && n !== "..") looked(e);
      return true;
    },
  };
  for (let i = 0; i < job.iterations; i++) {
    try {
      switch (rnd(10)) {
        case 0: {
          const r = (await fs.create!(req, dir(), name(), 0o644, O_CREAT | O_RDWR, 0)) as { entry: Entry; fh: number };
          looked(r.entry);
          opens.push([r.entry.ino, r.fh]);
          break;
        }
        case 1: {
          const e = fs.lookup!(req, dir(), name()) as Entry;
          looked(e);
          if ((e.mode & 0o170000) !== 0o040000) looked(fs.link!(req, e.ino, dir(), name()) as Entry);
          break;
        }
        case 2:
        case 3:
          fs.rename!(req, dir(), name(), dir(), name(), 0);
          break;
        case 4:
          fs.unlink!(req, dir(), name());
          break;
        case 5:
          looked(fs.mkdir!(req, dir(), name(), 0o755, 0) as Entry);
          break;
        case 6:
          fs.rmdir!(req, dir(), name());
          break;
        case 7: {
          if (opens.length > 0) {
            const [ino, fh] = opens.splice(rnd(opens.length), 1)[0]!;
            fs.release!(req, ino, fh, O_RDWR);
          }
          const [ino, n] = lookups.entries().next().value ?? [0, 0];
          if (ino !== 0 && !dirs.includes(ino)) {
            fs.forget!(ino, n);
            lookups.delete(ino);
          }
          break;
        }
        case 8: {
          const d = dir();
          const o = fs.opendir!(req, d, 0) as { fh: number };
          fs.readdirplus!(req, d, o.fh, 0, plus);
          fs.releasedir!(req, d, o.fh);
          break;
        }
        case 9: {
          if (opens.length === 0) break;
          const [ino, fh] = opens[rnd(opens.length)]!;
          await fs.write!(req, ino, fh, 0, new Uint8Array(100).fill(job.id), 0);
          break;
        }
      }
    } catch (e) {
      if (!(e instanceof FuseError) && typeof (e as { errno?: unknown }).errno !== "number") throw e;
      const code = (e as { code?: string }).code ?? "E?";
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
  for (const [ino, fh] of opens) fs.release!(req, ino, fh, O_RDWR);
  for (const [ino, n] of lookups) fs.forget!(ino, n);
  return { errors };
}

serveJobs(runPassthroughJob);
