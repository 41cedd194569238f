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
// bounded by max_connections) and skips the seqs it has seen, so it drops only what it missed.
//
// Bun's reconnect backs off (measured: 0.7 s, then 3.4 s, 5.3 s, ... after the server is back), and
// nothing says when the LISTEN connection is lost. So when any connection of the pool closes, the
// mount probes: it sends itself a notification every PROBE_MS; heard, the LISTEN is alive; sent but
// not heard, the LISTEN is gone while the database answers, and it subscribes anew at once.
import type { Notifier } from "furing";
import { CHANNEL, type Change, type Store } from "./store.ts";

const REPLAY_WINDOW = 1024;
const PROBE_MS = 250;

export interface CoherenceState {
  /** The highest changelog seq this mount has seen (its own or another's). */
  seen: number;
  /** The seqs seen within REPLAY_WINDOW of `seen`: a replay skips them (their caches were dropped then). */
  recent: Set<number>;
}

export class Coherence {
  private unlisten?: () => Promise<void>;
  private probing = false;
  private probeSeq = 0;
  private heard = new Set<number>();
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
    await this.subscribe();
    this.store.onConnectionClosed = () => void this.probe();
  }

  private async subscribe(): Promise<void> {
    const sub = await this.store.sql.listen(CHANNEL, (payload) => this.onNotify(payload), () => this.onListen());
    this.unlisten = () => sub.unlisten();
  }

  /** Until a notification of our own comes back: resubscribe when the database answers but the LISTEN does not. */
  private async probe(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    try {
      while (!this.closed) {
        const n = ++this.probeSeq;
        let sent = true;
        await this.store.probe(`0 ${this.mountId} probe ${n}`).catch(() => (sent = false));
        await Bun.sleep(PROBE_MS);
        if (this.heard.has(n)) break; // listening
        if (!sent) continue; // the database is away: probe again
        this.log("the LISTEN connection is gone while the database answers: subscribing again");
        await this.unlisten?.().catch(() => {});
        try {
          await this.subscribe(); // onlisten replays the changelog
          break;
        } catch {
          // away again: keep probing
        }
      }
    } finally {
      this.heard.clear();
      this.probing = false;
    }
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
      for (const r of rows) if (!this.state.recent.has(r.seq)) this.apply(r.seq, r.mount, r.changes);
    } catch (e) {
      // the database went away again: the next onlisten replays
      this.log(`replaying the changelog failed: ${(e as Error).message}`);
    }
  }

  private onNotify(payload: string): void {
    if (this.closed) return;
    const a = payload.indexOf(" "), b = payload.indexOf(" ", a + 1);
    const seq = Number(payload.slice(0, a)), mount = payload.slice(a + 1, b), json = payload.slice(b + 1);
    if (seq === 0) {
      // a liveness probe (ours, or another mount's: ignored)
      if (mount === this.mountId) this.heard.add(Number(json.split(" ")[1]));
      return;
    }
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
    const st = this.state;
    st.recent.add(seq);
    if (seq > st.seen) {
      st.seen = seq;
      if (st.recent.size > 2 * REPLAY_WINDOW) for (const s of st.recent) if (s < seq - REPLAY_WINDOW) st.recent.delete(s);
    }
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
