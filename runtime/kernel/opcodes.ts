/**
 * The opcode table: one row per FUSE opcode with what the wire says about it (as go-fuse's
 * fuse/opcode.go and fuser keep one): its name, the size of its fixed input struct (the op
 * header: on /dev/fuse it follows the in-header, on the ring it travels in `op_in`), the size of
 * its fixed reply, how many NUL-terminated names follow the input struct, and whether the kernel
 * waits for a reply. Sizes are those of include/uapi/linux/fuse.h at protocol 7.45; `inSize`
 * applies the older sizes the kernel still sends for an older negotiated minor or without
 * FUSE_SETXATTR_EXT. The dispatcher checks every request against this table before a handler
 * decodes anything (dispatch/request-check.ts).
 */

export const Op = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32,
  SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40,
  NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
  COPY_FILE_RANGE: 47, SETUPMAPPING: 48, REMOVEMAPPING: 49, SYNCFS: 50, TMPFILE: 51, STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;

/** `out` of an opcode whose reply has no fixed size (data, listings, or a size-dependent form). */
export const VARIABLE = -1;

export interface OpInfo {
  readonly opcode: number;
  /** "lookup", "getattr", ... (logs, status, the -d trace). */
  readonly name: string;
  /** Fixed input struct (op header) in bytes at protocol 7.45; 0 = none. */
  readonly in: number;
  /**
   * Fixed bytes that follow the op header before anything else (NOTIFY_REPLY's
   * fuse_notify_retrieve_in is an argument of its own, so on the ring it is in the payload).
   */
  readonly after: number;
  /** NUL-terminated names right after the fixed input (LOOKUP 1, RENAME 2, ...). */
  readonly names: number;
  /**
   * Offset in the op header of the u32 that says how many data bytes follow the names (WRITE's
   * fuse_write_in.size, SETXATTR's value size); -1 = none.
   */
  readonly dataSizeAt: number;
  /** Fixed reply payload in bytes (0 = empty), or VARIABLE. */
  readonly out: number;
  /** Whether the kernel waits for a reply (FORGET, BATCH_FORGET, NOTIFY_REPLY: never answered). */
  readonly reply: boolean;
}

// reply struct sizes (fuse.h); the codec's encoders return these
export const ENTRY_OUT_SIZE = 128, ATTR_OUT_SIZE = 104, OPEN_OUT_SIZE = 16, WRITE_OUT_SIZE = 8, STATFS_OUT_SIZE = 80;
export const LK_OUT_SIZE = 24, INIT_OUT_SIZE = 64, GETXATTR_OUT_SIZE = 8, LSEEK_OUT_SIZE = 8, COPY_FILE_RANGE_OUT_SIZE = 8;
const STATX_OUT = 288, BMAP_OUT = 8, POLL_OUT = 8;
// notification structs (fuse.h fuse_notify_*_out; server → kernel, after a fuse_out_header with unique 0)
export const NOTIFY_INVAL_INODE_OUT_SIZE = 24, NOTIFY_INVAL_ENTRY_OUT_SIZE = 16, NOTIFY_DELETE_OUT_SIZE = 24;
export const NOTIFY_STORE_OUT_SIZE = 24, NOTIFY_RETRIEVE_OUT_SIZE = 32;

type Row = [name: string, opcode: number, inSize: number, out: number, names?: number, reply?: boolean, after?: number, dataSizeAt?: number];
// prettier-ignore
const ROWS: Row[] = [
  ["lookup", Op.LOOKUP, 0, ENTRY_OUT_SIZE, 1],
  ["forget", Op.FORGET, 8, 0, 0, false],                                       // fuse_forget_in
  ["getattr", Op.GETATTR, 16, ATTR_OUT_SIZE],                                  // fuse_getattr_in
  ["setattr", Op.SETATTR, 88, ATTR_OUT_SIZE],                                  // fuse_setattr_in
  ["readlink", Op.READLINK, 0, VARIABLE],
  ["symlink", Op.SYMLINK, 0, ENTRY_OUT_SIZE, 2],                               // name, target
  ["mknod", Op.MKNOD, 16, ENTRY_OUT_SIZE, 1],                                  // fuse_mknod_in
  ["mkdir", Op.MKDIR, 8, ENTRY_OUT_SIZE, 1],                                   // fuse_mkdir_in
  ["unlink", Op.UNLINK, 0, 0, 1],
  ["rmdir", Op.RMDIR, 0, 0, 1],
  ["rename", Op.RENAME, 8, 0, 2],                                              // fuse_rename_in, old name, new name
  ["link", Op.LINK, 8, ENTRY_OUT_SIZE, 1],                                     // fuse_link_in
  ["open", Op.OPEN, 8, OPEN_OUT_SIZE],                                         // fuse_open_in
  ["read", Op.READ, 40, VARIABLE],                                             // fuse_read_in
  ["write", Op.WRITE, 40, WRITE_OUT_SIZE, 0, true, 0, 16],                     // fuse_write_in, then `size` bytes
  ["statfs", Op.STATFS, 0, STATFS_OUT_SIZE],
  ["release", Op.RELEASE, 24, 0],                                              // fuse_release_in
  ["fsync", Op.FSYNC, 16, 0],                                                  // fuse_fsync_in
  ["setxattr", Op.SETXATTR, 16, 0, 1, true, 0, 0],                             // fuse_setxattr_in, name, `size` value bytes
  ["getxattr", Op.GETXATTR, 8, VARIABLE, 1],                                   // fuse_getxattr_in, name
  ["listxattr", Op.LISTXATTR, 8, VARIABLE],                                    // fuse_getxattr_in
  ["removexattr", Op.REMOVEXATTR, 0, 0, 1],
  ["flush", Op.FLUSH, 24, 0],                                                  // fuse_flush_in
  ["init", Op.INIT, 64, INIT_OUT_SIZE],                                        // fuse_init_in
  ["opendir", Op.OPENDIR, 8, OPEN_OUT_SIZE],
  ["readdir", Op.READDIR, 40, VARIABLE],
  ["releasedir", Op.RELEASEDIR, 24, 0],
  ["fsyncdir", Op.FSYNCDIR, 16, 0],
  ["getlk", Op.GETLK, 48, LK_OUT_SIZE],                                        // fuse_lk_in
  ["setlk", Op.SETLK, 48, 0],
  ["setlkw", Op.SETLKW, 48, 0],
  ["access", Op.ACCESS, 8, 0],                                                 // fuse_access_in
  ["create", Op.CREATE, 16, ENTRY_OUT_SIZE + OPEN_OUT_SIZE, 1],                // fuse_create_in, name
  ["interrupt", Op.INTERRUPT, 8, 0, 0, false],                                 // fuse_interrupt_in (answered through the request it names)
  ["bmap", Op.BMAP, 16, BMAP_OUT],                                             // fuse_bmap_in / fuse_bmap_out
  ["destroy", Op.DESTROY, 0, 0],
  ["ioctl", Op.IOCTL, 32, VARIABLE],                                           // fuse_ioctl_in / fuse_ioctl_out + data
  ["poll", Op.POLL, 24, POLL_OUT],                                             // fuse_poll_in / fuse_poll_out
  ["notify_reply", Op.NOTIFY_REPLY, 0, 0, 0, false, 40],                       // fuse_notify_retrieve_in, then data
  ["batch_forget", Op.BATCH_FORGET, 8, 0, 0, false],                           // fuse_batch_forget_in, then count × fuse_forget_one
  ["fallocate", Op.FALLOCATE, 32, 0],
  ["readdirplus", Op.READDIRPLUS, 40, VARIABLE],
  ["rename2", Op.RENAME2, 16, 0, 2],                                           // fuse_rename2_in
  ["lseek", Op.LSEEK, 24, LSEEK_OUT_SIZE],                                     // fuse_lseek_in / fuse_lseek_out
  ["copy_file_range", Op.COPY_FILE_RANGE, 56, WRITE_OUT_SIZE],
  ["setupmapping", Op.SETUPMAPPING, 40, 0],
  ["removemapping", Op.REMOVEMAPPING, 4, 0],                                   // fuse_removemapping_in, then count × 16
  ["syncfs", Op.SYNCFS, 8, 0],
  ["tmpfile", Op.TMPFILE, 16, ENTRY_OUT_SIZE + OPEN_OUT_SIZE, 1],              // fuse_create_in, name
  ["statx", Op.STATX, 24, STATX_OUT],
  ["copy_file_range_64", Op.COPY_FILE_RANGE_64, 56, COPY_FILE_RANGE_OUT_SIZE], // fuse_copy_file_range_out
];

/** Highest opcode in the table. */
export const MAX_OPCODE = Math.max(...ROWS.map((r) => r[1]));

/** Rows by opcode (undefined for unknown opcodes). */
export const OPCODES: readonly (OpInfo | undefined)[] = (() => {
  const t: (OpInfo | undefined)[] = new Array(MAX_OPCODE + 1).fill(undefined);
  for (const [name, opcode, inSize, out, names = 0, reply = true, after = 0, dataSizeAt = -1] of ROWS) {
    t[opcode] = { opcode, name, in: inSize, after, names, dataSizeAt, out, reply };
  }
  return t;
})();

// flat copies for the per-request check (no object loads on the hot path)
const IN = new Int32Array(MAX_OPCODE + 1).fill(-1);
const AFTER = new Int32Array(MAX_OPCODE + 1);
const NAMES = new Int32Array(MAX_OPCODE + 1);
const OUT = new Int32Array(MAX_OPCODE + 1);
const DATA_AT = new Int32Array(MAX_OPCODE + 1).fill(-1);
for (const r of OPCODES) {
  if (r === undefined) continue;
  IN[r.opcode] = r.in;
  AFTER[r.opcode] = r.after;
  NAMES[r.opcode] = r.names;
  OUT[r.opcode] = r.out;
  DATA_AT[r.opcode] = r.dataSizeAt;
}

/** Whether the table knows `opcode`. */
export function knownOpcode(opcode: number): boolean {
  return opcode >= 0 && opcode <= MAX_OPCODE && IN[opcode]! >= 0;
}

/** The old input sizes the kernel sends (fuse.h FUSE_COMPAT_*_SIZE; fs/fuse: `fc->minor < N`). */
const COMPAT_WRITE_IN = 24, COMPAT_MKNOD_IN = 8, COMPAT_SETXATTR_IN = 8;
/** fuse_init_in before 7.36: major, minor, max_readahead, flags. */
export const COMPAT_INIT_IN = 16;

/**
 * Size of the fixed input struct the kernel sends for `opcode` on a connection that negotiated
 * `minor` (and FUSE_SETXATTR_EXT or not); -1 for an unknown opcode. INIT's is the smallest form
 * (its minor is inside it): a kernel older than 7.36 sends 16 bytes, a newer one 64.
 */
export function inSize(opcode: number, minor: number, setxattrExt: boolean): number {
  if (opcode < 0 || opcode > MAX_OPCODE) return -1;
  switch (opcode) {
    case Op.SETXATTR: return setxattrExt ? IN[opcode]! : COMPAT_SETXATTR_IN;
    case Op.MKNOD: return minor < 12 ? COMPAT_MKNOD_IN : IN[opcode]!;
    case Op.WRITE: return minor < 9 ? COMPAT_WRITE_IN : IN[opcode]!;
    case Op.INIT: return COMPAT_INIT_IN;
    default: return IN[opcode]!;
  }
}

/** Fixed bytes after the op header (see OpInfo.after). */
export function afterSize(opcode: number): number {
  return opcode >= 0 && opcode <= MAX_OPCODE ? AFTER[opcode]! : 0;
}

/** Names that follow the fixed input. */
export function nameCount(opcode: number): number {
  return opcode >= 0 && opcode <= MAX_OPCODE ? NAMES[opcode]! : 0;
}

/** Offset of the data-size field in the op header (see OpInfo.dataSizeAt), -1 = none. */
export function dataSizeAt(opcode: number): number {
  return opcode >= 0 && opcode <= MAX_OPCODE ? DATA_AT[opcode]! : -1;
}

/** Fixed reply size, VARIABLE, or VARIABLE for an unknown opcode too. */
export function outSize(opcode: number): number {
  return knownOpcode(opcode) ? OUT[opcode]! : VARIABLE;
}

/** "lookup", "getattr", ... or "op<N>" for unknown opcodes. */
export function opName(opcode: number): string {
  return (opcode >= 0 && opcode <= MAX_OPCODE ? OPCODES[opcode]?.name : undefined) ?? `op${opcode}`;
}

/** Whether the kernel waits for an answer to `opcode` (unknown opcodes are answered ENOSYS). */
export function expectsReply(opcode: number): boolean {
  return !knownOpcode(opcode) || OPCODES[opcode]!.reply;
}
