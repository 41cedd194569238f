/**
 * The furing plugin API: everything a filesystem plugin may implement, in one file.
 *
 * A plugin is an ES module whose default export is a {@link Filesystem} (wrap it in
 * `defineFilesystem` for type checking) or a {@link Plugin} with a `setup` function that builds
 * one. Operations are named after the FUSE requests that trigger them and receive inode numbers
 * ("node ids"), like libfuse's low-level API: `lookup` turns (parent, name) into a node, every
 * other operation names the node it acts on.
 *
 * Conventions that hold for every operation:
 * - An op may return its result or a Promise of it; many requests are in flight at once.
 * - A missing op answers ENOSYS (the kernel then stops asking for many of them).
 * - To fail, throw: a {@link FuseError}, any error with a Node-style `code` (`"ENOENT"`), or an
 *   errno number. Anything else becomes EIO and is logged with the op and the stack.
 * - Node ids and file handles are plain numbers (safe integers, < 2^53). Node id 1 is the root.
 * - File names are bytes. Every name, symlink target and xattr name is a *name string*: UTF-8
 *   text, with each byte that is not valid UTF-8 escaped as U+DC80 + (byte - 0x80), so `caf\xe9`
 *   is "caf\uDCE9". Names go back to the kernel as exactly their bytes; `nameToBytes`,
 *   `nameFromBytes` and `nameByteLength` (runtime/api/names.ts) convert. A string that has no
 *   exact bytes (an unpaired surrogate outside U+DC80..U+DCFF) is refused with EIO, never changed.
 * - Objects the runtime passes in (the {@link Request}, data views, directory lists) are reused
 *   for later requests: they are valid until the op returns or its promise settles.
 * - Dropped results are given back. When the kernel never gets an op's result — it settled after
 *   `-o op_timeout` (the caller already got ETIMEDOUT), or its reply cannot be encoded (the
 *   caller gets EIO) — the runtime undoes what the result handed out, as the kernel would have:
 *   each entry (lookup, mknod, mkdir, symlink, link, create, tmpfile, each readdirplus entry
 *   added, also when readdirplus then fails) gets `forget(ino, 1)`, then `forgotten(ino)` if
 *   the kernel does not hold the node; each handle (open, create, tmpfile) gets
 *   `release(req, ino, fh, flags)`, opendir's gets `releasedir(req, ino, fh)` (`req` has pid 0
 *   and op "release"; create/tmpfile: release, then forget). So counting lookups and handles at
 *   the op is exact; a plugin needs no timeout logic of its own. The serving generation gets these
 *   calls, and each is logged.
 */

/** Seconds and nanoseconds since the epoch (or a duration). */
export interface Timespec {
  sec: number;
  nsec: number;
}

/**
 * Attributes of a node (what stat(2) shows). Node objects may implement this interface
 * directly, so `getattr` can return the node itself without allocating.
 */
export interface Attr {
  /** Node id; also reported as st_ino. */
  ino: number;
  /** File type and permission bits (S_IFREG | 0o644, ...). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Size in bytes (symlink: length of the target). */
  size: number;
  /** 512-byte blocks allocated; defaults to ceil(size / 512). */
  blocks?: number;
  /** Preferred I/O size (power of two); 0 or absent = the filesystem default. */
  blksize?: number;
  /** Device number for character and block devices (Linux new_encode_dev form). */
  rdev?: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/**
 * A directory entry reply (lookup, mknod, mkdir, symlink, link, create): the attributes of the
 * node, which the kernel now caches. Every entry reply counts as one lookup of `ino`; the kernel
 * later returns the count with `forget`.
 */
export interface Entry extends Attr {
  /** Inode generation: (ino, generation) must be unique over the filesystem's life. Default 0. */
  generation?: number;
  /** Seconds the kernel may cache the name → node mapping; default: mount option entry_timeout. */
  entryTimeout?: number;
  /** Seconds the kernel may cache the attributes; default: mount option attr_timeout. */
  attrTimeout?: number;
}

/** getattr/setattr may return plain attributes or attributes with their own cache timeout. */
export interface AttrReply extends Attr {
  attrTimeout?: number;
}

/** What open, opendir and create return (all fields optional; `void` means fh 0, no flags). */
export interface OpenReply {
  /** File handle: any number the plugin wants passed back with later ops on this open file. */
  fh?: number;
  /** Bypass the page cache for this open file (FOPEN_DIRECT_IO). */
  directIo?: boolean;
  /** Keep the page cache from earlier opens (FOPEN_KEEP_CACHE). */
  keepCache?: boolean;
  /** The file is not seekable (FOPEN_NONSEEKABLE). */
  nonseekable?: boolean;
  /** Directories: let the kernel cache readdir results (FOPEN_CACHE_DIR). */
  cacheDir?: boolean;
  /** No flush on close (FOPEN_NOFLUSH). */
  noflush?: boolean;
  /** Allow parallel direct writes on this file (FOPEN_PARALLEL_DIRECT_WRITES). */
  parallelDirectWrites?: boolean;
  /**
   * Kernel passthrough (FUSE_PASSTHROUGH): an open descriptor of a backing file whose reads and
   * writes the kernel then performs itself, bypassing the daemon. Used only when the mount has
   * passthrough (root, kernel support, not `-o no_passthrough`; see `PluginContext.passthrough`);
   * the runtime registers it with the kernel, and the plugin may close its descriptor after open
   * returns.
   */
  backingFd?: number;
}

/** create's (and tmpfile's) reply: the new entry plus the open file. */
export interface CreateReply extends OpenReply {
  entry: Entry;
}

/** Changes requested by setattr; absent fields are not to be changed. */
export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** A time, or "now" for the current time (UTIME_NOW). */
  atime?: Timespec | "now";
  mtime?: Timespec | "now";
  ctime?: Timespec;
  /** The open file's handle, when the change came through one (ftruncate, fchmod). */
  fh?: number;
  /**
   * Only for filesystems that declare {@link Filesystem.killPrivileges}: clear the set-user-ID
   * bit, and the set-group-ID bit when the file is group-executable or the caller is not in the
   * file's group and not privileged (non-directories only; see `killPrivileges` for the rule).
   * Set for FATTR_KILL_SUIDGID (chown, and truncate by a caller without CAP_FSETID) and for a
   * SETATTR that asks for no change at all, which is how the kernel passes on its own
   * file_remove_privs() (fallocate, copy_file_range, the first write to a setuid file) and
   * chown(f, -1, -1). It comes with the other fields of the same request (a truncate's `size`, a
   * chown's `uid`/`gid`: decide on the attributes as they were before the change).
   */
  killSuidgid?: boolean;
}

/** statfs reply (units of `frsize`, which defaults to `bsize`). */
export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize?: number;
}

/**
 * Where readdir writes entries, straight into the kernel's reply buffer.
 * `add` returns false when the buffer is full; stop then and let the kernel ask again from the
 * offset of the entry that did not fit.
 */
export interface DirList {
  /**
   * @param name entry name (not containing "/")
   * @param ino node id reported as d_ino
   * @param mode file type bits (only S_IFMT is used, for d_type)
   * @param nextOffset cookie the kernel passes back as `offset` to continue after this entry
   */
  add(name: string, ino: number, mode: number, nextOffset: number): boolean;
}

/**
 * Where readdirplus writes entries with their attributes. Each entry added with a non-null
 * `entry`, except "." and "..", counts as one lookup of that node (expect a matching forget).
 */
export interface DirListPlus {
  /** `entry` null: name only, the kernel will lookup the node itself. */
  add(name: string, entry: Entry | null, nextOffset: number): boolean;
}

/** The request being served: who asked, and whether they still care. */
export interface Request {
  /** FUSE opcode name, e.g. "lookup". */
  readonly op: string;
  /** Caller's fsuid / fsgid / thread-group id (pid 0 for kernel-internal requests). */
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /**
   * Fires when the caller is interrupted (FUSE_INTERRUPT) or the request times out. Created on
   * first access, so requests that never look at it cost nothing.
   */
  readonly signal: AbortSignal;
}

/** Flags for rename (renameat2). */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

/** How a filesystem reports file-lock state (getlk). */
export interface FileLock {
  start: number;
  end: number;
  /** F_RDLCK 0, F_WRLCK 1, F_UNLCK 2 */
  type: number;
  pid: number;
}

/**
 * The operations of a filesystem. All are optional; see the conventions at the top of this file.
 * `req` is the {@link Request}; `ino` the node the op acts on; `fh` the handle returned by
 * open/opendir/create (0 if none was returned).
 */
export interface Filesystem {
  /**
   * The filesystem clears setuid/setgid bits itself (FUSE_HANDLE_KILLPRIV_V2, negotiated at
   * INIT only when this is true). Then the kernel no longer asks for security.capability
   * (a GETXATTR) before writes nor rewrites the mode with a SETATTR of its own; instead it tells
   * the filesystem when privileges must go: `killSuidgid` on `write`, `open`, `create` and
   * `setattr` (see {@link SetAttr.killSuidgid}). The rule, as the Linux VFS applies it (≥ 6.2,
   * setattr_should_drop_suidgid): clear S_ISUID; clear S_ISGID if the file is group-executable,
   * or if the caller is neither in the file's group (fsgid or supplementary groups) nor
   * privileged; directories keep both. Leave it unset unless every generation of the plugin
   * implements this: a hot reload that changes it is rejected (it is fixed at INIT).
   */
  killPrivileges?: boolean;
  /**
   * File handles of this filesystem outlive the kernel's inode cache (FUSE_EXPORT_SUPPORT,
   * negotiated at INIT only when this is true): `open_by_handle_at` and NFS exports then work
   * after the kernel has forgotten a node. A handle is (node id, generation); to open one whose
   * node the kernel no longer caches it asks `lookup(ino, ".")` (for any type of node) and, for a
   * directory's parent, `lookup(ino, "..")`, and answers ESTALE when the reply's generation differs
   * or the lookup fails. Declare it only if every generation of the plugin: answers those lookups
   * for every node id still in use (each reply counts as a lookup, like any entry), and ENOENT for
   * one that is gone; and never lets one (node id, generation) pair name two different nodes over
   * the filesystem's life (reusing an id needs a new `Entry.generation`).
   */
  exportSupport?: boolean;
  /**
   * Called once the kernel connection is initialised (FUSE_INIT answered), before any other op of
   * this generation. A throw or rejection fails the mount (or, on a hot reload, rejects the new
   * generation and keeps the old one serving).
   */
  init?(): void | Promise<void>;
  /**
   * Release what this generation holds (flush, close databases). Runs exactly once per
   * generation: for one replaced by a hot reload, when its last request is done; for the serving
   * one, at unmount, after the retired ones; for one rejected after `setup` returned (its `init`
   * failed), right away. Errors are logged. See also {@link PluginContext.onDestroy}.
   */
  destroy?(): void | Promise<void>;

  /**
   * Find `name` in directory `parent`. Throw ENOENT if absent (cached for `negative_timeout`,
   * default 0), ENOTDIR if `parent` is not a directory. Counts as one lookup. The kernel caches
   * the name for `entryTimeout` and the attributes for `attrTimeout`, and asks only when they
   * expire; "." and ".." never arrive here. A result the kernel never gets is given back with
   * `forget(ino, 1)` (see "Dropped results" at the top).
   */
  lookup?(req: Request, parent: number, name: string): Entry | Promise<Entry>;
  /**
   * The kernel dropped `nlookup` references to `ino`; at zero the node id may be reused. No reply.
   * Also called by the runtime with nlookup 1 for an entry the kernel never got (a dropped
   * result). Plugins that keep no counts of their own implement {@link forgotten} instead.
   */
  forget?(ino: number, nlookup: number): void;
  /**
   * The kernel holds `ino` no more: every lookup it was given has come back through FORGET. The
   * runtime keeps the counts, so a plugin need not: with {@link PluginContext.isOpen} this is where
   * a node with no names left (nlink 0) is freed. Runs after `forget`, each time the count
   * reaches 0 (a later entry reply starts a new count), and after a dropped entry of a node the
   * kernel does not hold. Never for the root, nor at unmount (no FORGETs come then: free nlink-0
   * nodes at the next mount). An entry op for the node that began before this (a lookup that had
   * already found it) may still reply and make the kernel hold it again: free only nodes no op
   * can hand out any more, as nlink-0 nodes. With `concurrency: "shared"` served by reactor
   * Workers the counts are summed over every reactor (a table in shared memory), and `forgotten`
   * runs once, on the instance whose FORGET brought the sum to 0. Errors are logged.
   */
  forgotten?(ino: number): void | Promise<void>;
  /**
   * stat(2) and the kernel's revalidation once `attrTimeout` expired. `fh` is set when asked
   * through an open file (fstat). Return the current attributes; the kernel keeps the file type
   * it learned at lookup and takes only the permission bits of `mode`. Throw ENOENT/ESTALE for a
   * node that is gone. Without it the kernel gets ENOSYS for every stat: implement it.
   */
  getattr?(req: Request, ino: number, fh: number | undefined): AttrReply | Promise<AttrReply>;
  /**
   * chmod, chown, truncate/ftruncate, utimens (and the kernel's own clearing of setuid bits).
   * Apply only the fields present and return the new attributes. `mode` is the kernel's ia_mode:
   * the new permission bits together with the file-type bits (keep the type, take `& 0o7777`).
   * Update ctime yourself. Throw EPERM/EACCES only for checks the kernel cannot make (with
   * default_permissions it has already checked ownership); EFBIG/EINVAL for a bad size.
   */
  setattr?(req: Request, ino: number, changes: SetAttr): AttrReply | Promise<AttrReply>;
  /** The target of symlink `ino` (bytes or a string, not NUL-terminated); EINVAL for other nodes. Not cached by the kernel. */
  readlink?(req: Request, ino: number): string | Uint8Array | Promise<string | Uint8Array>;
  /**
   * Create a non-directory, non-symlink node (regular, fifo, socket, device) named `name` in
   * `parent`; `mode` carries the type bits and has the caller's umask applied (`umask` is what it
   * was). Throw EEXIST if the name exists. Counts as one lookup. Owner: `req.uid`/`req.gid` (or
   * the directory's group when it is setgid).
   */
  mknod?(req: Request, parent: number, name: string, mode: number, rdev: number, umask: number): Entry | Promise<Entry>;
  /**
   * Create a directory. `mode` has the umask applied; it may lack S_IFDIR (add it). New
   * directories have nlink 2, and the parent's nlink grows by one. EEXIST if the name exists.
   * Counts as one lookup.
   */
  mkdir?(req: Request, parent: number, name: string, mode: number, umask: number): Entry | Promise<Entry>;
  /**
   * Remove the name `name` (not a directory: the kernel checks the type it cached, answer EISDIR
   * if you find one). Drop the node's nlink but keep its data while it is open or the kernel still
   * holds lookups on it (see `forget`): an unlinked file stays readable through open descriptors.
   */
  unlink?(req: Request, parent: number, name: string): void | Promise<void>;
  /** Remove an empty directory: ENOTEMPTY if it has entries, ENOTDIR if it is not one. Lower the parent's nlink. */
  rmdir?(req: Request, parent: number, name: string): void | Promise<void>;
  /**
   * Create a symlink to `target` (stored verbatim: it need not exist). Mode S_IFLNK | 0o777,
   * size = the target's byte length. EEXIST if the name exists. Counts as one lookup.
   */
  symlink?(req: Request, parent: number, name: string, target: string): Entry | Promise<Entry>;
  /**
   * Move `name` in `parent` to `newName` in `newParent`, replacing what is there (a file by a
   * file, an empty directory by a directory: ENOTEMPTY, EISDIR, ENOTDIR otherwise; renaming a
   * name onto another name of the same node does nothing). The kernel has refused moving a
   * directory into itself. `flags`: RENAME_NOREPLACE (EEXIST if the target exists) |
   * RENAME_EXCHANGE (swap the two; ENOENT if the target is missing) | RENAME_WHITEOUT; throw
   * EINVAL for flags you do not support. A replaced node is unlinked as by `unlink`.
   */
  rename?(req: Request, parent: number, name: string, newParent: number, newName: string, flags: number): void | Promise<void>;
  /**
   * Make `newName` in `newParent` another name of `ino` (never a directory: the kernel refuses
   * that): raise its nlink and ctime, return its entry. EEXIST if the name exists. Counts as one
   * lookup. Also gives an O_TMPFILE node its first name (see `tmpfile`).
   */
  link?(req: Request, ino: number, newParent: number, newName: string): Entry | Promise<Entry>;

  /**
   * `flags`: open(2) flags (O_TRUNC included: atomic truncate-on-open is negotiated).
   * `killSuidgid` (FUSE_OPEN_KILL_SUIDGID, only with {@link Filesystem.killPrivileges}): an
   * O_TRUNC open by a caller without CAP_FSETID; truncate and clear setuid/setgid by the rule.
   * A reply the kernel never gets is given back with `release` (see "Dropped results" at the top);
   * {@link PluginContext.isOpen} tells whether a node has open handles.
   */
  open?(req: Request, ino: number, flags: number, killSuidgid?: boolean): OpenReply | void | Promise<OpenReply | void>;
  /**
   * Read up to `size` bytes at `offset`. Either write into `dest` (a view of the reply buffer,
   * exactly `size` bytes long: zero-copy) and return the byte count, or return bytes to send.
   * Fewer bytes than asked means end of file (unless the file was opened with directIo).
   */
  read?(req: Request, ino: number, fh: number, offset: number, size: number, dest: Uint8Array): number | Uint8Array | Promise<number | Uint8Array>;
  /**
   * `data` views the request buffer: copy what you keep. Return the number of bytes written.
   * `flags`: the open(2) flags of the file. `killSuidgid` (FUSE_WRITE_KILL_SUIDGID): the writer
   * has no CAP_FSETID; a filesystem with {@link Filesystem.killPrivileges} clears setuid/setgid
   * by the rule (the kernel also sets it on direct-I/O writes of any mount).
   */
  write?(req: Request, ino: number, fh: number, offset: number, data: Uint8Array, flags: number, killSuidgid?: boolean): number | Promise<number>;
  /** Called on each close(2) of a descriptor (may be several per open). */
  flush?(req: Request, ino: number, fh: number, lockOwner: number): void | Promise<void>;
  /**
   * The last descriptor of an open is gone (or the runtime gives back a handle the kernel never
   * got: see "Dropped results"). Errors are ignored by the kernel.
   */
  release?(req: Request, ino: number, fh: number, flags: number): void | Promise<void>;
  /**
   * fsync/fdatasync (`datasync`: the data only, not the metadata) of an open file: return once
   * what was written is durable. Without it (ENOSYS) the kernel stops asking and fsync succeeds.
   */
  fsync?(req: Request, ino: number, fh: number, datasync: boolean): void | Promise<void>;

  /**
   * Open directory `ino` for listing; the reply's `fh` comes back to readdir/releasedir (set
   * `cacheDir` to let the kernel cache listings). Without it every opendir succeeds with fh 0.
   */
  opendir?(req: Request, ino: number, flags: number): OpenReply | void | Promise<OpenReply | void>;
  /** List entries after cookie `offset` (0 = from the start) until `out.add` returns false. */
  readdir?(req: Request, ino: number, fh: number, offset: number, out: DirList): void | Promise<void>;
  /** As readdir, with attributes; when present the kernel uses it (READDIRPLUS). */
  readdirplus?(req: Request, ino: number, fh: number, offset: number, out: DirListPlus): void | Promise<void>;
  /** The directory handle `fh` is closed (once per opendir); free what opendir allocated. */
  releasedir?(req: Request, ino: number, fh: number): void | Promise<void>;
  /** fsync of an open directory: make its entries durable. ENOSYS: the kernel stops asking and succeeds. */
  fsyncdir?(req: Request, ino: number, fh: number, datasync: boolean): void | Promise<void>;

  /**
   * statfs(2)/df for the filesystem (`ino` is the node asked about). Never cached. Without it
   * the runtime answers zeros with bsize 512 and namelen 255.
   */
  statfs?(req: Request, ino: number): StatFs | Promise<StatFs>;

  /**
   * Set extended attribute `name` (`value` views the request buffer: copy it). `flags`:
   * XATTR_CREATE (1: EEXIST if it exists) / XATTR_REPLACE (2: ENODATA if it does not). Answer
   * EOPNOTSUPP for namespaces you do not store — always for `system.posix_acl_*` unless you
   * implement ACLs (accepting them made `cp -a` copies `-rw-------`). The kernel checks
   * `trusted.*` (CAP_SYS_ADMIN) and `user.*` permissions (regular files and directories only).
   * Not cached. ENOSYS: the kernel answers EOPNOTSUPP to every xattr call and stops asking.
   */
  setxattr?(req: Request, ino: number, name: string, value: Uint8Array, flags: number): void | Promise<void>;
  /** Return the value; throw ENODATA if absent. The runtime handles size probing and ERANGE. */
  getxattr?(req: Request, ino: number, name: string): Uint8Array | string | Promise<Uint8Array | string>;
  /** Return all attribute names. The runtime handles size probing and ERANGE. */
  listxattr?(req: Request, ino: number): string[] | Promise<string[]>;
  /** Remove extended attribute `name`; ENODATA if absent. */
  removexattr?(req: Request, ino: number, name: string): void | Promise<void>;

  /**
   * access(2)/faccessat: may the caller `mask` (R_OK 4 | W_OK 2 | X_OK 1, or F_OK 0) this node?
   * Throw EACCES if not. Only sent with -o no_default_permissions (the kernel checks modes itself
   * otherwise); ENOSYS: the kernel stops asking and allows.
   */
  access?(req: Request, ino: number, mask: number): void | Promise<void>;
  /**
   * Create and open a regular file. Counts as one lookup. Without it the kernel uses mknod + open.
   * `killSuidgid` as for `open`: O_TRUNC without O_EXCL by a caller without CAP_FSETID, for the
   * case that the name exists by the time the request arrives.
   */
  create?(req: Request, parent: number, name: string, mode: number, flags: number, umask: number, killSuidgid?: boolean): CreateReply | Promise<CreateReply>;
  /**
   * open(2) with O_TMPFILE: create and open a regular file with no name in directory `parent`
   * (FUSE_TMPFILE). Reply as for `create`; counts as one lookup. The new node has nlink 0 and
   * lives while it is open or the kernel holds it; free it when both are gone, unless it was
   * linked. `linkat(fd, "", dir, name, AT_EMPTY_PATH)` (or `linkat` of `/proc/self/fd/N` with
   * AT_SYMLINK_FOLLOW) then arrives as a `link` of this node: give it its first name (nlink
   * 0 → 1). With O_EXCL in `flags` the kernel itself refuses every such link (ENOENT). `mode`
   * has the caller's umask applied already (`umask` is what it was). Without this op the kernel
   * answers EOPNOTSUPP to O_TMPFILE opens and stops asking.
   */
  tmpfile?(req: Request, parent: number, mode: number, flags: number, umask: number): CreateReply | Promise<CreateReply>;

  /**
   * fallocate(2) on an open file: reserve (mode 0: grow the size to offset + length if larger),
   * or with `mode` FALLOC_FL_* flags (KEEP_SIZE 1: do not change the size, PUNCH_HOLE 2 (always
   * with KEEP_SIZE): zero the range and free it, ZERO_RANGE 16). Throw EOPNOTSUPP for modes you do
   * not support, ENOSPC when full. ENOSYS: the kernel answers EOPNOTSUPP and stops asking.
   */
  fallocate?(req: Request, ino: number, fh: number, offset: number, length: number, mode: number): void | Promise<void>;
  /**
   * lseek with SEEK_DATA (3) / SEEK_HOLE (4) (the kernel handles SET/CUR/END itself): return the
   * offset of the next data / hole at or after `offset`; ENXIO past the end. ENOSYS: the kernel
   * stops asking and treats the whole file as data.
   */
  lseek?(req: Request, ino: number, fh: number, offset: number, whence: number): number | Promise<number>;
  /**
   * copy_file_range(2) between two open files of this filesystem: copy up to `length` bytes and
   * return the count (0 at end of the source). `flags` is 0 today. ENOSYS: the kernel stops asking
   * and copies through read and write.
   */
  copyFileRange?(req: Request, inoIn: number, fhIn: number, offIn: number, inoOut: number, fhOut: number, offOut: number, length: number, flags: number): number | Promise<number>;

  /**
   * F_GETLK: return the first lock that conflicts with `lock` held by another `owner`, or `lock`
   * with type F_UNLCK when none does. Only with `setlk` too: then POSIX and flock locks are
   * negotiated and the kernel leaves them to the filesystem; without both it keeps them locally.
   */
  getlk?(req: Request, ino: number, fh: number, owner: number, lock: FileLock): FileLock | Promise<FileLock>;
  /**
   * F_SETLK/F_SETLKW/flock: take or release (type F_UNLCK) `lock` for `owner`. EAGAIN when it
   * conflicts and `sleep` is false; with `sleep` (SETLKW) wait until it can be taken, and stop
   * with EINTR when `req.signal` aborts. `flock`: a BSD flock rather than a POSIX lock.
   */
  setlk?(req: Request, ino: number, fh: number, owner: number, lock: FileLock, sleep: boolean, flock: boolean): void | Promise<void>;
  /** syncfs(2) on the mount: make everything written durable. ENOSYS: the kernel stops asking and succeeds. */
  syncfs?(req: Request, ino: number): void | Promise<void>;
}

/** Declares a plugin option parsed from the command line (`--name value`). */
export interface PluginOption {
  type: "string" | "number" | "boolean";
  help: string;
  required?: boolean;
  default?: string | number | boolean;
}

/**
 * Tell the kernel that data it caches changed behind its back (sent asynchronously; never call
 * these and wait for them from inside an op on the same node: the kernel may need that op).
 */
export interface Notifier {
  /**
   * Drop the cached attributes of `ino` and its cached pages from `offset` for `length` bytes
   * (`length` 0: to the end; `offset` < 0: attributes only). Resolves also when the kernel does
   * not cache the node.
   */
  invalInode(ino: number, offset?: number, length?: number): Promise<void>;
  /** Drop the cached directory entry `name` in `parent` (`expireOnly`: just mark it stale). */
  invalEntry(parent: number, name: string, expireOnly?: boolean): Promise<void>;
  /** `child`, named `name` in `parent`, was deleted: invalidate and unhash the entry. */
  delete(parent: number, child: number, name: string): Promise<void>;
  /** Put `data` into the page cache of `ino` at `offset` (regular files). */
  store(ino: number, offset: number, data: Uint8Array): Promise<void>;
  /** What the page cache holds for `ino` at `offset` (up to `size` bytes; empty when the kernel does not cache the node). */
  retrieve(ino: number, offset: number, size: number): Promise<Uint8Array>;
}

/**
 * File I/O submitted on the runtime's io_uring (no thread pool, no copy): reading into a read op's
 * `dest` lands straight in the kernel's reply buffer (IORING_OP_READ_FIXED on the registered
 * payload buffers), writing a write op's `data` goes straight from the request buffer.
 */
export interface FileIO {
  /** Read up to `dest.length` bytes of `fd` at `offset` into `dest`; resolves with the count. */
  read(fd: number, dest: Uint8Array, offset: number): Promise<number>;
  /** Write `src` to `fd` at `offset`; resolves with the count written. */
  write(fd: number, src: Uint8Array, offset: number): Promise<number>;
  /** fsync (or fdatasync) `fd`. */
  fsync(fd: number, datasync: boolean): Promise<void>;
}

/** What a plugin's `setup` receives. */
export interface PluginContext<O = Record<string, unknown>> {
  /** Parsed plugin options. */
  readonly options: O;
  /** Absolute path of the mountpoint. */
  readonly mountpoint: string;
  /** Log a line to the daemon's log, prefixed with the plugin's name. */
  log(...args: unknown[]): void;
  /**
   * State kept across hot reloads: the value an earlier generation kept under `key`, or `init()`
   * (stored for later generations) on the first. Keep plain data here (node tables, handle tables);
   * methods of its classes stay those of the generation that created the objects. With
   * `concurrency: "shared"` each instance (main thread, every Worker) has its own store: what all
   * of them must see goes in {@link shared}.
   */
  keep<T>(key: string, init: () => T): T;
  /** 1 for the first generation of the plugin's code, then 2, 3, ... after each hot reload. */
  readonly generation: number;
  /**
   * Register `fn` to release something `setup` opened (a database, a descriptor, a timer). The
   * releases run once, last registered first: after the filesystem's `destroy` when this
   * generation is destroyed (see {@link Filesystem.destroy}), and also when `setup` throws, where
   * there is no filesystem to destroy: register each release as soon as its resource is open, and
   * a setup that fails half-way still releases what it opened. Errors are logged.
   */
  onDestroy(fn: () => void | Promise<void>): void;
  /** Notifications to the kernel (available once mounted; calls made earlier wait for it). */
  readonly notify: Notifier;
  /** File I/O on the runtime's io_uring. */
  readonly io: FileIO;
  /**
   * Whether kernel passthrough (`OpenReply.backingFd`) will be used: a function because it is
   * only known once the kernel has answered INIT.
   */
  passthrough(): boolean;
  /**
   * Memory every reactor sees: the same `SharedArrayBuffer` under `key` on every Worker and in
   * every generation (so it survives hot reloads like `keep`), zero-filled when first created.
   * `maxByteLength` (at most 4 GiB) makes it growable with `grow()`: address space is reserved, pages are
   * committed only as they are touched. Asking again for a key returns the existing buffer; a
   * larger `byteLength` than it holds grows it when it is growable, else throws.
   *
   * With `concurrency: "shared"`, `setup` runs first on the main thread ({@link ReactorInfo.primary}),
   * and only that first run may create keys: the Workers' runs get the buffers it created. State
   * that every reactor must see lives only here (and in the kernel: descriptors are per process).
   */
  shared(key: string, byteLength: number, maxByteLength?: number): SharedArrayBuffer;
  /** Which reactor this `setup` runs for (see {@link Plugin.concurrency}). */
  readonly reactor: ReactorInfo;
  /**
   * The mount's access-time mode (`-o noatime|relatime|strictatime`, default relatime). The kernel
   * never updates atime on a FUSE mount: a filesystem that keeps atime applies it on reads,
   * readdirs and readlinks, as the kernel's touch_atime does (see the plugin guide).
   */
  readonly atime: AtimeMode;
  /** `-o nodiratime`: directories' atime never changes (on top of {@link atime}). */
  readonly nodiratime: boolean;
  /**
   * Whether node `ino` has open handles: open, opendir, create and tmpfile replies the kernel
   * got whose RELEASE/RELEASEDIR has not arrived (inside `release` the handle being released no
   * longer counts). Counted by the runtime across generations and, with reactor Workers, over
   * every reactor (an open on one, its release on another); false before the mount.
   */
  isOpen(ino: number): boolean;
}

/**
 * A mount's access-time mode: "relatime" updates atime when it is not newer than mtime or ctime,
 * or is a day old; "strictatime" on every access; "noatime" never.
 */
export type AtimeMode = "relatime" | "strictatime" | "noatime";

/** Where a plugin instance runs. */
export interface ReactorInfo {
  /** 0-based: 0 is the main thread; Workers are 1..count. */
  readonly index: number;
  /** Reactor Workers serving queues (0 when the main thread serves everything). */
  readonly count: number;
  /**
   * The main thread's instance: its setup runs first and alone creates `ctx.shared` regions; only
   * it runs `init`. Over io_uring it also gets the FORGETs and INTERRUPTs, which arrive on
   * /dev/fuse; over classic /dev/fuse the Workers read every request, so it gets none.
   */
  readonly primary: boolean;
}

/**
 * How a plugin may be served.
 * - `"single"` (the default): one instance on the main thread serves every queue, as a plain
 *   single-threaded JS program; ops never run concurrently with each other outside `await`s.
 * - `"shared"`: `setup` runs once on the main thread, then once per reactor Worker (one per CPU
 *   queue, or group of queues), and every instance serves requests at the same time. Instances
 *   share nothing but `ctx.shared` memory (use the locks and atomics of `furing`'s shared-memory
 *   helpers) and process-wide kernel objects such as file descriptors. Any op, `forget` included,
 *   may arrive on any instance. `init` runs on the main thread's instance only, `destroy` on every
 *   instance; a reload serves on every instance or on none (a `setup` that throws anywhere
 *   rejects it everywhere). `-o reactors=N` sets the Worker count (0: served as "single").
 */
export type Concurrency = "single" | "shared";

/** A plugin with options and a setup step; `setup` returns the filesystem. */
export interface Plugin<O = Record<string, unknown>> {
  name?: string;
  options?: Record<string, PluginOption>;
  /** See {@link Concurrency}; default `"single"`. */
  concurrency?: Concurrency;
  setup(ctx: PluginContext<O>): Filesystem | Promise<Filesystem>;
}
