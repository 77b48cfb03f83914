import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

describe('test PostgreSQL cluster (test/support/pg-cluster.ts)', () => {
  let pgc: PgCluster;
  beforeAll(async () => {
    pgc = await startPgCluster();
  });
  afterAll(async () => {
    await pgc?.destroy();
  });

  it('starts its own cluster on a free loopback port; a committed row survives a crash restart', async () => {
    const url = await pgc.createDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('CREATE TABLE t (id int PRIMARY KEY)');
    await c.query('INSERT INTO t VALUES (1)');
    const fsync = await c.query<{ fsync: string }>('SHOW fsync');
    expect(fsync.rows[0]?.fsync).toBe('on');
    await c.end();

    pgc.restart('immediate');
    const c2 = new pg.Client({ connectionString: url });
    await c2.connect();
    const r = await c2.query<{ id: number }>('SELECT id FROM t');
    expect(r.rows).toEqual([{ id: 1 }]);
    await c2.end();
  });

  it('is removed by destroy()', async () => {
    const other = await startPgCluster();
    expect(existsSync(other.dir)).toBe(true);
    await other.destroy();
    expect(existsSync(other.dir)).toBe(false);
  });
});
