import { afterAll } from 'vitest';
import { inTransaction, migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgCardStore } from '../../gateway/src/store/postgres/cards.js';
import { PgEnrollmentStore } from '../../gateway/src/store/postgres/enrollment.js';
import { PgFleetStore } from '../../gateway/src/store/postgres/fleet.js';
import { createPgIngestStore } from '../../gateway/src/store/postgres/ingest-store.js';
import { enqueueOn, PgOutbox } from '../../gateway/src/store/postgres/outbox.js';
import { PgReaderDirectory } from '../../gateway/src/store/postgres/reader-directory.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { PgCareScopeReader, PgCareStore } from '../../gateway/src/store/postgres/care.js';
import { describeCardLifecycleStoreContract } from './store-card-lifecycle.contract.js';
import { describeCardStoreContract } from './store-cards.contract.js';
import { describeCareStoreContract, putVisitRow } from './store-care.contract.js';
import { describeEnrollmentStoreContract } from './store-enrollment.contract.js';
import { describeFleetStoreContract } from './store-fleet.contract.js';
import { describeOutboxStoreContract } from './store-outbox.contract.js';
import { describeReaderRowsContract } from './store-readers.contract.js';
import { describeVisitStoreContract } from './store-visits.contract.js';

// Every store port's contract over the PostgreSQL adapter: the same suites as
// store-sqlite.contract.test.ts, on a throw-away cluster this file starts (test/support/pg-cluster.ts),
// one fresh database per case. What only several instances can break is in test/scale/.
let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
}, 120_000); // stopping the cluster takes long on a loaded machine

async function freshPool() {
  return (await freshDatabase()).pool;
}

async function freshDatabase() {
  const url = await (await pgc()).createDatabase();
  const pool = openPgPool({ url, max: 4 });
  await migrate(pool, postgresMigrations);
  return { pool, url };
}

describeOutboxStoreContract('postgres', async () => {
  const pool = await freshPool();
  return {
    outbox: new PgOutbox({ pool }),
    seed: (events, nowMs) =>
      inTransaction(pool, async (c) => {
        for (const e of events) await enqueueOn(c, e, nowMs);
      }),
    close: () => pool.end(),
  };
});

describeEnrollmentStoreContract('postgres', async () => {
  const pool = await freshPool();
  return { store: new PgEnrollmentStore(pool), close: () => pool.end() };
});

describeFleetStoreContract('postgres', async () => {
  const pool = await freshPool();
  return { store: new PgFleetStore(pool), close: () => pool.end() };
});

const sqlOn =
  (pool: Awaited<ReturnType<typeof freshPool>>) =>
  async (text: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> => {
    let i = 0;
    const r = await pool.query(
      text.replace(/\?/g, () => `$${++i}`),
      [...params],
    );
    return r.rows as Record<string, unknown>[];
  };

describeCardStoreContract('postgres', async () => {
  const pool = await freshPool();
  return { cards: new PgCardStore(pool), sql: sqlOn(pool), close: () => pool.end() };
});

describeCardLifecycleStoreContract('postgres', async () => {
  const pool = await freshPool();
  const clock = { ms: 0 };
  const store = new PgCardStore(pool, () => clock.ms);
  return { store, clock, sql: sqlOn(pool), close: () => pool.end() };
});

describeVisitStoreContract('postgres', async () => {
  const pool = await freshPool();
  return { visits: new PgVisitStore(pool), sql: sqlOn(pool), close: () => pool.end() };
});

describeReaderRowsContract('postgres', async () => {
  const pool = await freshPool();
  return { store: createPgIngestStore(pool), sql: sqlOn(pool), close: () => pool.end() };
});

// the registry's shared snapshot on PostgreSQL (store.engine postgres): the same rows contract, answered
// from its snapshot and written through; a second directory on the same database must see the result
describeReaderRowsContract('postgres shared directory', async () => {
  const { pool, url } = await freshDatabase();
  const directory = new PgReaderDirectory({
    pool,
    url,
    authTags: { get: () => undefined, set: () => undefined, delete: () => undefined, flush: () => undefined },
    logger: { warn: () => undefined },
  });
  await directory.start();
  return {
    store: directory,
    sql: async (text, params) => {
      await directory.settled();
      return sqlOn(pool)(text, params);
    },
    close: async () => {
      await directory.stop();
      await pool.end();
    },
  };
});

describeCareStoreContract('postgres', async () => {
  const pool = await freshPool();
  return {
    store: new PgCareStore(pool),
    putVisit: async (v) => {
      await putVisitRow((text, params) => sqlOn(pool)(text, params), v);
    },
    outboxKeys: async () =>
      (await pool.query<{ k: string }>('SELECT idempotency_key AS k FROM outbox ORDER BY id')).rows.map(
        (r) => r.k,
      ),
    day: (() => {
      const scoped = new PgCareScopeReader(pool);
      return {
        visits: (s, from, to, limit) => scoped.visitsStartedBetween(s, from, to, limit),
        clients: (s) => scoped.clients(s),
      };
    })(),
    close: () => pool.end(),
  };
});
