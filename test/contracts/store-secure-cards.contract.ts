import { describe, expect, it } from 'vitest';
import type {
  SecureCardStore,
  SecureCardTx,
  SecureScreenKeys,
  TapAssurance,
} from '../../gateway/src/store/secure-cards.js';

/**
 * The secure-card port's contract (store/secure-cards.ts), through the interface only, every call awaited
 * (SQLite answers synchronously, PostgreSQL with a Promise): a tap's verdict recorded once (a resend reads
 * the first), a card known secure from its first secure tap that is not refused, its counter only ever
 * up, nonces per card, what a screening recorded visible to its later reads and to every later screening,
 * the admin reads. Each adapter supplies a fresh, migrated, empty store. What only several instances can
 * break (the same counter at two instances at once) is in test/scale/pg-secure-cards.test.ts.
 */
export interface SecureCardFixture {
  store: SecureCardStore;
  close: () => Promise<void>;
}

const tap = (o: Partial<TapAssurance> & Pick<TapAssurance, 'eventId' | 'seq'>): TapAssurance => ({
  readerId: 'r-1',
  cardRef: 'c1_card-a',
  assurance: 'secure',
  verdict: 'accepted',
  code: 'secure',
  counter: null,
  detail: 'SUN message verified',
  atMs: 1_000,
  proofKind: 'ntag424-sun',
  nonce: null,
  ...o,
});

/** Keys naming everything a test reads. */
const keysOf = (
  taps: Array<[string, string]>,
  cardRefs: string[],
  nonces: Array<[string, string]> = [],
): (() => SecureScreenKeys) => {
  return () => ({
    taps: taps.map(([readerId, eventId]) => ({ readerId, eventId })),
    cardRefs,
    nonces: nonces.map(([cardRef, nonce]) => ({ cardRef, nonce })),
  });
};

export function describeSecureCardStoreContract(name: string, make: () => Promise<SecureCardFixture>): void {
  describe(`SecureCardStore contract: ${name}`, () => {
    const withStore = async (fn: (s: SecureCardStore) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f.store);
      } finally {
        await f.close();
      }
    };
    const read = (s: SecureCardStore, k: () => SecureScreenKeys, fn: (tx: SecureCardTx) => unknown) =>
      Promise.resolve(s.screen(k, fn));

    it('an empty store knows no tap, card or nonce; the screen returns what its work returns', () =>
      withStore(async (s) => {
        const got = await read(s, keysOf([['r-1', 'e1']], ['c1_card-a'], [['c1_card-a', 'aa']]), (tx) => [
          tx.tap('r-1', 'e1'),
          tx.card('c1_card-a'),
          tx.nonceSeen('c1_card-a', 'aa'),
        ]);
        expect(got).toEqual([undefined, undefined, false]);
        expect(await s.taps('r-1', 10)).toEqual([]);
        expect(await s.countByAssurance()).toEqual([]);
      }));

    it('a recorded tap reads back with every field; a second record of the same (reader, event) is ignored', () =>
      withStore(async (s) => {
        const first = tap({ eventId: 'e1', seq: 1, counter: 5, atMs: 1_000 });
        await s.screen(keysOf([['r-1', 'e1']], ['c1_card-a']), (tx) => tx.record(first));
        await s.screen(keysOf([['r-1', 'e1']], ['c1_card-a']), (tx) =>
          tx.record({ ...first, verdict: 'refused', code: 'replayed', detail: 'other', atMs: 2_000 }),
        );
        const got = await read(s, keysOf([['r-1', 'e1']], []), (tx) => tx.tap('r-1', 'e1'));
        expect(got).toEqual(first);
        expect(await s.taps('r-1', 10)).toEqual([first]);
      }));

    it('a secure tap not refused makes the card known: its counter only goes up, since stays, last tap moves', () =>
      withStore(async (s) => {
        const k = keysOf([], ['c1_card-a']);
        await s.screen(k, (tx) => tx.record(tap({ eventId: 'e1', seq: 1, counter: 5, atMs: 1_000 })));
        expect(await read(s, k, (tx) => tx.card('c1_card-a'))).toEqual({
          cardRef: 'c1_card-a',
          lastCounter: 5,
          secureSinceMs: 1_000,
          lastSecureTapMs: 1_000,
        });
        // a flagged secure tap (counter exhausted) counts; a lower counter never lowers the mark
        await s.screen(k, (tx) =>
          tx.record(tap({ eventId: 'e2', seq: 2, counter: 3, verdict: 'flagged', atMs: 2_000 })),
        );
        expect(await read(s, k, (tx) => tx.card('c1_card-a'))).toEqual({
          cardRef: 'c1_card-a',
          lastCounter: 5,
          secureSinceMs: 1_000,
          lastSecureTapMs: 2_000,
        });
        // a DESFire tap (no counter) keeps the mark
        await s.screen(k, (tx) =>
          tx.record(tap({ eventId: 'e3', seq: 3, proofKind: 'desfire-ev2', nonce: 'n3', atMs: 3_000 })),
        );
        expect(await read(s, k, (tx) => tx.card('c1_card-a')?.lastCounter)).toBe(5);
      }));

    it('refused secure taps and UID-only taps do not make a card known', () =>
      withStore(async (s) => {
        const k = keysOf([], ['c1_card-a', 'c1_card-b']);
        await s.screen(k, (tx) => {
          tx.record(tap({ eventId: 'e1', seq: 1, counter: 9, verdict: 'refused', code: 'bad-mac' }));
          tx.record(
            tap({
              eventId: 'e2',
              seq: 2,
              cardRef: 'c1_card-b',
              assurance: 'uid-only',
              code: 'uid-only',
              proofKind: null,
            }),
          );
        });
        expect(await read(s, k, (tx) => [tx.card('c1_card-a'), tx.card('c1_card-b')])).toEqual([
          undefined,
          undefined,
        ]);
      }));

    it('a nonce is seen for its card once recorded (also on a refused tap), not for another card', () =>
      withStore(async (s) => {
        await s.screen(keysOf([], ['c1_card-a']), (tx) =>
          tx.record(
            tap({
              eventId: 'e1',
              seq: 1,
              proofKind: 'desfire-ev2',
              nonce: 'abcd',
              verdict: 'refused',
              code: 'uid-mismatch',
            }),
          ),
        );
        const k = keysOf(
          [],
          ['c1_card-a', 'c1_card-b'],
          [
            ['c1_card-a', 'abcd'],
            ['c1_card-b', 'abcd'],
            ['c1_card-a', 'ef01'],
          ],
        );
        expect(
          await read(s, k, (tx) => [
            tx.nonceSeen('c1_card-a', 'abcd'),
            tx.nonceSeen('c1_card-b', 'abcd'),
            tx.nonceSeen('c1_card-a', 'ef01'),
          ]),
        ).toEqual([true, false, false]);
      }));

    it("what a screening records is visible to its own later reads (a batch's second tap sees the first)", () =>
      withStore(async (s) => {
        const k = keysOf(
          [
            ['r-1', 'e1'],
            ['r-1', 'e2'],
          ],
          ['c1_card-a'],
          [['c1_card-a', 'n1']],
        );
        const seen = await read(s, k, (tx) => {
          const before = [tx.tap('r-1', 'e1'), tx.card('c1_card-a'), tx.nonceSeen('c1_card-a', 'n1')];
          tx.record(tap({ eventId: 'e1', seq: 1, counter: 7 }));
          tx.record(tap({ eventId: 'e2', seq: 2, proofKind: 'desfire-ev2', nonce: 'n1', atMs: 1_500 }));
          return [
            before,
            [
              tx.tap('r-1', 'e1')?.counter,
              tx.card('c1_card-a')?.lastCounter,
              tx.nonceSeen('c1_card-a', 'n1'),
            ],
          ];
        });
        expect(seen).toEqual([
          [undefined, undefined, false],
          [7, 7, true],
        ]);
        expect(
          await read(s, k, (tx) => [tx.tap('r-1', 'e2')?.nonce, tx.card('c1_card-a')?.lastSecureTapMs]),
        ).toEqual(['n1', 1_500]);
      }));

    it('taps: a reader’s newest first (time, then seq), limited; counts by assurance and verdict, in a window', () =>
      withStore(async (s) => {
        await s.screen(keysOf([], ['c1_card-a', 'c1_card-b']), (tx) => {
          tx.record(tap({ eventId: 'e1', seq: 1, counter: 1, atMs: 1_000 }));
          tx.record(
            tap({ eventId: 'e2', seq: 2, counter: 1, verdict: 'refused', code: 'replayed', atMs: 2_000 }),
          );
          tx.record(
            tap({
              eventId: 'e3',
              seq: 3,
              cardRef: 'c1_card-b',
              assurance: 'uid-only',
              verdict: 'flagged',
              code: 'uid-only',
              proofKind: null,
              atMs: 2_000,
            }),
          );
          tx.record(tap({ readerId: 'r-2', eventId: 'e1', seq: 1, counter: 2, atMs: 3_000 }));
        });
        expect((await s.taps('r-1', 10)).map((t) => t.eventId)).toEqual(['e3', 'e2', 'e1']);
        expect((await s.taps('r-1', 2)).map((t) => t.eventId)).toEqual(['e3', 'e2']);
        expect((await s.taps('r-2', 10)).map((t) => [t.eventId, t.counter])).toEqual([['e1', 2]]);
        expect(await s.countByAssurance()).toEqual([
          { assurance: 'secure', verdict: 'accepted', count: 2 },
          { assurance: 'secure', verdict: 'refused', count: 1 },
          { assurance: 'uid-only', verdict: 'flagged', count: 1 },
        ]);
        expect(await s.countByAssurance({ fromMs: 2_000, toMs: 3_000 })).toEqual([
          { assurance: 'secure', verdict: 'refused', count: 1 },
          { assurance: 'uid-only', verdict: 'flagged', count: 1 },
        ]);
      }));
  });
}
