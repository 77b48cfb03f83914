/**
 * The scoped reads behind the area scope of coordinators and unit managers (gateway/src/auth/scope-reader.ts
 * `ScopeReader`) on both engines: SQLite's (store/sqlite/scope.ts, the embedded gateway) and PostgreSQL's
 * (store/postgres/care.ts `PgCareScopeReader`, `store.engine: "postgres"`) given the same rows answer the same,
 * for a scope of one area, one area and a provider, two areas, and none. The rows: two areas, clients of two
 * providers, staff, visits (open, closed, one withdrawn), unknown-card sightings (one card later registered),
 * an active and an inactive planned visit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScopeReader } from '../../gateway/src/auth/scope-reader.js';
import { SqliteScopeReader } from '../../gateway/src/store/sqlite/scope.js';
import type { DataScope } from '../../gateway/src/auth/scope.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { PgCareScopeReader } from '../../gateway/src/store/postgres/care.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const T = Date.UTC(2026, 2, 10, 8);
const card = (n: number) => `c1_${n.toString(16).padStart(32, '0')}`;

/** Rows by table, written the same way into both engines. */
const ROWS: Record<string, Array<Record<string, unknown>>> = {
  care_clients: [
    ['cl-a1', 'area-a', 'p-1'],
    ['cl-a2', 'area-a', 'p-2'],
    ['cl-a3', 'area-a', null],
    ['cl-b1', 'area-b', 'p-1'],
  ].map(([c, a, p]) => ({
    client_ref: c,
    area_id: a,
    json: JSON.stringify({ clientRef: c, areaId: a, ...(p ? { providerId: p } : {}) }),
    updated_at_ms: T,
  })),
  care_staff: [
    ['st-a', 'area-a'],
    ['st-b', 'area-b'],
  ].map(([s, a]) => ({
    staff_ref: s,
    area_id: a,
    json: JSON.stringify({ staffRef: s, areaId: a }),
    updated_at_ms: T,
  })),
  visits: [
    ['rd-a1', 'v1', 'cl-a1', card(1), 'open', 0],
    ['rd-a1', 'v2', 'cl-a1', card(1), 'closed', 1],
    ['rd-a2', 'v3', 'cl-a2', card(2), 'closed', 2],
    ['rd-a3', 'v4', 'cl-a3', card(1), 'open', 3],
    ['rd-b1', 'v5', 'cl-b1', card(3), 'closed', 4],
    ['rd-b1', 'v1', 'cl-b1', card(3), 'closed', 5], // the same visit id at another reader, another area
    ['rd-x', 'v6', null, card(4), 'closed', 6], // a reader placed nowhere
  ].map(([r, v, c, k, state, i]) => ({
    reader_id: r,
    visit_id: v,
    client_ref: c,
    card_ref: k,
    staff_ref: null,
    group_id: null,
    state,
    started_at_ms: T + (i as number) * 60_000,
    start_seq: (i as number) + 1,
    ended_at_ms: state === 'closed' ? T + (i as number) * 60_000 + 1_800_000 : null,
    end_seq: null,
    end_reason: state === 'closed' ? 'tap' : null,
    time_quality: 'synced',
    anomalies_json: '[]',
    late_end_seq: null,
    updated_at_ms: T + (i as number) * 1000,
  })),
  visit_corrections: [
    {
      correction_id: 1,
      reader_id: 'rd-a1',
      visit_id: 'v2',
      reason_code: 'tap-by-mistake',
      note: null,
      actor: 'test',
      request_id: null,
      at_ms: T,
      before_json: '{}',
      after_json: '{}',
      kind: 'withdrawn',
    },
  ],
  anomalies: [
    ['an-1', 'rd-a1', 'cl-a1', card(7), 1],
    ['an-2', 'rd-a1', 'cl-a1', card(7), 2],
    ['an-3', 'rd-a2', 'cl-a2', card(8), 3],
    ['an-4', 'rd-b1', 'cl-b1', card(7), 4],
    ['an-5', 'rd-a3', 'cl-a3', card(9), 5], // card 9 is registered below: no longer unknown
  ].map(([key, r, c, k, i], n) => ({
    id: n + 1,
    idempotency_key: key,
    kind: 'unknown-card',
    reader_id: r,
    visit_id: null,
    card_ref: k,
    staff_ref: null,
    client_ref: c,
    at_ms: T + (i as number) * 60_000,
    seq: i,
    detail: 'card not registered',
    created_at_ms: T + (i as number) * 60_000,
  })),
  cards: [{ card_ref: card(9), staff_ref: 'st-a', revoked_at: null, created_at: T }],
  care_planned_visits: [
    ['pv-a1', 'cl-a1', 1],
    ['pv-a1-old', 'cl-a1', 0],
    ['pv-b1', 'cl-b1', 1],
  ].map(([id, c, active]) => ({
    plan_version_id: 1,
    planned_visit_id: id,
    area_id: c === 'cl-b1' ? 'area-b' : 'area-a',
    client_ref: c,
    local_date: '2026-03-10',
    local_start: '09:00',
    start_ms: T,
    planned_minutes: 30,
    service_codes_json: '[]',
    staff_count: 1,
    staff_refs_json: '[]',
    active,
  })),
};

const SCOPES: Record<string, DataScope> = {
  'area a': { areas: ['area-a'], provider: null },
  'area a, provider p-1': { areas: ['area-a'], provider: 'p-1' },
  'areas a and b': { areas: ['area-a', 'area-b'], provider: null },
  none: { areas: [], provider: null },
};

/** Each of the reader's answers (synchronous on SQLite, promised on PostgreSQL), in order. */
async function each<A, T>(xs: readonly A[], f: (x: A) => T | Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (const x of xs) out.push(await f(x));
  return out;
}

/** Everything a reader answers for a scope, in one comparable value. */
async function answers(r: ScopeReader, s: DataScope): Promise<unknown> {
  const visitIds = ['v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'nope'];
  const visitsOf = async (q: { state: 'open' | 'recent'; readerId?: string; limit: number }) =>
    (await r.visits(s, q)).map((v) => `${v.readerId}/${v.visitId}/${v.state}`);
  return {
    clients: [...(await r.clients(s))].sort(),
    clientInScope: await each(['cl-a1', 'cl-a2', 'cl-a3', 'cl-b1', 'cl-x', null], (c) =>
      r.clientInScope(s, c),
    ),
    foreign: await each(['area-a', 'area-b'], (a) => r.foreignClientsOfArea(s, a)),
    staff: await each(['st-a', 'st-b', 'st-x'], (x) => r.staffInScope(s, x)),
    open: await visitsOf({ state: 'open', limit: 100 }),
    recent: await visitsOf({ state: 'recent', limit: 100 }),
    recentOfReader: await visitsOf({ state: 'recent', readerId: 'rd-a1', limit: 100 }),
    recentLimited: await visitsOf({ state: 'recent', limit: 1 }),
    byId: await each(visitIds, async (id) =>
      (await r.visitById(s, id)).map((v) => `${v.readerId}/${v.clientRef}`).sort(),
    ),
    anomalies: await r.anomalies(s, { limit: 100 }),
    anomaliesOfReader: (await r.anomalies(s, { readerId: 'rd-a1', kind: 'unknown-card', limit: 1 })).map(
      (a) => a.id,
    ),
    unknownCards: await r.unknownCards(s, 200),
    unknownCardsLimited: (await r.unknownCards(s, 1)).map((c) => c.cardRef),
    planned: await each(['pv-a1', 'pv-a1-old', 'pv-b1'], (p) => r.plannedVisitInScope(s, p)),
    cardSeen: await each([1, 2, 3, 4, 7, 8, 9], (n) => r.cardSeenInScope(s, card(n))),
  };
}

describe('ScopeReader: the same answers on SQLite and PostgreSQL for the same rows', () => {
  let dir: string;
  let db: Db;
  let pgc: PgCluster;
  let pool: PgPool;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vt-scope-contract-'));
    db = openDatabase(join(dir, 'gateway.db'), [
      ...sqliteMigrations,
      ...careMigrations,
      ...correctionMigrations,
    ]);
    pgc = await startPgCluster();
    pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
    await migrate(pool, postgresMigrations);
    for (const [table, rows] of Object.entries(ROWS)) {
      for (const row of rows) {
        const cols = Object.keys(row);
        db.prepare(
          `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
        ).run(...cols.map((c) => row[c]));
        await pool.query(
          `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
          cols.map((c) => row[c]),
        );
      }
    }
  }, 120_000);
  afterAll(async () => {
    db?.close();
    await pool?.end();
    await pgc?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  for (const [name, scope] of Object.entries(SCOPES)) {
    it(`scope: ${name}`, async () => {
      const sqlite = await answers(new SqliteScopeReader(db), scope);
      const pg = await answers(new PgCareScopeReader(pool), scope);
      expect(pg).toEqual(sqlite);
      if (name === 'area a') {
        // not vacuous: the area's rows and none of area b's
        expect(sqlite).toMatchObject({
          clients: ['cl-a1', 'cl-a2', 'cl-a3'],
          open: ['rd-a1/v1/open', 'rd-a3/v4/open'],
          unknownCards: [{ cardRef: card(8) }, { cardRef: card(7), taps: 2 }],
        });
        expect(JSON.stringify(sqlite)).not.toMatch(/cl-b1|rd-b1|st-b/);
      }
    });
  }

  it('withdrawn visits, marked for every caller', async () => {
    const keys = [
      { readerId: 'rd-a1', visitId: 'v2' },
      { readerId: 'rd-a1', visitId: 'v1' },
      { readerId: 'rd-b1', visitId: 'v5' },
    ];
    const sqlite = [...new SqliteScopeReader(db).withdrawnOf(keys)];
    expect(sqlite).toEqual(['rd-a1/v2']);
    expect([...(await new PgCareScopeReader(pool).withdrawnOf(keys))]).toEqual(sqlite);
    expect([...(await new PgCareScopeReader(pool).withdrawnOf([]))]).toEqual([]);
  });
});
