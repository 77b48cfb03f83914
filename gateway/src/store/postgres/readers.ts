import type { ReaderRecord } from '../ingest-store.js';
import type { PgPool } from './db.js';

/**
 * Copies reader rows into PostgreSQL's `readers` table in ONE statement: new readers are inserted
 * (with a client-history row from their creation time); with `mode` 'upsert' changed ones are updated
 * too (a reader whose client changed gets a history row from `nowMs`), with 'missing' existing rows
 * are left as they are. Used while the reader registry itself still lives in a SQLite file per
 * instance (`store: postgres` mode, gateway/pg-instance.ts), where PostgreSQL's rows are the shared
 * truth. Returns the number of readers inserted or changed.
 */
export async function syncReaders(
  pool: PgPool,
  readers: readonly ReaderRecord[],
  nowMs: number,
  mode: 'upsert' | 'missing' = 'upsert',
): Promise<number> {
  if (readers.length === 0) return 0;
  const col = <K extends keyof ReaderRecord>(k: K) => readers.map((r) => r[k]);
  const r = await pool.query<{ n: number }>(
    `WITH src AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
         AS s(reader_id, password_hash, client_ref, label, revoked_at, created_at)),
     old AS (SELECT r.reader_id, r.client_ref FROM readers r JOIN src USING (reader_id)),
     up AS (
       INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at)
         SELECT reader_id, password_hash, client_ref, label, revoked_at, created_at FROM src
       ON CONFLICT (reader_id) ${
         mode === 'missing'
           ? 'DO NOTHING'
           : `DO UPDATE SET password_hash = excluded.password_hash,
         client_ref = excluded.client_ref, label = excluded.label, revoked_at = excluded.revoked_at
       WHERE (readers.password_hash, readers.client_ref, readers.label, readers.revoked_at)
         IS DISTINCT FROM (excluded.password_hash, excluded.client_ref, excluded.label, excluded.revoked_at)`
       }
       RETURNING reader_id, client_ref),
     hist AS (
       INSERT INTO reader_client_history (reader_id, client_ref, from_ms)
         SELECT up.reader_id, up.client_ref, CASE WHEN old.reader_id IS NULL THEN src.created_at ELSE $7 END
           FROM up JOIN src USING (reader_id) LEFT JOIN old USING (reader_id)
          WHERE old.reader_id IS NULL OR old.client_ref IS DISTINCT FROM up.client_ref
       RETURNING 1)
     SELECT (SELECT count(*) FROM up)::int AS n`,
    [
      col('readerId'),
      col('passwordHash'),
      col('clientRef'),
      col('label'),
      col('revokedAt'),
      col('createdAt'),
      nowMs,
    ],
  );
  return r.rows[0]?.n ?? 0;
}
