import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { PgEnrollmentStore } from '../../gateway/src/store/postgres/enrollment.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * What only several instances can break in the EnrollmentStore on PostgreSQL: one code claimed by
 * three pools at once. The port's single-instance behaviour is in the contract suites
 * (test/contracts/store-enrollment.contract.ts, store-fleet.contract.ts), run on both engines.
 */
describe('PostgreSQL enrollment store, several instances', () => {
  let pgc: PgCluster;
  const pools: PgPool[] = [];
  beforeAll(async () => {
    pgc = await startPgCluster();
    const url = await pgc.createDatabase();
    for (let i = 0; i < 3; i++) pools.push(openPgPool({ url, max: 4 }));
    await migrate(pools[0] as PgPool, postgresMigrations);
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await pgc?.destroy();
  });
  const code = (h: string, readerId: string, at: number, replaces: string | null = null) => ({
    codeHash: h,
    readerId,
    clientRef: 'client-1',
    label: null,
    createdAtMs: at,
    expiresAtMs: at + 60_000,
    replacesReaderId: replaces,
  });

  it('a code claimed by many instances at once provisions exactly one', async () => {
    const stores = pools.map((p) => new PgEnrollmentStore(p));
    await stores[0]?.issue(code('h-race', 'r-race', 10_000));
    const id = (await stores[0]?.byCodeHash('h-race'))?.id ?? 0;
    const wins = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (stores[i % 3] as PgEnrollmentStore).claim(id, 11_000 + i, `10.0.0.${i}`),
      ),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
  });
});
