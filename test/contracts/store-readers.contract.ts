import { describe, expect, it } from 'vitest';
import type { ReaderRecord } from '../../gateway/src/store/ingest-store.js';

type Aw<T> = T | Promise<T>;

/**
 * The reader registry's rows (the `readers` table and each reader's client history), the part of the
 * ingest store port the ReaderRegistry writes, through the interface only, every call awaited: SQLite
 * answers synchronously, PostgreSQL with a Promise. Run over the SQLite store, PostgreSQL's ingest store
 * and the shared directory the registry uses in `store.engine: "postgres"` mode
 * (store/postgres/reader-directory.ts: reads from a snapshot, writes through). Each adapter supplies a fresh, migrated, empty store, a
 * `sql` helper (`?` placeholders) and `close`.
 */
export interface ReaderRows {
  getReader(readerId: string): Aw<ReaderRecord | undefined>;
  listReaders(): Aw<ReaderRecord[]>;
  insertReader(r: ReaderRecord): Aw<void>;
  setPasswordHash(readerId: string, hash: string): Aw<void>;
  setRevoked(readerId: string, atMs: number | null): Aw<void>;
  setClientRef(readerId: string, clientRef: string | null, atMs: number): Aw<void>;
}

export interface ReaderRowsFixture {
  store: ReaderRows;
  sql: (text: string, params?: readonly unknown[]) => Promise<Record<string, unknown>[]>;
  close: () => Promise<void>;
}

const reader = (readerId: string, over: Partial<ReaderRecord> = {}): ReaderRecord => ({
  readerId,
  passwordHash: `scrypt$${readerId}$hash-1`,
  clientRef: `home-${readerId}`,
  label: null,
  revokedAt: null,
  createdAt: 1_000,
  ...over,
});

export function describeReaderRowsContract(name: string, make: () => Promise<ReaderRowsFixture>): void {
  describe(`reader rows contract: ${name}`, () => {
    const withStore = async (fn: (f: ReaderRowsFixture) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.close();
      }
    };

    it('adds readers and reads them back, one and all (by id); an unknown reader is undefined', () =>
      withStore(async ({ store }) => {
        expect(await store.getReader('r-b')).toBeUndefined();
        await store.insertReader(reader('r-b', { label: 'Kitchen', createdAt: 2_000 }));
        await store.insertReader(reader('r-a', { clientRef: null }));
        expect(await store.getReader('r-b')).toEqual(reader('r-b', { label: 'Kitchen', createdAt: 2_000 }));
        expect(await store.listReaders()).toEqual([
          reader('r-a', { clientRef: null }),
          reader('r-b', { label: 'Kitchen', createdAt: 2_000 }),
        ]);
      }));

    it('refuses a second reader with the same id and keeps the first', () =>
      withStore(async ({ store }) => {
        await store.insertReader(reader('r-a'));
        await expect(
          Promise.resolve().then(() => store.insertReader(reader('r-a', { passwordHash: 'other' }))),
        ).rejects.toThrow();
        expect((await store.getReader('r-a'))?.passwordHash).toBe(reader('r-a').passwordHash);
      }));

    it('re-keys, revokes and restores one reader only', () =>
      withStore(async ({ store }) => {
        await store.insertReader(reader('r-a'));
        await store.insertReader(reader('r-b'));
        await store.setPasswordHash('r-a', 'scrypt$r-a$hash-2');
        await store.setRevoked('r-a', 5_000);
        expect(await store.getReader('r-a')).toEqual(
          reader('r-a', { passwordHash: 'scrypt$r-a$hash-2', revokedAt: 5_000 }),
        );
        expect(await store.getReader('r-b')).toEqual(reader('r-b'));
        await store.setRevoked('r-a', null);
        expect((await store.getReader('r-a'))?.revokedAt).toBeNull();
      }));

    it('holds every change in the table itself (what another instance or process reads)', () =>
      withStore(async ({ store, sql }) => {
        await store.insertReader(reader('r-a'));
        await store.setPasswordHash('r-a', 'scrypt$r-a$hash-2');
        await store.setRevoked('r-a', 7_000);
        await store.setClientRef('r-a', 'home-3', 8_000);
        const rows = await sql(
          'SELECT password_hash, client_ref, revoked_at FROM readers WHERE reader_id = ?',
          ['r-a'],
        );
        expect(rows.map((r) => [r.password_hash, r.client_ref, Number(r.revoked_at)])).toEqual([
          ['scrypt$r-a$hash-2', 'home-3', 7_000],
        ]);
        expect(await store.getReader('r-a')).toEqual(
          reader('r-a', { passwordHash: 'scrypt$r-a$hash-2', clientRef: 'home-3', revokedAt: 7_000 }),
        );
      }));

    it('moves a reader and keeps each client it served from when (the visits read this history)', () =>
      withStore(async ({ store, sql }) => {
        await store.insertReader(reader('r-a'));
        await store.setClientRef('r-a', 'home-2', 3_000);
        await store.setClientRef('r-a', null, 4_000);
        expect((await store.getReader('r-a'))?.clientRef).toBeNull();
        const rows = await sql(
          'SELECT client_ref, from_ms FROM reader_client_history WHERE reader_id = ? ORDER BY from_ms',
          ['r-a'],
        );
        expect(rows.map((r) => [r.client_ref, Number(r.from_ms)])).toEqual([
          ['home-r-a', 1_000],
          ['home-2', 3_000],
          [null, 4_000],
        ]);
      }));
  });
}
