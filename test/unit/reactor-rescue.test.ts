/**
 * The reactor's lost-wake-up check: a completion that no eventfd wake-up announces is still
 * served, within two check periods, and counted; completions that are woken normally never count.
 */
import { expect, test } from "bun:test";
import { Reactor } from "../../runtime/reactor/reactor.ts";
import { IORING_OP_NOP } from "../../runtime/ffi/liburing.ts";

test("a completion without a wake-up is found by the rescue check and counted", async () => {
  const r = new Reactor(64);
  const seen: number[] = [];
  const kind = r.addHandler((i) => seen.push(i));
  r.start();
  try {
    // with a wake-up: served at once, no rescue
    r.ring.sqes.setUint8(r.sqe(kind, 1), IORING_OP_NOP);
    r.submit();
    for (let i = 0; i < 50 && seen.length < 1; i++) await Bun.sleep(2);
    expect(seen).toEqual([1]);
    // many completions over several check periods, all woken normally: no rescue
    for (let k = 0; k < 40; k++) {
      r.ring.sqes.setUint8(r.sqe(kind, 100), IORING_OP_NOP);
      r.submit();
      await Bun.sleep(4);
    }
    expect(seen.length).toBe(41);
    expect(r.rescues).toBe(0);
    // the eventfd goes quiet: the next completion must come through the check
    r.ring.unregisterEventfd();
    r.ring.sqes.setUint8(r.sqe(kind, 2), IORING_OP_NOP);
    r.submit();
    await Bun.sleep(20);
    expect(seen.at(-1)).toBe(100);
    for (let i = 0; i < 100 && seen.length < 42; i++) await Bun.sleep(5);
    expect(seen.at(-1)).toBe(2);
    expect(r.rescues).toBe(1);
  } finally {
    r.stop();
  }
});
