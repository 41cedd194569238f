/**
 * Where things are in memfs's shared "memfs.meta" region (Float64 slots; the first 16 bytes are
 * Int32 words: the lock, a magic number, the layout version). A module of constants only, so
 * that state.ts, nodes.ts and pool.ts can all import it without an import cycle.
 */
export const M_NEXT_SLOT = 2, M_FREE_SLOT = 3, M_USED = 4, M_ISPACE = 5, M_MAX_BYTES = 6, M_MAX_INODES = 7;
export const M_LIVE = 8, M_FLOOR_SEC = 9, M_FLOOR_NSEC = 10;
/** The chunk pool's slots start here (pool.ts). */
export const M_POOL = 16;

export const PAGE = 4096;
export const CHUNK = 65536;
