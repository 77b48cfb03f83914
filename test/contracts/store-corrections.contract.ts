import { describe, expect, it } from 'vitest';
import type { CorrectionsApi } from '../../gateway/src/corrections/port.js';
import type { CorrectionResult } from '../../gateway/src/corrections/service.js';

/**
 * Visit corrections through the port the routes use (gateway/src/corrections/port.ts `CorrectionsApi`):
 * the SQLite service and the PostgreSQL one (corrections/pg.ts over store/postgres/corrections.ts) give the
 * same answers, and write the visit row, the correction, visit_audit, the audit log and ONE outbox event per
 * correction together. Run over SQLite and PostgreSQL (store-corrections.contract.test.ts).
 */
export interface CorrectionsHarness {
  api: CorrectionsApi;
  /** Runs one statement ('?' placeholders) on the engine. */
  sql(text: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Sets the clock (ms). */
  setNow(ms: number): void;
  close(): Promise<void>;
}

export type CorrectionsFactory = () => Promise<CorrectionsHarness>;

const H = 3_600_000;
export const T0 = Date.parse('2026-11-10T07:00:00Z');
const all = () => true;
const card = `c1_${'a'.repeat(32)}`;

async function seed(h: CorrectionsHarness): Promise<void> {
  await h.sql(`INSERT INTO care_areas (area_id, json, updated_at_ms) VALUES ('A', '{"areaId":"A"}', 0)`);
  await h.sql(
    `INSERT INTO care_clients (client_ref, area_id, json, updated_at_ms) VALUES ('c1', 'A', '{"clientRef":"c1","areaId":"A","providerId":"P"}', 0)`,
  );
  await h.sql(
    `INSERT INTO care_staff (staff_ref, area_id, json, updated_at_ms) VALUES ('s1', 'A', '{"staffRef":"s1"}', 0)`,
  );
  for (const [reader, visit, state, start, end] of [
    ['r1', 'v1', 'closed', T0, T0 + H / 2],
    ['r1', 'v2', 'closed', T0 + 2 * H, T0 + 3 * H],
    ['r2', 'v3', 'open', T0 + 4 * H, null],
  ] as const) {
    await h.sql(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
         ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
       VALUES (?, ?, 'c1', ?, 's1', NULL, ?, ?, 1, ?, ?, ?, 'synced', '[]', NULL, ?)`,
      [reader, visit, card, state, start, end, end === null ? null : 2, end === null ? null : 'tap', start],
    );
  }
}

const outbox = async (h: CorrectionsHarness) =>
  (await h.sql('SELECT idempotency_key AS k, type FROM outbox ORDER BY id')).map(
    (r) => `${String(r.type)} ${String(r.k)}`,
  );
const audit = async (h: CorrectionsHarness) =>
  (await h.sql('SELECT action, actor FROM audit_log ORDER BY seq')).map(
    (r) => `${String(r.action)} ${String(r.actor)}`,
  );
const ok = (r: CorrectionResult) => {
  if (!r.ok) throw new Error(`refused ${r.status}: ${r.error}`);
  return r;
};

export function describeCorrectionsContract(engine: string, make: CorrectionsFactory): void {
  describe(`CorrectionsApi contract (${engine})`, () => {
    it('corrects an end once: the visit row, the correction with the original, visit_audit, the audit log and one visit.corrected; a resent requestId changes nothing', async () => {
      const h = await make();
      try {
        await seed(h);
        h.setNow(T0 + 10 * H);
        const req = {
          visitId: 'v1',
          endedAtMs: T0 + 45 * 60_000,
          reasonCode: 'wrong-time' as const,
          note: 'left later',
          actor: 'anna',
          requestId: 'req-00000001',
          visible: all,
        };
        const r = ok(await h.api.correct(req));
        expect(r.created).toBe(true);
        expect(r.visit.endedAtMs).toBe(T0 + 45 * 60_000);
        expect(r.correction.before).toEqual({ startedAtMs: T0, endedAtMs: T0 + H / 2 });
        const again = ok(await h.api.correct(req));
        expect(again.created).toBe(false);
        expect(again.correction.correctionId).toBe(r.correction.correctionId);
        const row = (await h.sql(`SELECT ended_at_ms, updated_at_ms FROM visits WHERE visit_id = 'v1'`))[0]!;
        expect(Number(row.ended_at_ms)).toBe(T0 + 45 * 60_000);
        expect(Number(row.updated_at_ms)).toBe(T0 + 10 * H);
        expect(await outbox(h)).toEqual([`visit.corrected vt1:corrected:${r.correction.correctionId}`]);
        expect(await audit(h)).toEqual(['visit.correct anna']);
        expect(
          (await h.sql(`SELECT action, reason FROM visit_audit`)).map(
            (x) => `${String(x.action)} ${String(x.reason)}`,
          ),
        ).toEqual(['correct wrong-time: left later']);
        const list = await h.api.list('v1', all);
        expect(list.map((c) => [c.kind, c.actor, c.before.endedAtMs, c.after.endedAtMs])).toEqual([
          ['times', 'anna', T0 + H / 2, T0 + 45 * 60_000],
        ]);
        expect(await h.api.list('v1', () => false)).toEqual([]);
        // refusals: an open visit's end, a time in the future, nothing changed, not visible
        expect(await h.api.correct({ ...req, visitId: 'v3', requestId: 'req-00000002' })).toMatchObject({
          ok: false,
          status: 409,
        });
        expect(
          await h.api.correct({ ...req, requestId: 'req-00000003', endedAtMs: T0 + 20 * H }),
        ).toMatchObject({ ok: false, status: 400 });
        expect(await h.api.correct({ ...req, requestId: 'req-00000004' })).toMatchObject({
          ok: false,
          status: 409,
        });
        expect(
          await h.api.correct({ ...req, requestId: 'req-00000005', visible: () => false }),
        ).toMatchObject({ ok: false, status: 404 });
        expect(await outbox(h)).toHaveLength(1);
      } finally {
        await h.close();
      }
    });

    it('withdraws a tap once (visit.withdrawn), refuses a second withdrawal and a later correction; adds a missing visit (visit.added) but not over a recorded one', async () => {
      const h = await make();
      try {
        await seed(h);
        h.setNow(T0 + 10 * H);
        const w = ok(
          await h.api.withdraw({
            visitId: 'v2',
            reasonCode: 'tap-by-mistake',
            note: null,
            actor: 'bo',
            visible: all,
          }),
        );
        expect(w.correction.kind).toBe('withdrawn');
        expect(
          await h.api.withdraw({
            visitId: 'v2',
            reasonCode: 'tap-by-mistake',
            note: null,
            actor: 'bo',
            visible: all,
          }),
        ).toMatchObject({
          ok: false,
          status: 409,
        });
        expect(
          await h.api.correct({
            visitId: 'v2',
            startedAtMs: T0 + 2 * H + 60_000,
            reasonCode: 'wrong-time',
            note: null,
            actor: 'bo',
            visible: all,
          }),
        ).toMatchObject({ ok: false, status: 409 });
        const add = {
          clientRef: 'c1',
          staffRef: 's1',
          startedAtMs: T0 + 15 * 60_000,
          endedAtMs: T0 + 40 * 60_000,
          reasonCode: 'forgot-card' as const,
          note: null,
          actor: 'bo',
        };
        expect(await h.api.addVisit(add)).toMatchObject({ ok: false, status: 409 }); // v1 covers it
        expect(await h.api.addVisit({ ...add, clientRef: 'nobody' })).toMatchObject({
          ok: false,
          status: 404,
        });
        // over the withdrawn tap's time: allowed
        const a = ok(await h.api.addVisit({ ...add, startedAtMs: T0 + 2 * H, endedAtMs: T0 + 3 * H }));
        expect(a.visit).toMatchObject({
          readerId: 'manual',
          state: 'closed',
          endReason: 'manual',
          staffRef: 's1',
        });
        expect(await outbox(h)).toEqual([
          `visit.withdrawn vt1:withdrawn:${w.correction.correctionId}`,
          `visit.added vt1:added:${a.correction.correctionId}`,
        ]);
        expect(await audit(h)).toEqual(['visit.withdraw bo', 'visit.add bo']);
        expect((await h.sql(`SELECT count(*) AS n FROM visits WHERE reader_id = 'manual'`))[0]!.n).toBe(1);
      } finally {
        await h.close();
      }
    });

    it('a locked month refuses a coordinator’s change (423, naming the lock) and lets a unit manager make it; unlock needs the lock; flags are made, listed and resolved once', async () => {
      const h = await make();
      try {
        await seed(h);
        h.setNow(T0 + 10 * H);
        const l = await h.api.locks.lock('A', '2026-11', 'chef', 'attested');
        expect(l).toMatchObject({ ok: true, lock: { areaId: 'A', month: '2026-11', lockedBy: 'chef' } });
        expect(await h.api.locks.lock('A', '2026-11', 'chef', null)).toMatchObject({
          ok: false,
          status: 409,
        });
        expect(await h.api.locks.lock('Z', '2026-11', 'chef', null)).toMatchObject({
          ok: false,
          status: 404,
        });
        expect((await h.api.locks.list(['A'])).map((x) => x.month)).toEqual(['2026-11']);
        expect(await h.api.locks.list(['B'])).toEqual([]);
        const req = {
          visitId: 'v1',
          startedAtMs: T0 + 60_000,
          reasonCode: 'wrong-time' as const,
          note: null,
          actor: 'anna',
          visible: all,
        };
        expect(await h.api.correct(req)).toMatchObject({
          ok: false,
          status: 423,
          lock: { lockedBy: 'chef' },
        });
        ok(await h.api.correct({ ...req, actor: 'chef', lockRule: 'inside-locks' }));
        expect(await h.api.locks.unlock('A', '2026-10', 'chef', 'why')).toMatchObject({
          ok: false,
          status: 404,
        });
        expect(await h.api.locks.unlock('A', '2026-11', 'chef', 'reopened')).toMatchObject({ ok: true });
        const f = await h.api.flags.flag({
          staffRef: 's1',
          actor: 'u-s1',
          visitId: 'v1',
          message: 'I left at 8',
          requestId: 'flag-0001',
        });
        expect(f).toMatchObject({ ok: true, created: true, flag: { visitId: 'v1', clientRef: 'c1' } });
        expect(
          await h.api.flags.flag({
            staffRef: 's1',
            actor: 'u-s1',
            visitId: 'v1',
            message: 'x',
            requestId: 'flag-0001',
          }),
        ).toMatchObject({
          ok: true,
          created: false,
        });
        expect(
          await h.api.flags.flag({ staffRef: 's2', actor: 'u-s2', visitId: 'v1', message: 'x' }),
        ).toMatchObject({ ok: false, status: 404 });
        const id = (f as { flag: { flagId: number } }).flag.flagId;
        expect(
          (await h.api.flags.list({ areas: ['A'], provider: null }, { all: false, limit: 10 })).map(
            (x) => x.flagId,
          ),
        ).toEqual([id]);
        expect(await h.api.flags.list({ areas: ['B'], provider: null }, { all: true, limit: 10 })).toEqual(
          [],
        );
        expect(
          await h.api.flags.resolve({ areas: ['A'], provider: null }, id, 'anna', 'corrected', null),
        ).toMatchObject({
          ok: true,
          flag: { resolution: 'corrected', resolvedBy: 'anna' },
        });
        expect(await h.api.flags.resolve(null, id, 'anna', 'corrected', null)).toMatchObject({
          ok: false,
          status: 409,
        });
        expect((await h.api.flags.ownFlags('s1')).map((x) => x.resolution)).toEqual(['corrected']);
        const own = await h.api.flags.ownVisits('s1', T0 - H, T0 + 24 * H, 10);
        expect(own.map((v) => [v.visitId, v.corrected, v.withdrawn])).toEqual([
          ['v1', true, false],
          ['v2', false, false],
          ['v3', false, false],
        ]);
        expect(await h.api.scopes.clientInScope({ areas: ['A'], provider: null }, 'c1')).toBe(true);
        expect(await h.api.scopes.clientInScope({ areas: ['B'], provider: null }, 'c1')).toBe(false);
        expect(await audit(h)).toEqual([
          'period.lock chef',
          'visit.correct chef',
          'period.unlock chef',
          'flag.create u-s1',
          'flag.resolve anna',
        ]);
      } finally {
        await h.close();
      }
    });
  });
}
