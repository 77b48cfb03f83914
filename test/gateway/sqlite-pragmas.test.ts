/**
 * The gateway's SQLite connection settings (store/sqlite/db.ts): WAL with synchronous=FULL (a commit
 * backs an ack) and temporary storage in memory (issue 15: a statement that fires triggers, like the
 * visits upsert with the report cells' day marks, otherwise pays for a statement journal in a temp file,
 * about 4x the write itself; measured in bench/README.md). A statement with a trigger that rolls back
 * alone inside a transaction still leaves the transaction's other writes, as with a file journal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';

const open: Array<{ db: Db; dir: string }> = [];
afterEach(() => {
  for (const { db, dir } of open.splice(0)) {
    db.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

function fresh(): Db {
  const dir = mkdtempSync(join(tmpdir(), 'vt-pragmas-'));
  const db = openDatabase(join(dir, 'gateway.db'), []);
  open.push({ db, dir });
  return db;
}

/** A second connection to the same file (another writer, as the visits engine's thread is). */
function other(db: Db): Database.Database {
  const o = new Database(db.name);
  o.pragma('busy_timeout = 0');
  open.push({ db: o, dir: '' });
  return o;
}

describe('openDatabase', () => {
  it('keeps WAL and synchronous=FULL, and temporary storage in memory', () => {
    const db = fresh();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('temp_store', { simple: true })).toBe(2); // MEMORY
  });

  it('transactions begin IMMEDIATE: another writer cannot break a transaction that read first', () => {
    const db = fresh();
    db.exec('CREATE TABLE t (v INTEGER NOT NULL)');
    const o = other(db);
    const readThenWrite = db.transaction(() => {
      const n = db.prepare('SELECT count(*) AS n FROM t').get() as { n: number };
      // the other connection (the engine's thread) tries to write in between: the lock is ours from BEGIN
      expect(() => o.prepare('INSERT INTO t (v) VALUES (1)').run()).toThrow(/locked|busy/i);
      db.prepare('INSERT INTO t (v) VALUES (?)').run(n.n + 100);
    });
    readThenWrite();
    expect(db.prepare('SELECT v FROM t').pluck().all()).toEqual([100]);
    // nested calls stay savepoints; `.deferred` is still there
    db.transaction(() => db.transaction(() => db.prepare('INSERT INTO t (v) VALUES (2)').run())())();
    db.transaction(() => db.prepare('INSERT INTO t (v) VALUES (3)').run()).deferred();
    expect(db.prepare('SELECT v FROM t ORDER BY v').pluck().all()).toEqual([2, 3, 100]);
  });

  it('a failing statement with a trigger rolls back alone inside a transaction', () => {
    const db = fresh();
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
      CREATE TABLE marks (v INTEGER NOT NULL CHECK (v < 100));
      CREATE TRIGGER t_mark AFTER INSERT ON t BEGIN INSERT INTO marks VALUES (NEW.v); END;`);
    const ins = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    db.transaction(() => {
      ins.run(1, 1);
      expect(() => ins.run(2, 500)).toThrow(/CHECK/); // the trigger's insert fails: the statement undone
      ins.run(3, 3);
    })();
    expect(db.prepare('SELECT id FROM t ORDER BY id').pluck().all()).toEqual([1, 3]);
    expect(db.prepare('SELECT v FROM marks ORDER BY v').pluck().all()).toEqual([1, 3]);
  });
});
