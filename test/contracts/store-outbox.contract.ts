import { describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { BLOCKED_ERROR, type OutboxStore } from '../../gateway/src/store/ports.js';

/**
 * The OutboxStore port's contract, through the interface only (every call awaited). Each adapter
 * supplies a factory: a fresh, migrated, empty store, `seed` to queue visit events the way the visits
 * turn does (in order, one transaction), and `close`.
 *
 * Claims: every re-claim here happens after the previous claim's lease ended, so the suite holds for
 * an adapter with leases (PostgreSQL, several forwarders) and one without (SQLite, one forwarder).
 * That a claimed row is NOT offered again before its lease ends is adapter-specific (PostgreSQL adds
 * that case in its own test).
 */
export interface OutboxFixture {
  outbox: OutboxStore;
  seed: (events: readonly VisitEvent[], nowMs: number) => Promise<void>;
  close: () => Promise<void>;
}

const started = (reader: string, n: number): VisitEvent => ({
  type: 'visit.started',
  idempotencyKey: `vt1:${reader}:${n}:started`,
  visitId: `${reader}.v${n}`,
  readerId: reader,
  clientRef: 'client-1',
  staffRef: 'staff-1',
  cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
  groupId: null,
  anomalies: [],
  timeQuality: 'synced',
  startedAt: '2026-11-23T08:00:00.000Z',
  startSeq: n,
});

const ended = (reader: string, n: number, endSeq: number): VisitEvent => ({
  type: 'visit.ended',
  idempotencyKey: `vt1:${reader}:${endSeq}:ended`,
  visitId: `${reader}.v${n}`,
  readerId: reader,
  clientRef: 'client-1',
  staffRef: 'staff-1',
  cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
  groupId: null,
  anomalies: [],
  timeQuality: 'synced',
  startedAt: '2026-11-23T08:00:00.000Z',
  endedAt: '2026-11-23T08:30:00.000Z',
  durationMs: 1_800_000,
  endReason: 'tap',
  endSeq,
});

const T = 1_700_000_000_000;
const LEASE = 60_000;

export function describeOutboxStoreContract(name: string, make: () => Promise<OutboxFixture>): void {
  describe(`OutboxStore contract: ${name}`, () => {
    const withStore = async (fn: (f: OutboxFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };

    it('claims pending rows in id order, at most `limit`, and the same key is queued once', () =>
      withStore(async ({ outbox, seed }) => {
        await seed([started('r1', 1), ended('r1', 1, 2), started('r2', 1)], T);
        await seed([started('r1', 1)], T + 1); // re-processing: same key, ignored
        const two = await outbox.claim(2, T, LEASE);
        expect(two.map((r) => r.idempotencyKey)).toEqual(['vt1:r1:1:started', 'vt1:r1:2:ended']);
        expect(two[0]?.id).toBeLessThan(two[1]?.id ?? 0);
        expect(JSON.parse(two[0]?.eventJson ?? '{}')).toMatchObject({
          type: 'visit.started',
          visitId: 'r1.v1',
        });
        expect(two[0]).toMatchObject({
          visitId: 'r1.v1',
          type: 'visit.started',
          attempts: 0,
          createdAtMs: T,
        });
        expect(await outbox.stats()).toEqual({ pending: 3, dead: 0, oldestPendingCreatedAtMs: T });
      }));

    it('a delivered row leaves the queue; a failure is counted and the row stays', () =>
      withStore(async ({ outbox, seed }) => {
        await seed([started('r1', 1), started('r2', 1)], T);
        const [a, b] = await outbox.claim(10, T, LEASE);
        await outbox.markDelivered([a?.id ?? 0], T + 5, 200);
        await outbox.recordFailure([b?.id ?? 0], 503, 'x'.repeat(600));
        const left = await outbox.claim(10, T + 10 + LEASE, LEASE);
        expect(left.map((r) => r.idempotencyKey)).toEqual(['vt1:r2:1:started']);
        expect(left[0]?.attempts).toBe(1);
        expect((await outbox.stats()).pending).toBe(1);
      }));

    it('dead-letters, blocks what follows in the same visit, and re-drives both', () =>
      withStore(async ({ outbox, seed }) => {
        await seed([started('r1', 1), ended('r1', 1, 2), started('r2', 1)], T);
        const rows = await outbox.claim(10, T, LEASE);
        const first = rows[0]?.id ?? 0;
        await outbox.markDead(first, T + 1, 422, 'refused');
        expect(await outbox.blockBehindDead(T + 2)).toBe(1);
        expect(await outbox.blockBehindDead(T + 3)).toBe(0);
        const dead = await outbox.listDead(10);
        expect(dead.map((d) => d.idempotencyKey)).toEqual(['vt1:r1:1:started', 'vt1:r1:2:ended']);
        expect(dead[0]).toMatchObject({
          lastStatus: 422,
          lastError: 'refused',
          deadAtMs: T + 1,
          attempts: 1,
        });
        expect(dead[1]?.lastError).toBe(BLOCKED_ERROR);
        expect((dead[0]?.event as { visitId?: string }).visitId).toBe('r1.v1');
        expect((await outbox.claim(10, T + 4 + LEASE, LEASE)).map((r) => r.idempotencyKey)).toEqual([
          'vt1:r2:1:started',
        ]);
        expect(await outbox.redrive(12345)).toBe(0);
        expect(await outbox.redrive(first)).toBe(2);
        const again = await outbox.claim(10, T + 5 + 2 * LEASE, LEASE);
        expect(again.map((r) => r.idempotencyKey)).toEqual([
          'vt1:r1:1:started',
          'vt1:r1:2:ended',
          'vt1:r2:1:started',
        ]);
        expect(again[0]?.attempts).toBe(0);
        expect(await outbox.stats()).toMatchObject({ pending: 3, dead: 0 });
      }));

    it('re-drives every dead letter at once', () =>
      withStore(async ({ outbox, seed }) => {
        await seed([started('r1', 1), started('r2', 1)], T);
        for (const r of await outbox.claim(10, T, LEASE)) await outbox.markDead(r.id, T, null, 'gone');
        expect((await outbox.stats()).dead).toBe(2);
        expect(await outbox.redriveAll()).toBe(2);
        expect(await outbox.stats()).toMatchObject({ pending: 2, dead: 0 });
      }));

    it('prunes delivered rows older than the cut-off, at most `max`', () =>
      withStore(async ({ outbox, seed }) => {
        await seed([started('r1', 1), started('r2', 1), started('r3', 1)], T);
        const rows = await outbox.claim(10, T, LEASE);
        await outbox.markDelivered(
          rows.map((r) => r.id),
          T + 1,
          200,
        );
        expect(await outbox.pruneDelivered(T + 2, 2)).toBe(2);
        expect(await outbox.pruneDelivered(T + 2)).toBe(1);
        expect(await outbox.pruneDelivered(T + 2)).toBe(0);
      }));
  });
}
