/**
 * memfs served by several instances at once on the same shared regions, as reactor Workers
 * serve it: 4 Workers and the main thread hammer a few directories with creates, links,
 * renames (across directories, exchanges, directories), unlinks, mkdirs, rmdirs, writes and
 * xattrs, then give back every lookup and open file. The tree must then be exactly consistent:
 * every entry's node exists, link counts match the entries, every directory is where its
 * parent says, nothing unreachable is left, the space counters add up, and file contents are
 * whole writes.
 */
import { expect, test } from "bun:test";
import { S_IFDIR, S_IFMT, type DirList, type Entry, type Filesystem, type Request } from "../../runtime/api/index.ts";
import { createOps } from "../../plugins/memfs/ops.ts";
import { createState } from "../../plugins/memfs/state.ts";
import { INODE_SPACE, DIRENT_SIZE } from "../../plugins/memfs/nodes.ts";
import { runMemfsJob, type MemfsJob, type MemfsJobResult } from "../helpers/memfs-worker.ts";
import { runOnWorker } from "../helpers/worker-job.ts";

const req: Request = { op: "test", uid: 0, gid: 0, pid: 1, signal: new AbortController().signal };
const ROOT = 1;
const MAX_INODES = 1_000_000;

const inWorker = (job: MemfsJob) => runOnWorker<MemfsJob, MemfsJobResult>(new URL("../helpers/memfs-worker.ts", import.meta.url), job);

function list(fs: Required<Filesystem>, dir: number): { name: string; ino: number }[] {
  const out: { name: string; ino: number }[] = [];
  const sink: DirList = {
    add(name, ino) {
      if (name !== "." && name !== "..") out.push({ name, ino });
      return true;
    },
  };
  fs.readdir(req, dir, 0, 0, sink);
  return out;
}

test("4 Workers and the main thread on one memfs: the tree stays consistent", async () => {
  const regions = new Map<string, SharedArrayBuffer>();
  const shared = (key: string, n: number, max?: number) => {
    let r = regions.get(key);
    if (r === undefined) regions.set(key, (r = max === undefined ? new SharedArrayBuffer(n) : new SharedArrayBuffer(n, { maxByteLength: max })));
    return r;
  };
  const state = createState({ maxBytes: Infinity, maxInodes: MAX_INODES, rootMode: 0o755, uid: 0, gid: 0 }, shared);
  const fs = createOps(state) as Required<Filesystem>;
  const top = ["a", "b", "c"].map((n) => (fs.mkdir(req, ROOT, n, 0o755, 0) as Entry).ino);
  const fileSize = 150_000; // three chunks, the last one short
  const job = (id: number): MemfsJob => ({ regions: Object.fromEntries(regions), id, iterations: 4000, dirs: top, fileSize });
  const results = await Promise.all([inWorker(job(0)), inWorker(job(1)), inWorker(job(2)), inWorker(job(3)), Promise.resolve().then(() => runMemfsJob(job(4)))]);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  console.log(`5 instances × 4000 ops; errors answered: ${JSON.stringify(errors)}`);
  // the workload did real work: names collided and moved
  expect(errors.ENOENT ?? 0).toBeGreaterThan(0);
  expect(errors.EEXIST ?? 0).toBeGreaterThan(0);
  for (const ino of top) fs.forget(ino, 1);
  // the node table and the heap grew while the instances used them (64 KiB each at first)
  expect(regions.get("memfs.nodes")!.byteLength).toBeGreaterThan(65536);
  expect(regions.get("memfs.heap")!.byteLength).toBeGreaterThan(65536);

  // Walk the tree.
  const names = new Map<number, number>(); // node → entries naming it
  const subdirs = new Map<number, number>(); // directory → subdirectories in it
  const dirsSeen = new Set<number>([ROOT]);
  let entries = 0;
  const walk = (dir: number) => {
    const d = fs.getattr(req, dir, undefined) as Entry;
    const kids = list(fs, dir);
    expect(d.size).toBe((2 + kids.length) * DIRENT_SIZE);
    let sub = 0;
    for (const k of kids) {
      entries++;
      const n = fs.getattr(req, k.ino, undefined) as Entry; // throws ENOENT if the entry's node is gone
      expect((fs.lookup(req, dir, k.name) as Entry).ino).toBe(k.ino);
      fs.forget(k.ino, 1);
      if ((n.mode & S_IFMT) === S_IFDIR) {
        sub++;
        expect(dirsSeen.has(k.ino)).toBe(false); // a directory has one name
        dirsSeen.add(k.ino);
        expect((fs.lookup(req, k.ino, "..") as Entry).ino).toBe(dir);
        fs.forget(dir, 1);
        walk(k.ino);
      } else names.set(k.ino, (names.get(k.ino) ?? 0) + 1);
    }
    subdirs.set(dir, sub);
  };
  walk(ROOT);
  expect(entries).toBeGreaterThan(5);

  let space = INODE_SPACE * (1 + names.size + dirsSeen.size - 1);
  let used = 0;
  for (const [ino, count] of names) {
    const n = fs.getattr(req, ino, undefined) as Entry;
    expect(n.nlink).toBe(count);
    space += INODE_SPACE * (count - 1) + xattrSpace(fs, ino);
    used += (n.blocks ?? 0) * 512;
    // contents: whole writes only
    expect([0, fileSize]).toContain(n.size);
    if (n.size > 0) {
      const d = new Uint8Array(n.size);
      expect(fs.read(req, ino, 0, 0, n.size, d)).toBe(n.size);
      const first = d[0];
      expect(d.every((b) => b === first)).toBe(true);
    }
  }
  for (const dir of dirsSeen) {
    expect((fs.getattr(req, dir, undefined) as Entry).nlink).toBe(2 + (subdirs.get(dir) ?? 0));
    space += xattrSpace(fs, dir);
  }
  // every lookup and open was given back: exactly the reachable nodes are left
  expect(state.nodes.size).toBe(names.size + dirsSeen.size);
  expect(state.usedBytes).toBe(used);
  expect(MAX_INODES * INODE_SPACE - state.ispaceFree).toBe(space);
}, 60_000);

function xattrSpace(fs: Required<Filesystem>, ino: number): number {
  let total = 0;
  for (const name of fs.listxattr(req, ino) as string[]) total += 40 + name.length + (fs.getxattr(req, ino, name) as Uint8Array).length;
  return total;
}
