/**
 * Full data chunks (CHUNK bytes) come from page memory that memfs keeps and reuses, instead of
 * the JS heap: a freed chunk goes back to this pool, and the next write takes it again without a
 * page fault. Allocating fresh memory per chunk made sequential writes fault on every page (the
 * kernel zeroes each one): 65% of the daemon's time in a 128 KiB write loop went to clear_page.
 *
 * Chunks are carved out of SLAB-sized mappings (2 MiB-aligned, transparent huge pages requested).
 * Up to MAX_DIRTY freed chunks are kept as they are (reused after zeroing, ~8 GB/s); past that, a
 * freed chunk's pages go back to the kernel (MADV_DONTNEED) so the daemon's memory follows the
 * data it holds, and the chunk is reused later as clean memory.
 *
 * Chunks shorter than CHUNK (small files are charged page by page, like tmpfs) stay ordinary
 * Uint8Arrays: a slab per small file would waste memory.
 */
import { mapPages, discardPages } from "furing/sys";
import { CHUNK } from "./data.ts";

const SLAB = 32 << 20;
const MAX_DIRTY = 1024; // 64 MiB of freed chunks kept ready

export class ChunkPool {
  /** Freed chunks that still hold old bytes (zero them before use). */
  private readonly dirty: Uint8Array[] = [];
  /** Chunks that read as zeros (never used, or discarded). */
  private readonly clean: Uint8Array[] = [];
  /** Bytes mapped so far. */
  mapped = 0;
  /** Chunks whose pages went back to the kernel. */
  discarded = 0;

  /** A zeroed chunk of CHUNK bytes. */
  take(): Uint8Array {
    const d = this.dirty.pop();
    if (d !== undefined) {
      d.fill(0);
      return d;
    }
    const c = this.clean.pop();
    if (c !== undefined) return c;
    const slab = mapPages(SLAB, { hugepages: true });
    this.mapped += SLAB;
    for (let off = SLAB - CHUNK; off > 0; off -= CHUNK) this.clean.push(slab.subarray(off, off + CHUNK));
    return slab.subarray(0, CHUNK);
  }

  /** Take back a chunk (any Uint8Array of CHUNK bytes: chunks from older code are adopted). */
  give(c: Uint8Array): void {
    if (c.length !== CHUNK) return;
    if (this.dirty.length < MAX_DIRTY) {
      this.dirty.push(c);
      return;
    }
    try {
      discardPages(c);
      this.clean.push(c);
      this.discarded++;
    } catch {
      // not page memory (a chunk from the JS heap): let the collector have it
    }
  }

  /** Free chunks held (for status and memory figures). */
  get idle(): number {
    return this.dirty.length + this.clean.length;
  }
}
