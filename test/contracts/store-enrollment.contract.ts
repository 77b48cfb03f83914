import { describe, expect, it } from 'vitest';
import type { EnrollmentStore } from '../../gateway/src/store/ports.js';

/**
 * The EnrollmentStore port's contract, through the interface only (every call awaited: SQLite answers
 * synchronously, PostgreSQL with a Promise). Each adapter supplies a factory: a fresh, migrated, empty
 * store and `close`. That a code claimed by several instances at once provisions exactly one reader is
 * PostgreSQL-only (test/scale/pg-enrollment-fleet.test.ts).
 */
export interface EnrollmentFixture {
  store: EnrollmentStore;
  close: () => Promise<void>;
}

const code = (h: string, readerId: string, at: number, replaces: string | null = null) => ({
  codeHash: h,
  readerId,
  clientRef: 'client-1',
  label: replaces ? null : 'hallway',
  createdAtMs: at,
  expiresAtMs: at + 60_000,
  replacesReaderId: replaces,
});

export function describeEnrollmentStoreContract(name: string, make: () => Promise<EnrollmentFixture>): void {
  describe(`EnrollmentStore contract: ${name}`, () => {
    const withStore = async (fn: (s: EnrollmentStore) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f.store);
      } finally {
        await f.close();
      }
    };

    it('stores a code by its hash with every field; unknown hashes are undefined', () =>
      withStore(async (s) => {
        expect(await s.byCodeHash('nope')).toBeUndefined();
        await s.issue(code('h1', 'r-1', 1000));
        const row = await s.byCodeHash('h1');
        expect(row).toEqual({
          id: expect.any(Number) as number,
          codeHash: 'h1',
          readerId: 'r-1',
          clientRef: 'client-1',
          label: 'hallway',
          createdAtMs: 1000,
          expiresAtMs: 61_000,
          usedAtMs: null,
          usedFrom: null,
          replacesReaderId: null,
        });
      }));

    it('a newer code for the same reader withdraws the pending one (expires now); a used one stays', () =>
      withStore(async (s) => {
        await s.issue(code('h1', 'r-1', 1000));
        const first = await s.byCodeHash('h1');
        expect(await s.claim(first?.id ?? 0, 1500, '10.0.0.1')).toBe(true);
        await s.issue(code('h2', 'r-1', 2000));
        await s.issue(code('h3', 'r-1', 3000));
        expect(await s.byCodeHash('h1')).toMatchObject({ expiresAtMs: 61_000, usedAtMs: 1500 });
        expect((await s.byCodeHash('h2'))?.expiresAtMs).toBe(3000);
        expect((await s.byCodeHash('h3'))?.expiresAtMs).toBe(63_000);
        // another reader's pending code is not touched
        await s.issue(code('h4', 'r-2', 4000));
        expect((await s.byCodeHash('h3'))?.expiresAtMs).toBe(63_000);
      }));

    it('a second replacement code for the same old reader withdraws the first', () =>
      withStore(async (s) => {
        await s.issue(code('h3', 'r-new1', 4000, 'r-old'));
        await s.issue(code('h5', 'r-other', 4500, 'r-old-2'));
        await s.issue(code('h4', 'r-new2', 5000, 'r-old'));
        expect(await s.byCodeHash('h3')).toMatchObject({ expiresAtMs: 5000, replacesReaderId: 'r-old' });
        expect(await s.byCodeHash('h4')).toMatchObject({ expiresAtMs: 65_000, replacesReaderId: 'r-old' });
        expect((await s.byCodeHash('h5'))?.expiresAtMs).toBe(64_500);
      }));

    it('claims once, records when and from where; unclaim makes it usable again', () =>
      withStore(async (s) => {
        await s.issue(code('h1', 'r-1', 1000));
        const id = (await s.byCodeHash('h1'))?.id ?? 0;
        expect(await s.claim(id, 3000, '127.0.0.1')).toBe(true);
        expect(await s.claim(id, 3001, '127.0.0.2')).toBe(false);
        expect(await s.byCodeHash('h1')).toMatchObject({ usedAtMs: 3000, usedFrom: '127.0.0.1' });
        await s.unclaim(id);
        expect(await s.byCodeHash('h1')).toMatchObject({ usedAtMs: null, usedFrom: null });
        expect(await s.claim(id, 4000, '127.0.0.3')).toBe(true);
        expect(await s.claim(id + 1000, 4000, '127.0.0.3')).toBe(false); // no such code
      }));

    it('lists newest first, at most `limit`; knows which reader ids any code names', () =>
      withStore(async (s) => {
        expect(await s.list(10)).toEqual([]);
        expect(await s.readerIdTaken('r-1')).toBe(false);
        await s.issue(code('h1', 'r-1', 1000));
        await s.issue(code('h2', 'r-2', 2000));
        await s.issue(code('h3', 'r-3', 3000, 'r-1'));
        expect((await s.list(2)).map((r) => r.codeHash)).toEqual(['h3', 'h2']);
        expect((await s.list(10)).map((r) => r.readerId)).toEqual(['r-3', 'r-2', 'r-1']);
        const id = (await s.byCodeHash('h1'))?.id ?? 0;
        await s.claim(id, 1500, 'x');
        expect(await s.readerIdTaken('r-1')).toBe(true); // used codes count too
        expect(await s.readerIdTaken('r-3')).toBe(true);
        expect(await s.readerIdTaken('r-old')).toBe(false);
      }));

    it('a code hash is unique', () =>
      withStore(async (s) => {
        await s.issue(code('h1', 'r-1', 1000));
        await expect(Promise.resolve().then(() => s.issue(code('h1', 'r-9', 2000)))).rejects.toThrow();
        expect((await s.list(10)).length).toBe(1);
      }));
  });
}
