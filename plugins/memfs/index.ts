/**
 * memfs: an in-memory POSIX filesystem that behaves like tmpfs.
 *
 *   furing mount memfs /mnt/m --size 2G
 *
 * Split by concern: state.ts (the shared regions and a thread's handle on them), nodes.ts (node
 * table, directory entries, lookup/link counting), data.ts (file data in chunks), pool.ts (page
 * memory for the chunks), xattr.ts (extended attributes), ops.ts (the FUSE operations, assembled
 * from ops/ by concern: names, attributes, file data, handles, directories, xattrs), options.ts
 * (command-line options).
 */
import { definePlugin } from "furing";
import { createOps } from "./ops.ts";
import { limitsFromOptions, type MemfsOptions } from "./options.ts";
import { createState } from "./state.ts";

export default definePlugin<MemfsOptions>({
  name: "memfs",
  // every instance serves requests on the same shared tree (state.ts), under one lock (furing's lockOps)
  concurrency: "shared",
  options: {
    size: { type: "string", help: "size limit, e.g. 512M, 2G, 50% of RAM, 0 = no limit (default: half of RAM)" },
    inodes: { type: "string", help: "node limit, e.g. 100k, 1m, 0 = no limit (default: half the RAM pages)" },
    mode: { type: "string", help: "permissions of the root directory, octal (default: 755)" },
  },
  setup(ctx) {
    // The tree lives in ctx.shared regions: the same on every reactor, and it outlives the code
    // (later generations find it there). Only the first run (main thread, first generation)
    // lays it out from the options; a layout this code cannot read is refused (remount).
    const state = createState(limitsFromOptions(ctx.options), (key, bytes, max) => ctx.shared(key, bytes, max));
    return createOps(state, { atime: ctx.atime, nodiratime: ctx.nodiratime });
  },
});

export { createOps } from "./ops.ts";
export { createState, isMemfsState, type MemfsState, type MemfsLimits } from "./state.ts";
export type { MemfsOptions } from "./options.ts";
