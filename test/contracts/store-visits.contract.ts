import { describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import type { VisitRow, VisitStore, VisitTx } from '../../gateway/src/store/ports.js';

/**
 * The VisitStore port's contract (the visits engine's unit of work, `runTurn`, and the read side),
 * through the interface only, on both engines. `work` may run more than once (PostgreSQL runs it
 * again after fetching what it read): the assertions look at its result and at the stored rows only.
 * Each adapter supplies a fresh, migrated, empty store, `sql` to seed and read rows (`?`
 * placeholders; the tables are the same on both engines) and `close`.
 */
export interface VisitsFixture {
  visits: VisitStore;
  sql: (text: string, params?: readonly unknown[]) => Promise<Record<string, unknown>[]>;
  close: () => Promise<void>;
}

const T = 1_700_000_000_000;
const CARD = 'c1_5d41402abc4b2a76b9719d911017c592';
const CARD2 = 'c1_7d793037a0760186574b0282f2f435e7';

const row = (over: Partial<VisitRow> & Pick<VisitRow, 'readerId' | 'visitId'>): VisitRow => ({
  clientRef: `home-${over.readerId}`,
  cardRef: CARD,
  staffRef: 'staff-1',
  groupId: null,
  state: 'open',
  startedAtMs: T,
  startSeq: 1,
  endedAtMs: null,
  endSeq: null,
  endReason: null,
  timeQuality: 'synced',
  anomalies: [],
  lateEndSeq: null,
  updatedAtMs: T,
  ...over,
});

const started = (v: VisitRow): VisitEvent => ({
  type: 'visit.started',
  idempotencyKey: `vt1:${v.readerId}:${v.startSeq ?? 0}:started`,
  visitId: v.visitId,
  readerId: v.readerId,
  clientRef: v.clientRef,
  staffRef: v.staffRef,
  cardRef: v.cardRef,
  groupId: null,
  anomalies: [],
  timeQuality: 'synced',
  startedAt: new Date(v.startedAtMs ?? T).toISOString(),
  startSeq: v.startSeq ?? 0,
});

const anomaly = (key: string, readerId: string, seq: number) => ({
  key,
  kind: 'unknown-card' as const,
  readerId,
  visitId: null,
  cardRef: CARD,
  staffRef: null,
  clientRef: `home-${readerId}`,
  atMs: T + seq,
  seq,
  detail: 'card not in the registry',
  nowMs: T + 1000,
});

export function describeVisitStoreContract(name: string, make: () => Promise<VisitsFixture>): void {
  describe(`VisitStore contract: ${name}`, () => {
    const withStore = async (fn: (f: VisitsFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };
    const turn = <R>(f: VisitsFixture, readers: string[] | 'all', work: (tx: VisitTx) => R): Promise<R> =>
      Promise.resolve().then(() => f.visits.runTurn(readers, work));
    const count = async (f: VisitsFixture, table: string) =>
      Number((await f.sql(`SELECT count(*) AS n FROM ${table}`))[0]?.n);
    const seedEvents = async (f: VisitsFixture, readerId: string, seqs: number[], upto: number) => {
      for (const s of seqs) {
        await f.sql(
          'INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
          [readerId, s, JSON.stringify({ seq: s }), T + s, '{}'],
        );
      }
      await f.sql('INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES (?, ?, ?)', [
        readerId,
        upto,
        Math.max(upto, ...seqs),
      ]);
    };

    it('a turn commits everything it wrote together; a throw leaves nothing', () =>
      withStore(async (f) => {
        const v = row({ readerId: 'r1', visitId: 'r1.1' });
        await expect(
          turn(f, ['r1'], (tx) => {
            tx.upsert(v);
            tx.setCursor('r1', 5);
            tx.insertAnomaly(anomaly('k1', 'r1', 1));
            tx.enqueue(started(v), T);
            tx.audit({ readerId: 'r1', visitId: 'r1.1', action: 'x', actor: 'a', reason: 'r', atMs: T });
            tx.putAnchor('r1', 'boot-1', { offsetMs: 12, exact: true });
            throw new Error('rule failed');
          }),
        ).rejects.toThrow('rule failed');
        for (const t of ['visits', 'visit_cursor', 'anomalies', 'outbox', 'visit_audit', 'time_anchors']) {
          expect(await count(f, t)).toBe(0);
        }
        const out = await turn(f, ['r1'], (tx) => {
          tx.upsert(v);
          tx.setCursor('r1', 5);
          const fresh = tx.insertAnomaly(anomaly('k1', 'r1', 1));
          const queued = tx.enqueue(started(v), T);
          tx.audit({ readerId: 'r1', visitId: 'r1.1', action: 'x', actor: 'a', reason: 'r', atMs: T });
          tx.putAnchor('r1', 'boot-1', { offsetMs: 12, exact: true });
          return { fresh, queued };
        });
        expect(out).toEqual({ fresh: true, queued: true });
        for (const t of ['visits', 'visit_cursor', 'anomalies', 'outbox', 'visit_audit', 'time_anchors']) {
          expect(await count(f, t)).toBe(1);
        }
        // a second turn sees what the first committed
        const again = await turn(f, ['r1'], (tx) => ({
          cursor: tx.cursor('r1'),
          visit: tx.visit('r1', 'r1.1'),
          anomaly: tx.insertAnomaly(anomaly('k1', 'r1', 1)),
          event: tx.enqueue(started(v), T),
          anchor: tx.anchor('r1', 'boot-1'),
        }));
        expect(again).toEqual({
          cursor: 5,
          visit: v,
          anomaly: false,
          event: false,
          anchor: { offsetMs: 12, exact: true },
        });
      }));

    it('reads inside a turn see its own writes; isolated() undoes only its own writes', () =>
      withStore(async (f) => {
        const a = row({ readerId: 'r1', visitId: 'r1.1', startedAtMs: T });
        const b = row({ readerId: 'r1', visitId: 'r1.2', startedAtMs: T + 10, startSeq: 2 });
        const out = await turn(f, ['r1'], (tx) => {
          tx.upsert(a);
          tx.setCursor('r1', 1);
          const seen = {
            cursor: tx.cursor('r1'),
            open: tx.openAtReader('r1').map((v) => v.visitId),
            anomalyOnce: [tx.insertAnomaly(anomaly('k1', 'r1', 1)), tx.insertAnomaly(anomaly('k1', 'r1', 1))],
            eventOnce: [tx.enqueue(started(a), T), tx.enqueue(started(a), T)],
          };
          let caught = '';
          try {
            tx.isolated(() => {
              tx.upsert(b);
              tx.upsert({ ...a, state: 'closed', endedAtMs: T + 5 });
              tx.setCursor('r1', 2);
              tx.insertAnomaly(anomaly('k2', 'r1', 2));
              tx.enqueue(started(b), T);
              throw new Error('poison event');
            });
          } catch (err) {
            caught = (err as Error).message;
          }
          const kept = tx.isolated(() => {
            tx.insertAnomaly(anomaly('k3', 'r1', 3));
            return tx.openAtReader('r1').map((v) => v.visitId);
          });
          return { ...seen, caught, kept, cursor2: tx.cursor('r1'), b: tx.visit('r1', 'r1.2') };
        });
        expect(out).toEqual({
          cursor: 1,
          open: ['r1.1'],
          anomalyOnce: [true, false],
          eventOnce: [true, false],
          caught: 'poison event',
          kept: ['r1.1'],
          cursor2: 1,
          b: null,
        });
        const keys = await f.sql('SELECT idempotency_key AS k FROM anomalies ORDER BY id');
        expect(keys.map((k) => k.k)).toEqual(['k1', 'k3']);
        expect(await count(f, 'outbox')).toBe(1);
        expect((await f.visits.listVisits({ state: 'open', limit: 10 })).map((v) => v.visitId)).toEqual([
          'r1.1',
        ]);
      }));

    it('cursor, contiguous prefix and events by range; readers behind; gauges', () =>
      withStore(async (f) => {
        await seedEvents(f, 'r1', [1, 2, 3, 5], 3);
        await seedEvents(f, 'r2', [1], 1);
        expect(await f.visits.readersBehind()).toEqual(['r1', 'r2']);
        expect(await f.visits.gauges()).toEqual({ openVisits: 0, lagEvents: 4 });
        const out = await turn(f, ['r1'], (tx) => {
          const cursor = tx.cursor('r1');
          const upto = tx.contiguousUpto('r1');
          const evs = tx.events('r1', cursor, upto, 2);
          tx.setCursor('r1', evs.at(-1)?.seq ?? cursor);
          return {
            cursor,
            upto,
            seqs: evs.map((e) => e.seq),
            rest: tx.events('r1', 2, 10, 10).map((e) => e.seq),
          };
        });
        expect(out).toEqual({ cursor: 0, upto: 3, seqs: [1, 2], rest: [3, 5] });
        expect(
          JSON.parse(String((await f.sql('SELECT event_json FROM events WHERE seq = 2'))[0]?.event_json)),
        ).toEqual({
          seq: 2,
        });
        expect(await f.visits.gauges()).toEqual({ openVisits: 0, lagEvents: 2 });
        await turn(f, ['r1', 'r2'], (tx) => {
          tx.setCursor('r1', 3);
          tx.setCursor('r2', 1);
          tx.upsert(row({ readerId: 'r2', visitId: 'r2.1' }));
        });
        expect(await f.visits.readersBehind()).toEqual([]);
        expect(await f.visits.gauges()).toEqual({ openVisits: 1, lagEvents: 0 });
        expect(await turn(f, ['r9'], (tx) => [tx.cursor('r9'), tx.contiguousUpto('r9')])).toEqual([0, 0]);
      }));

    it('a turn with a hint (the chunk size) answers exactly as one without, over several readers', () =>
      withStore(async (f) => {
        await seedEvents(f, 'r1', [1, 2, 3, 5], 3);
        await seedEvents(f, 'r2', [1, 2], 2);
        await seedEvents(f, 'r3', [4], 0);
        await turn(f, ['r1'], (tx) => {
          tx.setCursor('r1', 1);
          tx.upsert(row({ readerId: 'r1', visitId: 'r1.open' }));
        });
        const read = (tx: VisitTx) =>
          ['r1', 'r2', 'r3', 'r9'].map((r) => {
            const cursor = tx.cursor(r);
            const upto = tx.contiguousUpto(r);
            return {
              r,
              cursor,
              upto,
              seqs: tx.events(r, cursor, upto, 2).map((e) => e.seq),
              open: tx.openAtReader(r).map((v) => v.visitId),
              client: tx.clientAt(r, T),
            };
          });
        const readers = ['r1', 'r2', 'r3', 'r9'];
        const plain = await turn(f, readers, read);
        const hinted = await Promise.resolve(f.visits.runTurn(readers, read, { events: 2 }));
        expect(hinted).toEqual(plain);
        expect(plain.map((x) => x.seqs)).toEqual([[2, 3], [1, 2], [], []]);
        expect(plain[0]?.open).toEqual(['r1.open']);
        // a hint for another chunk size than the turn reads still answers right (the reads are fetched)
        expect(await Promise.resolve(f.visits.runTurn(readers, read, { events: 1 }))).toEqual(plain);
      }));

    it('the client at a time: history first, then the reader row; card status at a time', () =>
      withStore(async (f) => {
        await f.sql(
          "INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES ('r1', 'x', 'home-now', NULL, NULL, ?)",
          [T],
        );
        await f.sql(
          "INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ('r1', 'home-a', ?)",
          [T],
        );
        await f.sql(
          "INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ('r1', 'home-b', ?)",
          [T + 100],
        );
        await f.sql(
          "INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, 'staff-7', ?, ?)",
          [CARD, T + 50, T],
        );
        const out = await turn(f, ['r1'], (tx) => ({
          before: tx.clientAt('r1', T - 1),
          a: tx.clientAt('r1', T + 99),
          b: tx.clientAt('r1', T + 100),
          none: tx.clientAt('r-none', T),
          known: tx.cardStatusAt(CARD, T + 49),
          revoked: tx.cardStatusAt(CARD, T + 50),
          unknown: tx.cardStatusAt(CARD2, T),
        }));
        expect(out).toEqual({
          before: 'home-now',
          a: 'home-a',
          b: 'home-b',
          none: null,
          known: { kind: 'known', staffRef: 'staff-7' },
          revoked: { kind: 'revoked', staffRef: 'staff-7', revokedAtMs: T + 50 },
          unknown: { kind: 'unknown' },
        });
      }));

    it('the same staff member elsewhere: overlapping at a time, started during a window, over stored and own rows', () =>
      withStore(async (f) => {
        await turn(f, ['r2', 'r3'], (tx) => {
          tx.upsert(row({ readerId: 'r2', visitId: 'r2.1', startedAtMs: T - 1000 })); // open
          tx.upsert(
            row({
              readerId: 'r3',
              visitId: 'r3.1',
              startedAtMs: T - 500,
              state: 'closed',
              endedAtMs: T - 100,
            }),
          );
          tx.upsert(
            row({ readerId: 'r3', visitId: 'r3.2', startedAtMs: T + 300, staffRef: null, cardRef: CARD2 }),
          );
        });
        const out = await turn(f, ['r1', 'r2'], (tx) => {
          const q = { readerId: 'r1', staffRef: 'staff-1', cardRef: CARD };
          const first = tx.overlappingElsewhere({ ...q, atMs: T })?.visitId ?? null;
          const during = tx.overlappingElsewhere({ ...q, atMs: T - 200 })?.visitId ?? null; // r3.1 started later
          const own = tx.overlappingElsewhere({ ...q, readerId: 'r2', atMs: T })?.visitId ?? null;
          // this turn closes r2.1 before T: no longer open elsewhere at T
          tx.upsert(
            row({
              readerId: 'r2',
              visitId: 'r2.1',
              startedAtMs: T - 1000,
              state: 'closed',
              endedAtMs: T - 10,
            }),
          );
          const afterClose = tx.overlappingElsewhere({ ...q, atMs: T })?.visitId ?? null;
          const byCard = tx.overlappingElsewhere({
            readerId: 'r1',
            staffRef: null,
            cardRef: CARD2,
            atMs: T + 400,
          });
          const startedDuring =
            tx.startedElsewhereDuring({ ...q, fromMs: T - 2000, toMs: T })?.visitId ?? null;
          const startedLate = tx.startedElsewhereDuring({ ...q, fromMs: T - 1000, toMs: T })?.visitId ?? null;
          tx.upsert(row({ readerId: 'r2', visitId: 'r2.2', startedAtMs: T - 700 }));
          const startedOwn = tx.startedElsewhereDuring({ ...q, fromMs: T - 1000, toMs: T })?.visitId ?? null;
          const byId = tx.visitsById('r2.1').map((v) => [v.readerId, v.state]);
          return {
            first,
            during,
            own,
            afterClose,
            byCard: byCard?.visitId ?? null,
            startedDuring,
            startedLate,
            startedOwn,
            byId,
          };
        });
        expect(out).toEqual({
          first: 'r2.1',
          during: 'r3.1',
          own: null,
          afterClose: null,
          byCard: 'r3.2',
          startedDuring: 'r2.1',
          startedLate: 'r3.1',
          startedOwn: 'r2.2',
          byId: [['r2', 'closed']],
        });
      }));

    it('whether a reader delivered since a time; a visit keeps its card on update', () =>
      withStore(async (f) => {
        await turn(f, ['r1'], (tx) => tx.upsert(row({ readerId: 'r1', visitId: 'r1.1', startedAtMs: T })));
        const out = await turn(f, ['r1'], (tx) => {
          const a = [tx.deliveredSince('r1', T), tx.deliveredSince('r1', T + 1), tx.deliveredSince('r2', 0)];
          tx.upsert(
            row({ readerId: 'r1', visitId: 'r1.1', state: 'closed', endedAtMs: T + 50, cardRef: CARD2 }),
          );
          return [...a, tx.deliveredSince('r1', T + 50), tx.visit('r1', 'r1.1')?.cardRef];
        });
        expect(out).toEqual([true, false, false, true, CARD]);
        expect((await f.sql('SELECT card_ref FROM visits'))[0]?.card_ref).toBe(CARD);
      }));

    it('lists visits and anomalies, the readers of a visit id and the open visits of a reader', () =>
      withStore(async (f) => {
        await turn(f, 'all', (tx) => {
          tx.upsert(row({ readerId: 'r1', visitId: 'v-a', startedAtMs: T + 20, updatedAtMs: T + 1 }));
          tx.upsert(row({ readerId: 'r1', visitId: 'v-b', startedAtMs: T + 10, updatedAtMs: T + 3 }));
          tx.upsert(
            row({
              readerId: 'r2',
              visitId: 'v-a',
              startedAtMs: T,
              state: 'closed',
              endedAtMs: T + 5,
              updatedAtMs: T + 2,
            }),
          );
          tx.insertAnomaly(anomaly('k1', 'r1', 1));
          tx.insertAnomaly({ ...anomaly('k2', 'r2', 2), kind: 'revoked-card' });
        });
        expect((await f.visits.listVisits({ state: 'open', limit: 10 })).map((v) => v.visitId)).toEqual([
          'v-b',
          'v-a',
        ]);
        expect(
          (await f.visits.listVisits({ state: 'recent', limit: 2 })).map((v) => `${v.readerId}/${v.visitId}`),
        ).toEqual(['r1/v-b', 'r2/v-a']);
        expect((await f.visits.listVisits({ state: 'recent', readerId: 'r2', limit: 10 })).length).toBe(1);
        expect(await f.visits.readersOfVisit('v-a')).toEqual(['r1', 'r2']);
        expect(await f.visits.openVisitIds('r1')).toEqual(['v-b', 'v-a']);
        const all = await f.visits.listAnomalies({ limit: 10 });
        expect(all.map((a) => a.idempotencyKey)).toEqual(['k2', 'k1']);
        expect(all[1]).toMatchObject({
          kind: 'unknown-card',
          readerId: 'r1',
          visitId: null,
          cardRef: CARD,
          atMs: T + 1,
          seq: 1,
          createdAtMs: T + 1000,
          resolvedAtMs: null,
        });
        expect(
          (await f.visits.listAnomalies({ kind: 'revoked-card', limit: 10 })).map((a) => a.readerId),
        ).toEqual(['r2']);
        expect((await f.visits.listAnomalies({ readerId: 'r1', limit: 10 })).length).toBe(1);
      }));

    it('the anchor scan reads stored events after an id, in id order', () =>
      withStore(async (f) => {
        await seedEvents(f, 'r1', [1, 2, 3], 3);
        expect(await f.visits.anchorScan.cursor()).toBe(0);
        const rows = await f.visits.anchorScan.rows(0, 2);
        expect(rows.map((r) => [r.reader_id, r.received_at_ms])).toEqual([
          ['r1', T + 1],
          ['r1', T + 2],
        ]);
        expect((await f.visits.anchorScan.rows(rows[1]?.id ?? 0, 10)).length).toBe(1);
      }));

    it("a reader's own anchor scan: its rows past its mark, the mark and the measured clock offsets", () =>
      withStore(async (f) => {
        await seedEvents(f, 'r1', [1, 2], 2);
        await seedEvents(f, 'r2', [1], 1);
        // above a gap: scanned too
        await f.sql(
          'INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
          ['r1', 5, JSON.stringify({ seq: 5 }), T + 5, '{}'],
        );
        const seqOf = (json: string | null) => (JSON.parse(json ?? '{}') as { seq?: number }).seq;
        const first = await turn(f, ['r1'], (tx) => {
          const rows = tx.anchorRows('r1', 2);
          const mark = rows[rows.length - 1]?.id ?? 0;
          tx.setAnchorScanned('r1', mark);
          const before = [tx.syncedOffset('r1', 'b1'), tx.clockOffset('r1')];
          tx.putSyncedOffset('r1', 'b1', -60_000);
          tx.setClockOffset('r1', -60_000);
          return {
            rows: rows.map((r) => [r.reader_id, seqOf(r.event_json), r.received_at_ms, r.sent_at_json]),
            rest: tx.anchorRows('r1', 10).map((r) => seqOf(r.event_json)),
            before,
            after: [tx.syncedOffset('r1', 'b1'), tx.clockOffset('r1'), tx.syncedOffset('r1', 'b2')],
          };
        });
        expect(first).toEqual({
          rows: [
            ['r1', 1, T + 1, '{}'],
            ['r1', 2, T + 2, '{}'],
          ],
          rest: [5],
          before: [null, null],
          after: [-60_000, -60_000, null],
        });
        // committed: a later turn starts past the mark; the other reader's rows are its own
        const later = await turn(f, ['r1', 'r2'], (tx) => ({
          r1: tx.anchorRows('r1', 10).map((r) => seqOf(r.event_json)),
          r2: tx.anchorRows('r2', 10).map((r) => seqOf(r.event_json)),
          offsets: [tx.syncedOffset('r1', 'b1'), tx.clockOffset('r1'), tx.clockOffset('r2')],
        }));
        expect(later).toEqual({ r1: [5], r2: [1], offsets: [-60_000, -60_000, null] });
        // the same visit_meta rows on both engines
        const mark = Number((await f.sql("SELECT id FROM events WHERE reader_id = 'r1' AND seq = 2"))[0]?.id);
        expect(
          (await f.sql('SELECT key, value FROM visit_meta ORDER BY key')).map((r) => [
            r.key,
            Number(r.value),
          ]),
        ).toEqual([
          ['anchor_scan_id:r1', mark],
          ['clock_offset:r1', -60_000],
          ['synced_offset:r1\nb1', -60_000],
        ]);
      }));
  });
}
