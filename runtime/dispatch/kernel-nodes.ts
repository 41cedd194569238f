/**
 * Which node ids the kernel currently holds (entry replies minus FORGETs), so a hot reload can
 * invalidate exactly what the old code put in the kernel's caches, and status can show it.
 *
 * With reactor Workers a node's lookups and its FORGETs may reach different instances, so the
 * counts live in the table they share (shared-counts.ts) instead. A dispatcher told its counts are
 * partial without such a table keeps signed ones (`signed`), from which it decides nothing.
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

  /**
   * The kernel dropped `nlookup` references to `ino`. True when that was the last of them (the
   * kernel holds the node no more); never with signed counts, where this instance cannot know.
   */
  forget(ino: number, nlookup: number): boolean {
    const n = this.counts.get(ino);
    if (this.signed) {
      if (ino === 1) return false;
      const left = (n ?? 0) - nlookup;
      if (left === 0) this.counts.delete(ino);
      else this.counts.set(ino, left);
      return false;
    }
    if (n === undefined) return false;
    if (n <= nlookup) {
      this.counts.delete(ino);
      return true;
    }
    this.counts.set(ino, n - nlookup);
    return false;
  }

  /** References the kernel holds to `ino` (signed: this instance's share, possibly negative). */
  count(ino: number): number {
    return this.counts.get(ino) ?? 0;
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

/**
 * Open handles per node: successful open, opendir, create and tmpfile replies minus the RELEASE
 * and RELEASEDIR the kernel sends for them (so a plugin can ask whether a node is still open).
 * Signed as KernelNodes are: with reactor Workers an open and its release may reach different ones.
 */
export class OpenHandles {
  private readonly counts = new Map<number, number>();

  constructor(private readonly signed = false) {}

  open(ino: number): void {
    const n = (this.counts.get(ino) ?? 0) + 1;
    if (n === 0) this.counts.delete(ino);
    else this.counts.set(ino, n);
  }

  release(ino: number): void {
    const n = (this.counts.get(ino) ?? 0) - 1;
    if (n === 0 || (n < 0 && !this.signed)) this.counts.delete(ino);
    else this.counts.set(ino, n);
  }

  count(ino: number): number {
    return this.counts.get(ino) ?? 0;
  }

  /** Nodes with open handles (signed: with a count of either sign). */
  get size(): number {
    return this.counts.size;
  }
}
