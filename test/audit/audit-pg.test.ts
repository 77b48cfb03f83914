import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgAuditStore } from '../../gateway/src/store/postgres/audit.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { createPgPruner, pgEraseSubject } from '../../gateway/src/store/postgres/retention.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 6, 12);

/**
 * The shared audit log on PostgreSQL is append-only for everyone but retention and erasure (issue 14):
 * the retention job deletes entries past the audit period in batches, erasure pseudonymises a person's
 * reference in it, and a plain UPDATE, DELETE or TRUNCATE is still refused.
 */
describe('the audit log on PostgreSQL: retention and erasure are the only writers besides append', () => {
  let pgc: PgCluster;
  let pool: PgPool;
  let audit: PgAuditStore;
  beforeAll(async () => {
    pgc = await startPgCluster();
    pool = openPgPool({ url: await pgc.createDatabase(), max: 3 });
    await migrate(pool, postgresMigrations);
    audit = new PgAuditStore(pool);
  }, 120_000);
  afterAll(async () => {
    await pool?.end();
    await pgc?.destroy();
  }, 120_000);

  it('prunes entries past the audit period (batches), keeps newer ones; plain deletes stay refused', async () => {
    for (let i = 0; i < 5; i++) {
      await audit.append({
        atMs: NOW - 400 * DAY + i,
        actor: 'cli:root',
        action: 'user.create',
        target: `user:u_old${i}`,
        before: null,
        after: null,
        reason: null,
      });
    }
    const kept = await audit.append({
      atMs: NOW - DAY,
      actor: 'user:anna',
      action: 'user.update',
      target: 'user:u_new',
      before: null,
      after: { role: 'admin' },
      reason: 'x',
    });
    const pruner = createPgPruner(pool, { days: (c) => (c === 'audit' ? 365 : 'keep'), batchRows: 2 });
    const deleted = await pruner.runAll(NOW);
    expect(deleted.audit).toBe(5);
    expect(await audit.all()).toEqual([kept]);
    await expect(pool.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
    await expect(pool.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
    await expect(pool.query(`UPDATE audit_log SET reason = 'changed'`)).rejects.toThrow(/append-only/);
    // the maintenance setting of the pruner's statement did not outlive it
    expect(
      (await pool.query(`SELECT current_setting('visittag.audit_maintenance', true) AS v`)).rows[0],
    ).not.toEqual({ v: 'on' });
  });

  it("erasure pseudonymises a staff member's reference in the audit log", async () => {
    await audit.append({
      atMs: NOW,
      actor: 'user:coord',
      action: 'card.assign',
      target: 'staff:staff-erase-1',
      before: null,
      after: { staffRef: 'staff-erase-1' },
      reason: null,
    });
    const r = await pgEraseSubject(pool, {
      kind: 'staff',
      ref: 'staff-erase-1',
      force: true,
      nowMs: NOW,
      visitsDays: 'keep',
    });
    expect(r.ok).toBe(true);
    const rows = (await audit.all()).filter((e) => e.action === 'card.assign');
    expect(JSON.stringify(rows)).not.toContain('staff-erase-1');
    expect(rows[0]?.target).toBe(`staff:${r.ok ? r.pseudonym : '?'}`);
    await expect(pool.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
  });
});
