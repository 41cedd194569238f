/**
 * Kernel passthrough backing files: FUSE_DEV_IOC_BACKING_OPEN registers a descriptor with the
 * connection and yields the backing id an open reply carries. The kernel allows one backing file
 * per inode while any open of it passes through (another one is refused, and the open fails with
 * EIO), so every open of a node shares that node's id (as libfuse's passthrough_hp does); the id
 * is closed when the node's last open is released.
 *
 * With reactor Workers the opens of one node, and an open and its RELEASE, may be served by
 * different threads, so the table (node → id and open count, file handle → node) is shared: a
 * {@link BackingTable} made by the main thread and handed to every Worker in its transport plan.
 * Backing ids belong to the connection, which the Workers' cloned descriptors share.
 */
import { libc, errno, strerror } from "../ffi/libc.ts";
import { Arena } from "../ffi/memory.ts";
import { Mutex, NumberMap, SharedHeap } from "../api/shared.ts";

const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

/** The shared table's regions: `meta` (Int32 words below) and a SharedHeap with three NumberMaps. */
export interface BackingTable {
  meta: SharedArrayBuffer;
  heap: SharedArrayBuffer;
}
const W_LOCK = 0, W_OPENED = 1, W_IDS = 2, W_REFS = 3, W_FH_NODE = 4;

export class BackingFiles {
  private readonly arg = new Arena(64);
  private readonly argView = new DataView(this.arg.region.buffer, 0, 16);
  private readonly w: Int32Array;
  private readonly lock: Mutex;
  private readonly heap: SharedHeap;
  private readonly map: NumberMap;
  private warned = false;
  /** The table, to hand to the other threads serving this connection. */
  readonly table: BackingTable;

  /** `table`: the one the main thread made (on a Worker); a new one when omitted. */
  constructor(private readonly fuseFd: number, private readonly log: (line: string) => void, table?: BackingTable) {
    if (table === undefined) {
      table = { meta: new SharedArrayBuffer(32), heap: new SharedArrayBuffer(64 * 1024, { maxByteLength: 2 ** 30 }) };
      const heap = SharedHeap.format(table.heap);
      const m = new NumberMap(heap);
      const w = new Int32Array(table.meta);
      w[W_IDS] = m.create();
      w[W_REFS] = m.create();
      w[W_FH_NODE] = m.create();
    }
    this.table = table;
    this.w = new Int32Array(table.meta);
    this.lock = new Mutex(this.w, W_LOCK);
    this.heap = new SharedHeap(table.heap);
    this.map = new NumberMap(this.heap);
  }

  /** Backing files registered so far (every thread's). */
  get opened(): number {
    return Atomics.load(this.w, W_OPENED);
  }

  /** Backing id for open file `fh` of `nodeid` (registering `fd` if the node has none); 0 = no passthrough. */
  open(fd: number, fh: number, nodeid: number): number {
    this.lock.lock();
    try {
      this.releaseLocked(fh); // a plugin reusing fh: the earlier open's reference goes
      const m = this.map;
      const shared = m.at(this.w[W_IDS]!).get(nodeid);
      if (shared !== undefined) {
        const refs = m.at(this.w[W_REFS]!);
        refs.set(nodeid, refs.get(nodeid)! + 1);
        m.at(this.w[W_FH_NODE]!).set(fh, nodeid);
        return shared;
      }
      this.argView.setInt32(0, fd, true);
      this.argView.setUint32(4, 0, true);
      this.argView.setBigUint64(8, 0n, true);
      const id = libc.ioctl(this.fuseFd, FUSE_DEV_IOC_BACKING_OPEN, this.arg.region.ptr as never);
      if (id <= 0) {
        if (!this.warned) {
          this.warned = true;
          this.log(`furing: kernel passthrough unavailable (FUSE_DEV_IOC_BACKING_OPEN: ${strerror(errno())}); serving reads and writes through the daemon`);
        }
        return 0;
      }
      m.at(this.w[W_IDS]!).set(nodeid, id);
      m.at(this.w[W_REFS]!).set(nodeid, 1);
      m.at(this.w[W_FH_NODE]!).set(fh, nodeid);
      Atomics.add(this.w, W_OPENED, 1);
      return id;
    } finally {
      this.lock.unlock();
    }
  }

  /** The open file `fh` was released (on whichever thread opened it). */
  release(fh: number): void {
    this.lock.lock();
    try {
      this.releaseLocked(fh);
    } finally {
      this.lock.unlock();
    }
  }

  private releaseLocked(fh: number): void {
    const m = this.map;
    const fhNode = m.at(this.w[W_FH_NODE]!);
    const nodeid = fhNode.get(fh);
    if (nodeid === undefined) return;
    fhNode.delete(fh);
    const refs = m.at(this.w[W_REFS]!);
    const left = refs.get(nodeid)! - 1;
    if (left > 0) {
      refs.set(nodeid, left);
      return;
    }
    refs.delete(nodeid);
    const ids = m.at(this.w[W_IDS]!);
    const id = ids.get(nodeid)!;
    ids.delete(nodeid);
    this.close(id);
  }

  private close(id: number): void {
    this.argView.setUint32(0, id, true);
    libc.ioctl(this.fuseFd, FUSE_DEV_IOC_BACKING_CLOSE, this.arg.region.ptr as never);
  }
}
