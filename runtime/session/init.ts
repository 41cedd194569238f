/**
 * FUSE_INIT negotiation: which capabilities to accept from what the kernel offers.
 */
import { readFileSync } from "node:fs";
import { Init, FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION } from "../kernel/abi.ts";
import { hasCap, type InitIn, type InitOut } from "../kernel/codec.ts";
import type { Filesystem } from "../api/types.ts";
import type { MountOptions } from "../mount/options.ts";

export const PAGE_SIZE = 4096;

/** The kernel's cap on max_pages (sysctl fs.fuse.max_pages_limit, default 256). */
export function maxPagesLimit(): number {
  try {
    const n = Number(readFileSync("/proc/sys/fs/fuse/max_pages_limit", "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : 256;
  } catch {
    return 256;
  }
}

export interface Negotiated {
  out: InitOut;
  /** FUSE_PASSTHROUGH negotiated: open replies may carry backing ids. */
  passthrough: boolean;
  /** Kernel offered FUSE_OVER_IO_URING. */
  uringOffered: boolean;
  setxattrExt: boolean;
  /** FUSE_HANDLE_KILLPRIV_V2 negotiated: the plugin clears setuid/setgid (`Filesystem.killPrivileges`). */
  killPriv: boolean;
  /** Payload buffer size an io_uring entry needs (kernel's max_payload_sz). */
  payloadSize: number;
}

/** Smallest max_pages `-o ring_memory` may shrink to (128 KiB requests). */
const MIN_RING_PAGES = 32;

/**
 * Decide the INIT reply (without the io_uring bit; the session adds it once the ring is ready).
 * `ringQueues` (io_uring queues, one per possible CPU; 0: not known) lets `-o ring_memory` cap
 * max_pages so one entry per queue fits.
 */
export function negotiate(init: InitIn, fs: Filesystem, o: MountOptions, ringQueues = 0): Negotiated {
  if (init.major !== FUSE_KERNEL_VERSION) throw new Error(`kernel speaks FUSE protocol ${init.major}.${init.minor}; furing speaks 7.x`);
  const ext = (init.flags & (1 << Init.INIT_EXT)) !== 0;
  const offered = (bit: number) => hasCap(init.flags, ext ? init.flags2 : 0, bit);
  let flags = 0, flags2 = 0;
  const want = (bit: number) => {
    if (!offered(bit)) return false;
    if (bit < 32) flags |= 1 << bit;
    else flags2 |= 1 << (bit - 32);
    return true;
  };
  want(Init.ASYNC_READ);
  want(Init.ATOMIC_O_TRUNC);
  want(Init.BIG_WRITES);
  want(Init.MAX_PAGES);
  want(Init.PARALLEL_DIROPS);
  want(Init.AUTO_INVAL_DATA);
  want(Init.ASYNC_DIO);
  want(Init.HAS_EXPIRE_ONLY);
  want(Init.DIRECT_IO_ALLOW_MMAP);
  want(Init.INIT_EXT);
  const setxattrExt = want(Init.SETXATTR_EXT);
  // Only a plugin that kills privileges itself: otherwise the kernel must (a GETXATTR of
  // security.capability before writes, and a SETATTR of the mode when a bit must go).
  const killPriv = fs.killPrivileges === true && want(Init.HANDLE_KILLPRIV_V2);
  // file handles that survive the inode cache: only a plugin that answers "." and ".." by node id
  if (fs.exportSupport === true) want(Init.EXPORT_SUPPORT);
  if (typeof fs.readdirplus === "function") {
    want(Init.DO_READDIRPLUS);
    // let the kernel choose per call only when plain readdir exists too
    if (typeof fs.readdir === "function") want(Init.READDIRPLUS_AUTO);
  }
  if (typeof fs.setlk === "function" && typeof fs.getlk === "function") {
    want(Init.POSIX_LOCKS);
    want(Init.FLOCK_LOCKS);
  }
  if (o.writebackCache) want(Init.WRITEBACK_CACHE);
  const requestTimeout = o.requestTimeout > 0 && want(Init.REQUEST_TIMEOUT) ? o.requestTimeout : 0;
  // kernel passthrough needs CAP_SYS_ADMIN (and is ignored with write-back caching) for FUSE_DEV_IOC_BACKING_OPEN
  const passthrough = o.passthrough && !o.writebackCache && process.getuid!() === 0 && want(Init.PASSTHROUGH);
  flags >>>= 0;
  let maxPages = Math.min(256, maxPagesLimit());
  if (ringQueues > 0 && o.ioUring && offered(Init.OVER_IO_URING)) {
    // every queue needs one entry of max_pages: shrink requests rather than exceed the budget
    const fit = Math.floor(o.ringMemory / ringQueues / PAGE_SIZE);
    if (fit < maxPages) maxPages = Math.max(MIN_RING_PAGES, fit);
  }
  const maxWrite = Math.min(o.maxWrite, maxPages * PAGE_SIZE);
  const out: InitOut = {
    major: FUSE_KERNEL_VERSION,
    minor: Math.min(FUSE_KERNEL_MINOR_VERSION, init.minor),
    maxReadahead: init.maxReadahead,
    flags,
    flags2,
    maxBackground: 64,
    congestionThreshold: 48,
    maxWrite,
    timeGran: 1,
    maxPages,
    maxStackDepth: passthrough ? 1 : 0,
    requestTimeout,
  };
  return {
    out,
    passthrough,
    uringOffered: offered(Init.OVER_IO_URING),
    setxattrExt,
    killPriv,
    payloadSize: Math.max(8192, Math.max(4096, maxWrite), maxPages * PAGE_SIZE),
  };
}

/** Why the kernel did not offer io_uring, for the transport log line. */
export function uringUnavailableReason(): string {
  let v = "";
  try {
    v = readFileSync("/sys/module/fuse/parameters/enable_uring", "utf8").trim();
  } catch {
    return "this kernel has no FUSE-over-io_uring (no /sys/module/fuse/parameters/enable_uring)";
  }
  if (v !== "Y") return "the kernel does not offer FUSE-over-io_uring: /sys/module/fuse/parameters/enable_uring is N (as root: echo 1 > /sys/module/fuse/parameters/enable_uring, or run scripts/setup)";
  return "the kernel did not offer FUSE-over-io_uring for this mount";
}
