/** The Bun-native fixture plugin (test/fixtures/bun-native), ready to mount or compile. */
import { cp, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, REPO } from "./mount.ts";

/**
 * test/fixtures/bun-native copied to a fresh temp dir (remove it with removeTempDir), with its npm
 * dependency `bun-dep` in its node_modules: the "bun" export condition says "bun", any other
 * condition "other".
 */
export async function bunNativePlugin(): Promise<string> {
  const dir = await makeTempDir("bun-native");
  await cp(join(REPO, "test/fixtures/bun-native"), dir, { recursive: true });
  const dep = join(dir, "node_modules/bun-dep");
  await mkdir(dep, { recursive: true });
  await writeFile(join(dep, "package.json"), JSON.stringify({ name: "bun-dep", type: "module", exports: { ".": { bun: "./bun.js", default: "./other.js" } } }));
  await writeFile(join(dep, "bun.js"), `export const runtime = () => "bun";\n`);
  await writeFile(join(dep, "other.js"), `export const runtime = () => "other";\n`);
  return dir;
}
