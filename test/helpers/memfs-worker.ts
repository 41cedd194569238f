/**
 * Worker side of test/unit/memfs-shared.test.ts: a memfs instance on the regions it is posted,
 * hammered with random creates, links, renames, unlinks, mkdirs, rmdirs and writes in a few
 * shared directories. It keeps its own lookup counts and open files, gives them all back at the
 * end (forget, release) like a kernel that unmounts, and posts a summary (or the error).
 */
import { FuseError, O_CREAT, O_RDWR, RENAME_EXCHANGE, type Entry, type Filesystem, type Request } from "../../runtime/api/index.ts";
import { createOps } from "../../plugins/memfs/ops.ts";
import { createState } from "../../plugins/memfs/state.ts";
import { lcg, postedRegions, serveJobs } from "./worker-job.ts";

export interface MemfsJob {
  regions: Record<string, SharedArrayBuffer>;
  id: number;
  iterations: number;
  /** Top directories (ids) the names live in. */
  dirs: number[];
  /** Bytes every write puts at offset 0 (the same for everyone: contents stay uniform). */
  fileSize: number;
}

export interface MemfsJobResult {
  ops: number;
  errors: Record<string, number>;
}

const req: Request = { op: "test", uid: 0, gid: 0, pid: 1, signal: new AbortController().signal };

export function runMemfsJob(job: MemfsJob): MemfsJobResult {
  const state = createState({ maxBytes: Infinity, maxInodes: Infinity, rootMode: 0o755, uid: 0, gid: 0 }, postedRegions(job.regions));
  const fs = createOps(state) as Required<Filesystem>;
  const rnd = lcg((job.id + 1) * 2654435761);
  const lookups = new Map<number, number>();
  const looked = (e: Entry) => lookups.set(e.ino, (lookups.get(e.ino) ?? 0) + 1);
  const opens: number[] = [];
  const errors: Record<string, number> = {};
  const data = new Uint8Array(job.fileSize);
  /** Directories this worker has seen (top ones and subdirectories it created or looked up). */
  const dirs = [...job.dirs];
  const name = () => `n${rnd(12)}`;
  const dir = () => dirs[rnd(dirs.length)] as number;
  for (let i = 0; i < job.iterations; i++) {
    try {
      switch (rnd(12)) {
        case 0:
        case 1: {
          // half of the names collide with other workers', half are this worker's own (the tables grow)
          const r = fs.create(req, dir(), rnd(2) === 0 ? name() : `w${job.id}-${i}`, 0o644, O_CREAT | O_RDWR, 0) as { entry: Entry };
          looked(r.entry);
          opens.push(r.entry.ino);
          break;
        }
        case 2: {
          // write to a file this worker has open
          if (opens.length === 0) break;
          const ino = opens[rnd(opens.length)] as number;
          data.fill((job.id * 16 + rnd(16)) & 0xff);
          fs.write(req, ino, 0, 0, data, 0);
          break;
        }
        case 3: {
          const e = fs.lookup(req, dir(), name()) as Entry;
          looked(e);
          if ((e.mode & 0o170000) === 0o040000) dirs.push(e.ino);
          else fs.link(req, e.ino, dir(), name()), looked(e);
          break;
        }
        case 4:
        case 5:
          fs.rename(req, dir(), name(), dir(), name(), rnd(8) === 0 ? RENAME_EXCHANGE : 0);
          break;
        case 6:
          fs.unlink(req, dir(), name());
          break;
        case 7: {
          const e = fs.mkdir(req, dir(), `d${rnd(6)}`, 0o755, 0) as Entry;
          looked(e);
          dirs.push(e.ino);
          break;
        }
        case 8:
          fs.rmdir(req, dir(), `d${rnd(6)}`);
          break;
        case 9:
          fs.rename(req, dir(), `d${rnd(6)}`, dir(), `d${rnd(6)}`, 0);
          break;
        case 10: {
          // give back some references and handles on the way, as the kernel does
          if (opens.length > 0) fs.release(req, opens.pop() as number, 0, O_RDWR);
          const [ino, n] = lookups.entries().next().value ?? [0, 0];
          if (ino !== 0) {
            fs.forget(ino, n);
            lookups.delete(ino);
            for (let k = dirs.length - 1; k >= job.dirs.length; k--) if (dirs[k] === ino) dirs.splice(k, 1);
          }
          break;
        }
        case 11: {
          const ino = opens.length > 0 ? (opens[rnd(opens.length)] as number) : 1;
          fs.setxattr(req, ino, `user.w${job.id}`, data.subarray(0, rnd(64)), 0);
          break;
        }
      }
    } catch (e) {
      if (!(e instanceof FuseError)) throw e;
      errors[e.code] = (errors[e.code] ?? 0) + 1;
    }
  }
  for (const ino of opens) fs.release(req, ino, 0, O_RDWR);
  for (const [ino, n] of lookups) fs.forget(ino, n);
  return { ops: job.iterations, errors };
}

serveJobs(runMemfsJob);
