/**
 * The re-attribution pass (gateway/src/visits/attribution.ts): an unknown card assigned later resolves
 * its earlier taps, once, atomically. Through the real visit pipeline on a temp database.
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CardRegistry } from '../../gateway/src/cards/registry.js';
import { SqliteCardStore } from '../../gateway/src/store/sqlite/cards.js';
import { assignRefusal } from '../../gateway/src/cards/routes.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SCHEMA_VERSION, VisitEvent, WebhookBatch } from '../../protocol/index.js';
import { checkAttributions } from '../../simulator/checker-match.js';
import {
  addReader,
  card,
  createEnv,
  FakeClock,
  ingestBatch,
  ofType,
  outboxEvents,
  T0,
  tap,
  type TestEnv,
} from '../gateway-visits/helpers.js';

const R = 'r-home-7';
const X = card(0x77); // the unknown card
const K = card(0x11); // a known card
const envs: TestEnv[] = [];
afterEach(async () => {
  for (const e of envs.splice(0)) await e.close();
});

function env(): TestEnv {
  const e = createEnv({ fakeClock: new FakeClock(T0 + 3_600_000) });
  envs.push(e);
  addReader(e.db, R, 'home-7');
  e.pipeline.registry.addCard({ cardRef: K, staffRef: 'nurse-k' });
  return e;
}

/** Unknown card X: a finished visit, a refused tap, an open visit; known card K: one visit. */
function tapUnknownCard(e: TestEnv): void {
  ingestBatch(e.db, {
    readerId: R,
    events: [
      tap(R, 1, { card: X, decision: 'start', visitId: 'v1' }),
      tap(R, 2, { card: X, decision: 'stop', visitId: 'v1' }),
      tap(R, 3, { card: X, decision: 'rejected', visitId: null, rejectReason: 'unknown-card' }),
      tap(R, 4, { card: K, decision: 'start', visitId: 'vk' }),
      tap(R, 5, { card: X, decision: 'start', visitId: 'v2' }),
    ],
  });
  e.pipeline.processNow();
}

const staffOf = (db: Db, visitId: string): unknown =>
  db.prepare('SELECT staff_ref FROM visits WHERE reader_id = ? AND visit_id = ?').pluck().get(R, visitId);
const openUnknownAnomalies = (db: Db): number =>
  db
    .prepare(
      `SELECT count(*) FROM anomalies WHERE card_ref = ? AND kind = 'unknown-card' AND resolved_at_ms IS NULL`,
    )
    .pluck()
    .get(X) as number;
const outboxKeys = (db: Db): string[] =>
  db.prepare('SELECT idempotency_key FROM outbox ORDER BY id').pluck().all() as string[];

describe('unknown card assigned later: re-attribution pass', () => {
  it('attributes the earlier visits, reports the refused tap, resolves the anomalies, once', () => {
    const e = env();
    tapUnknownCard(e);
    expect([staffOf(e.db, 'v1'), staffOf(e.db, 'v2'), staffOf(e.db, 'vk')]).toEqual([null, null, 'nurse-k']);
    expect(openUnknownAnomalies(e.db)).toBe(3);
    const before = outboxKeys(e.db);

    e.clock.advance(60_000);
    const r = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2', actor: 'coordinator-eva' });
    expect(r).toMatchObject({
      registry: 'added',
      attributed: { visits: 2, refusedTaps: 1, anomaliesResolved: 3, events: 3 },
    });

    // Visits carry the staff member; the known card's visit is untouched.
    expect([staffOf(e.db, 'v1'), staffOf(e.db, 'v2'), staffOf(e.db, 'vk')]).toEqual([
      'nurse-2',
      'nurse-2',
      'nurse-k',
    ]);
    const audit = e.db
      .prepare(`SELECT visit_id, actor, at_ms FROM visit_audit WHERE action = 'attributed' ORDER BY visit_id`)
      .all();
    expect(audit).toEqual([
      { visit_id: 'v1', actor: 'coordinator-eva', at_ms: e.clock.now() },
      { visit_id: 'v2', actor: 'coordinator-eva', at_ms: e.clock.now() },
    ]);
    // Anomalies resolved, with who / when / to whom.
    expect(openUnknownAnomalies(e.db)).toBe(0);
    const resolved = e.db
      .prepare(
        `SELECT seq, visit_id, resolved_by, resolved_at_ms, resolution, resolved_staff_ref, staff_ref
           FROM anomalies WHERE kind = 'unknown-card' ORDER BY seq`,
      )
      .all();
    expect(resolved).toEqual(
      [
        [1, 'v1'],
        [3, null],
        [5, 'v2'],
      ].map(([seq, visit_id]) => ({
        seq,
        visit_id,
        resolved_by: 'coordinator-eva',
        resolved_at_ms: e.clock.now(),
        resolution: 'card-assigned',
        resolved_staff_ref: 'nurse-2',
        staff_ref: null, // as recorded at the tap
      })),
    );

    // One visit.attributed per visit / refused tap, after everything already queued, all valid.
    const keys = outboxKeys(e.db);
    expect(keys.slice(0, before.length)).toEqual(before);
    expect(keys.slice(before.length)).toEqual([
      `vt1:${R}:1:attributed`,
      `vt1:${R}:5:attributed`,
      `vt1:${R}:3:attributed`,
    ]);
    const out = outboxEvents(e.db);
    for (const ev of out) expect(VisitEvent.safeParse(ev).success).toBe(true);
    const attributed = ofType(out, 'visit.attributed');
    expect(attributed).toEqual([
      {
        type: 'visit.attributed',
        idempotencyKey: `vt1:${R}:1:attributed`,
        visitId: 'v1',
        readerId: R,
        clientRef: 'home-7',
        cardRef: X,
        staffRef: 'nurse-2',
        previousStaffRef: null,
        seq: 1,
        attributedAt: new Date(e.clock.now()).toISOString(),
        attributedBy: 'coordinator-eva',
        reason: 'card-assigned',
        resolves: [`vt1:${R}:1:anomaly:unknown-card`],
      },
      expect.objectContaining({ visitId: 'v2', seq: 5, resolves: [`vt1:${R}:5:anomaly:unknown-card`] }),
      expect.objectContaining({ visitId: null, seq: 3, resolves: [`vt1:${R}:3:anomaly:unknown-card`] }),
    ]);
    // Each attribution comes after its visit's events (outbox delivers in id order).
    const pos = (k: string) => keys.indexOf(k);
    expect(pos(`vt1:${R}:1:attributed`)).toBeGreaterThan(pos(`vt1:${R}:2:ended`));
    expect(pos(`vt1:${R}:5:attributed`)).toBeGreaterThan(pos(`vt1:${R}:5:started`));
    expect(pos(`vt1:${R}:3:attributed`)).toBeGreaterThan(pos(`vt1:${R}:3:anomaly:unknown-card`));

    // Assigning again, or importing the same row again: nothing new.
    const again = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2', actor: 'coordinator-eva' });
    expect(again).toMatchObject({
      registry: 'unchanged',
      attributed: { visits: 0, refusedTaps: 0, events: 0 },
    });
    expect(outboxKeys(e.db)).toEqual(keys);

    // The open visit's stop, processed after the assignment, carries the staff member.
    ingestBatch(e.db, { readerId: R, events: [tap(R, 6, { card: X, decision: 'stop', visitId: 'v2' })] });
    e.pipeline.processNow();
    const ended = ofType(outboxEvents(e.db), 'visit.ended').find((x) => x.visitId === 'v2');
    expect(ended).toMatchObject({ staffRef: 'nurse-2', idempotencyKey: `vt1:${R}:6:ended` });
    expect(outboxKeys(e.db).slice(keys.length)).toEqual([`vt1:${R}:6:ended`]);
  });

  it('re-assigning to someone else never rewrites the visits already attributed', () => {
    const e = env();
    tapUnknownCard(e);
    e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2' });
    const keys = outboxKeys(e.db);
    const r = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-9' });
    expect(r).toMatchObject({ registry: 'reassigned', attributed: { visits: 0, events: 0 } });
    expect([staffOf(e.db, 'v1'), staffOf(e.db, 'v2')]).toEqual(['nurse-2', 'nurse-2']);
    expect(outboxKeys(e.db)).toEqual(keys);
  });

  it('taps made before the assignment but processed after it (reader offline) resolve through the registry', () => {
    const e = env();
    e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-3' }); // nothing seen yet: nothing to attribute
    // The reader was offline: its taps from an hour before the assignment arrive now.
    ingestBatch(e.db, {
      readerId: R,
      events: [
        tap(R, 1, { card: X, decision: 'start', visitId: 'v1' }),
        tap(R, 2, { card: X, decision: 'stop', visitId: 'v1' }),
        tap(R, 3, { card: X, decision: 'rejected', visitId: null, rejectReason: 'unknown-card' }),
      ],
    });
    e.pipeline.processNow();
    expect(staffOf(e.db, 'v1')).toBe('nurse-3');
    const out = outboxEvents(e.db);
    expect(ofType(out, 'visit.started')[0]).toMatchObject({ staffRef: 'nurse-3', anomalies: [] });
    expect(ofType(out, 'visit.ended')[0]).toMatchObject({ staffRef: 'nurse-3' });
    // The refused tap is reported with the staff member already; nothing is left to attribute.
    expect(ofType(out, 'visit.anomaly')).toMatchObject([
      { seq: 3, anomaly: 'unknown-card', staffRef: 'nurse-3' },
    ]);
    expect(ofType(out, 'visit.attributed')).toEqual([]);
    const r = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-3' });
    expect(r.attributed).toMatchObject({ events: 0, anomaliesResolved: 0 });
  });

  it('a failure in the middle of the pass leaves nothing half done; the retry gives each event once', () => {
    const e = env();
    tapUnknownCard(e);
    const before = outboxKeys(e.db);
    const real = new SqliteOutbox({ db: e.db });
    let n = 0;
    const failing = new CardRegistry({
      store: new SqliteCardStore({
        db: e.db,
        clock: e.clock,
        outbox: {
          enqueue: (ev, now) => {
            const wrote = real.enqueue(ev, now);
            if (ev.type === 'visit.attributed' && ++n === 2) throw new Error('disk full (simulated)');
            return wrote;
          },
        },
      }),
      clock: e.clock,
    });
    expect(() => failing.addCard({ cardRef: X, staffRef: 'nurse-2' })).toThrow(/disk full/);
    expect(n).toBe(2);
    // Rolled back as a whole: card unregistered, visits unattributed, anomalies open, no events.
    expect(e.db.prepare('SELECT count(*) FROM cards WHERE card_ref = ?').pluck().get(X)).toBe(0);
    expect([staffOf(e.db, 'v1'), staffOf(e.db, 'v2')]).toEqual([null, null]);
    expect(openUnknownAnomalies(e.db)).toBe(3);
    expect(outboxKeys(e.db)).toEqual(before);

    const r = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2' });
    expect(r.attributed.events).toBe(3);
    const attributed = outboxKeys(e.db).filter((k) => k.endsWith(':attributed'));
    expect(attributed.sort()).toEqual([
      `vt1:${R}:1:attributed`,
      `vt1:${R}:3:attributed`,
      `vt1:${R}:5:attributed`,
    ]);
  });

  it('a SIGKILL in the middle of the pass (child process) loses the whole transaction; the retry gives each event once', () => {
    const e = env();
    tapUnknownCard(e);
    const before = outboxKeys(e.db);
    const dbPath = join(e.dir, 'gateway.db');
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        resolve(import.meta.dirname, 'unknown-cards-crash-child.ts'),
        dbPath,
        X,
        'nurse-2',
        '2',
      ],
      { cwd: resolve(import.meta.dirname, '..', '..'), encoding: 'utf8', timeout: 60_000 },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(child.stdout).toContain('killing after 2 attribution(s)');
    // A fresh connection sees what survived the crash: nothing of the pass.
    const db = openDatabase(dbPath, sqliteMigrations);
    try {
      expect(db.prepare('SELECT count(*) FROM cards WHERE card_ref = ?').pluck().get(X)).toBe(0);
      expect(outboxKeys(db)).toEqual(before);
      expect(openUnknownAnomalies(db)).toBe(3);
      expect(
        db.prepare('SELECT count(*) FROM visits WHERE card_ref = ? AND staff_ref IS NULL').pluck().get(X),
      ).toBe(2);
    } finally {
      db.close();
    }
    const r = e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2' });
    expect(r.attributed).toMatchObject({ visits: 2, refusedTaps: 1, events: 3 });
    expect(outboxKeys(e.db).filter((k) => k.endsWith(':attributed'))).toHaveLength(3);
  });

  it('the simulator checker flags an attribution that comes before its visit, or twice', () => {
    const e = env();
    tapUnknownCard(e);
    e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2' });
    const out = outboxEvents(e.db);
    expect(checkAttributions(out)).toEqual({ summary: '3 attributions', failures: [] });
    const v1 = ofType(out, 'visit.attributed')[0] as VisitEvent;
    const early = [v1, ...out.filter((x) => x !== v1)];
    expect(checkAttributions(early).failures).toEqual([
      `vt1:${R}:1:attributed: visit v1 attributed before the backend saw it`,
      `vt1:${R}:1:attributed: resolves vt1:${R}:1:anomaly:unknown-card, not received before`,
    ]);
    expect(checkAttributions([...out, { ...v1, idempotencyKey: 'vt1:other:1:attributed' }]).failures).toEqual(
      ['vt1:other:1:attributed: visit v1 attributed twice'],
    );
  });

  it('assign refuses a card registered to someone else, or revoked, naming the fix', () => {
    expect(assignRefusal(null, 'nurse-2', false)).toBeNull();
    expect(assignRefusal({ staffRef: 'nurse-2', revokedAtMs: null }, 'nurse-2', false)).toBeNull();
    expect(assignRefusal({ staffRef: 'nurse-1', revokedAtMs: null }, 'nurse-2', false)).toMatch(
      /already registered to nurse-1; its visits so far stay attributed to nurse-1.*"reassign": true.*--reassign/,
    );
    expect(assignRefusal({ staffRef: 'nurse-2', revokedAtMs: T0 }, 'nurse-2', false)).toMatch(
      /revoked \(it was registered to nurse-2\).*"reassign": true/,
    );
    expect(assignRefusal({ staffRef: 'nurse-1', revokedAtMs: T0 }, 'nurse-2', true)).toBeNull();
  });

  it('visit.attributed is a strict member of the webhook union (staff required, visitId nullable)', () => {
    const e = env();
    tapUnknownCard(e);
    e.pipeline.registry.addCard({ cardRef: X, staffRef: 'nurse-2' });
    const [a] = ofType(outboxEvents(e.db), 'visit.attributed');
    const batch = (events: unknown[]) => ({
      schemaVersion: SCHEMA_VERSION,
      batchId: 'b1_0123456789',
      sentAt: '2026-11-23T10:00:00.000Z',
      events,
    });
    expect(WebhookBatch.safeParse(batch([a])).success).toBe(true);
    expect(VisitEvent.safeParse({ ...a, visitId: null }).success).toBe(true);
    expect(VisitEvent.safeParse({ ...a, staffRef: null }).success).toBe(false);
    expect(VisitEvent.safeParse({ ...a, reason: 'guessed' }).success).toBe(false);
    expect(VisitEvent.safeParse({ ...a, extra: 1 }).success).toBe(false);
  });
});
