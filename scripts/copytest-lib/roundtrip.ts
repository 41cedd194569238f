/**
 * Large-file copy integrity through passthrough (issue 4): a file of pseudo-random bytes is
 * copied into a fresh passthrough mount and back out, and the sha256 of the original, of the
 * backing file the mount wrote in its source directory, of the copy read back out (O_DIRECT, so
 * the data path is used rather than the page cache) and of a buffered read through the mount
 * must all be equal. One round trip per combination of transport (io_uring, classic) and kernel
 * passthrough (on, `-o no_passthrough`).
 *
 * Used by scripts/copytest (several GiB) and test/integration/passthrough-integrity.test.ts
 * (CI-sized). Every byte is moved by spawned tools (dd, sha256sum): the calling process never
 * makes a blocking call on the mount, and the daemon runs in a child process (withMount), torn
 * down even when a step fails.
 */
import { join } from "node:path";
import { mkdir, rm, stat } from "node:fs/promises";
import { withMount, type Transport, type Status } from "../../test/helpers/mount.ts";
import { run, sh, describeResult } from "../../test/helpers/run.ts";

export interface Combo {
  transport: Transport;
  kernelPassthrough: boolean;
}

export const COMBOS: Combo[] = [
  { transport: "io_uring", kernelPassthrough: true },
  { transport: "io_uring", kernelPassthrough: false },
  { transport: "classic", kernelPassthrough: true },
  { transport: "classic", kernelPassthrough: false },
];

export const comboName = (c: Combo) => `${c.transport}, ${c.kernelPassthrough ? "kernel passthrough" : "no_passthrough"}`;

/** Bytes added after the whole MiBs, so the file does not end on a block or page boundary. */
export const ODD_TAIL = 12_345;

export interface Source {
  file: string;
  bytes: number;
  sha256: string;
  seconds: number;
}

export interface RoundTrip {
  combo: string;
  transport: Transport;
  kernelPassthrough: boolean;
  bytes: number;
  sha256: { source: string; backing: string; readBack: string; mountRead: string };
  /** All four hashes equal and all sizes equal. */
  ok: boolean;
  sizes: { backing: number; readBack: number };
  seconds: { copyIn: number; copyOut: number; mountRead: number };
  mibPerSecond: { copyIn: number; copyOut: number; mountRead: number };
  /** What the daemon reported: transport, kernel passthrough, and the READ/WRITE requests it served. */
  daemon: { transport: string; passthrough: string; reads: number; writes: number };
}

async function sha256sum(file: string, timeoutMs: number): Promise<string> {
  const out = await sh(["sha256sum", "--", file], { timeoutMs });
  const hash = out.split(" ")[0] ?? "";
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`sha256sum ${file}: unexpected output ${out.slice(0, 200)}`);
  return hash;
}

async function timed(cmd: string[], timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const r = await run(cmd, { timeoutMs });
  if (r.code !== 0) throw new Error(describeResult(r));
  return (performance.now() - t0) / 1000;
}

/**
 * Writes `mib` MiB plus {@link ODD_TAIL} bytes of reproducible pseudo-random data (AES-CTR
 * keystream of `seed`) to `file`, outside any mount, and hashes it.
 */
export async function makeSource(file: string, mib: number, seed: number, timeoutMs: number): Promise<Source> {
  const bytes = mib * 2 ** 20 + ODD_TAIL;
  const t0 = performance.now();
  const gen = `openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:furing-${seed} < /dev/zero 2>/dev/null | head -c ${bytes} > '${file}'`;
  const r = await run(["sh", "-c", gen], { timeoutMs });
  if (r.code !== 0) throw new Error(describeResult(r));
  const st = await stat(file);
  if (st.size !== bytes) throw new Error(`generating ${file}: got ${st.size} bytes, wanted ${bytes} (is openssl installed?)`);
  // written back now, so the first combination does not pay for it (the copy times are comparable)
  await sh(["sync", "--", file], { timeoutMs });
  const sha256 = await sha256sum(file, timeoutMs);
  return { file, bytes, sha256, seconds: (performance.now() - t0) / 1000 };
}

function opCount(s: Status, op: string): number {
  return s.ops[op]?.count ?? 0;
}

/**
 * One round trip of `src` through a passthrough mount of a fresh directory under `scratch`, for
 * `combo`. Backing file and read-back copy are removed afterwards (the mount is gone by then).
 */
export async function roundTrip(combo: Combo, src: Source, scratch: string, timeoutMs: number, log: (line: string) => void = () => {}): Promise<RoundTrip> {
  const tag = `${combo.transport}-${combo.kernelPassthrough ? "pt" : "nopt"}`;
  const backingDir = join(scratch, `backing-${tag}`);
  const out = join(scratch, `readback-${tag}`);
  await mkdir(backingDir);
  let result: RoundTrip | undefined;
  try {
    await withMount(
      {
        plugin: "passthrough",
        transport: combo.transport,
        options: combo.kernelPassthrough ? [] : ["no_passthrough"],
        args: ["--source", backingDir],
        timeoutMs,
      },
      async (m) => {
        const inMount = join(m.dir, "big.bin");
        const before = await m.status();
        // into the mount: buffered 1 MiB writes, fsync at the end (the data is in the backing file)
        log(`  ${comboName(combo)}: copy in`);
        const copyIn = await timed(["dd", `if=${src.file}`, `of=${inMount}`, "bs=1M", "conv=fsync", "status=none"], timeoutMs);
        // back out with O_DIRECT: every byte comes through the data path, not from the page cache
        log(`  ${comboName(combo)}: copy out (O_DIRECT)`);
        const copyOut = await timed(["dd", `if=${inMount}`, `of=${out}`, "bs=1M", "iflag=direct", "status=none"], timeoutMs);
        // and a buffered read through the mount (readahead, page cache)
        log(`  ${comboName(combo)}: sha256sum through the mount`);
        const t0 = performance.now();
        const mountRead = await sha256sum(inMount, timeoutMs);
        const mountReadSeconds = (performance.now() - t0) / 1000;
        const after = await m.status();
        log(`  ${comboName(combo)}: sha256sum of the backing file and the read-back copy`);
        const backing = await sha256sum(join(backingDir, "big.bin"), timeoutMs);
        const readBack = await sha256sum(out, timeoutMs);
        const sizes = { backing: (await stat(join(backingDir, "big.bin"))).size, readBack: (await stat(out)).size };
        const mibs = (s: number) => Math.round((src.bytes / 2 ** 20 / s) * 10) / 10;
        result = {
          combo: comboName(combo),
          transport: combo.transport,
          kernelPassthrough: combo.kernelPassthrough,
          bytes: src.bytes,
          sha256: { source: src.sha256, backing, readBack, mountRead },
          ok: [backing, readBack, mountRead].every((h) => h === src.sha256) && sizes.backing === src.bytes && sizes.readBack === src.bytes,
          sizes,
          seconds: { copyIn, copyOut, mountRead: mountReadSeconds },
          mibPerSecond: { copyIn: mibs(copyIn), copyOut: mibs(copyOut), mountRead: mibs(mountReadSeconds) },
          daemon: {
            transport: String(after.transport),
            passthrough: String(after.passthrough),
            reads: opCount(after, "read") - opCount(before, "read"),
            writes: opCount(after, "write") - opCount(before, "write"),
          },
        };
      },
    );
  } finally {
    await rm(backingDir, { recursive: true, force: true });
    await rm(out, { force: true });
  }
  return result!;
}
