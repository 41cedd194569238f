// Integrity check of an sqlfs database (run it while the database is not mounted):
//   bun examples/sqlfs/check.ts /tmp/sqlfs.db
// Prints "ok" and exits 0, or prints each problem and exits 1.
import { Store } from "./store.ts";

const path = process.argv[2];
if (!path) {
  console.error("usage: bun examples/sqlfs/check.ts DATABASE");
  process.exit(2);
}
if (!(await Bun.file(path).exists())) {
  console.error(`sqlfs check: ${path}: no such database`);
  process.exit(2);
}
const store = new Store(path, 0, 0);
const orphans = store.freeOrphans(); // unlinked files a stopped daemon still held open
if (orphans) console.error(`sqlfs check: freed ${orphans} orphan inode(s)`);
const problems = store.check();
store.close();
console.log(problems.length ? problems.join("\n") : "ok");
process.exit(problems.length ? 1 : 0);
