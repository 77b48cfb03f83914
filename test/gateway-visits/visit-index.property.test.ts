/**
 * Property: the in-memory visit index (gateway/src/store/sqlite/visit-index.ts) answers "same staff member
 * (or card) at another reader at that time" exactly as the SQL it replaces, whatever happened before:
 * visit writes through the repo, direct SQL updates followed by invalidate() (as the card
 * re-attribution does), transactions and savepoints that roll back, commits by a second connection,
 * and the clock moving the index's horizon; and with a budget of a few visits, the sweeps that drop the
 * visits that ended first (the index's memory bound) never change an answer.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { VisitRow } from '../../gateway/src/visits/repo.js';
import { VisitRepo } from '../../gateway/src/visits/repo.js';
import { SqliteVisitStore } from '../../gateway/src/store/sqlite/visits.js';
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
} from './helpers.js';

const H = 3_600_000;

type Op =
  | {
      kind: 'upsert';
      reader: number;
      visit: number;
      staff: number | null;
      startH: number | null;
      lenH: number | null;
    }
  | { kind: 'setStaff'; reader: number; visit: number; staff: number | null }
  | { kind: 'delete'; reader: number; visit: number }
  | { kind: 'rollback'; ops: Op[]; nested: boolean }
  | { kind: 'other-connection'; reader: number; visit: number; staff: number }
  | { kind: 'advance'; hours: number }
  | { kind: 'query'; reader: number; staff: number | null; card: number; atH: number };

const reader = fc.integer({ min: 1, max: 3 });
const visit = fc.integer({ min: 1, max: 6 });
const staff = fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 4 });
const cardN = fc.integer({ min: 1, max: 3 });
// Hours relative to the clock: most recent, some more than 9 days back (outside the index).
const hour = fc.oneof(
  { arbitrary: fc.integer({ min: -60, max: 30 }), weight: 4 },
  { arbitrary: fc.integer({ min: -400, max: -200 }), weight: 1 },
);

const write: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('upsert' as const),
      reader,
      visit,
      staff,
      startH: fc.option(hour, { nil: null, freq: 8 }),
      lenH: fc.option(fc.integer({ min: 0, max: 48 }), { nil: null, freq: 2 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant('setStaff' as const), reader, visit, staff }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), reader, visit }), weight: 1 },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: write, weight: 6 },
  {
    arbitrary: fc.record({
      kind: fc.constant('rollback' as const),
      ops: fc.array(write, { minLength: 1, maxLength: 5 }),
      nested: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('other-connection' as const),
      reader,
      visit,
      staff: fc.integer({ min: 1, max: 3 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 80 }) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('query' as const), reader, staff, card: cardN, atH: hour }),
    weight: 5,
  },
);

let env: TestEnv | null = null;
afterEach(async () => {
  await env?.close();
  env = null;
});

function row(o: Extract<Op, { kind: 'upsert' }>, nowMs: number): VisitRow {
  const started = o.startH === null ? null : nowMs + o.startH * H;
  const ended = started !== null && o.lenH !== null ? started + o.lenH * H : null;
  return {
    readerId: `r${o.reader}`,
    visitId: `v${o.visit}`,
    clientRef: null,
    // A visit keeps its card (the repo's upsert never changes card_ref); cards are shared by visits.
    cardRef: card(((o.reader + o.visit) % 3) + 1),
    staffRef: o.staff === null ? null : `s${o.staff}`,
    groupId: null,
    state: ended === null && started !== null ? 'open' : 'closed',
    startedAtMs: started,
    startSeq: null,
    endedAtMs: ended ?? (started === null ? nowMs : null),
    endSeq: null,
    endReason: null,
    timeQuality: 'synced',
    anomalies: [],
    lateEndSeq: null,
    updatedAtMs: nowMs,
  };
}

describe('visit index (property)', () => {
  it.each([
    { budget: undefined, name: 'the default budget', seed: 20261203, share: 1 / 4 },
    { budget: 4, name: 'a budget of 4 visits (sweeps)', seed: 20261207, share: 1 / 10 },
  ])(
    'answers like SQLite through writes, direct updates, rollbacks, other connections and time: $name',
    ({ budget, seed, share }) => {
      let queries = 0;
      let fromMemory = 0;
      let sweeps = 0;
      fc.assert(
        fc.property(fc.array(op, { minLength: 20, maxLength: 80 }), (ops) => {
          void env?.close();
          const clock = new FakeClock();
          env = createEnv({ fakeClock: clock });
          const { db } = env;
          const repo = new VisitRepo({
            store: new SqliteVisitStore(db),
            clock,
            ...(budget !== undefined ? { indexMaxVisits: budget } : {}),
          });
          const other = new Database(join(env.dir, 'gateway.db'));
          const setStaff = db.prepare('UPDATE visits SET staff_ref = ? WHERE reader_id = ? AND visit_id = ?');
          const del = db.prepare('DELETE FROM visits WHERE reader_id = ? AND visit_id = ?');
          const apply = (o: Op): void => {
            switch (o.kind) {
              case 'upsert':
                repo.upsert(row(o, clock.now()));
                return;
              case 'setStaff':
                // A writer with its own SQL (the card re-attribution) tells the index.
                if (
                  setStaff.run(o.staff === null ? null : `s${o.staff}`, `r${o.reader}`, `v${o.visit}`).changes
                )
                  repo.index.invalidate();
                return;
              case 'delete':
                if (del.run(`r${o.reader}`, `v${o.visit}`).changes) repo.index.invalidate();
                return;
              case 'rollback':
                try {
                  db.transaction(() => {
                    if (o.nested) {
                      db.transaction(() => o.ops.forEach(apply))();
                      query({ kind: 'query', reader: 1, staff: 1, card: 1, atH: 0 }); // inside, before the rollback
                    } else o.ops.forEach(apply);
                    throw new Error('roll back');
                  })();
                } catch {
                  // rolled back, as intended
                }
                return;
              case 'other-connection':
                other
                  .prepare('UPDATE visits SET staff_ref = ? WHERE reader_id = ? AND visit_id = ?')
                  .run(`s${o.staff}`, `r${o.reader}`, `v${o.visit}`);
                return;
              case 'advance':
                clock.advance(o.hours * H);
                return;
              case 'query':
                query(o);
            }
          };
          const query = (o: Extract<Op, { kind: 'query' }>): void => {
            const q = {
              readerId: `r${o.reader}`,
              staffRef: o.staff === null ? null : `s${o.staff}`,
              cardRef: card(o.card),
              atMs: clock.now() + o.atH * H,
            };
            const sql = repo.overlappingElsewhereSql(q);
            const want = sql && { readerId: sql.readerId, visitId: sql.visitId };
            // The index's own answer (before the repo re-reads the row), and the repo's.
            const mem = repo.index.overlappingElsewhere({
              by: q.staffRef === null ? 'card' : 'staff',
              key: q.staffRef ?? q.cardRef,
              readerId: q.readerId,
              atMs: q.atMs,
            });
            queries++;
            if (mem !== undefined) {
              fromMemory++;
              expect(mem).toEqual(want);
            }
            const got = repo.overlappingElsewhere(q);
            expect(got && { readerId: got.readerId, visitId: got.visitId }).toEqual(want);
          };
          try {
            ops.forEach(apply);
            // And a last sweep over every question.
            for (let r = 1; r <= 3; r++)
              for (const s of [null, 1, 2, 3])
                for (let c = 1; c <= 3; c++)
                  for (const atH of [-300, -40, -10, -1, 0, 5, 20])
                    query({ kind: 'query', reader: r, staff: s, card: c, atH });
            if (budget !== undefined) {
              const n = repo.index.size();
              expect(n.staffVisits + n.cardVisits).toBeLessThanOrEqual(Math.max(budget, 18) * 2);
            }
          } finally {
            sweeps += repo.index.stats.sweeps;
            other.close();
          }
        }),
        { numRuns: 100, seed },
      );
      // The test must exercise the in-memory path, not only the SQL fallback.
      expect(fromMemory).toBeGreaterThan(queries * share);
      if (budget !== undefined) expect(sweeps).toBeGreaterThan(50);
      else expect(sweeps).toBe(0);
    },
  );

  const open = (
    readerId: string,
    visitId: string,
    staffRef: string | null,
    startedAtMs: number,
  ): VisitRow => ({
    readerId,
    visitId,
    clientRef: null,
    cardRef: card(1),
    staffRef,
    groupId: null,
    state: 'open',
    startedAtMs,
    startSeq: null,
    endedAtMs: null,
    endSeq: null,
    endReason: null,
    timeQuality: 'synced',
    anomalies: [],
    lateEndSeq: null,
    updatedAtMs: startedAtMs,
  });
  const at = (repo: VisitRepo, staffRef: string, atMs: number) => {
    const q = { by: 'staff' as const, key: staffRef, readerId: 'r1', atMs };
    return repo.index.overlappingElsewhere(q);
  };

  it('reloads after a staff change written by plain SQL and invalidate() (card re-attribution)', () => {
    const clock = new FakeClock();
    env = createEnv({ fakeClock: clock });
    const repo = new VisitRepo({ store: new SqliteVisitStore(env.db), clock });
    const now = clock.now();
    expect(at(repo, 's1', now)).toBeNull(); // loads s1
    expect(at(repo, 's2', now)).toBeNull(); // loads s2
    repo.upsert(open('r2', 'v1', 's1', now - H));
    expect(at(repo, 's1', now)).toEqual({ readerId: 'r2', visitId: 'v1' });
    env.db.prepare(`UPDATE visits SET staff_ref = 's2' WHERE visit_id = 'v1'`).run();
    repo.index.invalidate();
    expect(at(repo, 's1', now)).toBeNull();
    expect(at(repo, 's2', now)).toEqual({ readerId: 'r2', visitId: 'v1' });
    // And through the repo: the same visit, same start, another staff member.
    repo.upsert(open('r2', 'v1', 's1', now - H));
    expect(at(repo, 's2', now)).toBeNull();
    expect(at(repo, 's1', now)).toEqual({ readerId: 'r2', visitId: 'v1' });
    expect(repo.index.stats.loads).toBe(4); // s1, s2, then both again after invalidate()
  });

  it('forgets writes that a transaction or a savepoint rolled back', () => {
    const clock = new FakeClock();
    env = createEnv({ fakeClock: clock });
    const { db } = env;
    const repo = new VisitRepo({ store: new SqliteVisitStore(db), clock });
    const now = clock.now();
    expect(at(repo, 's1', now)).toBeNull();
    expect(() =>
      db.transaction(() => {
        repo.upsert(open('r2', 'v1', 's1', now - H));
        throw new Error('roll back');
      })(),
    ).toThrow('roll back');
    expect(at(repo, 's1', now)).toBeNull();
    db.transaction(() => {
      repo.upsert(open('r2', 'v2', 's1', now - 2 * H));
      try {
        db.transaction(() => {
          repo.upsert(open('r3', 'v3', 's1', now - H));
          throw new Error('roll back the savepoint');
        })();
      } catch {
        // the savepoint only
      }
      expect(at(repo, 's1', now)).toEqual({ readerId: 'r2', visitId: 'v2' });
    })();
    expect(at(repo, 's1', now)).toEqual({ readerId: 'r2', visitId: 'v2' });
    expect(repo.index.stats.resets).toBe(2);
  });

  it('sees commits by another connection, and leaves old questions to SQLite', () => {
    const clock = new FakeClock();
    env = createEnv({ fakeClock: clock });
    const repo = new VisitRepo({ store: new SqliteVisitStore(env.db), clock });
    const now = clock.now();
    repo.upsert(open('r2', 'v1', 's1', now - H));
    expect(at(repo, 's1', now)).toEqual({ readerId: 'r2', visitId: 'v1' });
    const other = new Database(join(env.dir, 'gateway.db'));
    try {
      other.prepare(`UPDATE visits SET state = 'closed', ended_at_ms = ? WHERE visit_id = 'v1'`).run(now - 1);
    } finally {
      other.close();
    }
    expect(at(repo, 's1', now)).toBeNull();
    // Ten days back is older than the index holds: no answer from memory, the repo asks SQLite.
    repo.upsert(open('r2', 'old', 's1', now - 10 * 24 * H));
    expect(at(repo, 's1', now - 10 * 24 * H + 1)).toBeUndefined();
    expect(
      repo.overlappingElsewhere({
        readerId: 'r1',
        staffRef: 's1',
        cardRef: card(1),
        atMs: now - 10 * 24 * H + 1,
      })?.visitId,
    ).toBe('old');
  });

  it('in the engine: a card assigned later (re-attribution) counts for the staff member at once', () => {
    env = createEnv(); // verifyVisitIndex: every answer is also checked against SQLite
    const { db, pipeline } = env;
    for (const r of ['r1', 'r2', 'r3']) addReader(db, r, `client-${r}`);
    pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
    // Anna's first visit loads her visits into the index; an unknown card is open at r2.
    ingestBatch(db, {
      readerId: 'r3',
      events: [tap('r3', 1, { card: card(1), decision: 'start', visitId: 'a1' })],
    });
    ingestBatch(db, {
      readerId: 'r3',
      events: [
        tap('r3', 2, { card: card(1), decision: 'stop', visitId: 'a1', time: { wallMs: T0 + 60_000 } }),
      ],
    });
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, { card: card(9), decision: 'start', visitId: 'u1', time: { wallMs: T0 + 2 * 60_000 } }),
        // r2 reports again at 08:04, so u1 is known to be open at 08:03 (the flag is given at once).
        tap('r2', 2, { card: card(5), decision: 'start', visitId: 'x1', time: { wallMs: T0 + 4 * 60_000 } }),
      ],
    });
    pipeline.processNow();
    // The unknown card turns out to be Anna's spare: its open visit at r2 is now hers.
    pipeline.registry.addCard({ cardRef: card(9), staffRef: 'staff-anna' });
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'a2', time: { wallMs: T0 + 3 * 60_000 } }),
      ],
    });
    pipeline.processNow();
    const started = ofType(outboxEvents(db), 'visit.started');
    expect(started.find((e) => e.visitId === 'a2')?.anomalies).toEqual(['concurrent-visit']);
    expect(started.find((e) => e.visitId === 'a1')?.anomalies).toEqual([]);
  });
});
