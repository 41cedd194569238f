/**
 * setuid/setgid through passthrough, side by side with the native directory: writes, O_TRUNC
 * opens, truncate, fallocate and chown by other users clear the bits exactly as Linux does on
 * the source (passthrough declares `killPrivileges`: the kernel leaves the clearing to it, and a
 * root daemon's own writes would keep them). Over both transports, with kernel passthrough,
 * without, and with direct_io.
 *
 * And the reason it matters for speed: with FUSE_HANDLE_KILLPRIV_V2 the kernel no longer asks for
 * security.capability (a GETXATTR round trip) before every write, so kernel passthrough writes
 * never reach the daemon (issue 4's P1.D4.randwrite4k ran at 0.03 × native because of that).
 *
 * Operations run as other users (setpriv) in child processes; the test process only stats the
 * source and the native directory.
 */
import { describe, test, expect } from "bun:test";
import { writeFileSync, chownSync, chmodSync, statSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { withMount, transports, withTempDir, isRoot, type Transport } from "../helpers/mount.ts";
import { needsRoot } from "../helpers/skip.ts";
import { sh } from "../helpers/run.ts";
import * as sys from "furing/sys";

const OWNER = 4321;
const OTHER = 5555;

interface Scenario {
  name: string;
  mode: number;
  /** setpriv arguments (none: as root). */
  as: string[];
  /** Shell command; $0 is the file. */
  cmd: string;
}

const CHOWN_NOOP = `python3 -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' "$0" 2>/dev/null || true`;
const asOther = [`--reuid=${OTHER}`, `--regid=${OTHER}`, "--clear-groups"];
const SCENARIOS: Scenario[] = [
  { name: "write by another user (setuid, setgid+g+x)", mode: 0o6777, as: asOther, cmd: `echo more >> "$0"` },
  { name: "write by a member of the file's group (setgid without g+x)", mode: 0o2767, as: [`--reuid=${OTHER}`, `--regid=${OWNER}`, "--clear-groups"], cmd: `echo more >> "$0"` },
  { name: "write by a supplementary member of the file's group", mode: 0o2767, as: [`--reuid=${OTHER}`, `--regid=${OTHER}`, `--groups=${OWNER}`], cmd: `echo more >> "$0"` },
  { name: "write by a non-member (setgid without g+x)", mode: 0o2767, as: asOther, cmd: `echo more >> "$0"` },
  { name: "O_TRUNC open by another user", mode: 0o6777, as: asOther, cmd: `: > "$0"` },
  { name: "truncate(2) by another user", mode: 0o6777, as: asOther, cmd: `truncate -s 1 "$0"` },
  { name: "fallocate by another user", mode: 0o6777, as: asOther, cmd: `fallocate -l 65536 "$0"` },
  { name: "write by root (CAP_FSETID keeps the bits)", mode: 0o6777, as: [], cmd: `echo more >> "$0"` },
  { name: "chown by root", mode: 0o6777, as: [], cmd: `chown ${OWNER}:${OTHER} "$0"` },
  // chown(f, -1, -1): the owner's clears the bits; a stranger's fails natively (EPERM) and must not
  // clear them through the mount either (FUSE passes it on as a bare kill, like file_remove_privs)
  { name: "chown(f, -1, -1) by the owner", mode: 0o6755, as: [`--reuid=${OWNER}`, `--regid=${OWNER}`, "--clear-groups"], cmd: CHOWN_NOOP },
  { name: "chown(f, -1, -1) by a stranger who may not write it", mode: 0o6755, as: asOther, cmd: CHOWN_NOOP },
];

const CONFIGS = [
  { name: "kernel passthrough", options: ["allow_other"] },
  { name: "no_passthrough", options: ["allow_other", "no_passthrough"] },
  { name: "direct_io, no_passthrough", options: ["allow_other", "direct_io", "no_passthrough"] },
];

const octal = (m: number) => (m & 0o7777).toString(8);

async function runAs(s: Scenario, file: string): Promise<void> {
  const cmd = ["sh", "-c", s.cmd, file];
  await sh(s.as.length ? ["setpriv", ...s.as, ...cmd] : cmd, { timeoutMs: 20_000 });
}

describe.each(transports())("passthrough setuid/setgid over %s", (transport: Transport) => {
  for (const cfg of CONFIGS) {
    test.skipIf(needsRoot(`passthrough setuid/setgid over ${transport}`, "other users, chown"))(`${cfg.name}: cleared as on the native directory by writes, O_TRUNC, truncate, fallocate, chown`, async () => {
      await withTempDir(async (dir) => {
        const ref = join(dir, "native"), src = join(dir, "source");
        mkdirSync(ref);
        mkdirSync(src);
        chmodSync(dir, 0o755);
        chmodSync(ref, 0o777);
        chmodSync(src, 0o777);
        await withMount({ plugin: "passthrough", transport, options: cfg.options, args: ["--source", src] }, async (m) => {
          const got: string[] = [], want: string[] = [];
          for (const [i, s] of SCENARIOS.entries()) {
            // fresh files, never seen by the kernel: no cached mode
            for (const d of [ref, src]) {
              const f = join(d, `f${i}`);
              writeFileSync(f, "data\n");
              chownSync(f, OWNER, OWNER);
              chmodSync(f, s.mode);
            }
            await runAs(s, join(ref, `f${i}`));
            await runAs(s, join(m.dir, `f${i}`));
            want.push(`${s.name}: ${octal(statSync(join(ref, `f${i}`)).mode)}`);
            got.push(`${s.name}: ${octal(statSync(join(src, `f${i}`)).mode)}`);
          }
          expect(got).toEqual(want);
          // the cases really differ: bits cleared in some, kept in others
          expect(want.filter((w) => / [0-7]?777$| 767$/.test(w)).length).toBeGreaterThan(2);
          expect(want.filter((w) => / [246][0-7]{3}$/.test(w)).length).toBeGreaterThan(1);
        });
      }, "privileges");
    });
  }

  test.skipIf(needsRoot(`setuid/setgid set behind kernel passthrough over ${transport}`, "kernel passthrough and other users"))("kernel passthrough: setuid/setgid set on the source behind the kernel's back are cleared by the next write, as natively", async () => {
    await withTempDir(async (dir) => {
      const ref = join(dir, "native"), src = join(dir, "source");
      for (const d of [ref, src]) {
        mkdirSync(d);
        chmodSync(d, 0o777);
      }
      chmodSync(dir, 0o755);
      // long timeouts: the kernel keeps the mode it saw before the chmod for the whole test
      await withMount({ plugin: "passthrough", transport, options: ["allow_other", "attr_timeout=60", "entry_timeout=60"], args: ["--source", src] }, async (m) => {
        const cases: Scenario[] = [
          { name: "write by another user", mode: 0o6777, as: asOther, cmd: `echo more >> "$0"` },
          { name: "write by a non-member (setgid without g+x)", mode: 0o2767, as: asOther, cmd: `echo more >> "$0"` },
          { name: "write by root (CAP_FSETID keeps the bits)", mode: 0o6777, as: [], cmd: `echo more >> "$0"` },
        ];
        const got: string[] = [], want: string[] = [];
        for (const [i, c] of cases.entries()) {
          for (const d of [ref, src]) {
            const f = join(d, `g${i}`);
            writeFileSync(f, "data\n");
            chownSync(f, OWNER, OWNER);
            chmodSync(f, 0o777);
          }
          // the kernel caches the mode without the bits, and a first write passes through it
          await runAs({ ...c, cmd: `stat -c %a "$0" >/dev/null && echo first >> "$0"` }, join(m.dir, `g${i}`));
          await runAs({ ...c, cmd: `echo first >> "$0"` }, join(ref, `g${i}`));
          // set directly on the source (and on the native file), not through the mount
          chmodSync(join(src, `g${i}`), c.mode);
          chmodSync(join(ref, `g${i}`), c.mode);
          await runAs(c, join(ref, `g${i}`));
          await runAs(c, join(m.dir, `g${i}`));
          want.push(`${c.name}: ${octal(statSync(join(ref, `g${i}`)).mode)}`);
          got.push(`${c.name}: ${octal(statSync(join(src, `g${i}`)).mode)}`);
        }
        expect(got).toEqual(want);
        expect(want[0]).toEndWith(": 777");
        expect(want[2]).toEndWith(": 6777");
        expect(m.log()).not.toContain("kernel passthrough unavailable");
      });
    }, "privileges-behind");
  });

  test.skipIf(needsRoot(`mixed kernel-passthrough opens over ${transport}`, "kernel passthrough"))("kernel passthrough: opens of one file agree while it is open, whatever its bits became meanwhile", async () => {
    await withTempDir(async (src) => {
      for (const [f, mode] of [["a", 0o4755], ["b", 0o755]] as const) {
        writeFileSync(join(src, f), "data\n");
        chmodSync(join(src, f), mode);
      }
      await withMount({ plugin: "passthrough", transport, options: ["allow_other"], args: ["--source", src] }, async (m) => {
        // a: first open served by the daemon (setuid), then the bit goes: a second open must not
        // ask for passthrough (ETXTBSY). b: first open passes through, then the bit comes: a
        // second open must pass through too (EINVAL otherwise).
        const script = `import os, sys
d, src = sys.argv[1], sys.argv[2]
for f, mode in (("a", 0o755), ("b", 0o4755)):
    first = os.open(os.path.join(d, f), os.O_RDWR)
    os.chmod(os.path.join(src, f), mode)
    second = os.open(os.path.join(d, f), os.O_RDWR | os.O_APPEND)
    os.write(second, b"more\\n")
    os.close(second); os.close(first)
    print(f, open(os.path.join(src, f)).read().split())
`;
        const out = await sh(["python3", "-c", script, m.dir, src]);
        expect(out.trim().split("\n")).toEqual(["a ['data', 'more']", "b ['data', 'more']"]);
      });
    }, "privileges-mixed");
  });

  test.skipIf(needsRoot(`chown of a set-group-ID directory over ${transport}`, "a set-group-ID directory of another group"))("chown(d, -1, -1) of a set-group-ID directory stamps its ctime and keeps the bit, as natively", async () => {
    await withTempDir(async (dir) => {
      const ref = join(dir, "native"), src = join(dir, "source");
      for (const d of [ref, src]) {
        mkdirSync(join(d, "sg"), { recursive: true });
        chmodSync(join(d, "sg"), 0o2775);
      }
      await withMount({ plugin: "passthrough", transport, options: ["attr_timeout=0"], args: ["--source", src] }, async (m) => {
        const before = [statSync(join(ref, "sg"), { bigint: true }).ctimeNs, statSync(join(src, "sg"), { bigint: true }).ctimeNs];
        await Bun.sleep(20); // past the coarse clock's tick
        const chownAsRoot: Scenario = { name: "chown(d, -1, -1) by root", mode: 0, as: [], cmd: CHOWN_NOOP };
        await runAs(chownAsRoot, join(ref, "sg"));
        await runAs(chownAsRoot, join(m.dir, "sg"));
        const after = [statSync(join(ref, "sg"), { bigint: true }), statSync(join(src, "sg"), { bigint: true })];
        expect(after.map((st, i) => ({ mode: octal(Number(st.mode)), ctimeMoved: st.ctimeNs > before[i]! }))).toEqual([
          { mode: "2775", ctimeMoved: true },
          { mode: "2775", ctimeMoved: true },
        ]);
      });
    }, "sgid-dir");
  });

  test("writes through kernel passthrough no longer ask the daemon for security.capability (FUSE_HANDLE_KILLPRIV_V2)", async () => {
    await withTempDir(async (src) => {
      writeFileSync(join(src, "file"), Buffer.alloc(1 << 20));
      for (const options of [[], ["no_passthrough"]]) {
        await withMount({ plugin: "passthrough", transport, options, args: ["--source", src] }, async (m) => {
          const before = await m.status();
          // 256 separate 4 KiB write(2) calls into an existing file
          await sh(["dd", "if=/dev/zero", `of=${join(m.dir, "file")}`, "bs=4k", "count=256", "conv=notrunc", "status=none"]);
          const after = await m.status();
          const delta = (op: string) => (after.ops[op]?.count ?? 0) - (before.ops[op]?.count ?? 0);
          const kernelPassthrough = options.length === 0 && isRoot();
          // one GETXATTR at most per open (S_NOSEC is set once the kernel knows there is none)
          expect({ options, getxattr: Math.min(delta("getxattr"), 2) }).toEqual({ options, getxattr: delta("getxattr") });
          if (kernelPassthrough) expect(delta("write")).toBe(0);
          else expect(delta("write")).toBe(256);
        });
      }
    }, "killpriv");
  });

  test.skipIf(needsRoot(`trusted.* xattrs through passthrough over ${transport}`, "setting trusted.*, other users"))("trusted.* xattr names are listed only to root callers, as memfs does and as on the native directory", async () => {
    await withTempDir(async (dir) => {
      const ref = join(dir, "native"), src = join(dir, "source");
      for (const d of [ref, src]) {
        mkdirSync(d);
        chmodSync(d, 0o777);
        writeFileSync(join(d, "f"), "x");
        chmodSync(join(d, "f"), 0o666);
        for (const name of ["user.u", "trusted.t"]) sys.setxattr(join(d, "f"), name, new TextEncoder().encode("v"));
      }
      chmodSync(dir, 0o755);
      await withMount({ plugin: "passthrough", transport, options: ["allow_other"], args: ["--source", src] }, async (m) => {
        // listxattr, getxattr and setxattr of trusted.*, as another user and as root
        const probe = `import os, sys
p = sys.argv[1]
def r(f):
    try: return repr(f())
    except OSError as e: return os.strerror(e.errno)
print(r(lambda: sorted(os.listxattr(p))), r(lambda: os.getxattr(p, "trusted.t")), r(lambda: os.setxattr(p, "trusted.n", b"w")))`;
        const as = async (who: string[], f: string) => (await sh([...(who.length ? ["setpriv", ...who] : []), "/usr/bin/python3", "-c", probe, f], { timeoutMs: 20_000 })).trim();
        for (const who of [asOther, []]) {
          const want = await as(who, join(ref, "f"));
          expect({ who, got: await as(who, join(m.dir, "f")) }).toEqual({ who, got: want });
        }
        // the cases differ: another user sees neither the name nor the value, root sees both
        expect(await as(asOther, join(ref, "f"))).toBe("['user.u'] No data available Operation not permitted");
        expect(await as([], join(ref, "f"))).toBe("['trusted.n', 'trusted.t', 'user.u'] b'v' None");
      });
    }, "trusted");
  });
});
