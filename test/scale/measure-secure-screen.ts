/**
 * What screening secure cards costs per batch on each engine (issue 14): the ingest screen
 * (`createSecureCards(...).screen`) over the same batches, SQLite (a real file, synchronous) and, with
 * MEASURE_PG=1, PostgreSQL (a throw-away cluster, one transaction per batch under the per-card locks).
 * Two kinds of batch: UID-only taps (the common fleet: a look-up and a verdict per tap) and SUN taps
 * (NTAG 424 DNA messages from virtual cards: AES per tap). Prints a JSON line per engine and kind.
 *
 *   npx tsx test/scale/measure-secure-screen.ts [batches=20] [perBatch=50]
 *   MEASURE_PG=1 npx tsx test/scale/measure-secure-screen.ts
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createSecureCards } from '../../gateway/src/secure-cards/index.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { createSqliteSecureCardStore } from '../../gateway/src/store/sqlite/secure-cards.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { pseudonymiseCard, type CardProof, type TapEvent } from '../../protocol/index.js';
import { MASTER, personalisedCard, tapProof } from '../secure-cards/helpers.js';

const FLEET = 'measure-fleet-key-0123456789';
const BATCHES = Number(process.argv[2] ?? 20);
const PER = Number(process.argv[3] ?? 50);
const T0 = Date.UTC(2026, 11, 7, 8);

const ev = (r: string, seq: number, uid: string, proof?: CardProof): TapEvent => ({
  readerId: r,
  seq,
  eventId: `${r}-e${seq}`,
  card: pseudonymiseCard(uid, FLEET),
  decision: 'start',
  visitId: `${r}-v${seq}`,
  time: { wallMs: T0 + seq, bootId: 'b', monoMs: seq, synced: true },
  ...(proof ? { cardProof: proof } : {}),
});

async function batches(): Promise<{ uidOnly: TapEvent[][]; sun: TapEvent[][] }> {
  const uidOnly: TapEvent[][] = [];
  const sun: TapEvent[][] = [];
  const cards = await Promise.all(
    Array.from({ length: 10 }, (_, i) => personalisedCard(`04AA${i.toString(16).padStart(2, '0')}00112233`)),
  );
  let seq = 0;
  for (let b = 0; b < BATCHES; b++) {
    uidOnly.push(
      Array.from({ length: PER }, (_, i) =>
        ev('r-uid', ++seq, `0455${(b * PER + i).toString(16).padStart(10, '0')}`),
      ),
    );
  }
  seq = 0;
  for (let b = 0; b < BATCHES; b++) {
    const events: TapEvent[] = [];
    for (let i = 0; i < PER; i++) {
      const k = i % cards.length;
      const card = cards[k]!;
      events.push(ev('r-sun', ++seq, card.uid.toString('hex').toUpperCase(), await tapProof(card)));
    }
    sun.push(events);
  }
  return { uidOnly, sun };
}

type Screen = (r: string, e: readonly TapEvent[], at: number) => unknown;

async function run(engine: string, screen: Screen, kind: string, list: TapEvent[][]): Promise<void> {
  const ms: number[] = [];
  for (const events of list) {
    const t0 = performance.now();
    await screen(events[0]!.readerId, events, T0);
    ms.push(performance.now() - t0);
  }
  const total = ms.reduce((a, b) => a + b, 0);
  const sorted = [...ms].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      engine,
      kind,
      batches: list.length,
      perBatch: PER,
      usPerTap: Math.round((total * 1000) / (list.length * PER)),
      medianBatchMs: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(2)),
    }),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'vt-measure-secure-'));
try {
  const keyFile = join(dir, 'k.json');
  writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }), { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  const data = await batches();
  const common = {
    settings: { keyFile, policy: { uidOnly: 'flag' as const, clone: 'refuse' as const, clients: {} } },
    fleetKey: FLEET,
    logger: pino({ level: 'silent' }),
    clientOf: () => null,
  };
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  const sq = createSecureCards({
    ...common,
    metrics: new MetricsRegistry(),
    store: createSqliteSecureCardStore(db),
  });
  await run('sqlite', sq.screen, 'uid-only', data.uidOnly);
  await run('sqlite', sq.screen, 'sun', data.sun);
  db.close();
  if (process.env.MEASURE_PG === '1') {
    const { startPgCluster } = await import('../support/pg-cluster.js');
    const { migrate, openPgPool } = await import('../../gateway/src/store/postgres/db.js');
    const { postgresMigrations } = await import('../../gateway/src/store/postgres/migrations.js');
    const { PgSecureCardStore } = await import('../../gateway/src/store/postgres/secure-cards.js');
    const pgc = await startPgCluster();
    const pool = openPgPool({ url: await pgc.createDatabase(), max: 4 });
    try {
      await migrate(pool, postgresMigrations);
      const pg = createSecureCards({
        ...common,
        metrics: new MetricsRegistry(),
        store: new PgSecureCardStore(pool),
      });
      await run('postgres', pg.screen, 'uid-only', data.uidOnly);
      await run('postgres', pg.screen, 'sun', data.sun);
      // many readers' one-tap batches at once (the morning peak's shape): screens per second on a pool of 10
      const pool10 = openPgPool({ url: await pgc.createDatabase(), max: 10 });
      try {
        await migrate(pool10, postgresMigrations);
        const par = createSecureCards({
          ...common,
          metrics: new MetricsRegistry(),
          store: new PgSecureCardStore(pool10),
        });
        const one = data.uidOnly.flat().map((e, i) => ({ ...e, readerId: `r-${i}`, eventId: `r-${i}-e1` }));
        const t0 = performance.now();
        await Promise.all(one.map((e) => Promise.resolve(par.screen(e.readerId, [e], T0))));
        const sec = (performance.now() - t0) / 1000;
        console.log(
          JSON.stringify({
            engine: 'postgres',
            kind: 'uid-only, one-tap batches of different readers at once (pool 10)',
            batches: one.length,
            screensPerSecond: Math.round(one.length / sec),
          }),
        );
      } finally {
        await pool10.end();
      }
    } finally {
      await pool.end();
      await pgc.destroy();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
