import { copyFileSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';

/** What a backup or a restore did. */
export interface BackupInfo {
  file: string;
  bytes: number;
  /** Schema steps recorded in the copy (the restore refuses a copy from a newer gateway). */
  migrations: number;
  /** Events held per reader in the copy (what the readers will be reconciled against). */
  readers: number;
  events: number;
}

const describe = (file: string): BackupInfo => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const ok = db.pragma('integrity_check', { simple: true }) as string;
    if (ok !== 'ok') throw new Error(`${file} fails SQLite's integrity check (${ok}): not a usable backup`);
    const has = (t: string) =>
      db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(t) === 1;
    if (!has('schema_migrations') || !has('events') || !has('reader_seq')) {
      throw new Error(
        `${file} is not a visittag gateway database (no schema_migrations/events/reader_seq table)`,
      );
    }
    return {
      file,
      bytes: statSync(file).size,
      migrations: db.prepare('SELECT count(*) FROM schema_migrations').pluck().get() as number,
      readers: db.prepare('SELECT count(*) FROM reader_seq').pluck().get() as number,
      events: db.prepare('SELECT count(*) FROM events').pluck().get() as number,
    };
  } finally {
    db.close();
  }
};

/**
 * Online, consistent backup of the gateway's SQLite file while the gateway runs: SQLite's backup
 * API over a connection of our own (WAL: the gateway keeps writing; the copy is one consistent
 * snapshot). Written to `<dest>.partial` and renamed, so a crash never leaves a half copy under `dest`.
 */
export async function backupSqlite(dbFile: string, dest: string): Promise<BackupInfo> {
  if (!existsSync(dbFile)) throw new Error(`no gateway database at ${dbFile}: check dataDir in the config`);
  if (existsSync(dest)) throw new Error(`${dest} exists: choose a new file name (a backup never overwrites)`);
  const partial = `${dest}.partial`;
  rmSync(partial, { force: true });
  const db = new Database(dbFile, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    await db.backup(partial);
  } finally {
    db.close();
  }
  renameSync(partial, dest);
  return describe(dest);
}

/**
 * Restores `backup` as the gateway's database (the gateway must be stopped: the caller checks). The
 * current file (and its WAL) is kept beside it as `gateway.db.before-restore-<ms>`; nothing is deleted.
 */
export function restoreSqlite(
  backup: string,
  dbFile: string,
  nowMs: number,
): BackupInfo & { keptAs: string | null } {
  const info = describe(backup);
  const idsOf = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare('SELECT id FROM schema_migrations').pluck().all() as string[];
    } finally {
      db.close();
    }
  };
  const known = existsSync(dbFile) ? new Set(idsOf(dbFile)) : null;
  const unknown = known ? idsOf(backup).filter((id) => !known.has(id)) : [];
  if (unknown.length) {
    throw new Error(
      `the backup was made by a newer gateway (schema steps ${unknown.slice(0, 3).join(', ')} unknown here): restore it with that version`,
    );
  }
  let keptAs: string | null = null;
  if (existsSync(dbFile)) {
    keptAs = `${dbFile}.before-restore-${nowMs}`;
    // fold the WAL into the file first, so the kept copy is complete on its own
    const cur = new Database(dbFile);
    cur.pragma('wal_checkpoint(TRUNCATE)');
    cur.close();
    renameSync(dbFile, keptAs);
  }
  for (const ext of ['-wal', '-shm']) rmSync(`${dbFile}${ext}`, { force: true });
  copyFileSync(backup, `${dbFile}.restoring`);
  renameSync(`${dbFile}.restoring`, dbFile);
  return { ...info, file: dbFile, keptAs };
}
