/**
 * Kernel passthrough backing files: FUSE_DEV_IOC_BACKING_OPEN registers a descriptor with the
 * connection and yields the backing id an open reply carries. The kernel allows one backing file
 * per inode while any open of it passes through, so every open of a node shares that node's id
 * (as libfuse's passthrough_hp does); the id is closed when the node's last open is released.
 */
import { libc, errno, strerror } from "../ffi/libc.ts";
import { Arena } from "../ffi/memory.ts";

const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

export class BackingFiles {
  private readonly arg = new Arena(64);
  private readonly argView = new DataView(this.arg.region.buffer, 0, 16);
  /** The backing id of each node with passthrough opens, and how many opens share it. */
  private readonly byNode = new Map<number, { id: number; refs: number }>();
  /** Which node each passthrough open (file handle) belongs to. */
  private readonly fhNode = new Map<number, number>();
  private warned = false;
  opened = 0;

  constructor(private readonly fuseFd: number, private readonly log: (line: string) => void) {}

  /** Backing id for open file `fh` of `nodeid` (registering `fd` if the node has none); 0 = no passthrough. */
  open(fd: number, fh: number, nodeid: number): number {
    this.release(fh); // a plugin reusing fh: the earlier open's reference goes
    const shared = this.byNode.get(nodeid);
    if (shared !== undefined) {
      shared.refs++;
      this.fhNode.set(fh, nodeid);
      return shared.id;
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
    this.byNode.set(nodeid, { id, refs: 1 });
    this.fhNode.set(fh, nodeid);
    this.opened++;
    return id;
  }

  /** The open file `fh` was released. */
  release(fh: number): void {
    const nodeid = this.fhNode.get(fh);
    if (nodeid === undefined) return;
    this.fhNode.delete(fh);
    const b = this.byNode.get(nodeid)!;
    if (--b.refs > 0) return;
    this.byNode.delete(nodeid);
    this.close(b.id);
  }

  private close(id: number): void {
    this.argView.setUint32(0, id, true);
    libc.ioctl(this.fuseFd, FUSE_DEV_IOC_BACKING_CLOSE, this.arg.region.ptr as never);
  }
}
