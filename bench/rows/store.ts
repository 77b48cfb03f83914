/**
 * Store-level rows (issue 14): the ingest store's group commit on PostgreSQL vs on SQLite, and 3
 * concurrent PostgreSQL writers vs 1, the same workload in the same run. Each commit is what one
 * gateway group commit writes: `groupItems` batches of `ingest.batchSize` taps from distinct readers,
 * one transaction, durable (SQLite WAL synchronous=FULL; PostgreSQL fsync and synchronous_commit on).
 * No MQTT, no validation, no visits engine: these rows compare the engines under the same port.
 */
import { join } from 'node:path';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { createPgIngestStore } from '../../gateway/src/store/postgres/ingest-store.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import type { IngestItem } from '../../gateway/src/store/ingest-store.js';
import type { TapEvent } from '../../protocol/index.js';
import { startPgCluster } from '../../test/support/pg-cluster.js';
import type { RowContext } from '../lib/ctx.js';
import type { Row } from '../lib/types.js';

const GROUP_ITEMS = 10;
const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

const card = (n: number): string => `c1_${n.toString(16).padStart(32, '0')}`;

/** Yields group commits over `readers` reader ids (prefix), each reader's sequence gap-free. */
function* workload(prefix: string, readers: number, batchSize: number): Generator<IngestItem[]> {
  const next = new Array<number>(readers).fill(1);
  let r = 0;
  for (;;) {
    const items: IngestItem[] = [];
    for (let i = 0; i < GROUP_ITEMS; i++, r = (r + 1) % readers) {
      const readerId = `${prefix}-${r}`;
      const from = next[r] ?? 1;
      next[r] = from + batchSize;
      const events: TapEvent[] = [];
      for (let s = from; s < from + batchSize; s++) {
        events.push({
          readerId,
          seq: s,
          eventId: `${readerId}-e${s}`,
          card: card((s % 7) + 1),
          decision: s % 2 ? 'start' : 'stop',
          visitId: `${readerId}-v${Math.ceil(s / 2)}`,
          time: { wallMs: T0 + s * 1000, bootId: 'boot-1', monoMs: s * 1000, synced: true },
        });
      }
      const sentAt = { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true };
      items.push({ kind: 'events', readerId, events, sentAt, receivedAtMs: T0 });
    }
    yield items;
  }
}

async function timed(
  durationMs: number,
  commit: (items: IngestItem[]) => Promise<unknown>,
  gen: Generator<IngestItem[]>,
) {
  let taps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < durationMs) {
    const items = gen.next().value as IngestItem[];
    await commit(items);
    for (const i of items) if (i.kind === 'events') taps += i.events.length;
  }
  return { taps, s: (performance.now() - t0) / 1000 };
}

export async function storeRows(ctx: RowContext): Promise<Row[]> {
  const p = ctx.profile.ingest;
  const pgc = await startPgCluster({ prefix: 'visittag-bench-pg-' });
  ctx.onCleanup(() => pgc.destroy());
  const pools: PgPool[] = [];
  ctx.onCleanup(async () => {
    await Promise.all(pools.map((x) => x.end()));
  });
  const url = await pgc.createDatabase();
  const pool = (): PgPool => {
    const x = openPgPool({ url, max: 2 });
    pools.push(x);
    return x;
  };
  await migrate(pool(), postgresMigrations);
  const db = openDatabase(join(ctx.tempDir('store-sqlite'), 'gateway.db'), sqliteMigrations);
  ctx.onCleanup(() => {
    db.close();
    return Promise.resolve();
  });
  const sqlite = createSqliteIngestStore(db);
  const pg1 = createPgIngestStore(pool());

  ctx.say('sqlite ingest store');
  const lite = await timed(
    p.durationMs,
    (i) => Promise.resolve(sqlite.commit(i)),
    workload('lite', p.readers, p.batchSize),
  );
  ctx.say('postgres ingest store, 1 writer');
  const one = await timed(p.durationMs, (i) => pg1.commit(i), workload('pg1', p.readers, p.batchSize));
  ctx.say('postgres ingest store, 3 writers');
  const three = await Promise.all(
    [0, 1, 2].map((w) => {
      const s = createPgIngestStore(pool());
      return timed(p.durationMs, (i) => s.commit(i), workload(`pg3w${w}`, p.readers, p.batchSize));
    }),
  );
  const liteRate = lite.taps / lite.s;
  const oneRate = one.taps / one.s;
  const threeRate = three.reduce((a, x) => a + x.taps / x.s, 0);
  const shape = `${p.readers} readers, commits of ${GROUP_ITEMS} batches × ${p.batchSize} taps, ${p.durationMs / 1000} s each`;
  return [
    ctx.done({
      id: 'ingest-store-pg-vs-sqlite',
      figure: 'ingest store group commit: PostgreSQL vs SQLite (one writer each, durable)',
      generator: 'store port (in-process)',
      value: Math.round(oneRate),
      unit: 'taps/s',
      baseline: Math.round(liteRate),
      baselineLabel: 'SQLite',
      ratio: oneRate / liteRate,
      target: '— (context)',
      met: null,
      note: `${shape}; PostgreSQL on the same box over loopback TCP, fsync on`,
      details: { sqlite: lite, postgres: one },
    }),
    ctx.done({
      id: 'ingest-store-pg-3-vs-1',
      figure: 'ingest store on PostgreSQL: 3 concurrent writers (3 pools, own readers) vs 1',
      generator: 'store port (in-process)',
      value: Math.round(threeRate),
      unit: 'taps/s',
      baseline: Math.round(oneRate),
      baselineLabel: 'PostgreSQL, 1 writer',
      ratio: threeRate / oneRate,
      target: '— (context)',
      met: null,
      note:
        `${shape}; the 3 writers share one Node process and the PostgreSQL server shares the same 2 cores: ` +
        'this shows that commits of different readers proceed side by side (group commit in the WAL), not what 3 machines would do',
      details: { writers: three },
    }),
  ];
}
