import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inTransaction, migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { enqueueOn, PgOutbox } from '../../gateway/src/store/postgres/outbox.js';
import type { VisitEvent } from '../../protocol/index.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/** The outbox forwarded by several instances: leases, no doubles, a visit's start before its end. */
const base = {
  readerId: 'r1',
  clientRef: 'client-1',
  staffRef: 'staff-1',
  cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
  groupId: null,
  anomalies: [],
  timeQuality: 'synced' as const,
  startedAt: '2026-11-23T08:00:00.000Z',
};
const started = (n: number): VisitEvent => ({
  ...base,
  type: 'visit.started',
  idempotencyKey: `vt1:r1:${2 * n}:started`,
  visitId: `r1.v${n}`,
  startSeq: 2 * n,
});
const ended = (n: number): VisitEvent => ({
  ...base,
  type: 'visit.ended',
  idempotencyKey: `vt1:r1:${2 * n + 1}:ended`,
  visitId: `r1.v${n}`,
  endedAt: '2026-11-23T08:30:00.000Z',
  durationMs: 1_800_000,
  endReason: 'tap' as const,
  endSeq: 2 * n + 1,
});

describe('PostgreSQL outbox with several forwarders', () => {
  let pgc: PgCluster;
  const pools: PgPool[] = [];
  beforeAll(async () => {
    pgc = await startPgCluster();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await pgc?.destroy();
  });
  const instances = async (n: number, events: VisitEvent[]) => {
    const url = await pgc.createDatabase();
    const out: PgOutbox[] = [];
    for (let i = 0; i < n; i++) {
      const pool = openPgPool({ url, max: 3 });
      pools.push(pool);
      if (i === 0) {
        await migrate(pool, postgresMigrations);
        await inTransaction(pool, async (c) => {
          for (const e of events) await enqueueOn(c, e, 1);
        });
      }
      out.push(new PgOutbox({ pool, holder: `gw-${i}` }));
    }
    return out;
  };

  it('a claimed row is not offered to another forwarder before its lease ends; then it is (the holder died)', async () => {
    const [a, b] = await instances(2, [started(1), started(2)]);
    if (!a || !b) throw new Error('no instances');
    expect((await a.claim(1, 1000, 5000)).map((r) => r.visitId)).toEqual(['r1.v1']);
    expect((await b.claim(10, 2000, 5000)).map((r) => r.visitId)).toEqual(['r1.v2']);
    expect(await b.claim(10, 5999, 5000)).toEqual([]);
    // a never marks its row (SIGKILLed): after its lease b gets it
    expect((await b.claim(10, 6000, 5000)).map((r) => r.visitId)).toEqual(['r1.v1']);
  });

  it("a visit's end is not claimed while its start is leased to another forwarder", async () => {
    const [a, b] = await instances(2, [started(1), ended(1)]);
    if (!a || !b) throw new Error('no instances');
    expect((await a.claim(1, 1000, 5000)).map((r) => r.type)).toEqual(['visit.started']);
    expect(await b.claim(10, 1000, 5000)).toEqual([]);
  });

  it('three forwarders draining 600 events concurrently: every event sent once, each start before its end', async () => {
    const events: VisitEvent[] = [];
    for (let n = 1; n <= 300; n++) events.push(started(n), ended(n));
    const fws = await instances(3, events);
    const sent: string[] = [];
    const forward = async (o: PgOutbox) => {
      for (let idle = 0; idle < 5;) {
        const rows = await o.claim(7, Date.now(), 60_000);
        if (rows.length === 0) {
          idle++;
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        idle = 0;
        for (const r of rows) sent.push(r.idempotencyKey); // "POST" in claim order
        await o.markDelivered(
          rows.map((r) => r.id),
          Date.now(),
          200,
        );
      }
    };
    await Promise.all(fws.map(forward));
    expect(sent).toHaveLength(600);
    expect(new Set(sent).size).toBe(600);
    for (let n = 1; n <= 300; n++) {
      expect(sent.indexOf(`vt1:r1:${2 * n}:started`)).toBeLessThan(sent.indexOf(`vt1:r1:${2 * n + 1}:ended`));
    }
    expect(await fws[0]?.stats()).toMatchObject({ pending: 0, dead: 0 });
  });
});
