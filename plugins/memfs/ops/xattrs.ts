/** Extended attributes (the store is xattr.ts); a change stamps ctime. */
import { defineFilesystem, type Request } from "furing";
import { getNode, setCtime, tick } from "../nodes.ts";
import { getXattr, listXattrs, removeXattr, setXattr } from "../xattr.ts";
import type { MemfsState } from "../state.ts";

export function xattrOps(state: MemfsState) {
  return defineFilesystem({
    setxattr(_req: Request, ino: number, name: string, value: Uint8Array, flags: number): void {
      const n = getNode(state, ino);
      setXattr(state, n, name, value, flags);
      tick(state);
      setCtime(n);
    },

    getxattr(_req: Request, ino: number, name: string): Uint8Array {
      return getXattr(state, getNode(state, ino), name);
    },

    listxattr(req: Request, ino: number): string[] {
      return listXattrs(state, getNode(state, ino), req.uid);
    },

    removexattr(_req: Request, ino: number, name: string): void {
      const n = getNode(state, ino);
      removeXattr(state, n, name);
      tick(state);
      setCtime(n);
    },
  });
}
