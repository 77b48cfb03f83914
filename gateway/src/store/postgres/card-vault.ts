import type { PgPool } from './db.js';

/**
 * The sealed card UID vault's rows on PostgreSQL (table `card_uid_vault`, migration cards-vault-001), shared by
 * every gateway instance: one row per card, keyed by its fleet pseudonym, the UID sealed to the gateway's own
 * seal key (cards/uid-vault.ts). Never a raw UID. Inserts are idempotent (the first seal of a card is kept).
 */
export interface VaultRow {
  c: string;
  s: string;
}

export async function insertVaultRows(pool: PgPool, rows: readonly VaultRow[], nowMs: number): Promise<void> {
  if (rows.length === 0) return;
  await pool.query(
    `INSERT INTO card_uid_vault (card_ref, sealed, created_at_ms)
     SELECT c, s, $3 FROM unnest($1::text[], $2::text[]) AS u(c, s)
     ON CONFLICT (card_ref) DO NOTHING`,
    [rows.map((r) => r.c), rows.map((r) => r.s), nowMs],
  );
}

/** Rows whose card is not in `known` (the caller's memory): each instance reads only what it lacks. */
export async function vaultRowsExcept(pool: PgPool, known: readonly string[]): Promise<VaultRow[]> {
  const r = await pool.query<VaultRow>(
    'SELECT card_ref AS c, sealed AS s FROM card_uid_vault WHERE NOT (card_ref = ANY($1::text[]))',
    [known],
  );
  return r.rows;
}
