/**
 * Large-file copy integrity through passthrough, CI-sized (issue 4; the multi-GiB version is
 * scripts/copytest): a 256 MiB (+ an odd tail) pseudo-random file copied into the mount and back
 * out, over both transports, with and without kernel passthrough. The sha256 of the original,
 * of the backing file in the source directory, of the copy read back with O_DIRECT and of a
 * buffered read through the mount must be equal, and the daemon's counters must show that the
 * data took the path the combination claims (kernel passthrough: no READ/WRITE reaches the
 * daemon; no_passthrough: they all do).
 *
 * The bytes are moved by spawned dd and sha256sum; the test process never blocks on the mount.
 */
import { describe, test, expect, beforeAll, afterAll } from "bun:test";
import { join } from "node:path";
import { transports, makeTempDir, removeTempDir, isRoot } from "../helpers/mount.ts";
import { COMBOS, comboName, makeSource, roundTrip, type Source } from "../../scripts/copytest-lib/roundtrip.ts";

const MIB = 256;
const STEP_MS = 120_000;

let scratch = "";
let src: Source;

beforeAll(async () => {
  scratch = await makeTempDir("integrity");
  src = await makeSource(join(scratch, "source.bin"), MIB, 4, STEP_MS);
}, STEP_MS);

afterAll(async () => {
  if (scratch) await removeTempDir(scratch);
});

const combos = COMBOS.filter((c) => transports().includes(c.transport));

describe("passthrough large-file copy integrity", () => {
  for (const combo of combos) {
    test(`${comboName(combo)}: ${MIB} MiB in and out, sha256 of source = backing file = read-back = read through the mount`, async () => {
      const r = await roundTrip(combo, src, scratch, STEP_MS);
      expect(r.sizes).toEqual({ backing: src.bytes, readBack: src.bytes });
      expect(r.sha256).toEqual({ source: src.sha256, backing: src.sha256, readBack: src.sha256, mountRead: src.sha256 });
      expect(r.daemon.transport).toBe(combo.transport);
      if (combo.kernelPassthrough && isRoot()) {
        // the kernel moved the data itself, to and from the backing file
        expect(r.daemon.passthrough).toMatch(/^on \(\d+ backing files opened\)$/);
        expect([r.daemon.reads, r.daemon.writes]).toEqual([0, 0]);
      } else {
        expect(r.daemon.passthrough).toBe("off");
        // 1 MiB writes (max_write) and at least one O_DIRECT pass of 1 MiB reads
        expect(r.daemon.writes).toBeGreaterThanOrEqual(MIB);
        expect(r.daemon.reads).toBeGreaterThanOrEqual(MIB);
      }
    }, STEP_MS * 2);
  }
});
