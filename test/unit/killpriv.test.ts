/**
 * FUSE_HANDLE_KILLPRIV_V2: negotiated at INIT only for a filesystem that declares
 * `killPrivileges`; the kernel's kill bits (FUSE_WRITE_KILL_SUIDGID in write_flags,
 * FUSE_OPEN_KILL_SUIDGID in open/create open_flags, FATTR_KILL_SUIDGID and the empty SETATTR in
 * setattr) decoded on byte buffers in both slot layouts; and memfs's rule for clearing setuid and
 * setgid (the Linux VFS's setattr_should_drop_suidgid), called directly.
 * Offsets: shared/reference/fuse-protocol.md (fuse_write_in write_flags@20, fuse_open_in
 * open_flags@4, fuse_create_in open_flags@12, fuse_setattr_in valid@0).
 */
import { describe, expect, test } from "bun:test";
import { Dispatcher, type DispatchConfig } from "../../runtime/dispatch/dispatcher.ts";
import type { Filesystem, Attr, Entry, Request, SetAttr } from "../../runtime/api/types.ts";
import { S_IFDIR, S_IFREG } from "../../runtime/api/constants.ts";
import { negotiate } from "../../runtime/session/init.ts";
import { defaultMountOptions } from "../../runtime/mount/options.ts";
import { Init } from "../../runtime/kernel/abi.ts";
import { FakeTransport, LAYOUTS, makeSlot, writeRequest, cat, cstr, struct, rwIn, type Layout, type RequestSpec } from "../helpers/fake-transport.ts";
import { createOps } from "../../plugins/memfs/ops.ts";
import { createState } from "../../plugins/memfs/state.ts";
import type { Node } from "../../plugins/memfs/nodes.ts";

const OP = { SETATTR: 4, OPEN: 14, WRITE: 16, CREATE: 35 } as const;
const FATTR_MODE = 1 << 0, FATTR_UID = 1 << 1, FATTR_SIZE = 1 << 3, FATTR_FH = 1 << 6, FATTR_ATIME_NOW = 1 << 7, FATTR_LOCKOWNER = 1 << 9, FATTR_KILL_SUIDGID = 1 << 11;
const FUSE_WRITE_CACHE = 1 << 0, FUSE_WRITE_LOCKOWNER = 1 << 1, FUSE_WRITE_KILL_SUIDGID = 1 << 2;
const FUSE_OPEN_KILL_SUIDGID = 1 << 0;
const O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;

// ---- negotiation ---------------------------------------------------------------------------------

describe("INIT", () => {
  const everything = { major: 7, minor: 45, maxReadahead: 131072, flags: 0xffffffff, flags2: 0xffffffff };
  const bit = (n: ReturnType<typeof negotiate>) => (n.out.flags & (1 << Init.HANDLE_KILLPRIV_V2)) !== 0;

  test("-o ring_memory shrinks max_write (to 128 KiB at least) only when one entry per io_uring queue would not fit", () => {
    const fs = { getattr: () => ({}) as never };
    const o = defaultMountOptions();
    expect(negotiate(everything, fs, o, 2).out.maxWrite).toBe(1 << 20);
    expect(negotiate(everything, fs, o, 64).out.maxWrite).toBe(1 << 20); // 64 x 1 MiB = the default 64M
    const n128 = negotiate(everything, fs, o, 128);
    expect(n128.out.maxWrite).toBe(512 << 10);
    expect(128 * n128.payloadSize).toBe(o.ringMemory);
    expect(negotiate(everything, fs, o, 4096).out.maxWrite).toBe(128 << 10);
    // classic (io_uring off or not offered): untouched
    expect(negotiate(everything, fs, { ...o, ioUring: false }, 128).out.maxWrite).toBe(1 << 20);
    expect(negotiate({ ...everything, flags2: 0 }, fs, o, 128).out.maxWrite).toBe(1 << 20);
  });

  test("HANDLE_KILLPRIV_V2 is negotiated only for a filesystem that declares killPrivileges", () => {
    const withFlag = negotiate(everything, { killPrivileges: true, getattr: () => ({}) as never }, defaultMountOptions());
    expect(withFlag.killPriv).toBe(true);
    expect(bit(withFlag)).toBe(true);
    const without = negotiate(everything, { getattr: () => ({}) as never }, defaultMountOptions());
    expect(without.killPriv).toBe(false);
    expect(bit(without)).toBe(false);
    const off = negotiate(everything, { killPrivileges: false, getattr: () => ({}) as never }, defaultMountOptions());
    expect(bit(off)).toBe(false);
    // the old HANDLE_KILLPRIV (v1) is never asked for
    expect(withFlag.out.flags & (1 << Init.HANDLE_KILLPRIV)).toBe(0);
  });

  test("not asked for when the kernel does not offer it", () => {
    const n = negotiate({ ...everything, flags: 0xffffffff & ~(1 << Init.HANDLE_KILLPRIV_V2) }, { killPrivileges: true, getattr: () => ({}) as never }, defaultMountOptions());
    expect(n.killPriv).toBe(false);
    expect(bit(n)).toBe(false);
  });
});

// ---- decoding ------------------------------------------------------------------------------------

const baseCfg = (): DispatchConfig => ({
  entryTimeout: 1, attrTimeout: 1, negativeTimeout: 0, openDefaults: 0, setxattrExt: true, trace: false, denyOthers: -1, log: () => {},
});

function attr(ino: number): Attr {
  return { ino, mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, size: 0, atimeSec: 1, atimeNsec: 0, mtimeSec: 1, mtimeNsec: 0, ctimeSec: 1, ctimeNsec: 0 };
}

function rig(layout: Layout, fs: Filesystem, cfg: Partial<DispatchConfig> = {}) {
  const t = new FakeTransport(layout === "classic" ? "classic" : "io_uring");
  const d = new Dispatcher({ ...baseCfg(), ...cfg }, fs);
  const slot = makeSlot(t, layout);
  const send = (spec: RequestSpec) => {
    writeRequest(slot, spec);
    d.dispatch(slot);
  };
  return { t, send };
}

const writeIn = (writeFlags: number) => {
  const h = rwIn(1, 0, 1, O_RDWR);
  new DataView(h.buffer, h.byteOffset).setUint32(20, writeFlags, true);
  return h;
};
const openIn = (flags: number, openFlags: number) => struct(8, (d) => (d.setUint32(0, flags, true), d.setUint32(4, openFlags, true)));
const createIn = (flags: number, openFlags: number) => struct(16, (d) => {
  d.setUint32(0, flags, true);
  d.setUint32(4, S_IFREG | 0o644, true);
  d.setUint32(8, 0o022, true);
  d.setUint32(12, openFlags, true);
});
const setattrIn = (valid: number) => struct(88, (d) => {
  d.setUint32(0, valid, true);
  d.setBigUint64(8, 5n, true); // fh
  d.setUint32(76, 1000, true); // uid
});

describe.each(LAYOUTS)("%s layout", (layout) => {
  test("WRITE: FUSE_WRITE_KILL_SUIDGID in write_flags is the 7th argument; other write_flags bits are not", () => {
    const seen: boolean[] = [];
    const { t, send } = rig(layout, { write: (_r, _i, _f, _o, d, _fl, kill) => (seen.push(kill as boolean), d.length) });
    for (const wf of [FUSE_WRITE_KILL_SUIDGID, 0, FUSE_WRITE_CACHE | FUSE_WRITE_LOCKOWNER, FUSE_WRITE_KILL_SUIDGID | FUSE_WRITE_LOCKOWNER]) {
      send({ opcode: OP.WRITE, opHeader: writeIn(wf), args: cat("a") });
    }
    expect(seen).toEqual([true, false, false, true]);
    expect(t.replies.every((r) => r.error === 0)).toBe(true);
  });

  test("OPEN: FUSE_OPEN_KILL_SUIDGID in open_flags is the 4th argument, flags unchanged", () => {
    const seen: unknown[][] = [];
    const { send } = rig(layout, { open: (_r, _i, flags, kill) => void seen.push([flags, kill]) });
    send({ opcode: OP.OPEN, opHeader: openIn(O_RDWR | O_TRUNC, FUSE_OPEN_KILL_SUIDGID) });
    send({ opcode: OP.OPEN, opHeader: openIn(O_RDWR | O_TRUNC, 0) });
    send({ opcode: OP.OPEN, opHeader: openIn(O_RDWR, 2) });
    expect(seen).toEqual([[O_RDWR | O_TRUNC, true], [O_RDWR | O_TRUNC, false], [O_RDWR, false]]);
  });

  test("CREATE: FUSE_OPEN_KILL_SUIDGID in create_in.open_flags is the 7th argument", () => {
    const seen: unknown[][] = [];
    const entry = { ...attr(7) } as Entry;
    const { send } = rig(layout, { create: (_r, _p, name, mode, flags, umask, kill) => (seen.push([name, mode, flags, umask, kill]), { entry }) });
    send({ opcode: OP.CREATE, nodeid: 1, opHeader: createIn(O_CREAT | O_TRUNC | O_RDWR, FUSE_OPEN_KILL_SUIDGID), args: cstr("f") });
    send({ opcode: OP.CREATE, nodeid: 1, opHeader: createIn(O_CREAT | O_RDWR, 0), args: cstr("g") });
    expect(seen).toEqual([
      ["f", S_IFREG | 0o644, O_CREAT | O_TRUNC | O_RDWR, 0o022, true],
      ["g", S_IFREG | 0o644, O_CREAT | O_RDWR, 0o022, false],
    ]);
  });

  test("SETATTR: FATTR_KILL_SUIDGID is killSuidgid; with KILLPRIV_V2 so is a SETATTR that changes nothing", () => {
    for (const killPriv of [false, true]) {
      const seen: SetAttr[] = [];
      const { send } = rig(layout, { setattr: (_r, ino, ch) => (seen.push(ch), attr(ino)) }, { killPriv });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(FATTR_UID | FATTR_KILL_SUIDGID) });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(FATTR_SIZE | FATTR_LOCKOWNER | FATTR_KILL_SUIDGID) });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(0) }); // chown(f, -1, -1), file_remove_privs()
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(FATTR_FH) }); // fchown(fd, -1, -1)
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(FATTR_ATIME_NOW) });
      send({ opcode: OP.SETATTR, nodeid: 3, opHeader: setattrIn(FATTR_MODE) });
      const kill = killPriv ? { killSuidgid: true } : {};
      expect(seen).toEqual([
        { uid: 1000, killSuidgid: true },
        { size: 0, killSuidgid: true },
        { ...kill },
        { fh: 5, ...kill },
        { atime: "now" },
        { mode: 0 },
      ]);
    }
  });
});

// ---- memfs's rule ----------------------------------------------------------------------------------

function request(uid: number, gid: number, pid = 0): Request {
  return { op: "test", uid, gid, pid, signal: new AbortController().signal };
}
const root = request(0, 0);

function memfs() {
  const state = createState({ maxBytes: 1 << 30, maxInodes: 1000, rootMode: 0o777, uid: 0, gid: 0 });
  const fs = createOps(state) as Required<Filesystem>;
  expect(fs.killPrivileges).toBe(true);
  /** A file with `mode`, group `gid`, owned by uid 1000. */
  const file = (name: string, mode: number, gid = 50): Node => {
    const { entry } = fs.create(root, 1, name, S_IFREG | mode, O_CREAT | O_RDWR, 0) as { entry: Entry };
    fs.release(root, entry.ino, 0, O_RDWR);
    fs.setattr(root, entry.ino, { uid: 1000, gid });
    fs.setattr(root, entry.ino, { mode });
    return fs.getattr(root, entry.ino, undefined) as Node;
  };
  const write = (r: Request, n: Node, kill: boolean) => fs.write(r, n.ino, 0, 0, new Uint8Array([1]), O_RDWR, kill);
  return { fs, file, write };
}

const perm = (n: Node) => n.mode & 0o7777;

describe("memfs clears setuid/setgid when told to", () => {
  test("write: S_ISUID always; S_ISGID when group-executable or the writer is outside the file's group", () => {
    const { file, write } = memfs();
    const member = request(1000, 50), outsider = request(1000, 1000);
    let f = file("a", 0o6644);
    write(member, f, true);
    expect(perm(f)).toBe(0o2644); // a member keeps set-group-ID without group-execute
    f = file("b", 0o2644);
    write(outsider, f, true);
    expect(perm(f)).toBe(0o0644); // Linux ≥ 6.2: an outsider clears it
    f = file("c", 0o2654);
    write(member, f, true);
    expect(perm(f)).toBe(0o0654); // group-executable: cleared for anyone
    f = file("d", 0o6654);
    write(outsider, f, false);
    expect(perm(f)).toBe(0o6654); // not told (CAP_FSETID): nothing changes
  });

  test("supplementary groups count as membership (read from /proc/<pid>/status)", async () => {
    const { file, write } = memfs();
    // a process whose supplementary groups include 50 (its fsgid stays 1000)
    const child = Bun.spawn(["setpriv", "--regid", "1000", "--groups", "50,60", "sleep", "30"], { stdout: "ignore", stderr: "pipe" });
    try {
      for (let i = 0; i < 100; i++) {
        const s = await Bun.file(`/proc/${child.pid}/status`).text().catch(() => "");
        if (/\nGroups:\s*50 60/.test(s)) break;
        await Bun.sleep(20);
      }
      const f = file("f", 0o2644);
      write(request(1000, 1000, child.pid), f, true);
      expect(perm(f)).toBe(0o2644);
      const g = file("g", 0o2644, 70);
      write(request(1000, 1000, child.pid), g, true);
      expect(perm(g)).toBe(0o0644);
    } finally {
      child.kill();
      await child.exited;
    }
  });

  test("truncate and O_TRUNC opens: the kernel asks only for callers without CAP_FSETID (root included)", () => {
    const { fs, file } = memfs();
    let f = file("t", 0o6644);
    fs.setattr(root, f.ino, { size: 0, killSuidgid: true });
    expect(perm(f)).toBe(0o0644); // root outside group 50 and not capable (the kernel said so)
    f = file("o", 0o6644);
    fs.open(request(1000, 50), f.ino, O_RDWR | O_TRUNC, true);
    expect(perm(f)).toBe(0o2644);
    f = file("p", 0o6644);
    fs.open(request(1000, 50), f.ino, O_RDWR, true); // no O_TRUNC: not a modification
    expect(perm(f)).toBe(0o6644);
    f = file("q", 0o4644);
    fs.create(request(1000, 1000), 1, "q", S_IFREG | 0o644, O_CREAT | O_TRUNC | O_RDWR, 0, true);
    expect(perm(f)).toBe(0o0644); // create of an existing name with O_TRUNC
  });

  test("chown (and chown(f, -1, -1)): root keeps S_ISGID without group-execute, an outsider does not", () => {
    const { fs, file } = memfs();
    let f = file("r", 0o6644);
    fs.setattr(root, f.ino, { uid: 1, killSuidgid: true });
    expect(perm(f)).toBe(0o2644);
    // the owner changes the group: membership is judged on the group the file had
    f = file("s", 0o2644);
    fs.setattr(request(1000, 1000), f.ino, { gid: 1000, killSuidgid: true });
    expect([perm(f), f.gid]).toEqual([0o0644, 1000]);
    f = file("u", 0o6644);
    const c0 = [f.ctimeSec, f.ctimeNsec];
    fs.setattr(request(1000, 1000), f.ino, { killSuidgid: true });
    expect(perm(f)).toBe(0o0644);
    expect([f.ctimeSec, f.ctimeNsec]).not.toEqual(c0);
    // chown(f, -1, -1) and the kernel's file_remove_privs() for a writer arrive alike (nothing but
    // the kill): from someone else they clear the bits only while the file is open for writing
    f = file("v", 0o6757); // owned by 1000
    fs.setattr(request(1001, 1001), f.ino, { killSuidgid: true });
    expect(perm(f)).toBe(0o6757);
    fs.open(root, f.ino, O_RDWR, false);
    fs.setattr(request(1001, 1001), f.ino, { killSuidgid: true }); // e.g. fallocate through root's descriptor
    expect(perm(f)).toBe(0o0757);
    fs.release(root, f.ino, 0, O_RDWR);
    fs.setattr(root, f.ino, { mode: 0o6757 });
    fs.open(root, f.ino, 0, false); // read-only opens do not count
    fs.setattr(request(1001, 1001), f.ino, { killSuidgid: true });
    expect(perm(f)).toBe(0o6757);
    // a directory keeps both
    const d = fs.mkdir(root, 1, "d", 0o6755, 0) as Node;
    fs.setattr(request(1000, 1000), d.ino, { killSuidgid: true });
    expect(d.mode).toBe(S_IFDIR | 0o6755);
  });
});

