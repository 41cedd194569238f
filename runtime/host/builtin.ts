/**
 * The built-in plugins, imported statically so `bun build --compile` embeds them in the binary.
 * From source they are bundled from their files like any plugin (and hot-reload while developing
 * them); inside the binary, where no source tree exists, these embedded modules are used.
 */
export const EMBEDDED_PLUGINS: Record<string, () => Promise<Record<string, unknown>>> = {
  memfs: () => import("../../plugins/memfs/index.ts"),
  passthrough: () => import("../../plugins/passthrough/index.ts"),
};
