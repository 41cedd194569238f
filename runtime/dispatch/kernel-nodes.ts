/**
 * Which node ids the kernel currently holds (entry replies minus FORGETs), so a hot reload can
 * invalidate exactly what the old code put in the kernel's caches, and status can show it.
 */
export class KernelNodes {
  private readonly counts = new Map<number, number>();

  /** One more lookup of `ino` (an entry reply the kernel accepted). */
  add(ino: number): void {
    if (ino === 1) return; // the root is never forgotten
    this.counts.set(ino, (this.counts.get(ino) ?? 0) + 1);
  }

  forget(ino: number, nlookup: number): void {
    const n = this.counts.get(ino);
    if (n === undefined) return;
    if (n <= nlookup) this.counts.delete(ino);
    else this.counts.set(ino, n - nlookup);
  }

  get size(): number {
    return this.counts.size;
  }

  ids(): IterableIterator<number> {
    return this.counts.keys();
  }
}
