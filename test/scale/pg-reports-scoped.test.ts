import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, localToUtcMs } from '../../gateway/src/care/time.js';
import { openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { ADMIN_TOKEN, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { bundleGateway, spawnGateway, type GatewayChild } from './pg-gateway-child.js';

/**
 * Scoped callers, the manual close's period lock and the re-match after a correction, on two real gateway
 * processes sharing one PostgreSQL database (`store.engine: "postgres"`, issue 14):
 *
 * - a coordinator of area X sees X's visits, anomalies, unknown cards and registry clients, and nothing of
 *   area Y, on BOTH instances (the scoped routes read PostgreSQL's registry, not the instance's SQLite file,
 *   where there is none); a visit of Y is "not found" for them;
 * - a month of X locked through B refuses a manual close of X's visit through A (423, the lock named);
 * - a visit corrected into a planned visit's window through the instance that does NOT sweep (the care
 *   sweep ticks once an hour here) is matched to the plan at once;
 * - a reader's replacement shows on both instances' reader pages (replacedBy / replaces).
 *
 * The gateways run from one esbuild bundle of gateway/main.ts, as the other process tests do.
 */

const TZ = 'Europe/Stockholm';
const PASSWORD = 'a-long-password-scoped-1';

describe('scoped callers, period locks and re-matching on two gateway processes on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  let pool: PgPool | undefined;
  const children: GatewayChild[] = [];
  beforeAll(async () => {
    [pgc, bundle] = await Promise.all([startPgCluster(), bundleGateway()]);
    tmp = tempDir('vt-pg-scoped-');
  }, 120_000);
  afterAll(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null) {
        c.proc.kill('SIGTERM');
        await c.exited;
      }
    }
    await pool?.end();
    bundle?.cleanup();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'a coordinator of X sees X and not Y on both; a lock made on B refuses a close on A; a correction re-matches at once',
    { timeout: 300_000 },
    async () => {
      const started = Date.now();
      const url = await pgc.createDatabase();
      const files = [0, 1].map((i) => {
        const cfg = testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 3 },
          // the timed sweep runs once at start and then hourly: a re-match seen within seconds is not the sweep's
          care: { tickSeconds: 3600 },
          logLevel: 'info',
        });
        const file = join(tmp.dir, `gw-${i}.json`);
        writeFileSync(file, JSON.stringify(cfg));
        return file;
      });
      // A starts first and takes the sweep's lease; B never sweeps
      children.push(await spawnGateway(bundle.file, files[0]!));
      children.push(await spawnGateway(bundle.file, files[1]!));
      const [a, b] = children as [GatewayChild, GatewayChild];
      pool = openPgPool({ url, max: 2 });
      const db = pool;

      const call = async (
        c: GatewayChild,
        method: string,
        path: string,
        o: { body?: unknown; session?: { cookie: string; csrf: string } } = {},
      ) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
          method,
          headers: {
            ...(o.session
              ? { cookie: `vt_session=${o.session.cookie}`, 'x-csrf-token': o.session.csrf }
              : { authorization: `Bearer ${ADMIN_TOKEN}` }),
            ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
        });
        const text = await res.text();
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = {};
        }
        return { status: res.status, body, text };
      };

      // registry (through A): area X with client cx and staff sx, area Y with client cy
      const client = (clientRef: string, areaId: string) => ({
        clientRef,
        areaId,
        teamId: null,
        providerId: 'p-1',
        birthYear: 1940,
        kkikEligible: null,
        decisionTypes: ['personal-care'],
        careContactStaffRef: null,
        palliative: false,
        activeFrom: '2020-01-01',
        activeTo: null,
      });
      const staff = (staffRef: string, areaId: string) => ({
        staffRef,
        teamId: null,
        areaId,
        category: 'care',
        activeFrom: '2020-01-01',
        activeTo: null,
      });
      const reg = await call(a, 'PUT', '/api/plan/registry', {
        body: {
          providers: [{ providerId: 'p-1', name: 'Kommunen', kind: 'municipal' }],
          areas: [
            { areaId: 'area-x', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null },
            { areaId: 'area-y', name: 'Söder', lateAfterMinutes: null, missedAfterMinutes: null },
          ],
          clients: [client('cx', 'area-x'), client('cy', 'area-y')],
          staff: [staff('sx', 'area-x'), staff('sy', 'area-y')],
        },
      });
      expect(reg.status, reg.text).toBe(200);

      // two days ago, local time: cx's planned visit at 10:00; cx's tap visit at 16:00 (outside its window),
      // an open visit of cx and a closed one of cy; unknown cards tapped at cx and at cy
      const day = addDays(new Date().toISOString().slice(0, 10), -2);
      const at = (hhmm: string) => localToUtcMs(day, hhmm, TZ);
      const now = Date.now();
      const visit = (
        readerId: string,
        visitId: string,
        clientRef: string,
        startMs: number,
        endMs: number | null,
      ) => [
        readerId,
        visitId,
        clientRef,
        // a pseudonymised card reference, as the gateway stores them
        `c1_${createHash('md5').update(visitId).digest('hex')}`,
        clientRef === 'cx' ? 'sx' : 'sy',
        endMs === null ? 'open' : 'closed',
        startMs,
        endMs,
        endMs === null ? null : 'tap',
        now,
      ];
      for (const v of [
        visit('rd-x', 'vx1', 'cx', at('16:00'), at('16:25')),
        visit('rd-x', 'vx-open', 'cx', at('12:00'), null),
        visit('rd-y', 'vy1', 'cy', at('11:00'), at('11:30')),
      ]) {
        await db.query(
          `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, state, started_at_ms,
             ended_at_ms, end_reason, time_quality, updated_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'synced', $10)`,
          v,
        );
      }
      for (const [i, readerId, clientRef, cardRef] of [
        [1, 'rd-x', 'cx', 'unknown-at-x'],
        [2, 'rd-y', 'cy', 'unknown-at-y'],
      ] as const) {
        await db.query(
          `INSERT INTO anomalies (idempotency_key, kind, reader_id, card_ref, client_ref, at_ms, detail, created_at_ms)
           VALUES ($1, 'unknown-card', $2, $3, $4, $5, 'card not registered', $5)`,
          [`an-${i}`, readerId, cardRef, clientRef, at('09:00')],
        );
      }
      const imported = await call(a, 'POST', '/api/plan/import', {
        body: {
          areaId: 'area-x',
          fromDate: day,
          toDate: day,
          visits: [
            { plannedVisitId: 'pv-x1', clientRef: 'cx', date: day, start: '10:00', plannedMinutes: 30 },
          ],
        },
      });
      expect(imported.status, imported.text).toBe(200);
      const matchOf = async (key: string) =>
        (
          await db.query<{ planned_visit_id: string | null }>(
            'SELECT planned_visit_id FROM care_visit_matches WHERE executed_key = $1',
            [key],
          )
        ).rows[0]?.planned_visit_id ?? null;
      expect(await matchOf('rd-x/vx1')).toBeNull(); // 16:00 is far outside 10:00's window

      // a coordinator of area X (made through A), logged in on both instances
      const made = await call(a, 'POST', '/api/users', {
        body: {
          name: 'kim.x',
          displayName: 'Kim X',
          role: 'coordinator',
          areas: ['area-x'],
          password: PASSWORD,
        },
      });
      expect(made.status, made.text).toBe(201);
      const login = async (c: GatewayChild) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}/api/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'kim.x', password: PASSWORD }),
        });
        expect(res.status).toBe(200);
        const cookie = /vt_session=([^;]*)/.exec(res.headers.get('set-cookie') ?? '')?.[1] ?? '';
        return { cookie, csrf: ((await res.json()) as { csrf: string }).csrf };
      };

      for (const c of [a, b]) {
        const session = await login(c);
        const visits = await call(c, 'GET', '/api/visits?state=recent', { session });
        expect(visits.status, visits.text).toBe(200);
        const ids = (visits.body.visits as { visitId: string }[]).map((v) => v.visitId).sort();
        expect(ids).toEqual(['vx-open', 'vx1']);
        const open = await call(c, 'GET', '/api/visits?state=open', { session });
        expect((open.body.visits as { visitId: string }[]).map((v) => v.visitId)).toEqual(['vx-open']);
        const anomalies = await call(c, 'GET', '/api/anomalies', { session });
        expect((anomalies.body.anomalies as { clientRef: string }[]).map((x) => x.clientRef)).toEqual(['cx']);
        const cards = await call(c, 'GET', '/api/cards/unknown', { session });
        expect((cards.body.cards as { cardRef: string }[]).map((x) => x.cardRef)).toEqual(['unknown-at-x']);
        const registry = await call(c, 'GET', '/api/plan/registry', { session });
        expect((registry.body.clients as { clientRef: string }[]).map((x) => x.clientRef)).toEqual(['cx']);
        expect((registry.body.areas as { areaId: string }[]).map((x) => x.areaId)).toEqual(['area-x']);
        // Y's visit is "not found" for them, as an id that does not exist
        const foreign = await call(c, 'POST', '/api/visits/vy1/close', {
          session,
          body: { reason: 'left' },
        });
        expect(foreign.status, foreign.text).toBe(404);
        expect(JSON.stringify([visits.body, anomalies.body, cards.body, registry.body])).not.toMatch(
          /vy1|\bcy\b|unknown-at-y|area-y/,
        );
        // the admin token still sees both areas on this instance
        const all = await call(c, 'GET', '/api/visits?state=recent');
        expect((all.body.visits as { visitId: string }[]).map((v) => v.visitId).sort()).toEqual([
          'vx-open',
          'vx1',
          'vy1',
        ]);
      }

      // X's month locked through B: a manual close of X's open visit through A is refused with the lock
      const month = day.slice(0, 7);
      const locked = await call(b, 'POST', '/api/periods/locks', {
        body: { areaId: 'area-x', month, note: 'attested' },
      });
      expect(locked.status, locked.text).toBe(201);
      const close = await call(a, 'POST', '/api/visits/vx-open/close', { body: { reason: 'forgot to tap' } });
      expect(close.status, close.text).toBe(423);
      expect(close.body.error).toBe('period-locked');
      expect((close.body.lock as { areaId: string; month: string }).month).toBe(month);
      const stillOpen = await db.query<{ state: string }>(
        `SELECT state FROM visits WHERE reader_id = 'rd-x' AND visit_id = 'vx-open'`,
      );
      expect(stillOpen.rows[0]?.state).toBe('open');
      // unlocked through B, the correction below is allowed again
      const unlocked = await call(b, 'POST', `/api/periods/locks/area-x/${month}/unlock`, {
        body: { reason: 'a late correction' },
      });
      expect(unlocked.status, unlocked.text).toBe(200);

      // cx's visit corrected through B (which does not sweep) into the planned visit's window: matched at once
      const corrected = await call(b, 'POST', '/api/visits/vx1/corrections', {
        body: {
          readerId: 'rd-x',
          startedAt: new Date(at('10:05')).toISOString(),
          endedAt: new Date(at('10:35')).toISOString(),
          reasonCode: 'wrong-time',
          note: 'tapped in the afternoon by mistake',
          requestId: 'pg-scoped-0001',
        },
      });
      const errors = () => [a, b].flatMap((c) => c.lines().filter((l) => l.includes('"level":50')));
      expect(corrected.status, `${corrected.text} ${errors().join('\n')}`).toBe(201);
      const t0 = Date.now();
      await waitUntil(async () => (await matchOf('rd-x/vx1')) === 'pv-x1', 20_000);
      const rematchMs = Date.now() - t0;
      const plan = await call(a, 'GET', `/api/plan/matches?from=${day}&to=${day}&client=cx`);
      expect(plan.status, plan.text).toBe(200);
      expect(
        (plan.body.matches as { plannedVisitId: string; executedKeys: string[] }[]).find(
          (m) => m.plannedVisitId === 'pv-x1',
        )?.executedKeys,
      ).toEqual(['rd-x/vx1']);

      // a reader replaced (the row as fleet/replace.ts writes it): both instances' reader pages show the links
      // from their copy of PostgreSQL's rows (refreshed every 5 s)
      for (const readerId of ['rd-old', 'rd-new']) {
        const r = await call(a, 'POST', '/api/readers', { body: { readerId, clientRef: 'cx' } });
        expect(r.status, r.text).toBe(201);
      }
      await db.query(
        `INSERT INTO reader_replacements (old_reader_id, new_reader_id, client_ref, replaced_at_ms, closed_visits)
         VALUES ('rd-old', 'rd-new', 'cx', $1, 0)`,
        [Date.now()],
      );
      for (const c of [a, b]) {
        await waitUntil(
          async () => (await call(c, 'GET', '/api/readers/rd-old')).body.replacedBy === 'rd-new',
          20_000,
        );
        expect((await call(c, 'GET', '/api/readers/rd-new')).body).toMatchObject({
          replaces: 'rd-old',
          replacedBy: null,
        });
        const list = (await call(c, 'GET', '/api/readers')).body.readers as {
          readerId: string;
          replacedBy: string | null;
        }[];
        expect(list.find((r) => r.readerId === 'rd-old')?.replacedBy).toBe('rd-new');
      }

      console.log(
        `pg-reports-scoped: scoped reads on both instances, lock across instances, re-match ${rematchMs} ms after the correction, replacement links on both; ` +
          `${((Date.now() - started) / 1000).toFixed(0)} s at load ${loadavg()[0]?.toFixed(1)}`,
      );
    },
  );
});
