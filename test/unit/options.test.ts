/**
 * Mount option parsing (`-o a,b=c`): defaults, every option, and usage errors that name the
 * option and say what is valid. MS_* values are Linux's (<sys/mount.h>), written out here.
 */
import { describe, expect, test } from "bun:test";
import { parseMountOptions, defaultMountOptions, optionHelp, UsageError, reactorCount, entriesPerQueue, MAX_DEFAULT_REACTORS, type MountOptions } from "../../runtime/mount/options.ts";

const MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_SYNCHRONOUS = 16, MS_DIRSYNC = 128, MS_NOATIME = 1024, MS_NODIRATIME = 2048;

const parse = (...lists: string[]) => parseMountOptions(lists);

/** The UsageError `fn` throws (fails the test if it throws anything else or nothing). */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error("expected a UsageError, nothing was thrown");
}

describe("defaults", () => {
  test("libfuse-like defaults", () => {
    const o = parse();
    expect(o.entryTimeout).toBe(1);
    expect(o.attrTimeout).toBe(1);
    expect(o.negativeTimeout).toBe(0);
    expect(o.defaultPermissions).toBe(true);
    expect(o.allowOther).toBe(false);
    expect(o.allowRoot).toBe(false);
    expect(o.ioUring).toBe(true);
    expect(o.queueDepth).toBe(8);
    expect(o.directIo).toBe(false);
    expect(o.kernelCache).toBe(false);
    expect(o.maxWrite).toBe(1 << 20);
    expect(o.maxRead).toBeUndefined();
    expect(o.fsname).toBeUndefined();
    expect(o.subtype).toBeUndefined();
    expect(o.mountFlags).toBe(MS_NOSUID | MS_NODEV);
    expect(o.ignored).toEqual([]);
    expect(o.schedIdle).toBe(true);
  });

  test("parse([]) equals defaultMountOptions(), and empty items are skipped", () => {
    expect(parse()).toEqual(defaultMountOptions());
    expect(parse("", ",,", ",")).toEqual(defaultMountOptions());
  });

  test("each call gets fresh defaults (no shared `ignored` array)", () => {
    parse("defaults");
    expect(parse().ignored).toEqual([]);
  });
});

describe("each option", () => {
  const cases: [string, Partial<MountOptions>][] = [
    ["allow_other", { allowOther: true }],
    ["allow_root", { allowRoot: true }],
    ["default_permissions", { defaultPermissions: true }],
    ["no_default_permissions", { defaultPermissions: false }],
    ["entry_timeout=2.5", { entryTimeout: 2.5 }],
    ["entry_timeout=0", { entryTimeout: 0 }],
    ["attr_timeout=30", { attrTimeout: 30 }],
    ["attr_timeout=0.001", { attrTimeout: 0.001 }],
    ["negative_timeout=5", { negativeTimeout: 5 }],
    ["direct_io", { directIo: true }],
    ["kernel_cache", { kernelCache: true }],
    ["io_uring", { ioUring: true }],
    ["io_uring=on", { ioUring: true }],
    ["io_uring=off", { ioUring: false }],
    ["io_uring_q_depth=1", { queueDepth: 1 }],
    ["io_uring_q_depth=32", { queueDepth: 32 }],
    ["io_uring_q_depth=1024", { queueDepth: 1024 }],
    ["ring_memory=64K", { ringMemory: 64 << 10 }],
    ["ring_memory=16M", { ringMemory: 16 << 20 }],
    ["ring_memory=2g", { ringMemory: 2 * 2 ** 30 }],
    ["ring_memory=1048576", { ringMemory: 1 << 20 }],
    ["reactors=0", { reactors: 0 }],
    ["reactors=4", { reactors: 4 }],
    ["no_sched_idle", { schedIdle: false }],
    ["no_sched_idle,sched_idle", { schedIdle: true }],
    ["fsname=myfs", { fsname: "myfs" }],
    ["fsname=/dev/sda1", { fsname: "/dev/sda1" }],
    ["subtype=memfs", { subtype: "memfs" }],
    ["max_read=4096", { maxRead: 4096 }],
    ["max_read=131072", { maxRead: 131072 }],
    ["max_write=4096", { maxWrite: 4096 }],
    ["max_write=1048576", { maxWrite: 1 << 20 }],
  ];
  test.each(cases)("%s", (opt, want) => {
    const o = parse(opt);
    expect(o).toEqual({ ...defaultMountOptions(), ...want });
  });

  test.each([
    ["ro", MS_NOSUID | MS_NODEV | MS_RDONLY],
    ["ro,rw", MS_NOSUID | MS_NODEV],
    ["suid", MS_NODEV],
    ["suid,nosuid", MS_NOSUID | MS_NODEV],
    ["dev", MS_NOSUID],
    ["dev,nodev", MS_NOSUID | MS_NODEV],
    ["noexec", MS_NOSUID | MS_NODEV | MS_NOEXEC],
    ["noexec,exec", MS_NOSUID | MS_NODEV],
    ["noatime", MS_NOSUID | MS_NODEV | MS_NOATIME],
    ["noatime,atime", MS_NOSUID | MS_NODEV],
    ["nodiratime", MS_NOSUID | MS_NODEV | MS_NODIRATIME],
    ["sync", MS_NOSUID | MS_NODEV | MS_SYNCHRONOUS],
    ["sync,async", MS_NOSUID | MS_NODEV],
    ["dirsync", MS_NOSUID | MS_NODEV | MS_DIRSYNC],
    ["ro,noexec,noatime,dirsync", MS_NOSUID | MS_NODEV | MS_RDONLY | MS_NOEXEC | MS_NOATIME | MS_DIRSYNC],
  ])("%s sets mount flags %d", (opt, flags) => {
    expect(parse(opt).mountFlags).toBe(flags);
  });

  test.each(["defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail"])(
    "fstab option %s is accepted and recorded as ignored",
    (opt) => {
      const o = parse(opt);
      expect(o.ignored).toEqual([opt]);
      expect({ ...o, ignored: [] as string[] }).toEqual(defaultMountOptions());
    },
  );

  test.each([
    ["", "relatime", false, 0],
    ["noatime", "noatime", false, MS_NOATIME],
    ["strictatime", "strictatime", false, 1 << 24],
    // as mount(8) and the kernel: relatime does not undo noatime; strictatime overrides noatime
    ["noatime,relatime", "noatime", false, MS_NOATIME],
    ["noatime,atime", "relatime", false, 0],
    ["strictatime,noatime,nodiratime", "strictatime", true, (1 << 24) | MS_NOATIME | MS_NODIRATIME],
  ] as const)("atime options %j: mode %s, nodiratime %s, flags %d", (opt, mode, nodir, flags) => {
    const o = parse(opt);
    expect(o.atime).toBe(mode);
    expect(o.nodiratime).toBe(nodir);
    expect(o.mountFlags).toBe(MS_NOSUID | MS_NODEV | flags);
  });

  test("an ignored option keeps its value in the record", () => {
    expect(parse("user=alice").ignored).toEqual(["user=alice"]);
  });

  test("passthrough / no_passthrough", () => {
    expect(parse().passthrough).toBe(true);
    expect(parse("no_passthrough").passthrough).toBe(false);
    expect(parse("no_passthrough,passthrough").passthrough).toBe(true);
  });

  test("several lists apply in order; later options win", () => {
    const o = parse("allow_other,entry_timeout=5", "no_default_permissions,io_uring=off", "entry_timeout=7,io_uring=on");
    expect(o.allowOther).toBe(true);
    expect(o.defaultPermissions).toBe(false);
    expect(o.entryTimeout).toBe(7);
    expect(o.ioUring).toBe(true);
  });

  test("options apply onto a given object", () => {
    const base = defaultMountOptions();
    base.queueDepth = 64;
    const o = parseMountOptions(["allow_other"], base);
    expect(o).toBe(base);
    expect(o.queueDepth).toBe(64);
    expect(o.allowOther).toBe(true);
  });

  test("values may contain '='", () => {
    expect(parse("fsname=a=b").fsname).toBe("a=b");
  });
});

describe("usage errors", () => {
  test("an unknown option names it and lists every valid option", () => {
    const e = usageError(() => parse("allow_other,bogus_opt,ro"));
    expect(e.message).toContain("'bogus_opt'");
    for (const name of ["allow_other", "no_default_permissions", "entry_timeout", "attr_timeout", "negative_timeout", "io_uring", "io_uring_q_depth", "max_write", "fsname", "ro"]) {
      expect(e.message).toContain(name);
    }
    expect(e.message).toContain(optionHelp());
  });

  test("an unknown option with a value is named without its value", () => {
    const e = usageError(() => parse("colour=blue"));
    expect(e.message).toContain("'colour'");
  });

  test("option names are case-sensitive", () => {
    expect(usageError(() => parse("RO")).message).toContain("'RO'");
  });

  const bad: [string, string, RegExp][] = [
    ["allow_other=1", "allow_other", /takes no value/],
    ["ro=yes", "ro", /takes no value/],
    ["no_default_permissions=", "no_default_permissions", /takes no value/],
    ["entry_timeout", "entry_timeout", /seconds/],
    ["entry_timeout=", "entry_timeout", /seconds/],
    ["entry_timeout=abc", "entry_timeout", /seconds/],
    ["entry_timeout=-1", "entry_timeout", /seconds ≥ 0/],
    ["attr_timeout=Infinity", "attr_timeout", /seconds/],
    ["attr_timeout=NaN", "attr_timeout", /seconds/],
    ["negative_timeout=1e10", "negative_timeout", /seconds/],
    ["io_uring=yes", "io_uring", /'on' or 'off'/],
    ["io_uring=", "io_uring", /'on' or 'off'/],
    ["io_uring_q_depth=0", "io_uring_q_depth", /1\.\.1024/],
    ["io_uring_q_depth=1025", "io_uring_q_depth", /1\.\.1024/],
    ["io_uring_q_depth=2.5", "io_uring_q_depth", /integer/],
    ["io_uring_q_depth", "io_uring_q_depth", /integer/],
    ["ring_memory=1K", "ring_memory", /at least 64K/],
    ["ring_memory=12X", "ring_memory", /like 64M/],
    ["ring_memory=", "ring_memory", /size/],
    ["reactors=-1", "reactors", /0\.\.1024/],
    ["reactors=two", "reactors", /integer/],
    ["sched_idle=1", "sched_idle", /takes no value/],
    ["max_write=4095", "max_write", /4096\.\.1048576/],
    ["max_write=2097152", "max_write", /4096\.\.1048576/],
    ["max_read=100", "max_read", /4096\.\./],
    ["fsname", "fsname", /value/],
    ["fsname=", "fsname", /value/],
    ["subtype=a b", "subtype", /without spaces/],
  ];
  test.each(bad)("%s is a UsageError naming the option and what is valid", (opt, name, valid) => {
    const e = usageError(() => parse(opt));
    expect(e.message).toContain(`'${name}'`);
    expect(e.message).toMatch(valid);
  });

  test("the bad value is quoted in the message", () => {
    expect(usageError(() => parse("entry_timeout=abc")).message).toContain('"abc"');
    expect(usageError(() => parse("io_uring=maybe")).message).toContain('"maybe"');
    expect(usageError(() => parse("io_uring_q_depth=0")).message).toContain('"0"');
  });

  test("an error in a later list stops parsing after applying earlier items", () => {
    const o = defaultMountOptions();
    usageError(() => parseMountOptions(["allow_other", "bogus"], o));
    expect(o.allowOther).toBe(true);
  });

  test("UsageError is an Error named UsageError", () => {
    const e = usageError(() => parse("nope"));
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("UsageError");
  });
});

describe("optionHelp", () => {
  test("one line per option, with =VALUE hints for options that take values", () => {
    const lines = optionHelp().split("\n");
    expect(lines.some((l) => /^\s+entry_timeout=SEC\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+io_uring=on\|off\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+io_uring_q_depth=N\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+allow_other\s+let other users/.test(l))).toBe(true);
    // every option listed parses (flags alone, value options with their hint replaced)
    for (const l of lines) {
      const name = l.trim().split(/\s+/)[0]!.split("=")[0]!;
      expect(() => parse(name)).not.toThrow(/unknown mount option/);
    }
  });
});

describe("reactors and ring memory", () => {
  test("the default Worker count is one per online CPU, capped, and never more than the queues", () => {
    const o = parse();
    expect(o.reactors).toBeUndefined();
    expect(reactorCount(o, 2, 2)).toBe(2);
    expect(reactorCount(o, 64, 64)).toBe(MAX_DEFAULT_REACTORS);
    expect(reactorCount(parse("reactors=0"), 8, 8)).toBe(0);
    expect(reactorCount(parse("reactors=16"), 2, 4)).toBe(4);
  });

  test("entries per queue fit -o ring_memory, at most io_uring_q_depth and at least one", () => {
    const MiB = 1 << 20;
    expect(entriesPerQueue(parse(), 2, MiB)).toBe(8); // 16 MiB of the default 64
    expect(entriesPerQueue(parse(), 16, MiB)).toBe(4);
    expect(entriesPerQueue(parse(), 128, MiB)).toBe(1); // over budget: still one each
    expect(entriesPerQueue(parse("ring_memory=4M"), 2, MiB)).toBe(2);
    expect(entriesPerQueue(parse("ring_memory=4M,io_uring_q_depth=1"), 2, MiB)).toBe(1);
  });
});
