/**
 * FUSE kernel ABI (protocol 7.45, include/uapi/linux/fuse.h): opcodes, flag bits, struct sizes and
 * the FUSE-over-io_uring header layout. Offsets were checked against the compiled header
 * (shared/reference/fuse-protocol.md §1.6, §2.7).
 */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 45;
export const FUSE_ROOT_ID = 1;

// Opcodes, their names and input sizes live in the opcode table.
// the opcode table defines the opcodes and the reply structs' sizes (its rows use them)
export {
  Op, opName, ENTRY_OUT_SIZE, ATTR_OUT_SIZE, OPEN_OUT_SIZE, WRITE_OUT_SIZE, STATFS_OUT_SIZE, INIT_OUT_SIZE,
  GETXATTR_OUT_SIZE, LSEEK_OUT_SIZE, LK_OUT_SIZE, COPY_FILE_RANGE_OUT_SIZE,
  NOTIFY_INVAL_INODE_OUT_SIZE, NOTIFY_INVAL_ENTRY_OUT_SIZE, NOTIFY_DELETE_OUT_SIZE, NOTIFY_STORE_OUT_SIZE, NOTIFY_RETRIEVE_OUT_SIZE,
} from "./opcodes.ts";

/** INIT capability bits as numbers 0..63 (bits ≥ 32 go into flags2). */
export const Init = {
  ASYNC_READ: 0, POSIX_LOCKS: 1, ATOMIC_O_TRUNC: 3, EXPORT_SUPPORT: 4, BIG_WRITES: 5, DONT_MASK: 6,
  FLOCK_LOCKS: 10, HAS_IOCTL_DIR: 11, AUTO_INVAL_DATA: 12, DO_READDIRPLUS: 13, READDIRPLUS_AUTO: 14,
  ASYNC_DIO: 15, WRITEBACK_CACHE: 16, NO_OPEN_SUPPORT: 17, PARALLEL_DIROPS: 18, HANDLE_KILLPRIV: 19,
  POSIX_ACL: 20, ABORT_ERROR: 21, MAX_PAGES: 22, CACHE_SYMLINKS: 23, NO_OPENDIR_SUPPORT: 24,
  EXPLICIT_INVAL_DATA: 25, HANDLE_KILLPRIV_V2: 28, SETXATTR_EXT: 29, INIT_EXT: 30,
  SECURITY_CTX: 32, CREATE_SUPP_GROUP: 33, HAS_EXPIRE_ONLY: 35, DIRECT_IO_ALLOW_MMAP: 36,
  PASSTHROUGH: 37, NO_EXPORT_SUPPORT: 38, HAS_RESEND: 39, ALLOW_IDMAP: 40, OVER_IO_URING: 41,
  REQUEST_TIMEOUT: 42,
} as const;

export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;
export const FOPEN_PASSTHROUGH = 1 << 7;

export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

/** setattr's `valid` bits that ask for a change (all but FH, LOCKOWNER and KILL_SUIDGID). */
export const FATTR_CHANGES = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW | FATTR_CTIME;

/** fuse_write_in.write_flags */
export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_open_in.open_flags / fuse_create_in.open_flags */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;

export const FUSE_GETATTR_FH = 1;
export const FUSE_FSYNC_FDATASYNC = 1;
export const FUSE_LK_FLOCK = 1;

/** fuse_notify_inval_entry_out.flags: only expire the dentry, do not drop it. */
export const FUSE_EXPIRE_ONLY = 1 << 0;

/** Notification codes (out-header `error` field with unique 0). */
export const Notify = { POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6, RESEND: 7, INC_EPOCH: 8, PRUNE: 9 } as const;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
import { ENTRY_OUT_SIZE } from "./opcodes.ts";
export const DIRENT_SIZE = 24;
export const DIRENTPLUS_SIZE = ENTRY_OUT_SIZE + DIRENT_SIZE;

/** fuse_in_header field offsets. */
export const IN_LEN = 0, IN_OPCODE = 4, IN_UNIQUE = 8, IN_NODEID = 16, IN_UID = 24, IN_GID = 28, IN_PID = 32, IN_TOTAL_EXTLEN = 36;

/** FUSE-over-io_uring: struct fuse_uring_req_header (288 bytes). */
export const URING_HEADER_SIZE = 288;
export const URING_OP_IN = 128;
export const URING_ENT_FLAGS = 256;
export const URING_COMMIT_ID = 264;
export const URING_PAYLOAD_SZ = 272;
export const FUSE_IO_URING_CMD_REGISTER = 1;
export const FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2;
/** SQE offsets of struct fuse_uring_cmd_req (inside the SQE128 command area at 48). */
export const SQE_CMD_FLAGS = 48, SQE_CMD_COMMIT_ID = 56, SQE_CMD_QID = 64;
