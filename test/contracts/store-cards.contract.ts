import { describe, expect, it } from 'vitest';
import type { CardStore } from '../../gateway/src/store/ports.js';

/**
 * The CardStore port's contract, through the interface only (every call awaited), on both engines.
 * Each adapter supplies a fresh, migrated, empty store, `sql` to seed and read rows the visits engine
 * would have written (the tables are the same on both engines; `?` placeholders), and `close`.
 */
export interface CardsFixture {
  cards: CardStore;
  sql: (text: string, params?: readonly unknown[]) => Promise<Record<string, unknown>[]>;
  close: () => Promise<void>;
}

const X = 'c1_5d41402abc4b2a76b9719d911017c592';
const Y = 'c1_7d793037a0760186574b0282f2f435e7';
const Z = 'c1_0cc175b9c0f1b6a831c399e269772661';
const T = 1_700_000_000_000;

export function describeCardStoreContract(name: string, make: () => Promise<CardsFixture>): void {
  describe(`CardStore contract: ${name}`, () => {
    const withStore = async (fn: (f: CardsFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };
    const visit = (
      f: CardsFixture,
      v: {
        reader: string;
        id: string;
        card: string;
        staff?: string;
        start?: number;
        end?: number;
        atMs: number;
      },
    ) =>
      f.sql(
        `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, state, started_at_ms, start_seq,
                             ended_at_ms, end_seq, time_quality, updated_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'synced', ?)`,
        [
          v.reader,
          v.id,
          `home-${v.reader}`,
          v.card,
          v.staff ?? null,
          v.end === undefined ? 'open' : 'closed',
          v.start === undefined ? null : v.atMs,
          v.start ?? null,
          v.end === undefined ? null : v.atMs + 60_000,
          v.end ?? null,
          v.atMs,
        ],
      );
    const unknownTap = (
      f: CardsFixture,
      a: { reader: string; card: string; seq: number; atMs: number; visitId?: string },
    ) =>
      f.sql(
        `INSERT INTO anomalies (idempotency_key, kind, reader_id, visit_id, card_ref, staff_ref, client_ref, at_ms,
                                seq, detail, created_at_ms)
         VALUES (?, 'unknown-card', ?, ?, ?, NULL, ?, ?, ?, 'card not in the registry', ?)`,
        [
          `vt1:${a.reader}:${a.seq}:unknown-card`,
          a.reader,
          a.visitId ?? null,
          a.card,
          `home-${a.reader}`,
          a.atMs,
          a.seq,
          a.atMs,
        ],
      );
    const outboxKeys = async (f: CardsFixture) =>
      (await f.sql('SELECT idempotency_key FROM outbox ORDER BY id')).map((r) => r.idempotency_key);

    it('adds, keeps, re-assigns; revokes once; a re-assignment un-revokes; lists refs sorted', () =>
      withStore(async ({ cards }) => {
        expect(await cards.get(X)).toBeNull();
        const a = await cards.assign({ cardRef: X, staffRef: 'staff-1', actor: 'admin', nowMs: T });
        expect(a).toMatchObject({ cardRef: X, staffRef: 'staff-1', registry: 'added' });
        expect(a.attributed).toEqual({ visits: 0, refusedTaps: 0, anomaliesResolved: 0, events: 0 });
        expect((await cards.assign({ cardRef: X, staffRef: 'staff-1', actor: 'a', nowMs: T })).registry).toBe(
          'unchanged',
        );
        expect((await cards.assign({ cardRef: X, staffRef: 'staff-2', actor: 'a', nowMs: T })).registry).toBe(
          'reassigned',
        );
        expect(await cards.get(X)).toMatchObject({ cardRef: X, staffRef: 'staff-2', revokedAtMs: null });
        await cards.assign({ cardRef: Y, staffRef: 'staff-3', actor: 'a', nowMs: T });
        await cards.assign({ cardRef: Z, staffRef: 'staff-4', actor: 'a', nowMs: T });
        expect(await cards.revoke(Y, T + 5)).toBe(true);
        expect(await cards.revoke(Y, T + 6)).toBe(false);
        expect(await cards.revoke('c1_ffffffffffffffffffffffffffffffff', T)).toBe(false);
        expect(await cards.get(Y)).toMatchObject({ staffRef: 'staff-3', revokedAtMs: T + 5 });
        expect(await cards.refs('active')).toEqual([Z, X]);
        expect(await cards.refs('revoked')).toEqual([Y]);
        const back = await cards.assign({ cardRef: Y, staffRef: 'staff-3', actor: 'a', nowMs: T + 7 });
        expect(back.registry).toBe('reassigned');
        expect(await cards.get(Y)).toMatchObject({ revokedAtMs: null });
        expect(await cards.refs('revoked')).toEqual([]);
      }));

    it('lists unknown cards most recent first, per reader, summed, at most `limit` cards', () =>
      withStore(async (f) => {
        await unknownTap(f, { reader: 'r1', card: X, seq: 1, atMs: T });
        await unknownTap(f, { reader: 'r1', card: X, seq: 2, atMs: T + 10 });
        await unknownTap(f, { reader: 'r2', card: X, seq: 1, atMs: T + 30 });
        await unknownTap(f, { reader: 'r3', card: Y, seq: 1, atMs: T + 20 });
        await unknownTap(f, { reader: 'r3', card: Z, seq: 2, atMs: T + 40 });
        await f.cards.assign({ cardRef: Z, staffRef: 'staff-9', actor: 'a', nowMs: T + 50 });
        const all = await f.cards.unknown(10);
        expect(all.map((c) => c.cardRef)).toEqual([X, Y]);
        expect(all[0]).toEqual({
          cardRef: X,
          taps: 3,
          firstSeenMs: T,
          lastSeenMs: T + 30,
          seenAt: [
            { readerId: 'r2', clientRef: 'home-r2', lastSeenMs: T + 30, taps: 1 },
            { readerId: 'r1', clientRef: 'home-r1', lastSeenMs: T + 10, taps: 2 },
          ],
        });
        expect((await f.cards.unknown(1)).map((c) => c.cardRef)).toEqual([X]);
      }));

    it('assigning attributes the earlier visits and refused taps once, in the same transaction', () =>
      withStore(async (f) => {
        await visit(f, { reader: 'r1', id: 'v1', card: X, start: 3, end: 4, atMs: T });
        await visit(f, { reader: 'r2', id: 'v2', card: X, end: 9, atMs: T + 100 }); // a stop without start
        await visit(f, { reader: 'r1', id: 'v0', card: X, staff: 'staff-0', start: 1, atMs: T - 100 });
        await visit(f, { reader: 'r1', id: 'v9', card: Y, start: 5, atMs: T + 50 }); // another card
        await unknownTap(f, { reader: 'r1', card: X, seq: 3, atMs: T, visitId: 'v1' });
        await unknownTap(f, { reader: 'r3', card: X, seq: 7, atMs: T + 200 }); // refused, no visit
        const r = await f.cards.assign({ cardRef: X, staffRef: 'staff-1', actor: 'coord', nowMs: T + 1000 });
        expect(r.attributed).toEqual({ visits: 2, refusedTaps: 1, anomaliesResolved: 2, events: 3 });
        expect(await outboxKeys(f)).toEqual([
          'vt1:r1:3:attributed',
          'vt1:r2:9:attributed',
          'vt1:r3:7:attributed',
        ]);
        const [first] = await f.sql(
          "SELECT event_json FROM outbox WHERE idempotency_key = 'vt1:r1:3:attributed'",
        );
        expect(JSON.parse(String(first?.event_json))).toMatchObject({
          type: 'visit.attributed',
          visitId: 'v1',
          readerId: 'r1',
          staffRef: 'staff-1',
          attributedBy: 'coord',
          resolves: ['vt1:r1:3:unknown-card'],
        });
        const staff = await f.sql('SELECT visit_id, staff_ref FROM visits ORDER BY visit_id');
        expect(staff.map((s) => [s.visit_id, s.staff_ref])).toEqual([
          ['v0', 'staff-0'],
          ['v1', 'staff-1'],
          ['v2', 'staff-1'],
          ['v9', null],
        ]);
        expect((await f.sql("SELECT count(*) AS n FROM visit_audit WHERE action = 'attributed'"))[0]?.n).toBe(
          2,
        );
        const resolved = await f.sql(
          'SELECT resolved_by, resolution, resolved_staff_ref, resolved_at_ms FROM anomalies ORDER BY id',
        );
        expect(resolved).toEqual([
          {
            resolved_by: 'coord',
            resolution: 'card-assigned',
            resolved_staff_ref: 'staff-1',
            resolved_at_ms: T + 1000,
          },
          {
            resolved_by: 'coord',
            resolution: 'card-assigned',
            resolved_staff_ref: 'staff-1',
            resolved_at_ms: T + 1000,
          },
        ]);
        expect(await f.cards.unknown(10)).toEqual([]);
        // a second assignment (another staff member) finds nothing left to attribute
        const again = await f.cards.assign({ cardRef: X, staffRef: 'staff-2', actor: 'c', nowMs: T + 2000 });
        expect(again.attributed).toEqual({ visits: 0, refusedTaps: 0, anomaliesResolved: 0, events: 0 });
        expect((await outboxKeys(f)).length).toBe(3);
      }));

    it('assignMany answers in order, in one transaction', () =>
      withStore(async (f) => {
        await unknownTap(f, { reader: 'r1', card: Y, seq: 2, atMs: T });
        const rs = await f.cards.assignMany([
          { cardRef: X, staffRef: 'staff-1', actor: 'import', nowMs: T },
          { cardRef: Y, staffRef: 'staff-2', actor: 'import', nowMs: T },
          { cardRef: X, staffRef: 'staff-3', actor: 'import', nowMs: T },
        ]);
        expect(rs.map((r) => [r.cardRef, r.registry, r.attributed.events])).toEqual([
          [X, 'added', 0],
          [Y, 'added', 1],
          [X, 'reassigned', 0],
        ]);
        expect(await f.cards.get(X)).toMatchObject({ staffRef: 'staff-3' });
        expect(await f.cards.refs('active')).toEqual([X, Y]);
      }));
  });
}
