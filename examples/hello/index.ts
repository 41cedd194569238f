// hello: a read-only filesystem with one file, on the high-level API (docs/plugin-guide.md).
// Nodes here are paths; furing assigns node ids, fills in owner, times and nlink, and lists
// "." and "..". (For fixed content, `staticTree({ "hello.txt": "..." })` is shorter still.)
//
//   mkdir -p /tmp/hello && bun furing mount ./examples/hello /tmp/hello
//   cat /tmp/hello/hello.txt            # in another shell
import { defineTree, S_IFDIR, S_IFREG } from "furing";

const text = Buffer.from("Hello from furing!\n");

export default defineTree<string>({
  root: "/",
  lookup: (dir, name) => (dir === "/" && name === "hello.txt" ? "/hello.txt" : undefined),
  stat: (path) => (path === "/" ? { mode: S_IFDIR | 0o755 } : { mode: S_IFREG | 0o444, size: text.length }),
  readdir: () => [["hello.txt", "/hello.txt"]],
  read: (_path, offset, size) => text.subarray(offset, offset + size),
});
