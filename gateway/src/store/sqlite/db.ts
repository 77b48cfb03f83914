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
  applyMigrations(db, migrations);
  return db;
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
