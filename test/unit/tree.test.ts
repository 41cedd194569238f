/**
 * The high-level layer (runtime/api/tree.ts) called as the runtime calls a Filesystem: node ids,
 * lookup and open counts behind `forget(node)`, READDIRPLUS cookies, attribute defaults, O_TRUNC,
 * SetAttr.mode, posix_acl refusal, EROFS, and the table kept across generations.
 */
import { describe, expect, test } from "bun:test";
import { defineTree, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, S_IFDIR, S_IFREG, type Changes, type DirListPlus, type Entry, type Filesystem, type PluginContext, type Request, type Tree } from "furing";

const req: Request = { op: "test", uid: 0, gid: 0, pid: 1, signal: new AbortController().signal };

function context(kept: Map<string, unknown>, generation = 1): PluginContext {
  return {
    options: {}, mountpoint: "/m", generation, log() {},
    keep<T>(key: string, init: () => T): T {
      if (!kept.has(key)) kept.set(key, init());
      return kept.get(key) as T;
    },
    notify: {} as PluginContext["notify"], io: {} as PluginContext["io"],
    shared: () => new SharedArrayBuffer(0), reactor: { index: 0, count: 0, primary: true },
    passthrough: () => false, onDestroy() {}, isOpen: () => false, atime: "relatime", nodiratime: false,
  };
}

interface Obj { name: string; dir?: Map<string, Obj>; data?: string; mode?: number }

/** A small writable tree of objects, recording what the layer asked of it. */
function objects() {
  const file: Obj = { name: "f", data: "0123456789" };
  const root: Obj = { name: "/", dir: new Map([["f", file], ["g", { name: "g", data: "x" }]]) };
  const forgotten: string[] = [];
  const setattrs: Changes[] = [];
  const tree: Tree<Obj> = {
    root,
    lookup: (d, name) => d.dir!.get(name),
    stat: (n) => (n.dir ? { mode: S_IFDIR | 0o755 } : { mode: S_IFREG | (n.mode ?? 0o644), size: n.data!.length }),
    readdir: (d) => d.dir!,
    read: (n, off, size) => n.data!.slice(off, off + size),
    write(n, off, data) {
      n.data = n.data!.slice(0, off) + Buffer.from(data).toString() + n.data!.slice(off + data.length);
      return data.length;
    },
    setattr(n, ch) {
      setattrs.push(ch);
      if (ch.size !== undefined) n.data = n.data!.slice(0, ch.size);
      if (ch.mode !== undefined) n.mode = ch.mode;
    },
    unlink: (d, name) => void d.dir!.delete(name),
    forget: (n) => void forgotten.push(n.name),
  };
  return { tree, root, file, forgotten, setattrs };
}

async function serve<N>(tree: Tree<N>, kept = new Map<string, unknown>(), generation = 1): Promise<Filesystem> {
  return (await defineTree(tree).setup(context(kept, generation))) as Filesystem;
}

/** Collects READDIRPLUS output; stops after `room` entries. */
function sink(room = Infinity) {
  const got: { name: string; ino: number; next: number }[] = [];
  const out: DirListPlus = {
    add(name, entry, next) {
      if (got.length >= room) return false;
      got.push({ name, ino: entry?.ino ?? 0, next });
      return true;
    },
  };
  return { got, out };
}

describe("defineTree", () => {
  test("lookups, listings and opens are counted: forget(node) comes once all are returned", async () => {
    const { tree, forgotten } = objects();
    const fs = await serve(tree);
    const e = (await fs.lookup!(req, 1, "f")) as Entry;
    expect((await fs.lookup!(req, 1, "f")).ino).toBe(e.ino); // same node, same id
    const { got, out } = sink();
    const dh = (await fs.opendir!(req, 1, 0))!.fh!;
    await fs.readdirplus!(req, 1, dh, 0, out);
    expect(got.map((g) => g.name)).toEqual([".", "..", "f", "g"]);
    expect(got[2]!.ino).toBe(e.ino);
    await fs.releasedir!(req, 1, dh);
    const fh = (await fs.open!(req, e.ino, O_RDONLY))!.fh!;
    fs.forget!(e.ino, 2);
    expect(forgotten).toEqual([]);
    fs.forget!(e.ino, 1); // the listing's count
    expect(forgotten).toEqual([]); // still open
    await fs.release!(req, e.ino, fh, 0);
    expect(forgotten).toEqual(["f"]);
    await expect(Promise.resolve().then(() => fs.getattr!(req, e.ino, undefined))).rejects.toMatchObject({ code: "ESTALE" });
    // a key keeps its id after being forgotten
    expect((await fs.lookup!(req, 1, "f")).ino).toBe(e.ino);
  });

  test("listing cookies: '.', '..', then entries; resuming at any cookie; the last cookie is the largest; a full buffer is not counted", async () => {
    const { tree, root, forgotten } = objects();
    const fs = await serve(tree);
    const dh = (await fs.opendir!(req, 1, 0))!.fh!;
    const first = sink(3);
    await fs.readdirplus!(req, 1, dh, 0, first.out);
    // names first seen are numbered from the end (the tree's order, newest cookie first); each
    // offset is the next entry's cookie, the end's S32_MAX
    expect(first.got.map((g) => [g.name, g.next])).toEqual([[".", 1], ["..", 4], ["f", 3]]);
    // a name removed behind the layer's back shifts nothing: the handle lists its snapshot
    const f = root.dir!.get("f")!;
    root.dir!.delete("f");
    const rest = sink();
    await fs.readdirplus!(req, 1, dh, 3, rest.out);
    expect(rest.got.map((g) => [g.name, g.next])).toEqual([["g", 0x7fffffff]]);
    const again = sink();
    await fs.readdirplus!(req, 1, dh, 4, again.out); // seekdir back
    expect(again.got.map((g) => g.name)).toEqual(["f", "g"]);
    root.dir!.set("f", f);
    // "g" was refused by a full buffer once (not counted), listed twice: two forgets release it
    const g = again.got[1]!.ino;
    fs.forget!(g, 1);
    expect(forgotten).toEqual([]);
    fs.forget!(g, 1);
    expect(forgotten).toEqual(["g"]);
  });

  test("listing cookies as tmpfs's: values never given out never end a listing early; removals and creations through the mount", async () => {
    const { tree, root } = objects();
    tree.create = (d, name) => {
      const n: Obj = { name, data: "" };
      d.dir!.set(name, n);
      return n;
    };
    const fs = await serve(tree);
    const names = async (dh: number, off: number) => {
      const k = sink();
      await fs.readdirplus!(req, 1, dh, off, k.out);
      return k.got.map((g) => g.name);
    };
    for (let i = 0; i < 5; i++) root.dir!.set(`e${i}`, { name: `e${i}`, data: "" });
    const dh = (await fs.opendir!(req, 1, 0))!.fh!;
    const all = [".", "..", "f", "g", "e0", "e1", "e2", "e3", "e4"];
    expect(await names(dh, 0)).toEqual(all);
    // above every cookie (but the end): from the newest; the end: nothing; 2: every entry
    for (const off of [1000, 0x7ffffffe, 0x80000000, 2 ** 32]) expect(await names(dh, off)).toEqual(all.slice(2));
    expect(await names(dh, 0x7fffffff)).toEqual([]);
    expect(await names(dh, 2)).toEqual(all.slice(2));
    // through the mount: a removed entry is not listed after its removal; a new one is the newest,
    // listed after a rewind only
    await fs.unlink!(req, 1, "e1");
    await fs.create!(req, 1, "new", 0o644, O_CREAT | O_RDWR, 0);
    // e1's cookie (6: numbered from the end, e4 is 3): goes on with the next older entry
    expect(await names(dh, 6)).toEqual(["e2", "e3", "e4"]);
    expect(await names(dh, 0)).toEqual([".", "..", "new", "f", "g", "e0", "e2", "e3", "e4"]);
  });

  test("atime: the mount's mode by default (relatime, noatime, strictatime, nodiratime, O_NOATIME); touchAtime stores it; false leaves it to stat", async () => {
    const run = async (atime: PluginContext["atime"], nodiratime: boolean, touch?: Tree<Obj>["touchAtime"]) => {
      const { tree } = objects();
      const stamps: string[] = [];
      if (touch === undefined) {
        tree.stat = (n) => (n.dir ? { mode: S_IFDIR | 0o755, mtime: 0, atime: 0 } : { mode: S_IFREG | 0o644, size: n.data!.length, mtime: 0, atime: 0 });
      } else if (touch !== false) tree.touchAtime = (n, t) => void stamps.push(`${n.name} ${t.sec > 0}`);
      else tree.touchAtime = false;
      const fs = (await defineTree(tree).setup({ ...context(new Map()), atime, nodiratime })) as Filesystem;
      const f = (await fs.lookup!(req, 1, "f")) as Entry;
      const times = async () => [((await fs.getattr!(req, f.ino, undefined)) as Entry).atimeSec, ((await fs.getattr!(req, 1, undefined)) as Entry).atimeSec];
      const out: string[] = [];
      const step = async (flags = O_RDONLY) => {
        const [fa, da] = await times();
        const fh = (await fs.open!(req, f.ino, flags))!.fh!;
        await fs.read!(req, f.ino, fh, 0, 4, new Uint8Array(4));
        await fs.release!(req, f.ino, fh, flags);
        await fs.readdirplus!(req, 1, 0, 0, sink().out);
        const [fb, db] = await times();
        out.push(`${fa !== fb ? "file" : "-"} ${da !== db ? "dir" : "-"}`);
      };
      await step();
      await step();
      await step(O_RDONLY | 0o1000000); // O_NOATIME
      return { out, stamps };
    };
    // stat's atime (0) is not newer than mtime (0): relatime updates once, strictatime always
    expect((await run("relatime", false)).out).toEqual(["file dir", "- -", "- -"]);
    expect((await run("noatime", false)).out).toEqual(["- -", "- -", "- -"]);
    expect((await run("relatime", true)).out).toEqual(["file -", "- -", "- -"]);
    // strictatime updates on every access (times here have whole-second resolution: check the calls)
    const strict = await run("strictatime", false, () => {});
    expect(strict.stamps).toEqual(["f true", "/ true", "f true", "/ true", "/ true"]);
    expect((await run("strictatime", false, false)).stamps).toEqual([]);
  });

  test("export support: with find and parent (integer keys), '.' and '..' are answered by node id, also once forgotten", async () => {
    const nodes = new Map<number, { parent: number; name: string; dir: boolean }>([
      [1, { parent: 1, name: "", dir: true }],
      [5, { parent: 1, name: "d", dir: true }],
      [9, { parent: 5, name: "f", dir: false }],
    ]);
    const tree: Tree<number> = {
      root: 1,
      lookup: (d, name) => [...nodes].find(([id, n]) => id !== 1 && n.parent === d && n.name === name)?.[0],
      stat: (n) => ({ mode: nodes.get(n)!.dir ? S_IFDIR | 0o755 : S_IFREG | 0o644 }),
      find: (id) => (nodes.has(id) ? id : undefined),
      parent: (d) => nodes.get(d)!.parent,
    };
    const fs = await serve(tree);
    expect(fs.exportSupport).toBe(true);
    expect(await fs.lookup!(req, 9, ".")).toMatchObject({ ino: 9, mode: S_IFREG | 0o644 }); // never looked up before
    expect(await fs.lookup!(req, 9, ".")).toMatchObject({ ino: 9 });
    expect(await fs.lookup!(req, 5, "..")).toMatchObject({ ino: 1 });
    expect(await fs.lookup!(req, 1, "..")).toMatchObject({ ino: 1 });
    fs.forget!(9, 2);
    nodes.delete(9);
    await expect(Promise.resolve().then(() => fs.lookup!(req, 9, "."))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await serve({ ...tree, find: undefined })).exportSupport).toBe(false);
  });

  test("attribute defaults: owner = the mounting user, times = mount time, nlink by type", async () => {
    const fs = await serve(objects().tree);
    const before = Date.now() / 1000;
    const root = await fs.getattr!(req, 1, undefined);
    const f = (await fs.lookup!(req, 1, "f")) as Entry;
    expect([root.uid, root.gid, root.nlink, f.nlink, f.size]).toEqual([process.getuid!(), process.getgid!(), 2, 1, 10]);
    expect(Math.abs(f.mtimeSec - before)).toBeLessThan(5);
    expect([f.ctimeSec, f.atimeSec]).toEqual([f.mtimeSec, f.mtimeSec]);
  });

  test("O_TRUNC truncates before open; SetAttr.mode arrives without the type bits; times resolve 'now'", async () => {
    const { tree, file, setattrs } = objects();
    const fs = await serve(tree);
    const e = (await fs.lookup!(req, 1, "f")) as Entry;
    await fs.open!(req, e.ino, O_RDWR | O_TRUNC);
    expect(file.data).toBe("");
    // O_TRUNC stamps mtime (and so ctime) even when the file is already empty, as do_truncate does
    expect(setattrs.length).toBe(1);
    expect(setattrs[0]!.size).toBe(0);
    expect(Math.abs(setattrs[0]!.mtime!.sec - Date.now() / 1000)).toBeLessThan(5);
    const a = await fs.setattr!(req, e.ino, { mode: S_IFREG | 0o4750, mtime: "now" });
    expect(setattrs[1]!.mode).toBe(0o4750);
    expect(Math.abs(setattrs[1]!.mtime!.sec - Date.now() / 1000)).toBeLessThan(5);
    expect(a.mode).toBe(S_IFREG | 0o4750);
    // an empty SETATTR (chown(f, -1, -1)) still reaches the tree (for ctime); a truncate through a
    // descriptor carries mtime, one by path only the size
    await fs.setattr!(req, e.ino, {});
    expect(setattrs[2]).toEqual({});
    await fs.setattr!(req, e.ino, { size: 0, fh: 1 });
    expect(setattrs[3]!.mtime).toBeDefined();
    await fs.setattr!(req, e.ino, { size: 0 });
    expect(setattrs[4]).toEqual({ size: 0 });
  });

  test("killPrivileges: a write by a caller without CAP_FSETID clears setuid through setattr({mode}); lseek reaches the tree only when it has one", async () => {
    const { tree, file, setattrs } = objects();
    file.mode = 0o4755;
    const fs = await serve({ ...tree, killPrivileges: true, lseek: (_n, off, whence) => (whence === 3 ? off : off + 1) });
    expect(fs.killPrivileges).toBe(true);
    const e = (await fs.lookup!(req, 1, "f")) as Entry;
    const { fh } = (await fs.open!(req, e.ino, O_RDWR)) as { fh: number };
    await fs.write!(req, e.ino, fh, 0, Buffer.from("x"), O_RDWR, true);
    expect(setattrs).toEqual([{ mode: 0o755 }]);
    await fs.write!(req, e.ino, fh, 0, Buffer.from("y"), O_RDWR, true); // nothing left to clear
    expect(setattrs.length).toBe(1);
    expect(await fs.lseek!(req, e.ino, fh, 10, 4)).toBe(11);
    const plain = await serve(objects().tree);
    expect(plain.lseek).toBeUndefined();
    expect(plain.killPrivileges).toBe(false);
  });

  test("system.posix_acl_* is EOPNOTSUPP; a tree without changes answers EROFS", async () => {
    const xattrs = new Map<string, Uint8Array>();
    const rw = await serve({ ...objects().tree, setxattr: (_n, name, v) => void xattrs.set(name, v.slice()) });
    await expect(Promise.resolve().then(() => rw.setxattr!(req, 1, "system.posix_acl_access", new Uint8Array(4), 0))).rejects.toMatchObject({ code: "EOPNOTSUPP" });
    await rw.setxattr!(req, 1, "user.a", new Uint8Array([1]), 0);
    expect([...xattrs.keys()]).toEqual(["user.a"]);
    await expect(Promise.resolve().then(() => rw.getxattr!(req, 1, "user.none"))).rejects.toMatchObject({ code: "ENODATA" });
    const { root } = objects();
    const ro = await serve<Obj>({ root, lookup: (d, n) => d.dir!.get(n), stat: () => ({ mode: S_IFDIR | 0o755 }) });
    await expect(Promise.resolve().then(() => ro.mkdir!(req, 1, "d", 0o755, 0))).rejects.toMatchObject({ code: "EROFS" });
    await expect(Promise.resolve().then(() => ro.open!(req, 1, O_RDWR))).rejects.toMatchObject({ code: "EROFS" });
  });

  test("integer keys are the node ids; a new generation keeps the table and open handles", async () => {
    const data = new Map([[1, ""], [42, "forty-two"]]);
    const tree = (gen: string): Tree<number> => ({
      root: 1,
      lookup: (_d, name) => (name === "x" ? 42 : undefined),
      stat: (n) => (n === 1 ? { mode: S_IFDIR | 0o755 } : { mode: S_IFREG | 0o644, size: data.get(n)!.length }),
      read: (n, off, size) => `${gen}:${data.get(n)!.slice(off, off + size)}`,
    });
    const kept = new Map<string, unknown>();
    const g1 = await serve(tree("g1"), kept, 1);
    expect((await g1.lookup!(req, 1, "x")).ino).toBe(42);
    const fh = (await g1.open!(req, 42, O_RDONLY))!.fh!;
    const g2 = await serve(tree("g2"), kept, 2);
    const dest = new Uint8Array(64);
    const n = (await g2.read!(req, 42, fh, 0, 64, dest)) as number;
    expect(Buffer.from(dest.subarray(0, n)).toString()).toBe("g2:forty-two");
  });
  test("create of a name that appeared meanwhile opens it (truncating with O_TRUNC) unless O_EXCL", async () => {
    const { tree, file } = objects();
    const fs = await serve({ ...tree, create: () => { throw Object.assign(new Error("exists"), { code: "EEXIST" }); } });
    await expect(Promise.resolve().then(() => fs.create!(req, 1, "f", 0o644, O_CREAT | O_EXCL | O_RDWR, 0))).rejects.toMatchObject({ code: "EEXIST" });
    expect(file.data).toBe("0123456789");
    const r = await fs.create!(req, 1, "f", 0o644, O_CREAT | O_RDWR | O_TRUNC, 0);
    expect(r.entry.ino).toBe((await fs.lookup!(req, 1, "f")).ino);
    expect(file.data).toBe("");
    expect(r.fh).toBeGreaterThan(0);
  });
});
