/**
 * CallerCpuFollower on this very thread: it must move the thread to the CPU whose queue carries the
 * requests, respect the dwell time, give the original mask back when no queue dominates, and do
 * nothing when only one CPU is allowed or the option is off.
 */
import { afterEach, expect, test } from "bun:test";
import { CallerCpuFollower } from "../../runtime/reactor/affinity.ts";
import { Reactor } from "../../runtime/reactor/reactor.ts";
import { libc } from "../../runtime/ffi/libc.ts";
import { needsCpus } from "../helpers/skip.ts";

const cpus = navigator.hardwareConcurrency;
/** Following needs somewhere to move to: with one usable CPU these tests say so and skip. */
const oneCpu = needsCpus(2, "the CallerCpuFollower moves", "it moves this thread from one CPU to another");
const original = new Uint8Array(128);
libc.sched_getaffinity(0, 128, original);
afterEach(() => {
  libc.sched_setaffinity(0, 128, original);
});

function allowedNow(): number[] {
  const m = new Uint8Array(128);
  expect(libc.sched_getaffinity(0, 128, m)).toBeGreaterThanOrEqual(0);
  const out: number[] = [];
  for (let c = 0; c < 1024; c++) if (m[c >> 3]! & (1 << (c & 7))) out.push(c);
  return out;
}
const sleep = (ms: number) => Bun.sleepSync(ms);

test.skipIf(oneCpu)("moves to the dominant queue's CPU, stays put within the dwell time, and unpins on a mixed load", () => {
  const f = new CallerCpuFollower(cpus, true);
  expect(f.enabled).toBe(true);
  expect(f.allowed.length).toBe(cpus);
  for (let i = 0; i < 64; i++) f.note(1);
  expect(f.pinned).toBe(1);
  expect(allowedNow()).toEqual([1]);
  expect(libc.sched_getcpu()).toBe(1);
  // right away, another queue cannot pull it (dwell)
  for (let i = 0; i < 64; i++) f.note(0);
  expect(f.pinned).toBe(1);
  sleep(25);
  for (let i = 0; i < 64; i++) f.note(0);
  expect(f.pinned).toBe(0);
  expect(libc.sched_getcpu()).toBe(0);
  expect(f.moves).toBe(2);
  // a 50/50 window: no queue dominates, the scheduler gets the original mask back
  sleep(25);
  for (let i = 0; i < 64; i++) f.note(i & 1);
  expect(f.pinned).toBe(-1);
  expect(allowedNow().length).toBe(cpus);
});

test.skipIf(oneCpu)("a window below the dominance share does not move it; release() restores the mask", () => {
  const f = new CallerCpuFollower(cpus, true);
  for (let i = 0; i < 64; i++) f.note(i % 3 === 0 ? 0 : 1); // 1 carries 2/3 < 3/4
  expect(f.pinned).toBe(-1);
  for (let i = 0; i < 64; i++) f.note(1);
  expect(f.pinned).toBe(1);
  f.release();
  expect(f.pinned).toBe(-1);
  expect(allowedNow().length).toBe(cpus);
});

test("does nothing when turned off or when the thread may run on one CPU only", () => {
  const off = new CallerCpuFollower(cpus, false);
  for (let i = 0; i < 256; i++) off.note(0);
  expect(off.enabled).toBe(false);
  expect(off.pinned).toBe(-1);
  const one = new Uint8Array(128);
  one[0] = 1;
  expect(libc.sched_setaffinity(0, 128, one)).toBe(0);
  const f = new CallerCpuFollower(cpus, true);
  expect(f.allowed).toEqual([0]);
  for (let i = 0; i < 256; i++) f.note(cpus > 1 ? 1 : 0);
  expect(allowedNow()).toEqual([0]);
});

test.skipIf(oneCpu)("a mask set from outside after start wins over following", () => {
  const f = new CallerCpuFollower(cpus, true);
  for (let i = 0; i < 64; i++) f.note(1);
  expect(f.pinned).toBe(1);
  const zero = new Uint8Array(128);
  zero[0] = 1;
  expect(libc.sched_setaffinity(0, 128, zero)).toBe(0); // what `taskset -p 1 PID` does
  sleep(25);
  for (let i = 0; i < 64; i++) f.note(1);
  expect(f.pinned).toBe(-1);
  expect(f.allowed).toEqual([0]);
  expect(allowedNow()).toEqual([0]);
  // and when the whole set is allowed again, it follows again
  const all = new Uint8Array(128);
  all.set(original);
  expect(libc.sched_setaffinity(0, 128, all)).toBe(0);
  for (let i = 0; i < 64; i++) f.note(1); // notices the new mask
  for (let i = 0; i < 64; i++) f.note(1);
  expect(f.pinned).toBe(1);
});

// The reactor owns where its thread runs: the transport only reports the queue (= CPU) a request
// came from and a reply went to.
test.skipIf(oneCpu)("the reactor follows the CPU its requests come from, and yields only after a reply to a caller there", () => {
  const r = new Reactor(64);
  const wokeLocal = () => (r as unknown as { replyWokeLocal: boolean }).replyWokeLocal;
  r.requestFrom(1); // not following yet: nothing to count
  expect(r.follower).toBeNull();
  r.followCallers(cpus, true);
  for (let i = 0; i < 64; i++) r.requestFrom(1);
  expect(r.follower!.pinned).toBe(1);
  expect(libc.sched_getcpu()).toBe(1);
  r.repliedTo(0); // a caller on another CPU: nothing to yield to
  expect(wokeLocal()).toBe(false);
  r.repliedTo(1);
  expect(wokeLocal()).toBe(process.env.FURING_YIELD !== "0");
  r.follower!.release();
});

test("a reactor pinned from outside yields after a reply to a caller on its CPU only", () => {
  const r = new Reactor(64);
  const wokeLocal = () => (r as unknown as { replyWokeLocal: boolean }).replyWokeLocal;
  r.pinnedCpu = 0;
  r.repliedTo(1);
  expect(wokeLocal()).toBe(false);
  r.repliedTo(0);
  expect(wokeLocal()).toBe(process.env.FURING_YIELD !== "0");
});
