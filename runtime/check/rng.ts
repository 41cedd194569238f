/** Seeded xorshift128 random numbers: the same seed gives the same sequence on every machine. */
export class Rng {
  private a: number;
  private b = 0x9e3779b9;
  private c = 0x85ebca6b;
  private d = 0xc2b2ae35;

  constructor(seed: number) {
    this.a = seed >>> 0 || 1;
    this.b = (this.b ^ Math.imul(seed >>> 0, 0x27d4eb2d)) >>> 0 || 1;
    for (let i = 0; i < 16; i++) this.u32();
  }

  /** A uniformly random 32-bit unsigned integer. */
  u32(): number {
    const t = this.a ^ (this.a << 11);
    this.a = this.b;
    this.b = this.c;
    this.c = this.d;
    this.d = (this.d ^ (this.d >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    return this.d;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (n <= 0) return 0;
    if (n <= 0x100000000) return Math.floor((this.u32() / 0x100000000) * n);
    return Math.floor(((this.u32() * 0x100000000 + this.u32()) / 2 ** 64) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    let total = 0;
    for (const k in weights) total += weights[k];
    let x = (this.u32() / 0x100000000) * total;
    let last: K | undefined;
    for (const k in weights) {
      last = k;
      x -= weights[k];
      if (x < 0) return k;
    }
    return last as K;
  }
}

/** Deterministic bytes for a write: `seed` 0 gives zeros (writing zeros must still allocate data). */
export function pattern(seed: number, len: number, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(len);
  if (seed === 0) {
    out.fill(0, 0, len);
    return out;
  }
  let x = seed >>> 0 || 1;
  const words = len >>> 2;
  const view = new DataView(out.buffer, out.byteOffset, len);
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view.setUint32(i * 4, x >>> 0, true);
  }
  for (let i = words * 4; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
