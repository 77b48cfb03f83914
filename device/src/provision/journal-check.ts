import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { JOURNAL_READER_KEY } from '../core/journal.js';

export interface JournalIdentity {
  path: string;
  /** Events not yet acknowledged by the gateway. */
  unacked: number;
  /** The reader id the journalled events carry (first event), if any. */
  eventsReaderId: string | null;
  /** The reader id the journal was opened under (stamped by `run`; absent in journals of older versions). */
  stampedReaderId: string | null;
  lastSeq: number;
}

/**
 * Why `run` must not open this journal as `readerId`, or null when it may. A journal belongs to one
 * reader id: its seqs continue that reader's gap-free sequence. Opened under another id, its unsent
 * taps could never be delivered (the gateway refuses another reader's events) while new taps would
 * still get "visit started"; and even an empty one would start the new id at the old id's next seq,
 * a gap the gateway can never fill.
 */
export function journalIdentityProblem(j: JournalIdentity | null, readerId: string): string | null {
  if (!j) return null;
  const owner = j.stampedReaderId ?? (j.unacked > 0 ? j.eventsReaderId : null);
  if (owner === null || owner === readerId) return null;
  const held =
    j.unacked > 0
      ? `holds ${j.unacked} unsent event(s) of reader "${owner}"`
      : `belongs to reader "${owner}" (its sequence is at ${j.lastSeq})`;
  return [
    `REFUSED: the journal ${j.path} ${held}, but the config is for reader "${readerId}".`,
    'Starting would give positive feedback for taps that could never reach the gateway.',
    `Fix: if this device is still reader "${owner}", put its config back (readerId "${owner}").`,
    'If it really changes identity, run `visittag-device provision --gateway URL --code CODE` with a code',
    `for the new reader (it refuses while events are unsent; --force-new-identity keeps the old journal aside),`,
    'or stop the service and move journal.db (with its -wal and -shm files) out of the data folder.',
    'Nothing was changed.',
  ].join('\n');
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
    const meta = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
    const last = meta.get('last_seq')?.value;
    const stampedReaderId = meta.get(JOURNAL_READER_KEY)?.value ?? null;
    return { path, unacked, eventsReaderId, stampedReaderId, lastSeq: Number(last ?? 0) };
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
