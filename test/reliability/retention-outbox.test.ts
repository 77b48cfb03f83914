/**
 * Delivered outbox rows follow `retention.outboxDeliveredDays` on both engines (issue 16): the forwarder no longer
 * deletes them by itself after a fixed 14 days. On a fake clock, with the real outbox adapters (a SQLite file; a
 * PostgreSQL cluster this file starts) and a real Forwarder delivering to an answering fake backend: 20 days after
 * delivery the forwarder's idle turns (which pruned at 14 days before) leave the row; the retention pruner with a
 * 30-day period keeps it at 29 days and deletes it at 31.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Clock, TimerHandle, VisitEvent } from '../../protocol/index.js';
import { Forwarder } from '../../gateway/src/outbox/forwarder.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { RetentionSettings } from '../../gateway/src/retention/policy.js';
import { createPruner } from '../../gateway/src/store/sqlite/retention.js';
import { pgPrunerFor } from '../../gateway/src/retention/pg.js';
import { inTransaction, migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgRetentionStore } from '../../gateway/src/store/postgres/retention.js';
import { enqueueOn, PgOutbox } from '../../gateway/src/store/postgres/outbox.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import type { OutboxStore } from '../../gateway/src/store/ports.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { silent } from '../gateway/helpers.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 2, 8);

const event = (n: number): VisitEvent => ({
  type: 'visit.started',
  idempotencyKey: `vt1:rdr-ob-1:${n}:started`,
  visitId: `rdr-ob-1.v${n}`,
  readerId: 'rdr-ob-1',
  clientRef: 'client-1',
  staffRef: 'staff-1',
  cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
  groupId: null,
  anomalies: [],
  timeQuality: 'synced',
  startedAt: '2026-11-02T08:00:00.000Z',
  startSeq: n,
});

interface Engine {
  outbox: OutboxStore;
  seed: (e: VisitEvent, nowMs: number) => Promise<void>;
  rows: () => Promise<number>;
  /** The engine's retention pruner with `days` for delivered outbox rows (everything else kept). */
  prune: (days: number, nowMs: number) => Promise<number>;
  close: () => Promise<void>;
}

const settings = (days: number) =>
  RetentionSettings.parse({
    outboxDeliveredDays: days,
    rawEventsDays: 'keep',
    rejectsDays: 'keep',
    unknownCardAnomaliesDays: 'keep',
  });

let cluster: Promise<PgCluster> | undefined;
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
}, 120_000);

const engines: Record<string, () => Promise<Engine>> = {
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'vt-outbox-ret-'));
    const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
    const outbox = new SqliteOutbox({ db });
    return Promise.resolve({
      outbox,
      seed: (e, nowMs) => {
        db.transaction(() => outbox.enqueue(e, nowMs))();
        return Promise.resolve();
      },
      rows: () => Promise.resolve((db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n),
      prune: (days, nowMs) => Promise.resolve(createPruner(db, settings(days)).runAll(nowMs).outboxDelivered),
      close: () => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      },
    });
  },
  postgres: async () => {
    const url = await (await (cluster ??= startPgCluster())).createDatabase();
    const pool = openPgPool({ url, max: 2 });
    await migrate(pool, postgresMigrations);
    return {
      outbox: new PgOutbox({ pool }),
      seed: async (e, nowMs) => {
        await inTransaction(pool, (c) => enqueueOn(c, e, nowMs));
      },
      rows: async () =>
        Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox')).rows[0]?.n),
      prune: async (days, nowMs) =>
        (await pgPrunerFor(new PgRetentionStore(pool), settings(days)).runAll(nowMs)).outboxDelivered,
      close: () => pool.end(),
    };
  },
};

describe.each(Object.keys(engines))('delivered outbox rows on %s follow outboxDeliveredDays', (name) => {
  it('the forwarder keeps them past 14 days; the retention job deletes them at 30, not before', async () => {
    const e = await engines[name]!();
    try {
      let now = T0;
      const clock: Clock = {
        now: () => now,
        monotonic: () => now - T0,
        setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
        clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
      };
      const metrics = new MetricsRegistry();
      let posts = 0;
      const forwarder = new Forwarder({
        outbox: e.outbox,
        backend: {
          url: 'http://127.0.0.1:9/hook',
          secret: 'outbox-retention-secret-01',
          timeoutMs: 5_000,
          batchMax: 10,
          backoff: { baseMs: 10, capMs: 20 },
        },
        clock,
        random: () => 0.5,
        logger: silent,
        fetch: () => {
          posts++;
          return Promise.resolve(new Response('ok', { status: 200 }));
        },
        metrics: {
          delivered: metrics.counter('t_delivered_total', 'x'),
          retried: metrics.counter('t_retried_total', 'x'),
          deadLettered: metrics.counter('t_dead_total', 'x'),
          latency: metrics.histogram('t_latency_seconds', 'x', [1]),
        },
      });
      await e.seed(event(1), T0);
      expect(await forwarder.tick()).toMatchObject({ kind: 'sent', delivered: 1 });
      expect(posts).toBe(1);
      // idle turns over 20 days, one per hour of the fake clock's last day (the old prune ran hourly at 14 days)
      for (let h = 0; h <= 24; h++) {
        now = T0 + 19 * DAY + h * 3_600_000;
        expect((await forwarder.tick()).kind).toBe('idle');
      }
      expect(await e.rows()).toBe(1);
      expect(await e.prune(30, T0 + 29 * DAY)).toBe(0);
      expect(await e.rows()).toBe(1);
      expect(await e.prune(30, T0 + 31 * DAY)).toBe(1);
      expect(await e.rows()).toBe(0);
    } finally {
      await e.close();
    }
  }, 120_000);
});
