/**
 * Unprivileged mounting through fusermount3 (setuid helper from fuse3): it opens /dev/fuse,
 * mounts, and sends the descriptor back over a Unix socket pair with SCM_RIGHTS. fusermount3 also
 * decides, exactly as for libfuse programs, whether `allow_other` is permitted (/etc/fuse.conf).
 */
import { dlopen, FFIType as T, type Pointer } from "bun:ffi";
import { allocNative } from "../ffi/memory.ts";
import { errno, strerror } from "../ffi/libc.ts";
import { MountError } from "./mount.ts";

const sock = dlopen("libc.so.6", {
  socketpair: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
  recvmsg: { args: [T.i32, T.ptr, T.i32], returns: T.i64_fast },
  close: { args: [T.i32], returns: T.i32 },
}).symbols;

const AF_UNIX = 1, SOCK_STREAM = 1, MSG_DONTWAIT = 0x40; // no SOCK_CLOEXEC: fusermount3 inherits its end
const SOL_SOCKET = 1, SCM_RIGHTS = 1;

/**
 * Mount `mountpoint` with fusermount3; returns the /dev/fuse descriptor it passed back.
 * `opts` is the comma-separated option string for fusermount3 (fsname, subtype, allow_other, ...).
 */
export async function mountWithFusermount(mountpoint: string, opts: string): Promise<number> {
  const mem = allocNative(4096);
  const dv = new DataView(mem.buffer);
  if (sock.socketpair(AF_UNIX, SOCK_STREAM, 0, mem.ptr as Pointer) !== 0) throw new MountError(`socketpair: ${strerror(errno())}`);
  const ours = dv.getInt32(0, true), theirs = dv.getInt32(4, true);
  let proc;
  try {
    // the child sees our end as fd 3 (stdio index 3)
    proc = Bun.spawn(["fusermount3", "-o", opts, "--", mountpoint], {
      stdio: ["ignore", "ignore", "pipe", theirs],
      env: { ...process.env, _FUSE_COMMFD: "3" },
    });
  } catch (e) {
    sock.close(ours);
    sock.close(theirs);
    throw new MountError(`cannot run fusermount3 (install Debian's fuse3): ${(e as Error).message}`);
  }
  sock.close(theirs);
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr as ReadableStream).text()]);
  if (code !== 0) {
    sock.close(ours);
    throw new MountError(`${mountpoint}: ${err.trim().replace(/^fusermount3: /, "fusermount3: ") || `fusermount3 exited with ${code}`}`);
  }
  // msghdr @64 (56 bytes), iovec @128, data byte @160, cmsg buffer @192 (CMSG_SPACE(4) = 24)
  const base = mem.ptr;
  const setPtr = (off: number, v: number) => {
    dv.setUint32(off, v >>> 0, true);
    dv.setUint32(off + 4, Math.floor(v / 4294967296), true);
  };
  setPtr(128, base + 160); // iov_base
  setPtr(136, 1); // iov_len
  setPtr(64, 0); // msg_name
  dv.setUint32(72, 0, true); // msg_namelen
  setPtr(80, base + 128); // msg_iov
  setPtr(88, 1); // msg_iovlen
  setPtr(96, base + 192); // msg_control
  setPtr(104, 24); // msg_controllen
  dv.setInt32(112, 0, true); // msg_flags
  const n = sock.recvmsg(ours, (base + 64) as Pointer, MSG_DONTWAIT);
  sock.close(ours);
  if (Number(n) <= 0) throw new MountError(`${mountpoint}: fusermount3 did not pass the /dev/fuse descriptor back`);
  // struct cmsghdr: cmsg_len u64 @0, level i32 @8, type i32 @12, data @16
  if (dv.getInt32(192 + 8, true) !== SOL_SOCKET || dv.getInt32(192 + 12, true) !== SCM_RIGHTS) throw new MountError(`${mountpoint}: fusermount3 sent no descriptor`);
  return dv.getInt32(192 + 16, true);
}
