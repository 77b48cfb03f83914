import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { releaseLease, tryLease } from '../../gateway/src/store/postgres/leases.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

describe('named leases on PostgreSQL (timers and sweeps run on one instance)', () => {
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

  it('of many instances asking at once exactly one gets it; it renews; others get it only when it ran out or was released', async () => {
    const [a, b, c] = pools as [PgPool, PgPool, PgPool];
    const asks = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        tryLease([a, b, c][i % 3] as PgPool, 'late-timer', `gw-${i}`, 1000, 5000),
      ),
    );
    expect(asks.filter(Boolean)).toHaveLength(1);
    const winner = `gw-${asks.indexOf(true)}`;
    expect(await tryLease(b, 'late-timer', winner, 3000, 5000)).toBe(true); // renewal, until 8000
    expect(await tryLease(c, 'late-timer', 'gw-other', 7999, 5000)).toBe(false);
    expect(await tryLease(c, 'late-timer', 'gw-other', 8000, 5000)).toBe(true); // the holder died
    expect(await tryLease(a, 'late-timer', winner, 8001, 5000)).toBe(false);
    expect(await tryLease(a, 'alert-sweep', winner, 8001, 5000)).toBe(true); // leases are per name
    await releaseLease(c, 'late-timer', 'gw-other');
    expect(await tryLease(a, 'late-timer', winner, 8002, 5000)).toBe(true);
  });
});
