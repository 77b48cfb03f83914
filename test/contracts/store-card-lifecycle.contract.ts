import { describe, expect, it } from 'vitest';
import type { CardLifecycleStore } from '../../gateway/src/store/card-lifecycle.js';
import type { CardStore } from '../../gateway/src/store/ports.js';

/**
 * The card lifecycle's port (revoke, reinstate, validity, withdrawal, lost-card replacement, the pushed lists;
 * store/card-lifecycle.ts) through the interface only, every call awaited, on both engines. Each adapter supplies
 * a fresh, migrated, empty store whose "now" (for `refs`) is `clock.ms`, `sql` to seed and read rows (`?`
 * placeholders) and `close`.
 */
export interface CardLifecycleFixture {
  store: CardLifecycleStore & Pick<CardStore, 'assign' | 'refs'>;
  clock: { ms: number };
  sql: (text: string, params?: readonly unknown[]) => Promise<Record<string, unknown>[]>;
  close: () => Promise<void>;
}

const A = 'c1_0cc175b9c0f1b6a831c399e269772661';
const B = 'c1_5d41402abc4b2a76b9719d911017c592';
const C = 'c1_7d793037a0760186574b0282f2f435e7';
const N = 'c1_9e107d9d372bb6826bd81d3542a419d6';
const T = 1_700_000_000_000;
const H = 3_600_000;

export function describeCardLifecycleStoreContract(
  name: string,
  make: () => Promise<CardLifecycleFixture>,
): void {
  describe(`CardLifecycleStore contract: ${name}`, () => {
    const withStore = async (fn: (f: CardLifecycleFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };
    const add = (f: CardLifecycleFixture, cardRef: string, staffRef: string) =>
      f.store.assign({ cardRef, staffRef, actor: 'test', nowMs: T });

    it('revokes once, reinstates once, and says false for unknown cards', () =>
      withStore(async (f) => {
        await add(f, A, 'staff-1');
        expect(await f.store.revoke(A, T + 5)).toBe(true);
        expect(await f.store.revoke(A, T + 9)).toBe(false);
        expect(await f.store.get(A)).toMatchObject({ staffRef: 'staff-1', revokedAtMs: T + 5 });
        expect(await f.store.reinstate(A)).toBe(true);
        expect(await f.store.reinstate(A)).toBe(false);
        expect(await f.store.get(A)).toMatchObject({ revokedAtMs: null, replacedBy: null });
        expect(await f.store.revoke(N, T)).toBe(false);
        expect(await f.store.reinstate(N)).toBe(false);
      }));

    it('a validity window decides the pushed lists at the store clock; cleared with null', () =>
      withStore(async (f) => {
        await add(f, A, 'staff-1');
        await add(f, B, 'staff-2');
        await add(f, C, 'staff-3');
        await f.store.revoke(C, T);
        expect(await f.store.setValidity(A, T + H, T + 2 * H)).toBe(true);
        expect(await f.store.setValidity(N, T, null)).toBe(false);
        expect(await f.store.get(A)).toMatchObject({ validFromMs: T + H, validToMs: T + 2 * H });
        expect(await f.store.cardLists(T)).toEqual({ valid: [B], invalid: [A, C] });
        expect(await f.store.cardLists(T + H)).toEqual({ valid: [A, B], invalid: [C] });
        expect(await f.store.cardLists(T + 2 * H)).toEqual({ valid: [B], invalid: [A, C] });
        f.clock.ms = T + H + 1;
        expect(await f.store.refs('active')).toEqual([A, B]);
        expect(await f.store.refs('revoked')).toEqual([C]);
        f.clock.ms = T + 3 * H;
        expect(await f.store.refs('active')).toEqual([B]);
        expect(await f.store.setValidity(A, null, null)).toBe(true);
        expect(await f.store.refs('active')).toEqual([A, B]);
      }));

    it('a full list withdraws the active cards missing from it, sorted, and leaves revoked ones alone', () =>
      withStore(async (f) => {
        for (const [ref, staff] of [
          [C, 'staff-3'],
          [A, 'staff-1'],
          [B, 'staff-2'],
          [N, 'staff-4'],
        ] as const)
          await add(f, ref, staff);
        await f.store.revoke(N, T + 1);
        expect(await f.store.withdrawMissing(new Set([B]), T + 7)).toEqual([A, C]);
        expect(await f.store.get(A)).toMatchObject({ revokedAtMs: T + 7 });
        expect(await f.store.get(C)).toMatchObject({ revokedAtMs: T + 7 });
        expect(await f.store.get(B)).toMatchObject({ revokedAtMs: null });
        expect(await f.store.get(N)).toMatchObject({ revokedAtMs: T + 1 });
        expect(await f.store.withdrawMissing(new Set([B]), T + 9)).toEqual([]);
      }));

    it('a lost card is replaced in one unit: old revoked and linked, new one to the same staff with its window, earlier taps attributed', () =>
      withStore(async (f) => {
        await add(f, A, 'staff-1');
        await f.store.setValidity(A, T - H, T + 100 * H);
        // the new card was tapped before it was registered: a visit without a staff member
        await f.sql(
          `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, state, started_at_ms, start_seq,
                               ended_at_ms, end_seq, time_quality, updated_at_ms)
           VALUES ('r-1', 'v-1', 'home-1', ?, NULL, 'open', ?, 3, NULL, NULL, 'synced', ?)`,
          [N, T + 10, T + 10],
        );
        const r = await f.store.replace({ oldRef: A, newRef: N, actor: 'coordinator', nowMs: T + 20 });
        expect(r).toMatchObject({ cardRef: N, staffRef: 'staff-1', registry: 'added' });
        expect(r.attributed.visits).toBe(1);
        expect(await f.store.get(A)).toMatchObject({ revokedAtMs: T + 20, replacedBy: N });
        expect(await f.store.get(N)).toMatchObject({
          staffRef: 'staff-1',
          revokedAtMs: null,
          validFromMs: T - H,
          validToMs: T + 100 * H,
        });
        const rows = await f.sql("SELECT staff_ref FROM visits WHERE visit_id = 'v-1'");
        expect(rows).toEqual([{ staff_ref: 'staff-1' }]);
        // reinstating the old card drops the link
        expect(await f.store.reinstate(A)).toBe(true);
        expect(await f.store.get(A)).toMatchObject({ revokedAtMs: null, replacedBy: null });
        await expect(
          Promise.resolve().then(() => f.store.replace({ oldRef: B, newRef: C, actor: 'x', nowMs: T })),
        ).rejects.toThrow(/not registered/);
        expect(await f.store.get(C)).toBeNull();
      }));
  });
}
