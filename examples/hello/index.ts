// hello: a read-only filesystem with one file. The plugin-author guide (docs/plugin-guide.md)
// walks through it line by line.
//
//   mkdir -p /tmp/hello && bun furing mount ./examples/hello /tmp/hello
//   cat /tmp/hello/hello.txt            # in another shell
import { defineFilesystem, FuseError, ROOT_ID, S_IFDIR, S_IFREG, type Attr } from "furing";

const text = new TextEncoder().encode("Hello from furing!\n");
const FILE_ID = 2;
const now = Math.floor(Date.now() / 1000);

function attr(ino: number, mode: number, size: number): Attr {
  return {
    ino, mode, size, nlink: mode & S_IFDIR ? 2 : 1, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0,
    atimeSec: now, atimeNsec: 0, mtimeSec: now, mtimeNsec: 0, ctimeSec: now, ctimeNsec: 0,
  };
}
const root = attr(ROOT_ID, S_IFDIR | 0o755, 0);
const file = attr(FILE_ID, S_IFREG | 0o444, text.length);

export default defineFilesystem({
  lookup(_req, parent, name) {
    if (parent === ROOT_ID && name === "hello.txt") return file;
    throw new FuseError("ENOENT");
  },
  getattr(_req, ino) {
    if (ino === ROOT_ID) return root;
    if (ino === FILE_ID) return file;
    throw new FuseError("ENOENT");
  },
  readdir(_req, ino, _fh, offset, out) {
    const entries: [string, Attr][] = [[".", root], ["..", root], ["hello.txt", file]];
    for (let i = offset; i < entries.length; i++) {
      const [name, a] = entries[i]!;
      if (!out.add(name, a.ino, a.mode, i + 1)) break; // the reply buffer is full
    }
  },
  read(_req, _ino, _fh, offset, size, dest) {
    const part = text.subarray(offset, offset + size);
    dest.set(part); // dest is the kernel's reply buffer: no copy in between
    return part.length;
  },
});
