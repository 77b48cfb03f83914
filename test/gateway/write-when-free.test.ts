/**
 * Writes of the gateway's own connection that wait for SQLite's write lock off the event loop
 * (store/sqlite/write-when-free.ts). With the writer thread, another connection holds the lock for each ingest
 * commit and visits turn; a transaction that waited in SQLite's busy handler would stop the gateway's event loop
 * (MQTT, acks, HTTP) for as long. Here a second connection in this same thread holds the lock: a write that blocked
 * could never see it released (the release needs the event loop), so each test fails on a blocking write.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { writeWhenFree } from '../../gateway/src/store/sqlite/write-when-free.js';

const open: Array<{ db: Database.Database; dir: string }> = [];
afterEach(() => {
  for (const { db, dir } of open.splice(0)) {
    if (db.open) db.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

function pair(): { db: Db; holder: Database.Database } {
  const dir = mkdtempSync(join(tmpdir(), 'vt-wwf-'));
  const db = openDatabase(join(dir, 'gateway.db'), [
    { id: 't-001', up: (d) => d.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)') },
  ]);
  open.push({ db, dir });
  // the other writer (as the writer thread's connection is); it never waits itself
  const holder = new Database(db.name);
  holder.pragma('busy_timeout = 0');
  open.push({ db: holder, dir: '' });
  return { db, holder };
}

const rows = (db: Database.Database) => db.prepare('SELECT v FROM t ORDER BY id').pluck().all();

describe('writeWhenFree', () => {
  it('writes at once when the lock is free, before the promise is awaited', async () => {
    const { db } = pair();
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    const p = writeWhenFree(db, () => db.prepare('INSERT INTO t (v) VALUES (?)').run('a').changes);
    expect(rows(db)).toEqual(['a']);
    expect(await p).toBe(1);
  });

  it('waits for a lock held by another connection while the event loop goes on, then writes', async () => {
    const { db, holder } = pair();
    // a write that waited in SQLite's busy handler would hold this thread for a minute: past the test's timeout
    db.pragma('busy_timeout = 60000');
    holder.exec('BEGIN IMMEDIATE');
    holder.prepare('INSERT INTO t (v) VALUES (?)').run('held');
    let done = false;
    const write = writeWhenFree(db, () => db.prepare('INSERT INTO t (v) VALUES (?)').run('waited')).then(
      () => (done = true),
    );
    // the other connection commits later, on the event loop that a blocking wait would have stopped
    await new Promise((r) => setTimeout(r, 40));
    expect(rows(db)).toEqual([]);
    expect(done).toBe(false); // still waiting, and this test's code runs meanwhile
    holder.exec('COMMIT');
    await write;
    expect(rows(db)).toEqual(['held', 'waited']);
    // the connection's own busy timeout is back for every other statement
    expect(db.pragma('busy_timeout', { simple: true })).toBe(60000);
  });

  it('gives up with SQLITE_BUSY after its wait, having written nothing', async () => {
    const { db, holder } = pair();
    holder.exec('BEGIN IMMEDIATE');
    db.pragma('busy_timeout = 20'); // the last attempt waits in SQLite: keep it short here
    const write = writeWhenFree(db, () => db.prepare('INSERT INTO t (v) VALUES (?)').run('never'), {
      waitMs: 30,
    });
    await expect(write).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    holder.exec('ROLLBACK');
    expect(rows(db)).toEqual([]);
  });

  it('rolls back and reports an error of its own work, without retrying it', async () => {
    const { db } = pair();
    let runs = 0;
    const write = writeWhenFree(db, () => {
      runs++;
      db.prepare('INSERT INTO t (v) VALUES (?)').run('half');
      throw new Error('bad row');
    });
    await expect(write).rejects.toThrow('bad row');
    expect(runs).toBe(1);
    expect(rows(db)).toEqual([]);
  });

  it('inside an open transaction runs as a savepoint of it', async () => {
    const { db } = pair();
    let inner: Promise<unknown> | undefined;
    db.transaction(() => {
      inner = writeWhenFree(db, () => db.prepare('INSERT INTO t (v) VALUES (?)').run('nested'));
    })();
    await inner;
    expect(rows(db)).toEqual(['nested']);
  });
});
