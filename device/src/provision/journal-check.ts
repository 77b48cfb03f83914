import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export interface JournalIdentity {
  path: string;
  /** Events not yet acknowledged by the gateway. */
  unacked: number;
  /** The reader id the journalled events carry (first event), if any. */
  eventsReaderId: string | null;
  lastSeq: number;
}

/** Looks at an existing journal read-only; null when there is none. */
export function inspectJournal(dataDir: string): JournalIdentity | null {
  const path = join(dataDir, 'journal.db');
  if (!existsSync(path)) return null;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const unacked = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM events').get()?.n ?? 0;
    const first = db
      .prepare<[], { event_json: string }>('SELECT event_json FROM events ORDER BY seq LIMIT 1')
      .get();
    let eventsReaderId: string | null = null;
    if (first) {
      try {
        eventsReaderId = (JSON.parse(first.event_json) as { readerId?: string }).readerId ?? null;
      } catch {
        eventsReaderId = null;
      }
    }
    const last = db
      .prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?')
      .get('last_seq')?.value;
    return { path, unacked, eventsReaderId, lastSeq: Number(last ?? 0) };
  } finally {
    db.close();
  }
}

/**
 * Moves a journal aside (never deletes it): `journal.db` → `journal.<oldId>.<stamp>.db` with its WAL
 * files, so a new identity starts at seq 1 and the old events stay recoverable.
 */
export function archiveJournal(dataDir: string, oldId: string, stamp: string): string {
  const base = join(dataDir, 'journal.db');
  const target = join(dataDir, `journal.${oldId}.${stamp}.db`);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(base + suffix)) renameSync(base + suffix, target + suffix);
  }
  renameSync(base, target);
  return target;
}
