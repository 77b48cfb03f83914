import { describe, expect, it } from 'vitest';
import type { EraseRequest, EraseResult, PruneCounts } from '../../gateway/src/store/retention.js';

/**
 * Retention and erasure through the store's ports (gateway/src/store/retention.ts): the SQLite adapter
 * (store/sqlite/retention.ts `createPruner`, `SqliteErasure`) and the PostgreSQL one (store/postgres/retention.ts
 * `PgRetentionStore`) delete the same rows past retention and erase a person alike: refused by records law while
 * the care record keeps their visits, 'not-found' when nothing names them, and when made, no row names them or
 * their card any more while the visits stay. Run over SQLite and PostgreSQL (store-retention.contract.test.ts).
 */
export interface RetentionHarness {
  /** One pruner run to the end with these periods (days; absent: kept). */
  prune(days: Partial<Record<keyof PruneCounts, number>>, nowMs: number): Promise<PruneCounts>;
  erase(req: EraseRequest, visitsDays: number | 'keep'): Promise<EraseResult>;
  /** Where a reference still occurs (table.column -> rows). */
  scan(ref: string): Promise<Record<string, number>>;
  /** Runs one statement ('?' placeholders) on the engine. */
  sql(text: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export type RetentionFactory = () => Promise<RetentionHarness>;

const DAY = 86_400_000;
const T0 = Date.parse('2026-11-10T07:00:00Z');
const CARD = `c1_${'b'.repeat(32)}`;

async function seed(h: RetentionHarness): Promise<void> {
  await h.sql(
    `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, 'staff-7', NULL, 1)`,
    [CARD],
  );
  for (const [visit, client, staff, start] of [
    ['v-old', 'client-1', 'staff-7', T0 - 400 * DAY],
    ['v-new', 'client-2', 'staff-7', T0 - 2 * DAY],
  ] as const) {
    await h.sql(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
         ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
       VALUES ('r1', ?, ?, ?, ?, NULL, 'closed', ?, 1, ?, 2, 'tap', 'synced', '[]', NULL, ?)`,
      [visit, client, CARD, staff, start, start + 600_000, start + 600_000],
    );
  }
  for (const at of [T0 - 40 * DAY, T0 - 35 * DAY, T0 - 5 * DAY]) {
    await h.sql(`INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES ('r1', 'bad', 'x', ?)`, [at]);
  }
}

const count = async (h: RetentionHarness, table: string): Promise<number> =>
  Number((await h.sql(`SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);

export function describeRetentionContract(engine: string, make: RetentionFactory): void {
  describe(`retention and erasure ports (${engine})`, () => {
    it('prunes what is past its period and nothing younger; a class kept is not touched', async () => {
      const h = await make();
      try {
        await seed(h);
        const r = await h.prune({ rejects: 30 }, T0);
        expect(r.rejects).toBe(2);
        expect(r.visits).toBe(0); // visits: kept
        expect(await count(h, 'rejects')).toBe(1);
        expect(await count(h, 'visits')).toBe(2);
        expect((await h.prune({ rejects: 30 }, T0)).rejects).toBe(0); // nothing left past it
      } finally {
        await h.close();
      }
    });

    it('erasure: not-found for nobody, refused by records law while visits are kept, then forced: no row names the person or their card, the visits stay', async () => {
      const h = await make();
      try {
        await seed(h);
        const req = { kind: 'staff' as const, ref: 'staff-7', force: false, nowMs: T0 };
        expect(await h.erase({ ...req, ref: 'nobody-9' }, 'keep')).toMatchObject({
          ok: false,
          code: 'not-found',
        });
        expect(await h.erase(req, 'keep')).toMatchObject({ ok: false, code: 'records-law' });
        expect(await h.erase(req, 30)).toMatchObject({ ok: false, code: 'records-law' }); // v-new is 2 days old
        expect(await h.scan('staff-7')).not.toEqual({});
        const r = await h.erase({ ...req, force: true }, 'keep');
        if (!r.ok) throw new Error(r.reason);
        expect(r.pseudonym).toMatch(/^erased-[0-9a-f]{18}$/);
        expect(r.cards).toBe(1);
        expect(await h.scan('staff-7')).toEqual({});
        expect(await h.scan(CARD)).toEqual({});
        expect(await count(h, 'visits')).toBe(2);
        const cards = await h.sql('SELECT card_ref, staff_ref, revoked_at FROM cards');
        expect(cards).toEqual([
          { card_ref: `${r.pseudonym}-card-1`, staff_ref: r.pseudonym, revoked_at: T0 },
        ]);
        // a client whose visits are all past the period is erased without force
        expect(await h.erase({ kind: 'client', ref: 'client-1', force: false, nowMs: T0 }, 30)).toMatchObject(
          {
            ok: true,
            cards: 0,
          },
        );
        expect(await h.scan('client-1')).toEqual({});
      } finally {
        await h.close();
      }
    });
  });
}
