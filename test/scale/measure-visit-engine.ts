/**
 * Ad-hoc measurement (not a test): the visits engine over N stored taps of R readers (start/stop pairs,
 * known cards), one drain: on SQLite (the pipeline's synchronous engine) and on PostgreSQL
 * (visits/tx-turns.ts over a throw-away cluster, one turn per chunk over all readers). Each engine
 * runs `rounds` times on fresh databases, alternating; medians are printed.
 *   npx tsx test/scale/measure-visit-engine.ts [readers] [tapsPerReader] [rounds] [--sqlite-only]
 */
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import { TxVisitTurns } from '../../gateway/src/visits/tx-turns.js';
import type { TapEvent } from '../../protocol/index.js';
import {
  addReader,
  card,
  createEnv,
  FakeClock,
  ingestBatch,
  silentLogger,
  T0,
  tap,
} from '../gateway-visits/helpers.js';
import { startPgCluster } from '../support/pg-cluster.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const sqliteOnly = process.argv.includes('--sqlite-only');
const readers = Number(args[0] ?? 10);
const perReader = Number(args[1] ?? 50);
const rounds = Number(args[2] ?? 5);

const taps = (r: number): TapEvent[] => {
  const out: TapEvent[] = [];
  for (let s = 1; s <= perReader; s++) {
    const v = `v${r}-${Math.ceil(s / 2)}`;
    out.push(
      tap(`r${r}`, s, {
        card: card(r + 1),
        decision: s % 2 ? 'start' : 'stop',
        visitId: v,
        time: { wallMs: T0 + s * 60_000 },
      }),
    );
  }
  return out;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const sqliteRun = (): number => {
  const env = createEnv({ fakeClock: new FakeClock(T0 + perReader * 60_000), verifyVisitIndex: false });
  for (let r = 0; r < readers; r++) {
    addReader(env.db, `r${r}`, `home-${r}`);
    env.pipeline.registry.addCard({ cardRef: card(r + 1), staffRef: `s${r}` });
    ingestBatch(env.db, { readerId: `r${r}`, events: taps(r) });
  }
  const t = performance.now();
  const n = env.pipeline.processNow();
  const ms = performance.now() - t;
  if (n !== readers * perReader) throw new Error(`sqlite processed ${n}`);
  void env.close();
  return ms;
};

const pgc = sqliteOnly ? null : await startPgCluster();
const pgRun = async (): Promise<{ ms: number; turns: number }> => {
  if (!pgc) return { ms: NaN, turns: 0 };
  const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
  await migrate(pool, postgresMigrations);
  for (let r = 0; r < readers; r++) {
    await pool.query(
      `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES ($1, 'x', $2, NULL, NULL, 0)`,
      [`r${r}`, `home-${r}`],
    );
    await pool.query(
      `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, $2, NULL, 0)`,
      [card(r + 1), `s${r}`],
    );
    const evs = taps(r);
    await pool.query(
      `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json)
         SELECT $1, s, j, $2, '{}' FROM unnest($3::bigint[], $4::text[]) AS q(s, j)`,
      [`r${r}`, T0, evs.map((e) => e.seq), evs.map((e) => JSON.stringify(e))],
    );
    await pool.query('INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)', [
      `r${r}`,
      perReader,
    ]);
  }
  const engine = new TxVisitTurns({
    store: new PgVisitStore(pool),
    clock: new FakeClock(T0 + perReader * 60_000),
    logger: silentLogger(),
  });
  const ids = Array.from({ length: readers }, (_, r) => `r${r}`);
  const t = performance.now();
  let n = 0;
  let turns = 0;
  for (let i = 0; i < 1000; i++) {
    const d = await engine.process(ids);
    if (d === 0) break;
    n += d;
    turns++;
  }
  const ms = performance.now() - t;
  if (n !== readers * perReader) throw new Error(`postgres processed ${n}`);
  await pool.end();
  return { ms, turns };
};

const sq: number[] = [];
const pg: number[] = [];
let turns = 0;
for (let i = 0; i < rounds; i++) {
  sq.push(sqliteRun());
  const p = await pgRun();
  pg.push(p.ms);
  turns = p.turns;
}
const events = readers * perReader;
console.log(
  `${readers} readers x ${perReader} taps = ${events} events, median of ${rounds}: sqlite ${median(sq).toFixed(1)} ms` +
    (sqliteOnly
      ? ''
      : `, postgres ${median(pg).toFixed(1)} ms in ${turns} turn(s) (${(median(pg) / median(sq)).toFixed(1)}x)`),
);
console.log(`sqlite runs: ${sq.map((x) => x.toFixed(1)).join(' ')}`);
if (!sqliteOnly) console.log(`postgres runs: ${pg.map((x) => x.toFixed(1)).join(' ')}`);
await pgc?.destroy();
