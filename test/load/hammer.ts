/**
 * A simple load process for crash tests (a child process; syscalls are synchronous on purpose):
 *
 *   bun test/load/hammer.ts mixed  <dir> <id> <seconds>
 *   bun test/load/hammer.ts writer <file> <id> <seconds>
 *   bun test/load/hammer.ts stat   <file> <id> <seconds>
 *
 * mixed:  create/write/fsync/read/stat/readdir/rename/unlink on its own files in <dir>, until the
 *         first error or the time is up. Prints {"ops":N,"error":"ECODE","op":"...","after":"ECODE"}
 *         ("error" null if none; "after": what a stat of a new name in <dir> gets right after it).
 * writer: loops open(<file>, O_RDWR) (no O_CREAT: after an unmount the path does not exist),
 *         pwrite 64 KiB, fsync, pread and compare, close. An error from open ends the loop and is
 *         reported as "openError"; an error from anything on a descriptor that opened is
 *         reported as "error" with its "op"; a read-back that differs as "mismatch".
 * stat:   stat(2)s <file> in a loop; the first error ends it ({"ops":N,"error":"ECODE"}).
 * All print {"ready":true} first, and a progress line {"progress":N} every 100 ops.
 */
import * as fs from "node:fs";
import { Rng } from "./rng.ts";

const [mode, path, idArg = "0", secondsArg = "30"] = process.argv.slice(2);
if (!["mixed", "writer", "stat"].includes(mode ?? "") || !path) throw new Error("usage: hammer.ts mixed|writer|stat <dir|file> <id> <seconds>");
const id = Number(idArg);
const deadline = Date.now() + Number(secondsArg) * 1000;
const rng = new Rng(1000 + id);
const code = (e: unknown) => (e as { code?: string })?.code ?? String(e);
const say = (o: unknown) => console.log(JSON.stringify(o));
let ops = 0;
say({ ready: true, pid: process.pid });

if (mode === "stat") {
  let error: string | undefined;
  while (Date.now() < deadline) {
    try {
      fs.statSync(path);
    } catch (e) {
      error = code(e);
      break;
    }
    if (++ops % 100 === 0) say({ progress: ops });
  }
  say({ ops, error });
} else if (mode === "writer") {
  const CHUNK = 65536;
  const data = new Uint8Array(CHUNK);
  const back = new Uint8Array(CHUNK);
  let result: Record<string, unknown> = {};
  for (let i = 0; Date.now() < deadline; i++) {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR);
    } catch (e) {
      result = { openError: code(e) };
      break;
    }
    let op = "pwrite";
    try {
      rng.fill(data);
      const off = (i % 16) * CHUNK;
      const w = fs.writeSync(fd, data, 0, CHUNK, off);
      if (w !== CHUNK) throw Object.assign(new Error(`short write ${w}`), { code: "SHORT" });
      op = "fsync";
      fs.fsyncSync(fd);
      op = "pread";
      const r = fs.readSync(fd, back, 0, CHUNK, off);
      if (r !== CHUNK || Buffer.compare(back, data) !== 0) {
        result = { mismatch: `iteration ${i}: read back ${r} bytes that differ from what was written` };
        fs.closeSync(fd);
        break;
      }
      op = "close";
      fs.closeSync(fd);
    } catch (e) {
      result = { error: code(e), op };
      break;
    }
    ops++;
    if (ops % 100 === 0) say({ progress: ops });
  }
  say({ ops, ...result });
} else {
  const mine = `${path}/h${id}`;
  let op = "mkdir";
  let error: string | null = null;
  const buf = new Uint8Array(32768);
  try {
    fs.mkdirSync(mine, { recursive: true });
    for (let i = 0; Date.now() < deadline; i++) {
      const f = `${mine}/f${i % 8}`;
      op = "open+write";
      const fd = fs.openSync(f, "w");
      fs.writeSync(fd, rng.fill(buf.subarray(0, rng.range(1, buf.length))));
      op = "fsync";
      fs.fsyncSync(fd);
      op = "close";
      fs.closeSync(fd);
      op = "read";
      fs.readFileSync(f);
      op = "stat";
      fs.statSync(f);
      op = "readdir";
      fs.readdirSync(mine);
      op = "rename";
      fs.renameSync(f, `${f}.r`);
      op = "unlink";
      if (i % 3 === 0) fs.unlinkSync(`${f}.r`);
      ops++;
      if (ops % 100 === 0) say({ progress: ops });
    }
  } catch (e) {
    error = code(e);
  }
  let after: string | null = null;
  if (error !== null) {
    try {
      fs.statSync(`${path}/after-error-probe-${id}-${Date.now()}`); // a fresh name: a LOOKUP, never a cache hit
    } catch (e) {
      after = code(e);
    }
  }
  say({ ops, error, op: error === null ? null : op, after });
}
