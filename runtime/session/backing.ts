/**
 * Kernel passthrough backing files: FUSE_DEV_IOC_BACKING_OPEN registers a descriptor with the
 * connection and yields the backing id an open reply carries; the id is closed when the open file
 * is released (the kernel keeps its own reference meanwhile).
 */
import { libc, errno, strerror } from "../ffi/libc.ts";
import { Arena } from "../ffi/memory.ts";

const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

export class BackingFiles {
  private readonly arg = new Arena(64);
  private readonly argView = new DataView(this.arg.region.buffer, 0, 16);
  /** Backing ids by file handle, closed at RELEASE. */
  private readonly byFh = new Map<number, number>();
  private warned = false;
  opened = 0;

  constructor(private readonly fuseFd: number, private readonly log: (line: string) => void) {}

  /** Register `fd` for the open file `fh`; returns the backing id, or 0 to serve I/O normally. */
  open(fd: number, fh: number): number {
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
    const prev = this.byFh.get(fh);
    if (prev !== undefined) this.close(prev); // a plugin reusing fh: the kernel holds its own reference
    this.byFh.set(fh, id);
    this.opened++;
    return id;
  }

  /** The open file `fh` was released. */
  release(fh: number): void {
    const id = this.byFh.get(fh);
    if (id === undefined) return;
    this.byFh.delete(fh);
    this.close(id);
  }

  private close(id: number): void {
    this.argView.setUint32(0, id, true);
    libc.ioctl(this.fuseFd, FUSE_DEV_IOC_BACKING_CLOSE, this.arg.region.ptr as never);
  }
}
