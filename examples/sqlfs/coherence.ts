// Coherence across mounts of one PostgreSQL database. Every transaction that changes the tree
// appends what it changed to `changelog` and sends it with pg_notify in the same transaction
// (store.ts), so it is heard only once it is committed. Each mount LISTENs and turns the other
// mounts' changes into kernel invalidations: exactly the entries, inodes and pages that changed.
//
// Bun.SQL's `listen` keeps one dedicated connection, reconnects with backoff and runs `onlisten`
// again after each reconnect. Notifications sent while a mount was not listening are lost, so on
// every (re)listen the mount replays the changelog from the last change it saw. A seq is taken at
// insert, not at commit, so one that committed late may be lower than one already seen: the
// replay starts REPLAY_WINDOW seqs earlier (more than the transactions that can be open at once,
// bounded by max_connections); invalidating twice is harmless.
import type { Notifier } from "furing";
import { CHANNEL, type Change, type Store } from "./store.ts";

const REPLAY_WINDOW = 1024;

export interface CoherenceState {
  /** The highest changelog seq this mount has seen (its own or another's). */
  seen: number;
}

export class Coherence {
  private unlisten?: () => Promise<void>;
  private listens = 0;
  private closed = false;
  /** Invalidations sent and failed (logged at most once per kind). */
  sent = 0;
  private complained = false;

  constructor(
    private readonly store: Store,
    private readonly notify: Notifier,
    private readonly mountId: string,
    private readonly state: CoherenceState,
    private readonly log: (msg: string) => void,
  ) {}

  async start(): Promise<void> {
    if (this.state.seen === 0) this.state.seen = await this.store.lastSeq();
    const sub = await this.store.sql.listen(CHANNEL, (payload) => this.onNotify(payload), () => this.onListen());
    this.unlisten = () => sub.unlisten();
  }

  async stop(): Promise<void> {
    this.closed = true;
    await this.unlisten?.().catch(() => {});
  }

  private onListen(): void {
    // the first listen replays what committed between lastSeq() and the LISTEN; a later one, the outage
    if (++this.listens > 1) this.log(`listening again for other mounts' changes: replaying what changed since seq ${this.state.seen}`);
    void this.replay();
  }

  private async replay(): Promise<void> {
    const from = this.state.seen;
    try {
      const { oldest, rows } = await this.store.changesSince(Math.max(0, from - REPLAY_WINDOW));
      if (from > 0 && oldest > from + 1) this.log(`changelog entries after seq ${from} were pruned: caches may be stale until their timeouts`);
      for (const r of rows) this.apply(r.seq, r.mount, r.changes);
    } catch (e) {
      // the database went away again: the next onlisten replays
      this.log(`replaying the changelog failed: ${(e as Error).message}`);
    }
  }

  private onNotify(payload: string): void {
    if (this.closed) return;
    const a = payload.indexOf(" "), b = payload.indexOf(" ", a + 1);
    const seq = Number(payload.slice(0, a)), mount = payload.slice(a + 1, b), json = payload.slice(b + 1);
    if (json === "") {
      // too large for a NOTIFY payload: read it from the changelog
      void this.store.changesSince(seq - 1).then(
        ({ rows }) => rows.filter((r) => r.seq === seq).forEach((r) => this.apply(r.seq, r.mount, r.changes)),
        (e) => this.log(`reading change ${seq} failed: ${(e as Error).message}`),
      );
      return;
    }
    this.apply(seq, mount, JSON.parse(json) as Change[]);
  }

  private apply(seq: number, mount: string, changes: Change[]): void {
    if (seq > this.state.seen) this.state.seen = seq;
    if (mount === this.mountId) return; // our own changes went through our kernel already
    for (const c of changes) {
      // never awaited: an invalidation may wait for a directory lock held by a caller of ours
      let p: Promise<void>;
      switch (c[0]) {
        case "e": p = this.notify.invalEntry(c[1], c[2]); break;
        // delete refuses a directory the kernel still sees children in: dropping the name is enough
        case "d": p = this.notify.delete(c[1], c[2], c[3]).catch(() => this.notify.invalEntry(c[1], c[3])); break;
        case "a": p = this.notify.invalInode(c[1], -1); break;
        case "p": p = this.notify.invalInode(c[1], c[2], c[3]); break;
        default: continue;
      }
      this.sent++;
      p.catch((e) => {
        if (this.complained) return;
        this.complained = true;
        this.log(`an invalidation failed (further failures are not logged): ${(e as Error).message}`);
      });
    }
  }
}
