import { describe, expect, it } from 'vitest';
import type { AuditStore, NewAuditEntry } from '../../gateway/src/store/ports.js';

/**
 * The audit log port's contract, through the interface only. `sql` runs a statement on the adapter's
 * database (`?` placeholders) to show that the table itself refuses UPDATE and DELETE.
 */
export interface AuditFixture {
  store: AuditStore;
  sql: (text: string, params?: readonly unknown[]) => Promise<unknown>;
  close: () => Promise<void>;
}

const entry = (i: number, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  atMs: 1_000 + i,
  actor: i % 2 ? 'user:anna' : 'cli:root',
  action: i % 3 ? 'user.update' : 'user.create',
  target: `user:u_${i}`,
  before: i % 2 ? { role: 'coordinator', areas: ['söder'] } : null,
  after: { n: i, nested: { ok: true } },
  reason: i % 2 ? `why ${i}` : null,
  ...over,
});

export function describeAuditStoreContract(name: string, make: () => Promise<AuditFixture>): void {
  describe(`AuditStore contract: ${name}`, () => {
    const withStore = async (fn: (f: AuditFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };

    it('appends with rising seq and reads back every field, oldest first in all(), newest first in list()', () =>
      withStore(async ({ store }) => {
        expect(await store.all()).toEqual([]);
        const made = [];
        for (let i = 0; i < 7; i++) made.push(await store.append(entry(i)));
        const seqs = made.map((e) => e.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(7);
        expect(await store.all()).toEqual(made);
        expect(made[1]).toEqual({ ...entry(1), seq: seqs[1] });
        expect(await store.list({ limit: 3 })).toEqual([made[6], made[5], made[4]]);
        // paging backwards from the oldest shown
        expect(await store.list({ limit: 3, beforeSeq: seqs[4] })).toEqual([made[3], made[2], made[1]]);
        expect((await store.list({ limit: 100, action: 'user.create' })).map((e) => e.seq)).toEqual([
          seqs[6],
          seqs[3],
          seqs[0],
        ]);
        expect((await store.list({ limit: 100, actor: 'user:anna', action: 'user.update' })).length).toBe(2);
      }));

    it('missing before/after read back as null', () =>
      withStore(async ({ store }) => {
        const e = await store.append({ ...entry(0), before: null, after: null });
        expect(e.before).toBeNull();
        expect((await store.all())[0]).toEqual(e);
      }));

    it('the table refuses UPDATE and DELETE', () =>
      withStore(async ({ store, sql }) => {
        await store.append(entry(1));
        await expect(sql('UPDATE audit_log SET actor = ?', ['someone-else'])).rejects.toThrow(/append-only/);
        await expect(sql('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
        expect((await store.all())[0]?.actor).toBe('user:anna');
      }));
  });
}
