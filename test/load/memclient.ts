/**
 * A request generator for scripts/memtest (a child process; synchronous syscalls on purpose):
 *
 *   bun test/load/memclient.ts <dir> <id>
 *
 * Loops until killed over its own directory <dir>/c<id>: stat, open+read+close, open+write+close,
 * readdir; every 8th round a create+write+close+unlink of a scratch file, every 32nd a
 * mkdir+rmdir. With zero cache timeouts and direct_io each call reaches the daemon. Any error is
 * printed as {"error":"ECODE","op":"..."} and ends the process with status 1.
 */
import * as fs from "node:fs";

const [dir, idArg = "0"] = process.argv.slice(2);
if (!dir) throw new Error("usage: memclient.ts <dir> <id>");
const mine = `${dir}/c${idArg}`;
const FILES = 16;
const buf = new Uint8Array(4096).fill(Number(idArg) + 1);
let op = "setup";
try {
  fs.mkdirSync(mine, { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(`${mine}/f${i}`, new Uint8Array(64 * 1024));
  console.log(JSON.stringify({ ready: true }));
  for (let round = 0; ; round++) {
    const f = `${mine}/f${round % FILES}`;
    op = "stat";
    fs.statSync(f);
    op = "read";
    let fd = fs.openSync(f, "r");
    fs.readSync(fd, buf, 0, buf.length, (round % 16) * 4096);
    fs.closeSync(fd);
    op = "write";
    fd = fs.openSync(f, "r+");
    fs.writeSync(fd, buf, 0, buf.length, (round % 16) * 4096);
    fs.closeSync(fd);
    op = "readdir";
    fs.readdirSync(mine);
    if (round % 8 === 0) {
      op = "create";
      const s = `${mine}/scratch-${round}`;
      fd = fs.openSync(s, "wx");
      fs.writeSync(fd, buf, 0, 512, 0);
      fs.closeSync(fd);
      op = "unlink";
      fs.unlinkSync(s);
    }
    if (round % 32 === 0) {
      op = "mkdir";
      fs.mkdirSync(`${mine}/d-${round}`);
      op = "rmdir";
      fs.rmdirSync(`${mine}/d-${round}`);
    }
  }
} catch (e) {
  console.log(JSON.stringify({ error: (e as { code?: string }).code ?? String(e), op }));
  process.exit(1);
}
