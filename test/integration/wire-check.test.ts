/**
 * The opcode table's request check against the real kernel, over each transport: every request
 * a busy memfs receives (names, xattrs, data, renames, links, FIFOs, statfs, locks) passes the
 * check as sent: on the ring the op header's length comes from the in-header's `len` minus
 * `payload_sz`, so a wrong reading of either layout would refuse real requests with EIO.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cleanupAll, transports, withMount } from "../helpers/mount.ts";
import { run, describeResult } from "../helpers/run.ts";

afterAll(cleanupAll);

// Run in a child process (the test's own thread never blocks on the mount).
const CLIENT = String.raw`
import os, sys, fcntl, errno
d = sys.argv[1]
p = lambda s: os.path.join(d, s)
os.mkdir(p("dir"), 0o750)
for i in range(40):
    with open(p(f"dir/f{i}"), "wb") as f:
        f.write(bytes([i]) * (i * 997))
        f.flush(); os.fsync(f.fileno())
    with open(p(f"dir/f{i}"), "rb") as f:
        assert f.read() == bytes([i]) * (i * 997)
os.rename(p("dir/f1"), p("dir/renamed"))
os.link(p("dir/f2"), p("dir/hard"))
os.symlink("dir/f3", p("sym"))
assert os.readlink(p("sym")) == "dir/f3"
os.mkfifo(p("fifo"))
os.mknod(p("node"), 0o600 | 0o100000)
for name, value in [("user.a", b"x"), ("user.long", b"v" * 3000), ("user.empty", b"")]:
    os.setxattr(p("dir/f4"), name, value)
    assert os.getxattr(p("dir/f4"), name) == value
assert sorted(os.listxattr(p("dir/f4"))) == ["user.a", "user.empty", "user.long"]
os.removexattr(p("dir/f4"), "user.a")
os.truncate(p("dir/f5"), 12345)
os.chmod(p("dir/f6"), 0o600)
os.utime(p("dir/f7"), (1, 2))
os.statvfs(d)
assert len(os.listdir(p("dir"))) == 41
fd = os.open(p("dir/f8"), os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.lseek(fd, 0, os.SEEK_END)
os.close(fd)
os.access(p("dir/f9"), os.R_OK)
os.unlink(p("dir/f10"))
os.mkdir(p("empty")); os.rmdir(p("empty"))
print("ok")
`;

for (const transport of transports()) {
  describe(`the request check over ${transport}`, () => {
    test("no request the kernel sends is refused: a workload over most opcodes, zero malformed", async () => {
      await withMount({ transport }, async (m) => {
        const r = await run(["python3", "-c", CLIENT, m.dir], { timeoutMs: 60_000 });
        if (r.code !== 0 || r.stdout.trim() !== "ok") throw new Error(`${describeResult(r)}\n${m.log()}`);
        const st = await m.status();
        expect(st.malformed).toBe(0);
        expect(st.transport).toBe(transport);
        // the check saw these opcodes, and none of them answered EIO
        for (const op of ["lookup", "mkdir", "create", "write", "read", "rename", "link", "symlink", "readlink", "mknod", "setxattr", "getxattr", "listxattr", "removexattr", "setattr", "statfs", "unlink", "rmdir", "fsync", "flush", "release"]) {
          expect({ op, seen: (st.ops[op]?.count ?? 0) > 0 }).toEqual({ op, seen: true });
        }
        expect(m.log()).not.toContain("malformed");
        expect(m.log()).not.toContain("answered EIO");
      });
    });
  });
}
