/**
 * The classic transport's FORGET batching (DevTransport.forgetBatchMs): after a read that found
 * only FORGETs it does not poll /dev/fuse again until the pause is over, so FORGETs arriving
 * meanwhile wait in the kernel (which hands them over as one BATCH_FORGET); after any other
 * request it polls again at once. A FIFO opened read-write stands in for /dev/fuse (one write of
 * a whole message = one read, as long as each is read before the next is written).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, openSync, closeSync, rmSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Reactor } from "../../runtime/reactor/reactor.ts";
import { DevTransport } from "../../runtime/transport/fuse-dev.ts";
import { Op } from "../../runtime/kernel/opcodes.ts";
import { IN_HEADER_SIZE, IN_OPCODE } from "../../runtime/kernel/abi.ts";
import { sh } from "../helpers/run.ts";

const dir = mkdtempSync(join(tmpdir(), "forget-batch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A FIFO read-write and non-blocking (so reading it empty says EAGAIN), and a transport on it. */
async function setup(name: string, pauseMs: number) {
  const path = join(dir, name);
  await sh(["mkfifo", path]);
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const reactor = new Reactor(64);
  const read: number[] = [];
  const dev = new DevTransport(reactor, fd, 4, 8192, (slot) => {
    read.push(slot.hdr.getUint32(IN_OPCODE, true));
    dev.noReply(slot);
  }, () => {});
  dev.forgetBatchMs = pauseMs;
  reactor.start();
  dev.start();
  reactor.submit();
  /** Write one request with opcode `op` (an in-header and 8 bytes) and wait until it was read. */
  const send = (op: number) => {
    const b = Buffer.alloc(IN_HEADER_SIZE + 8);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt32LE(op, IN_OPCODE);
    writeSync(fd, b);
  };
  const readCount = async (n: number) => {
    for (let i = 0; i < 500 && read.length < n; i++) await Bun.sleep(5);
    return read.length;
  };
  const close = () => {
    dev.stopReading();
    reactor.stop();
    closeSync(fd);
  };
  return { read, send, readCount, close };
}

test("after a read of FORGETs only, /dev/fuse is not polled again until the pause is over", async () => {
  const t = await setup("forgets", 60_000);
  try {
    t.send(Op.FORGET);
    expect(await t.readCount(1)).toBe(1);
    await Bun.sleep(20);
    // queued meanwhile: stays in the kernel (here the FIFO) for the rest of the pause
    t.send(Op.FORGET);
    t.send(Op.BATCH_FORGET);
    await Bun.sleep(200);
    expect(t.read).toEqual([Op.FORGET]);
  } finally {
    t.close();
  }
});

test("a pause is over after forgetBatchMs: what gathered is read then", async () => {
  const t = await setup("pause-ends", 100);
  try {
    t.send(Op.BATCH_FORGET);
    expect(await t.readCount(1)).toBe(1);
    await Bun.sleep(5);
    t.send(Op.FORGET);
    expect(await t.readCount(2)).toBe(2);
    expect(t.read).toEqual([Op.BATCH_FORGET, Op.FORGET]);
  } finally {
    t.close();
  }
});

test("after any other request (an INTERRUPT) the poll is armed again at once", async () => {
  const t = await setup("interrupt", 60_000);
  try {
    t.send(Op.INTERRUPT);
    expect(await t.readCount(1)).toBe(1);
    await Bun.sleep(20);
    t.send(Op.INTERRUPT);
    expect(await t.readCount(2)).toBe(2);
    await Bun.sleep(20);
    t.send(Op.FORGET);
    expect(await t.readCount(3)).toBe(3);
    expect(t.read).toEqual([Op.INTERRUPT, Op.INTERRUPT, Op.FORGET]);
  } finally {
    t.close();
  }
});

test("forgetBatchMs 0 (the single reactor) reads every FORGET as it comes", async () => {
  const t = await setup("no-pause", 0);
  try {
    t.send(Op.FORGET);
    expect(await t.readCount(1)).toBe(1);
    await Bun.sleep(20);
    t.send(Op.FORGET);
    expect(await t.readCount(2)).toBe(2);
  } finally {
    t.close();
  }
});
