/**
 * `furing/testing`: the test kit for plugin authors, for `bun test`.
 *
 *   import { withMount, transports, checkPlugin } from "furing/testing";
 *
 *   for (const transport of transports())
 *     test(`hello over ${transport}`, () =>
 *       withMount({ plugin: "./index.ts", transport }, async (m) => {
 *         expect(await Bun.file(`${m.dir}/hello.txt`).text()).toBe("Hello\n");
 *       }));
 *
 * The daemon runs in a child process (a process must never touch a mount it serves itself). Every
 * mount is torn down when its test ends, pass or fail: SIGTERM, `umount -l` if still mounted,
 * SIGKILL; a process-level net detaches what is left if the runner itself is interrupted. Call
 * `afterAll(cleanupAll)` in each test file as a last resort. See docs/plugin-guide.md, "Testing".
 */
export {
  cleanupAll,
  isMounted,
  isRoot,
  makeTempDir,
  mountedType,
  mountFs,
  removeTempDir,
  status,
  transports,
  unmountFs,
  uringEnabled,
  waitFor,
  withMount,
  withTempDir,
  type Daemon,
  type Mount,
  type MountOptions,
  type Status,
  type Transport,
  type WithMountOptions,
} from "./mount.ts";
export { describeResult, run, sh, type RunOptions, type RunResult } from "./run.ts";
export {
  CheckError,
  checkPlugin,
  FAMILIES,
  FAMILY_NAMES,
  summarize,
  type CheckDifference,
  type CheckOptions,
  type CheckResult,
  type Family,
  type Refusal,
} from "../check/check.ts";
