import pg from 'pg';

/** One numbered PostgreSQL schema step (the list: ./migrations.ts, which re-exports this type). */
export interface PgMigration {
  id: string;
  sql: string;
}

/**
 * PostgreSQL plumbing shared by the adapters: a pool whose BIGINT columns read back as JS numbers
 * (epoch ms, sequence numbers and serial ids stay far below 2^53), one transaction helper, the
 * advisory-lock keys and the migration runner.
 */
export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;

const INT8_OID = 20;
const NUMERIC_OID = 1700;

const parseInt8 = (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`BIGINT ${v} is beyond 2^53`);
  return n;
};

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown => {
    if (oid === INT8_OID) return parseInt8;
    if (oid === NUMERIC_OID) return Number;
    return pg.types.getTypeParser(oid, format ?? 'text') as unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PgPoolOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Pool size per instance (default 10). */
  max?: number;
  /** Name shown in pg_stat_activity (default visittag-gateway). */
  applicationName?: string;
}

export function openPgPool(o: PgPoolOptions): PgPool {
  const pool = new pg.Pool({
    connectionString: o.url,
    max: o.max ?? 10,
    application_name: o.applicationName ?? 'visittag-gateway',
    types,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection (server restart) emits 'error' on the pool: the pool drops
  // that client and makes a new one on the next query; without a listener Node would crash.
  pool.on('error', () => undefined);
  return pool;
}

/** Advisory-lock namespaces (the two-int form: namespace, key). */
export const LOCK_NS = {
  migrations: 74_701,
  reader: 74_702,
  outbox: 74_703,
  card: 74_704,
} as const;

/**
 * Runs `fn` in one transaction on one pooled connection: COMMIT on success, ROLLBACK on a throw.
 * A connection that failed mid-transaction is destroyed, not returned to the pool.
 */
export async function inTransaction<T>(pool: PgPool, fn: (c: PgClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client whose connection dies (server restart) emits 'error' on itself, not on the
  // pool: without a listener that is an uncaught exception. The query in flight rejects anyway.
  const onError = (err: Error): void => {
    broken = err;
  };
  c.on('error', onError);
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    try {
      await c.query('ROLLBACK');
    } catch (e) {
      broken = e as Error;
    }
    throw err;
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}

/** Takes the per-reader transaction lock (released at COMMIT/ROLLBACK), readers in sorted order. */
export async function lockReaders(c: PgClient, readerIds: Iterable<string>): Promise<void> {
  const ids = [...new Set(readerIds)].sort();
  if (ids.length === 0) return;
  // one round trip; the sub-select fixes the order (every instance locks in the same order: no deadlock)
  await c.query(
    `SELECT pg_advisory_xact_lock(${LOCK_NS.reader}, hashtext(r)) FROM (SELECT r FROM unnest($1::text[]) AS r ORDER BY r) s`,
    [ids],
  );
}

/**
 * Applies pending migrations in order, each in its own transaction, under a transaction-level
 * advisory lock: instances starting at the same time apply each step exactly once. Returns the ids
 * applied now.
 */
export async function migrate(
  pool: PgPool,
  migrations: readonly PgMigration[],
  nowMs: () => number = Date.now,
): Promise<string[]> {
  const seen = new Set<string>();
  for (const m of migrations) {
    if (seen.has(m.id)) throw new Error(`duplicate migration id ${m.id}`);
    seen.add(m.id);
  }
  const applied: string[] = [];
  for (const m of migrations) {
    const done = await inTransaction(pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_NS.migrations]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)',
      );
      const r = await c.query('SELECT 1 FROM schema_migrations WHERE id = $1', [m.id]);
      if (r.rowCount) return false;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (id, applied_at_ms) VALUES ($1, $2)', [m.id, nowMs()]);
      return true;
    });
    if (done) applied.push(m.id);
  }
  return applied;
}
