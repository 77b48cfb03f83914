/**
 * Ad-hoc measurement (not a test): one visits turn over N stored events of one reader, each event
 * asking one anomaly key and one card, on SQLite and on PostgreSQL (throw-away cluster). Shows the cost
 * of the PostgreSQL turn: its runs (one per link of a chain of dependent reads) and fetch statements
 * (one per kind of read per run), which no longer grow with the chunk. Run: npx tsx test/scale/measure-visit-turn.ts
 */
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteVisitStore } from '../../gateway/src/store/sqlite/visits.js';
import type { VisitTx } from '../../gateway/src/store/ports.js';
import { startPgCluster } from '../../test/support/pg-cluster.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const T = 1_700_000_000_000;
const work = (n: number) => (tx: VisitTx) => {
  const c = tx.cursor('r1');
  const rows = tx.events('r1', c, tx.contiguousUpto('r1'), n);
  for (const r of rows) {
    tx.insertAnomaly({
      key: `k:${r.seq}`,
      kind: 'unknown-card',
      readerId: 'r1',
      visitId: null,
      cardRef: null,
      staffRef: null,
      clientRef: null,
      atMs: T,
      seq: r.seq,
      detail: 'x',
      nowMs: T,
    });
    tx.cardStatusAt(`c1_${String(r.seq).padStart(32, '0')}`, T);
  }
  if (rows.length) tx.setCursor('r1', rows[rows.length - 1]?.seq ?? c);
  return rows.length;
};
const seed = async (q: (sql: string, p: unknown[]) => unknown, n: number) => {
  for (let s = 1; s <= n; s++)
    await q(
      'INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
      ['r1', s, '{}', T, '{}'],
    );
  await q('INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES (?, ?, ?)', ['r1', n, n]);
};
const pgc = await startPgCluster();
for (const n of [50, 200]) {
  const dir = mkdtempSync(join(tmpdir(), 'b-'));
  const db = openDatabase(join(dir, 'g.db'), sqliteMigrations);
  await seed((sql, p) => db.prepare(sql).run(...(p as never[])), n);
  const s = new SqliteVisitStore(db);
  const t0 = performance.now();
  s.runTurn(['r1'], work(n));
  const sq = performance.now() - t0;
  const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
  await migrate(pool, postgresMigrations);
  let i = 0;
  await seed((sql, p) => {
    i = 0;
    return pool.query(
      sql.replace(/\?/g, () => `$${++i}`),
      p,
    );
  }, n);
  const pg = new PgVisitStore(pool);
  // the same turn twice on PostgreSQL: without the hint (reads found by the runs), then rolled back
  // and again with the hint (the per-reader reads fetched before the first run)
  const turn = async (hint?: { events: number }) => {
    await pool.query('DELETE FROM anomalies');
    await pool.query('DELETE FROM visit_cursor');
    const t = performance.now();
    await pg.runTurn(['r1'], work(n), hint);
    return { ms: performance.now() - t, ...pg.lastTurn };
  };
  const plain = await turn();
  const hinted = await turn({ events: n });
  console.log(
    `events ${n}: sqlite ${sq.toFixed(1)} ms; postgres ${plain.ms.toFixed(1)} ms (${plain.runs} runs, ${plain.statements} fetch statements), ` +
      `with hint ${hinted.ms.toFixed(1)} ms (${hinted.runs} runs, ${hinted.statements} fetch statements)`,
  );
  await pool.end();
}
await pgc.destroy();
