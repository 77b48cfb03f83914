import pg from 'pg';
import type { IngestStore, ReaderDirectory, ReaderRecord } from '../ingest-store.js';
import { inTransaction, type PgPool } from './db.js';
import { readerRecord as toRecord, type ReaderRow } from '../rows.js';

/** The channel the `readers` trigger (migration readers-pg-001) notifies, with the reader id as payload. */
export const READERS_CHANNEL = 'visittag_readers';

const same = (a: ReaderRecord, b: ReaderRecord): boolean =>
  a.passwordHash === b.passwordHash &&
  a.clientRef === b.clientRef &&
  a.label === b.label &&
  a.revokedAt === b.revokedAt &&
  a.createdAt === b.createdAt;

interface Log {
  warn(obj: object, msg: string): void;
}

export interface PgReaderDirectoryOptions {
  pool: PgPool;
  /** The database's URL: the LISTEN connection is one of its own, outside the pool. */
  url: string;
  /** This instance's cache of verified credentials (a cache: it may stay per instance). */
  authTags: IngestStore['authTags'];
  logger: Log;
  /** Full pull of `readers`, the fallback for a missed notification (default 30 s). */
  pullEveryMs?: number;
  /** First wait before the LISTEN connection is opened again after it broke (doubles up to 10 s). */
  reconnectMs?: number;
  /** Name of the LISTEN connection in pg_stat_activity. */
  applicationName?: string;
}

/**
 * The reader registry's rows on PostgreSQL, shared by every instance (`store.engine: "postgres"`):
 *
 * - **reads are synchronous**, from an in-memory snapshot of `readers` (login, admission at ingest and
 *   the reader pages never wait for the database);
 * - **writes** change the snapshot at once and go through to PostgreSQL one after the other, in the
 *   order they were made (the returned Promise settles with the write); a failed write (PostgreSQL
 *   refused it, e.g. a reader another instance added with the same id) puts the snapshot's row back to
 *   what PostgreSQL holds;
 * - **other instances' changes** arrive by LISTEN/NOTIFY: a trigger on `readers` notifies
 *   `visittag_readers` with the reader id after each commit; the listener reads those rows (one
 *   statement per burst) and reports each change through `onRemoteChange`. A full pull every
 *   `pullEveryMs`, and after the LISTEN connection was opened again, catches what a broken connection
 *   missed. A row with a local write in flight is not taken from a read that may predate that write:
 *   when the write settles its row is read again.
 *
 * So a change made on one instance reaches the others within one notification round trip while the
 * LISTEN connection is up, and within `pullEveryMs` (plus the reconnect wait) when it is not.
 */
export class PgReaderDirectory implements ReaderDirectory {
  private rows = new Map<string, ReaderRecord>();
  /** Local writes started per reader (a read that began before one is not applied to that reader). */
  private readonly started = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();
  private tail: Promise<unknown> = Promise.resolve();
  private readonly listeners: Array<(before: ReaderRecord | undefined, after: ReaderRecord) => void> = [];
  private listener: pg.Client | null = null;
  private readonly wanted = new Set<string>();
  private refreshing: Promise<void> | null = null;
  private pullTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private backoffMs: number;
  private stopped = false;
  /** What the directory did so far (metrics, tests). */
  readonly stats = { notifications: 0, pulls: 0, remoteChanges: 0, reconnects: 0, writeFailures: 0 };
  readonly authTags: IngestStore['authTags'];

  constructor(private readonly o: PgReaderDirectoryOptions) {
    this.authTags = o.authTags;
    this.backoffMs = o.reconnectMs ?? 1_000;
  }

  /** LISTEN first, then the first full pull (so no change falls between the two). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.listen();
    await this.pull();
    this.pullTimer = setInterval(() => {
      this.pull().catch((err: unknown) =>
        this.o.logger.warn({ err }, 'reader registry pull from PostgreSQL failed; will retry'),
      );
    }, this.o.pullEveryMs ?? 30_000);
    this.pullTimer.unref();
  }

  /** Waits for the writes made so far, then closes the LISTEN connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pullTimer) clearInterval(this.pullTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await this.settled();
    const c = this.listener;
    this.listener = null;
    await c?.end().catch(() => undefined);
  }

  /** Resolves when every write made so far has settled (failed ones included). */
  settled(): Promise<void> {
    return this.tail.then(() => undefined);
  }

  onRemoteChange(fn: (before: ReaderRecord | undefined, after: ReaderRecord) => void): void {
    this.listeners.push(fn);
  }

  getReader(readerId: string): ReaderRecord | undefined {
    const r = this.rows.get(readerId);
    return r ? { ...r } : undefined;
  }

  listReaders(): ReaderRecord[] {
    return [...this.rows.values()]
      .sort((a, b) => (a.readerId < b.readerId ? -1 : a.readerId > b.readerId ? 1 : 0))
      .map((r) => ({ ...r }));
  }

  insertReader(r: ReaderRecord): Promise<void> {
    if (this.rows.has(r.readerId)) return Promise.reject(new Error(`reader ${r.readerId} already exists`));
    this.rows.set(r.readerId, { ...r });
    return this.write(r.readerId, () =>
      inTransaction(this.o.pool, async (c) => {
        await c.query(
          'INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
          [r.readerId, r.passwordHash, r.clientRef, r.label, r.revokedAt, r.createdAt],
        );
        await c.query(
          'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, $3)',
          [r.readerId, r.clientRef, r.createdAt],
        );
      }).catch((err: unknown) => {
        if ((err as { code?: string }).code === '23505')
          throw new Error(`reader ${r.readerId} already exists`);
        throw err;
      }),
    );
  }

  setPasswordHash(readerId: string, hash: string): Promise<void> {
    this.patch(readerId, { passwordHash: hash });
    return this.write(readerId, async () => {
      await this.o.pool.query('UPDATE readers SET password_hash = $1 WHERE reader_id = $2', [hash, readerId]);
    });
  }

  setRevoked(readerId: string, atMs: number | null): Promise<void> {
    this.patch(readerId, { revokedAt: atMs });
    return this.write(readerId, async () => {
      await this.o.pool.query('UPDATE readers SET revoked_at = $1 WHERE reader_id = $2', [atMs, readerId]);
    });
  }

  setClientRef(readerId: string, clientRef: string | null, atMs: number): Promise<void> {
    this.patch(readerId, { clientRef });
    return this.write(readerId, () =>
      inTransaction(this.o.pool, async (c) => {
        await c.query('UPDATE readers SET client_ref = $1 WHERE reader_id = $2', [clientRef, readerId]);
        await c.query(
          'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, $3)',
          [readerId, clientRef, atMs],
        );
      }),
    );
  }

  /** Reads every row of `readers` and takes what changed (readers gone from the table leave the snapshot). */
  async pull(): Promise<void> {
    const marks = new Map(this.started);
    const r = await this.o.pool.query<ReaderRow>('SELECT * FROM readers');
    this.stats.pulls++;
    const seen = new Set<string>();
    for (const row of r.rows) {
      seen.add(row.reader_id);
      this.take(toRecord(row), marks.get(row.reader_id) ?? 0);
    }
    for (const id of [...this.rows.keys()]) {
      if (!seen.has(id) && this.quiet(id, marks.get(id) ?? 0)) this.rows.delete(id);
    }
  }

  private patch(readerId: string, change: Partial<ReaderRecord>): void {
    const r = this.rows.get(readerId);
    if (r) this.rows.set(readerId, { ...r, ...change });
  }

  /** Runs `fn` after the writes before it; when it settles, the row is read again from PostgreSQL. */
  private write(readerId: string, fn: () => Promise<void>): Promise<void> {
    this.started.set(readerId, (this.started.get(readerId) ?? 0) + 1);
    this.inFlight.set(readerId, (this.inFlight.get(readerId) ?? 0) + 1);
    const p = this.tail.then(fn);
    const done = p
      .catch(() => {
        this.stats.writeFailures++;
      })
      .finally(() => {
        const n = (this.inFlight.get(readerId) ?? 1) - 1;
        if (n > 0) this.inFlight.set(readerId, n);
        else this.inFlight.delete(readerId);
        this.want(readerId);
      });
    this.tail = done;
    return p;
  }

  /** No local write in flight for the reader and none started since `mark`. */
  private quiet(readerId: string, mark: number): boolean {
    return !this.inFlight.has(readerId) && (this.started.get(readerId) ?? 0) === mark;
  }

  private take(after: ReaderRecord, mark: number): void {
    if (!this.quiet(after.readerId, mark)) return; // a local write's own read follows it
    const before = this.rows.get(after.readerId);
    if (before && same(before, after)) return;
    this.rows.set(after.readerId, after);
    this.stats.remoteChanges++;
    for (const fn of this.listeners) {
      try {
        fn(before ? { ...before } : undefined, { ...after });
      } catch (err) {
        this.o.logger.warn({ err, readerId: after.readerId }, 'reader change handler failed');
      }
    }
  }

  /** Reads the named readers again soon (one statement for a burst of notifications). */
  private want(readerId: string): void {
    if (this.stopped) return;
    this.wanted.add(readerId);
    if (this.refreshing) return;
    this.refreshing = (async () => {
      // bounded: each pass takes every id wanted so far; a pass only repeats for ids added meanwhile
      for (let pass = 0; this.wanted.size > 0 && pass < 100; pass++) {
        await new Promise<void>((res) => setImmediate(res));
        const ids = [...this.wanted];
        this.wanted.clear();
        const marks = new Map(ids.map((id) => [id, this.started.get(id) ?? 0]));
        try {
          const r = await this.o.pool.query<ReaderRow>(
            'SELECT * FROM readers WHERE reader_id = ANY($1::text[])',
            [ids],
          );
          const found = new Set<string>();
          for (const row of r.rows) {
            found.add(row.reader_id);
            this.take(toRecord(row), marks.get(row.reader_id) ?? 0);
          }
          // not in PostgreSQL (an insert that failed): out of the snapshot too
          for (const id of ids) {
            if (!found.has(id) && this.quiet(id, marks.get(id) ?? 0)) this.rows.delete(id);
          }
        } catch (err) {
          // the periodic pull takes them
          this.o.logger.warn(
            { err },
            'reading changed readers from PostgreSQL failed; the next pull takes them',
          );
        }
      }
    })().finally(() => {
      this.refreshing = null;
      if (this.wanted.size > 0 && !this.stopped) this.want([...this.wanted][0] as string);
    });
  }

  private async listen(): Promise<void> {
    const c = new pg.Client({
      connectionString: this.o.url,
      application_name: this.o.applicationName ?? 'visittag-readers-listen',
      connectionTimeoutMillis: 10_000,
    });
    const broken = (err?: unknown) => {
      if (this.listener !== c) return;
      this.listener = null;
      c.removeAllListeners('notification');
      c.end().catch(() => undefined);
      if (this.stopped) return;
      this.o.logger.warn({ err }, 'reader registry LISTEN connection lost; opening it again');
      this.relisten();
    };
    c.on('error', (err) => broken(err));
    c.on('end', () => broken());
    c.on('notification', (m) => {
      if (m.channel !== READERS_CHANNEL || !m.payload) return;
      this.stats.notifications++;
      this.want(m.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${READERS_CHANNEL}`);
    } catch (err) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
      throw err;
    }
    this.listener = c;
  }

  /** Opens the LISTEN connection again (waits doubling up to 10 s), then pulls everything once. */
  private relisten(): void {
    if (this.stopped || this.reconnectTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.stopped) return;
      this.listen()
        .then(async () => {
          this.stats.reconnects++;
          this.backoffMs = this.o.reconnectMs ?? 1_000;
          await this.pull();
        })
        .catch((err: unknown) => {
          if (this.listener === null) {
            this.o.logger.warn({ err }, 'reader registry LISTEN connection not open yet; will retry');
            this.relisten();
          } else {
            this.o.logger.warn(
              { err },
              'reader registry pull after reconnect failed; the next pull takes it',
            );
          }
        });
    }, wait);
    this.reconnectTimer.unref();
  }
}
