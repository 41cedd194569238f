/**
 * passthrough: mirrors a host directory.
 *
 *   furing mount passthrough /mnt/p --source /srv/data
 *
 * A faithful view of the source: every operation is the same system call made on the source
 * (relative to node descriptors with the `*at` calls of `furing/sys`), ownership, modes,
 * timestamps and xattrs are preserved, and the server never follows a symlink itself, so nothing
 * outside the source is reachable through it. Data moves on the runtime's io_uring with no copy,
 * or, where the kernel offers FUSE passthrough (root), bypasses the daemon altogether.
 *
 * Split by concern: state.ts (the shared state, --source validation), nodes.ts (node table: identity,
 * lookup counts, descriptor cache and re-opening), handles.ts (open files and directory streams),
 * ops.ts (the FUSE operations).
 */
import { definePlugin } from "furing";
import { createOps } from "./ops.ts";
import { openSource, type PassthroughOptions } from "./state.ts";

export default definePlugin<PassthroughOptions>({
  name: "passthrough",
  // every instance serves requests on the same shared tables (state.ts), under one lock
  concurrency: "shared",
  options: {
    source: { type: "string", help: "directory to mirror", required: true },
    "fd-cache": { type: "number", help: "O_PATH descriptors kept open for recently used nodes (16..16384)", default: 4096 },
    "file-handles": { type: "boolean", help: "re-open nodes from file handles when root (--file-handles=false: by parent and name)", default: true },
    "export-nodes": { type: "number", help: "forgotten nodes the mount's own file handles (open_by_handle_at, NFS) can still open (0: no export support)", default: 65536 },
  },
  setup(ctx) {
    // The node and handle tables live in ctx.shared regions: the same on every reactor, and they
    // outlive the code. Only the first run validates and opens --source; later runs (Workers,
    // reloads) attach and never touch the mountpoint (statting it now would wait on ourselves).
    const state = openSource(ctx.options, ctx.mountpoint, ctx.log, (key, bytes, max) => ctx.shared(key, bytes, max));
    return createOps(state, ctx);
  },
});

export { createOps, type PassthroughFs } from "./ops.ts";
export { openSource, isPassthroughState, type PassthroughState, type PassthroughOptions } from "./state.ts";
