// Integrity check of an sqlfs database (a SQLite file while it is not mounted, or a postgres://
// URL while no mount serves it):
//   bun examples/sqlfs/check.ts /tmp/sqlfs.db
// Frees orphans (unlinked files a stopped daemon still held open), then prints "ok" and exits 0,
// or prints each problem and exits 1.
import { Store } from "./store.ts";

const db = process.argv[2];
if (!db) {
  console.error("usage: bun examples/sqlfs/check.ts DATABASE");
  process.exit(2);
}
if (!/^[a-z]+:\/\//.test(db) && !(await Bun.file(db).exists())) {
  console.error(`sqlfs check: ${db}: no such database`);
  process.exit(2);
}
let store: Store;
try {
  store = await Store.open({ db, pool: 2, connectTimeout: 5, mountId: "check", uid: 0, gid: 0, log: (m) => console.error(`sqlfs check: ${m}`) });
} catch (e) {
  console.error(`sqlfs check: ${(e as Error).message}`);
  process.exit(2);
}
const orphans = await store.freeOrphans();
if (orphans) console.error(`sqlfs check: freed ${orphans} orphan inode(s)`);
const problems = await store.check();
await store.close();
console.log(problems.length ? problems.join("\n") : "ok");
process.exit(problems.length ? 1 : 0);
