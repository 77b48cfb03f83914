import Database from 'better-sqlite3';

export type Db = Database.Database;

/** One numbered schema step. Ids are unique across modules, e.g. 'ingest-001', 'visits-001'. */
export interface Migration {
  id: string;
  up: (db: Db) => void;
}

/**
 * Opens the gateway's SQLite file: WAL, synchronous=FULL (a commit backs an ack or a delivery
 * record, so it must survive power loss: CONTRIBUTING.md, "SQLite that survives power cuts"), foreign keys on, a busy
 * timeout, temporary storage in memory, then applies pending migrations in the given order, each in its own transaction.
 */
export function openDatabase(path: string, migrations: readonly Migration[]): Db {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // Statement journals (and temp b-trees) in memory: a statement that can fire triggers (the report cells'
  // day marks on visits, care and audit tables) opens a statement journal, and with temp files that cost
  // ~4x the write itself (a visits upsert 354 -> 145 us in bench/README "temp_store"). Durability is the
  // WAL's, not the statement journal's, so this changes no commit; the report worker has its own connection.
  db.pragma('temp_store = MEMORY');
  immediateByDefault(db);
  applyMigrations(db, migrations);
  return db;
}

/**
 * Every `db.transaction(fn)` of this connection begins IMMEDIATE (takes the write lock at BEGIN, waiting up to
 * the busy timeout) instead of DEFERRED. The file has a second writer (the visits engine's thread,
 * visits/engine-thread.ts; the report worker's cells): a deferred transaction that read first and writes
 * later fails at once with SQLITE_BUSY when the other connection holds or has just used the write lock
 * (SQLite cannot wait there without breaking the transaction's snapshot). Nested calls stay savepoints, and
 * `.deferred` / `.exclusive` stay available.
 */
function immediateByDefault(db: Db): void {
  const make = db.transaction.bind(db);
  type Run = (...args: unknown[]) => unknown;
  const transaction = ((fn: (...args: never[]) => unknown) => {
    const t = make(fn) as unknown as Record<'deferred' | 'immediate' | 'exclusive', Run>;
    const { deferred, immediate, exclusive } = t;
    const call = (...args: unknown[]) => immediate(...args);
    return Object.assign(call, { default: call, deferred, immediate, exclusive });
  }) as unknown as Db['transaction'];
  Object.defineProperty(db, 'transaction', { value: transaction, configurable: true, writable: true });
}

export function applyMigrations(db: Db, migrations: readonly Migration[]): string[] {
  const seen = new Set<string>();
  for (const m of migrations) {
    if (seen.has(m.id)) throw new Error(`duplicate migration id ${m.id}`);
    seen.add(m.id);
  }
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at_ms INTEGER NOT NULL)',
  );
  const done = new Set(
    (db.prepare('SELECT id FROM schema_migrations').all() as { id: string }[]).map((r) => r.id),
  );
  const applied: string[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (id, applied_at_ms) VALUES (?, ?)');
  for (const m of migrations) {
    if (done.has(m.id)) continue;
    db.transaction(() => {
      m.up(db);
      record.run(m.id, Date.now());
    })();
    applied.push(m.id);
  }
  return applied;
}
