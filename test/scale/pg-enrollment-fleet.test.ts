import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { PgEnrollmentStore } from '../../gateway/src/store/postgres/enrollment.js';
import { PgFleetStore } from '../../gateway/src/store/postgres/fleet.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * EnrollmentStore and FleetStore on PostgreSQL, through the ports. (When their contract suites land in
 * test/contracts/, the PostgreSQL factory goes into store-postgres.contract.test.ts; the concurrent claim
 * below is PostgreSQL-only.)
 */
describe('PostgreSQL enrollment and fleet stores', () => {
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

  it('issues codes (a newer one withdraws the pending one), finds them by hash, claims once, unclaims', async () => {
    const s = new PgEnrollmentStore(pools[0] as PgPool);
    expect(await s.readerIdTaken('r-e1')).toBe(false);
    await s.issue(code('h1', 'r-e1', 1000));
    await s.issue(code('h2', 'r-e1', 2000));
    expect((await s.byCodeHash('h1'))?.expiresAtMs).toBe(2000); // withdrawn
    const h2 = await s.byCodeHash('h2');
    expect(h2).toMatchObject({
      readerId: 'r-e1',
      clientRef: 'client-1',
      usedAtMs: null,
      expiresAtMs: 62_000,
    });
    expect(await s.readerIdTaken('r-e1')).toBe(true);
    expect(await s.claim(h2?.id ?? 0, 3000, '127.0.0.1')).toBe(true);
    expect(await s.claim(h2?.id ?? 0, 3001, '127.0.0.1')).toBe(false);
    await s.unclaim(h2?.id ?? 0);
    expect((await s.byCodeHash('h2'))?.usedAtMs).toBeNull();
    // replacement codes: a second one for the same old reader withdraws the first
    await s.issue(code('h3', 'r-new1', 4000, 'r-old'));
    await s.issue(code('h4', 'r-new2', 5000, 'r-old'));
    expect((await s.byCodeHash('h3'))?.expiresAtMs).toBe(5000);
    expect((await s.list(2)).map((r) => r.codeHash)).toEqual(['h4', 'h3']);
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

  it('keeps the last pushed config per reader and replacement links both ways', async () => {
    const f = new PgFleetStore(pools[1] as PgPool);
    expect(await f.lastConfig('r-f')).toBeUndefined();
    await f.saveConfig('r-f', { version: 1, configJson: '{"a":1}', pushedAtMs: 10 });
    await f.saveConfig('r-f', { version: 2, configJson: '{"a":2}', pushedAtMs: 20 });
    expect(await f.lastConfig('r-f')).toEqual({ version: 2, configJson: '{"a":2}', pushedAtMs: 20 });
    expect(await f.links('r-f')).toEqual({ replacedBy: null, replaces: null, replacedAtMs: null });
    await f.recordReplacement({
      oldReaderId: 'r-f',
      newReaderId: 'r-g',
      clientRef: 'c',
      replacedAtMs: 30,
      closedVisits: 1,
    });
    expect(await f.links('r-f')).toEqual({ replacedBy: 'r-g', replaces: null, replacedAtMs: 30 });
    expect(await f.links('r-g')).toEqual({ replacedBy: null, replaces: 'r-f', replacedAtMs: null });
    await expect(
      f.recordReplacement({
        oldReaderId: 'r-x',
        newReaderId: 'r-g',
        clientRef: null,
        replacedAtMs: 40,
        closedVisits: 0,
      }),
    ).rejects.toThrow(/duplicate key/);
  });
});
