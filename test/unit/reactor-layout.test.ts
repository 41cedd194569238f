/**
 * Pieces of the reactor-Worker layout that need no mount: how queues are grouped over Workers,
 * and how kernel node references counted on several instances add up.
 */
import { describe, expect, test } from "bun:test";
import { queueGroups } from "../../runtime/session/reactors.ts";
import { KernelNodes } from "../../runtime/dispatch/kernel-nodes.ts";
import { SharedCounts, createSharedCounts } from "../../runtime/dispatch/shared-counts.ts";

describe("queueGroups", () => {
  test("one Worker per CPU: each serves its CPU's queue, pinned there", () => {
    expect(queueGroups(2, 2, [0, 1])).toEqual([
      { firstQueue: 0, queues: 1, cpus: [0] },
      { firstQueue: 1, queues: 1, cpus: [1] },
    ]);
  });

  test("fewer Workers than queues: contiguous groups covering every possible CPU's queue once", () => {
    const g = queueGroups(3, 128, Array.from({ length: 8 }, (_, i) => i));
    expect(g.map((x) => x.queues).reduce((a, b) => a + b)).toBe(128);
    expect(g[0]).toEqual({ firstQueue: 0, queues: 42, cpus: [0, 1, 2, 3, 4, 5, 6, 7] });
    expect(g[1]).toEqual({ firstQueue: 42, queues: 43, cpus: [] }); // no online CPU there: left to the scheduler
    expect(g[2]!.firstQueue + g[2]!.queues).toBe(128);
  });

  test("offline CPUs keep their queues in a group but are not pinned to", () => {
    expect(queueGroups(2, 4, [0, 3])).toEqual([
      { firstQueue: 0, queues: 2, cpus: [0] },
      { firstQueue: 2, queues: 2, cpus: [3] },
    ]);
  });
});

describe("KernelNodes over several instances", () => {
  test("unsigned (one instance): a FORGET of more than was counted drops the node, never below zero", () => {
    const k = new KernelNodes();
    k.add(5);
    k.forget(5, 3);
    k.forget(6, 1);
    expect(k.size).toBe(0);
  });

  test("signed: lookups on one instance and FORGETs on another stay partial there", () => {
    const a = new KernelNodes(true), b = new KernelNodes(true);
    a.add(5); a.add(5); a.add(7);
    b.forget(5, 1);
    b.forget(7, 1);
    b.add(11);
    expect(b.flat()).toEqual([5, -1, 7, -1, 11, 1]);
    expect(a.flat()).toEqual([5, 2, 7, 1]);
  });

  test("the shared table: lookups on one reactor and FORGETs on another leave what the kernel holds; large ids round-trip", () => {
    const sab = createSharedCounts();
    const a = new SharedCounts(sab), b = new SharedCounts(sab);
    const big = 2 ** 40 + 7; // memfs ids carry a generation above bit 32
    a.lookup(5); a.lookup(5); a.lookup(7); a.lookup(9); a.lookup(big);
    b.forget(5, 1); // one of node 5's two lookups forgotten on the other reactor
    b.forget(7, 1); // node 7 fully forgotten there
    b.lookup(11);
    b.open(13); // open but not held (an entry the kernel forgot while a handle stays)
    expect(a.heldIds().sort((x, y) => x - y)).toEqual([5, 9, 11, big]);
    expect(b.heldIds().length).toBe(4);
  });
});
