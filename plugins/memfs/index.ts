/**
 * memfs: an in-memory POSIX filesystem that behaves like tmpfs.
 *
 *   furing mount memfs /mnt/m --size 2G
 *
 * Split by concern: state.ts (the one state object), nodes.ts (node table, directory entries,
 * lookup/link counting), data.ts (file data in chunks), xattr.ts (extended attributes), ops.ts
 * (the FUSE operations), options.ts (command-line options).
 */
import { definePlugin } from "furing";
import { createOps } from "./ops.ts";
import { limitsFromOptions, type MemfsOptions } from "./options.ts";
import { createState, isMemfsState } from "./state.ts";

export default definePlugin<MemfsOptions>({
  name: "memfs",
  options: {
    size: { type: "string", help: "size limit, e.g. 512M, 2G, 50% of RAM, 0 = no limit (default: half of RAM)" },
    inodes: { type: "string", help: "node limit, e.g. 100k, 1m, 0 = no limit (default: half the RAM pages)" },
    mode: { type: "string", help: "permissions of the root directory, octal (default: 755)" },
  },
  setup(ctx) {
    // The tree outlives the code: later generations (hot reload) get the first one's state.
    const state: unknown = ctx.keep("state", () => createState(limitsFromOptions(ctx.options)));
    if (!isMemfsState(state)) throw new Error("memfs: the state kept by the running generation has an incompatible layout; remount to upgrade");
    return createOps(state);
  },
});

export { createOps } from "./ops.ts";
export { createState, isMemfsState, type MemfsState, type MemfsLimits } from "./state.ts";
export type { MemfsOptions } from "./options.ts";
