import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/index.js';
import { ReaderRegistry } from '../../gateway/src/registry.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgReaderDirectory } from '../../gateway/src/store/postgres/reader-directory.js';
import type { ReaderRecord } from '../../gateway/src/store/ingest-store.js';
import { PASSWORD, silent, waitUntil } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * The reader registry's shared snapshot on PostgreSQL (store/postgres/reader-directory.ts), several
 * "instances" in one process, each with its own pool and LISTEN connection on one database: a change
 * made through one reaches the others by NOTIFY; a broken LISTEN connection is opened again and
 * everything pulled; a change that notified nobody arrives with the periodic pull; a local write is not
 * undone by a read that predates it; two instances adding the same reader: one wins everywhere.
 */

const noTags = {
  get: () => undefined,
  set: () => undefined,
  delete: () => undefined,
  flush: () => undefined,
};
const rec = (readerId: string, over: Partial<ReaderRecord> = {}): ReaderRecord => ({
  readerId,
  passwordHash: `scrypt$${readerId}$1`,
  clientRef: `home-${readerId}`,
  label: null,
  revokedAt: null,
  createdAt: 1_000,
  ...over,
});

describe('reader registry shared on PostgreSQL', () => {
  let pgc: PgCluster;
  let url: string;
  const pools: PgPool[] = [];
  const dirs: PgReaderDirectory[] = [];
  const changes = new Map<PgReaderDirectory, Array<[ReaderRecord | undefined, ReaderRecord]>>();

  const instance = async (name: string, pullEveryMs = 30_000) => {
    const pool = openPgPool({ url, max: 3 });
    pools.push(pool);
    const d = new PgReaderDirectory({
      pool,
      url,
      authTags: noTags,
      logger: silent,
      pullEveryMs,
      reconnectMs: 100,
      applicationName: `vt-dir-${name}`,
    });
    const seen: Array<[ReaderRecord | undefined, ReaderRecord]> = [];
    changes.set(d, seen);
    d.onRemoteChange((b, a) => seen.push([b, a]));
    await d.start();
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    pgc = await startPgCluster();
    url = await pgc.createDatabase();
    const pool = openPgPool({ url, max: 1 });
    await migrate(pool, postgresMigrations);
    await pool.end();
  }, 120_000);
  afterAll(async () => {
    for (const d of dirs) await d.stop();
    for (const p of pools) await p.end();
    await pgc?.destroy();
  }, 120_000);

  it(
    'an add, a revoke and a move on one instance reach the others by NOTIFY',
    { timeout: 60_000 },
    async () => {
      const [a, b, c] = [await instance('a'), await instance('b'), await instance('c')];
      const t0 = performance.now();
      await a.insertReader(rec('r-1'));
      await waitUntil(() => b.getReader('r-1') && c.getReader('r-1'), 10_000);
      const addMs = performance.now() - t0;
      expect(changes.get(b)?.at(-1)).toEqual([undefined, rec('r-1')]);

      const t1 = performance.now();
      await b.setRevoked('r-1', 5_000);
      await waitUntil(
        () => a.getReader('r-1')?.revokedAt === 5_000 && c.getReader('r-1')?.revokedAt === 5_000,
        10_000,
      );
      const revokeMs = performance.now() - t1;
      expect(changes.get(c)?.at(-1)).toEqual([rec('r-1'), rec('r-1', { revokedAt: 5_000 })]);

      await c.setClientRef('r-1', 'home-9', 6_000);
      await waitUntil(
        () => a.getReader('r-1')?.clientRef === 'home-9' && b.getReader('r-1')?.clientRef === 'home-9',
      );
      // every change arrived by notification: no pull ran since the start
      for (const d of [a, b, c]) expect(d.stats.pulls).toBe(1);
      expect(b.stats.notifications).toBeGreaterThanOrEqual(3);
      console.info(
        `reader directory: add seen elsewhere after ${addMs.toFixed(1)} ms, revoke after ${revokeMs.toFixed(1)} ms`,
      );
    },
  );

  it(
    'a broken LISTEN connection is opened again and what it missed is pulled',
    { timeout: 60_000 },
    async () => {
      const [a, b] = [await instance('a2'), await instance('b2')];
      const admin = openPgPool({ url, max: 1 });
      pools.push(admin);
      const killed = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vt-dir-b2'`,
      );
      expect(killed.rowCount).toBe(1); // b2's LISTEN connection (its pool has none open yet)
      await a.insertReader(rec('r-2'));
      await waitUntil(() => b.getReader('r-2'), 20_000);
      expect(b.stats.reconnects).toBeGreaterThanOrEqual(1);
      // and it listens again: the next change arrives by notification
      const n = b.stats.notifications;
      await a.setRevoked('r-2', 9_000);
      await waitUntil(() => b.getReader('r-2')?.revokedAt === 9_000, 10_000);
      expect(b.stats.notifications).toBeGreaterThan(n);
    },
  );

  it('a change that notified nobody arrives with the periodic pull', { timeout: 60_000 }, async () => {
    const a = await instance('a3', 300);
    await a.insertReader(rec('r-3'));
    const admin = openPgPool({ url, max: 1 });
    pools.push(admin);
    // session_replication_role = replica: the row's trigger does not fire (a missed notification)
    const c = await admin.connect();
    try {
      await c.query('SET session_replication_role = replica');
      await c.query(`UPDATE readers SET revoked_at = 4242 WHERE reader_id = 'r-3'`);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
    const pulls = a.stats.pulls;
    await waitUntil(() => a.getReader('r-3')?.revokedAt === 4242, 10_000);
    expect(a.stats.pulls).toBeGreaterThan(pulls);
  });

  it('a read that started before a local write does not undo it', { timeout: 60_000 }, async () => {
    const a = await instance('a4');
    await a.insertReader(rec('r-4'));
    for (let i = 0; i < 20; i++) {
      const pull = a.pull(); // its SELECT goes out before the UPDATE below
      const w = a.setRevoked('r-4', 10_000 + i);
      await pull;
      expect(a.getReader('r-4')?.revokedAt).toBe(10_000 + i);
      await w;
      await a.setRevoked('r-4', null);
    }
  });

  it(
    'two instances adding the same reader: one wins, every snapshot ends with its row',
    { timeout: 60_000 },
    async () => {
      const [a, b, c] = [await instance('a5'), await instance('b5'), await instance('c5')];
      const results = await Promise.allSettled([
        a.insertReader(rec('r-5', { passwordHash: 'from-a' })),
        b.insertReader(rec('r-5', { passwordHash: 'from-b' })),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const lost = results.find((r) => r.status === 'rejected');
      expect(String((lost as PromiseRejectedResult).reason)).toMatch(/r-5 already exists/);
      const winner = results[0].status === 'fulfilled' ? 'from-a' : 'from-b';
      await waitUntil(() => [a, b, c].every((d) => d.getReader('r-5')?.passwordHash === winner), 10_000);
    },
  );

  it(
    'the registry over two instances: a revoke or new password on one applies to logins on the other',
    { timeout: 60_000 },
    async () => {
      const [da, db] = [await instance('a6'), await instance('b6')];
      const dropped: string[] = [];
      const make = (store: PgReaderDirectory, name: string) =>
        new ReaderRegistry({
          store,
          clock: systemClock,
          logger: silent,
          kdf: { logN: 10, r: 8, p: 1 },
          onRevokedElsewhere: (id) => dropped.push(`${name}:revoked:${id}`),
          onPasswordChanged: (id) => dropped.push(`${name}:password:${id}`),
        });
      const [ra, rb] = [make(da, 'a'), make(db, 'b')];
      await ra.addReader({ readerId: 'r-6', password: PASSWORD, clientRef: 'home-6' });
      await waitUntil(() => rb.getReader('r-6'), 10_000);
      expect(await rb.authenticate('r-6', PASSWORD)).toBe('ok');
      const NEW = 'another-reader-password-9876543210-zz';
      await ra.setPassword('r-6', NEW);
      await waitUntil(() => dropped.includes('b:password:r-6'), 10_000);
      expect(await rb.authenticate('r-6', PASSWORD)).toBe('bad-password');
      expect(await rb.authenticate('r-6', NEW)).toBe('ok');
      ra.revokeReader('r-6');
      await ra.written();
      await waitUntil(() => dropped.includes('b:revoked:r-6'), 10_000);
      expect(await rb.authenticate('r-6', NEW)).toBe('revoked');
      expect(rb.admission('r-6')).toBe('revoked');
      // a duplicate added on the other instance is refused there (the snapshot already holds it)
      await expect(rb.addReader({ readerId: 'r-6', clientRef: 'home-6' })).rejects.toThrow(/already exists/);
    },
  );
});
