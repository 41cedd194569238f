/**
 * The errors memfs throws, created once. Throwing a preallocated error costs nothing, while
 * `new FuseError(...)` captures a stack trace on every miss (a negative lookup is a common,
 * cheap-looking request). The runtime only needs `errno`/`code`; the stack is never shown for
 * errno-carrying errors.
 */
import { FuseError } from "furing";

export const ENOENT = new FuseError("ENOENT");
export const EEXIST = new FuseError("EEXIST");
export const ENOTDIR = new FuseError("ENOTDIR");
export const EISDIR = new FuseError("EISDIR");
export const ENOTEMPTY = new FuseError("ENOTEMPTY");
export const EINVAL = new FuseError("EINVAL");
export const EPERM = new FuseError("EPERM");
export const EACCES = new FuseError("EACCES");
export const ENOSPC = new FuseError("ENOSPC");
export const EFBIG = new FuseError("EFBIG");
export const ENXIO = new FuseError("ENXIO");
export const ENODATA = new FuseError("ENODATA");
export const E2BIG = new FuseError("E2BIG");
export const ERANGE = new FuseError("ERANGE");
export const EOPNOTSUPP = new FuseError("EOPNOTSUPP");
export const ENAMETOOLONG = new FuseError("ENAMETOOLONG");
export const EBUSY = new FuseError("EBUSY");
export const ENODEV = new FuseError("ENODEV");
