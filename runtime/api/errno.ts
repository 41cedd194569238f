/** Linux errno values by name (x86-64 / arm64 generic), and the error a plugin throws. */
export const Errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9,
  ECHILD: 10, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17,
  EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25,
  ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33,
  ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40,
  ENOMSG: 42, EIDRM: 43, ENODATA: 61, ETIME: 62, ENOLINK: 67, EPROTO: 71, EOVERFLOW: 75, EBADFD: 77,
  EILSEQ: 84, EUSERS: 87, ENOTSOCK: 88, EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91,
  ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, EOPNOTSUPP: 95, ENOTSUP: 95, EAFNOSUPPORT: 97,
  EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101, ECONNABORTED: 103,
  ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ETIMEDOUT: 110, ECONNREFUSED: 111,
  EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115, ESTALE: 116, EDQUOT: 122, ECANCELED: 125,
  EOWNERDEAD: 130, ENOTRECOVERABLE: 131,
  /** glibc's name for ENODATA in xattr calls. */
  ENOATTR: 61,
} as const;

export type ErrnoName = keyof typeof Errno;

const names: string[] = [];
for (const [k, v] of Object.entries(Errno)) if (names[v] === undefined && k !== "ENOATTR" && k !== "ENOTSUP") names[v] = k;

/** "ENOENT" for 2, or "E<n>" for an unnamed number. */
export function errnoName(errno: number): string {
  return names[errno] ?? `E${errno}`;
}

/**
 * The error an op throws to answer with an errno: `throw new FuseError("ENOENT")`.
 * Any error with a Node-style `code` ("ENOENT") or a numeric `errno` is accepted too.
 */
export class FuseError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(code: ErrnoName | number, message?: string) {
    const errno = typeof code === "number" ? code : Errno[code];
    const name = errnoName(errno);
    super(message ?? name);
    this.name = "FuseError";
    this.errno = errno;
    this.code = name;
  }
}

/**
 * The errno a thrown value stands for, or 0 when it is not an errno-carrying error (a bug: the
 * caller answers EIO and logs it). Accepts FuseError, Node's SystemError ({code:"ENOENT"}),
 * objects with a positive numeric `errno`, and bare positive numbers below 512.
 */
export function errnoOf(thrown: unknown): number {
  if (typeof thrown === "number") return Number.isInteger(thrown) && thrown > 0 && thrown < 512 ? thrown : 0;
  if (typeof thrown !== "object" || thrown === null) return 0;
  const t = thrown as { code?: unknown; errno?: unknown };
  if (typeof t.code === "string" && t.code in Errno) return Errno[t.code as ErrnoName];
  if (typeof t.errno === "number") {
    const e = Math.abs(t.errno); // Node reports negative errno numbers
    if (Number.isInteger(e) && e > 0 && e < 512) return e;
  }
  return 0;
}
