/**
 * Which node ids the kernel currently holds (entry replies minus FORGETs), so a hot reload can
 * invalidate exactly what the old code put in the kernel's caches, and status can show it.
 *
 * With several reactors a node's lookups and its FORGETs may reach different instances: each then
 * keeps signed counts (`signed`), and the holder set is the nodes whose counts sum above zero
 * over every instance.
 */
export class KernelNodes {
  private readonly counts = new Map<number, number>();

  constructor(private readonly signed = false) {}

  /** One more lookup of `ino` (an entry reply the kernel accepted). */
  add(ino: number): void {
    if (ino === 1) return; // the root is never forgotten
    const n = (this.counts.get(ino) ?? 0) + 1;
    if (n === 0) this.counts.delete(ino);
    else this.counts.set(ino, n);
  }

  forget(ino: number, nlookup: number): void {
    const n = this.counts.get(ino);
    if (this.signed) {
      if (ino === 1) return;
      const left = (n ?? 0) - nlookup;
      if (left === 0) this.counts.delete(ino);
      else this.counts.set(ino, left);
      return;
    }
    if (n === undefined) return;
    if (n <= nlookup) this.counts.delete(ino);
    else this.counts.set(ino, n - nlookup);
  }

  /** Nodes held (signed: nodes with a count, of either sign). */
  get size(): number {
    return this.counts.size;
  }

  ids(): IterableIterator<number> {
    return this.counts.keys();
  }

  /** [ino, count, ino, count, ...] (to sum over reactors). */
  flat(): number[] {
    const out: number[] = [];
    for (const [ino, n] of this.counts) out.push(ino, n);
    return out;
  }
}

/** The nodes the kernel holds, from every instance's `flat()` counts. */
export function sumHeld(flats: number[][]): number[] {
  const sum = new Map<number, number>();
  for (const f of flats) for (let i = 0; i < f.length; i += 2) sum.set(f[i]!, (sum.get(f[i]!) ?? 0) + f[i + 1]!);
  const held: number[] = [];
  for (const [ino, n] of sum) if (n > 0) held.push(ino);
  return held;
}
