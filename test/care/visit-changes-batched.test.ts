/**
 * The care matcher catching up on many clients at once (a reconnect storm's visits at hundreds of homes, a
 * backlog): `processVisitChanges` matches clients that share a date range together, one unit of work per batch,
 * batches sized so that one holds the event loop about 25 ms, and the result is the same as matching each client
 * on its own: every visit matched to its own client's plan, nothing unplanned, plans without a visit missed.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CarePlan } from '../../gateway/src/care/service.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { createSqliteCareStore } from '../../gateway/src/care/sqlite/store.js';
import type { CareStore } from '../../gateway/src/store/care.js';
import { careFixture, putVisit, type CareFixture } from './helpers.js';

const TZ = 'Europe/Stockholm';
const D1 = '2026-10-25';
const D2 = '2026-11-14'; // 20 days later: past the 14-day merge gap, so a second date range per client
const at = (date: string, time: string) => localToUtcMs(date, time, TZ);
const CLIENTS = 250;
const client = (i: number) => `k-${String(i).padStart(3, '0')}`;

describe('care matcher: many clients in batches', () => {
  let f: CareFixture | undefined;
  afterEach(() => f?.close());

  /** Plans at 08:00 on both days for every client; visits: all but every 7th on D1, every 3rd on D2. */
  async function world(msPerClient: number) {
    f = careFixture(at(D1, '06:00'));
    const fx = f;
    const rows = [];
    for (let i = 0; i < CLIENTS; i++) {
      for (const [d, date] of [
        ['a', D1],
        ['b', D2],
      ] as const) {
        rows.push({
          plannedVisitId: `pv-${d}-${i}`,
          clientRef: client(i),
          date,
          start: '08:00',
          plannedMinutes: 30,
        });
      }
    }
    const r = await fx.plan.importPlan({
      areaId: 'north',
      fromDate: D1,
      toDate: D2,
      dryRun: false,
      actor: 'coord',
      source: 'api',
      rows,
    });
    expect(r.ok).toBe(true);
    let u = 100;
    for (let i = 0; i < CLIENTS; i++) {
      if (i % 7 !== 0) {
        putVisit(
          fx.db,
          {
            readerId: `r-${i}`,
            visitId: 'v1',
            clientRef: client(i),
            startedAtMs: at(D1, '08:05'),
            endedAtMs: at(D1, '08:30'),
          },
          ++u,
        );
      }
      if (i % 3 === 0) {
        putVisit(
          fx.db,
          {
            readerId: `r-${i}`,
            visitId: 'v2',
            clientRef: client(i),
            startedAtMs: at(D2, '08:10'),
            endedAtMs: at(D2, '08:40'),
          },
          ++u,
        );
      }
    }
    // a clock whose monotonic time runs `msPerClient` per client matched (the work's cost), and a store that
    // records each batch
    let mono = 0;
    const batches: Array<{ size: number; fromMs: number }> = [];
    // each store step, and 'io' when an I/O callback queued right after it got to run
    const steps: string[] = [];
    const step = (name: string) => {
      steps.push(name);
      setImmediate(() => steps.push('io'));
    };
    const real = createSqliteCareStore({ db: fx.db, enqueue: (e, now) => fx.outbox.enqueue(e, now) });
    const store: CareStore = {
      ...real,
      changedVisits: async (cursor, limit) => {
        const r = await real.changedVisits(cursor, limit);
        step('read');
        return r;
      },
      previousMatchOf: async (keys) => {
        const r = await real.previousMatchOf(keys);
        step('look-up');
        return r;
      },
      rematchMany: async (clientRefs, range, compute) => {
        batches.push({ size: clientRefs.length, fromMs: range.fromMs });
        mono += msPerClient * clientRefs.length;
        steps.push('batch');
        return real.rematchMany(clientRefs, range, compute);
      },
    };
    const now = at(D2, '20:00');
    const plan = new CarePlan({
      store,
      clock: {
        now: () => now,
        monotonic: () => mono,
        setTimeout: () => ({}) as never,
        clearTimeout: () => undefined,
      },
      logger: pino({ level: 'silent' }),
    });
    return { fx, plan, batches, steps };
  }

  async function expectEveryClientMatched(fx: CareFixture, plan: CarePlan) {
    const plans = new Map(
      (await plan.matches({ fromMs: at(D1, '00:00'), toMs: at(D2, '23:59') })).map((m) => [
        m.plannedVisitId,
        m,
      ]),
    );
    expect(plans.size).toBe(2 * CLIENTS);
    for (let i = 0; i < CLIENTS; i++) {
      const a = plans.get(`pv-a-${i}`);
      const b = plans.get(`pv-b-${i}`);
      expect(a?.executedKeys, client(i)).toEqual(i % 7 !== 0 ? [`r-${i}/v1`] : []);
      expect(a?.status).toBe(i % 7 !== 0 ? 'matched' : 'missed');
      expect(b?.executedKeys, client(i)).toEqual(i % 3 === 0 ? [`r-${i}/v2`] : []);
      expect(b?.status).toBe(i % 3 === 0 ? 'matched' : 'missed');
    }
    const unplanned = fx.db
      .prepare('SELECT COUNT(*) FROM care_visit_matches WHERE planned_visit_id IS NULL')
      .pluck()
      .get();
    expect(unplanned).toBe(0);
  }

  it('cheap clients: up to 100 per unit of work, every visit matched to its own client', async () => {
    const { fx, plan, batches } = await world(0.05);
    const visits = CLIENTS - Math.ceil(CLIENTS / 7) + Math.ceil(CLIENTS / 3);
    expect(await plan.processVisitChanges()).toBe(visits);
    await expectEveryClientMatched(fx, plan);
    expect(Math.max(...batches.map((b) => b.size))).toBe(100);
    expect(batches.length).toBeLessThan(visits / 10);
    // one batch per client and date range in all: 214 clients on the first day, 84 on the second
    expect(batches.reduce((s, b) => s + b.size, 0)).toBe(visits);
    // the earlier date range goes first
    expect(batches.map((b) => b.fromMs)).toEqual([...batches.map((b) => b.fromMs)].sort((x, y) => x - y));
  });

  it('costly clients: batches shrink to about 25 ms of work each', async () => {
    const { fx, plan, batches } = await world(4);
    // chunks of 97 visits: some clients' two days fall into different chunks
    await plan.processVisitChanges(97);
    await expectEveryClientMatched(fx, plan);
    // the first batch is one client (nothing measured yet), then floor(25 / 4) = 6 clients per batch; a group's
    // last batch takes what is left
    expect(batches[0]?.size).toBe(1);
    expect(Math.max(...batches.map((b) => b.size))).toBe(6);
    const total = batches.reduce((s, b) => s + b.size, 0);
    expect(batches.filter((b) => b.size === 6).length).toBeGreaterThanOrEqual(Math.floor(total / 6) - 8);
  });

  it('gives the event loop back after the read, after the look-up and before the first batch', async () => {
    const { plan, steps } = await world(0.05);
    await plan.processVisitChanges(120);
    // the first chunk: nothing synchronous runs on from one step into the next (MQTT acks and HTTP get a turn)
    expect(steps.slice(0, 5)).toEqual(['read', 'io', 'look-up', 'io', 'batch']);
    // every chunk reads again after the last batch of the one before, and yields after it
    const reads = steps.flatMap((s, i) => (s === 'read' ? [i] : []));
    expect(reads.length).toBeGreaterThan(2);
    for (const i of reads) expect(steps[i + 1]).toBe('io');
  });
});
