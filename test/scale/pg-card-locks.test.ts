import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { PgCardStore } from '../../gateway/src/store/postgres/cards.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * Two instances importing card lists that name the same cards in opposite orders, at once: each import
 * takes every card's lock first in one sorted order, so neither deadlocks (PostgreSQL would abort one
 * with "deadlock detected" otherwise) and both land.
 */
describe('PostgreSQL card imports on several instances', () => {
  let pgc: PgCluster;
  const pools: PgPool[] = [];
  beforeAll(async () => {
    pgc = await startPgCluster();
    const url = await pgc.createDatabase();
    for (let i = 0; i < 2; i++) pools.push(openPgPool({ url, max: 2 }));
    await migrate(pools[0] as PgPool, postgresMigrations);
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await pgc?.destroy();
  });

  it('opposite orders at once: no deadlock, every import commits', async () => {
    const refs = Array.from({ length: 40 }, (_, i) => `c1_${i.toString(16).padStart(32, '0')}`);
    const stores = pools.map((pool) => new PgCardStore(pool));
    for (let round = 0; round < 5; round++) {
      const req = (staff: string, list: string[]) =>
        list.map((cardRef) => ({ cardRef, staffRef: staff, actor: 'test', nowMs: round }));
      const results = await Promise.allSettled([
        stores[0]?.assignMany(req(`a${round}`, refs)),
        stores[1]?.assignMany(req(`b${round}`, [...refs].reverse())),
      ]);
      expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
    }
    const n = await pools[0]?.query('SELECT count(*)::int AS n FROM cards');
    expect(n?.rows[0]).toEqual({ n: 40 });
  });
});
