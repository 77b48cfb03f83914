/**
 * The secure-card tables behind ONE port (issue 18). The port is declared in store/ (store/secure-cards.ts)
 * so both adapters can implement it: SQLite in store/sqlite/secure-cards.ts (own migrations, `secure-` ids) and
 * PostgreSQL in store/postgres/secure-cards.ts (issue 14). Card references are pseudonyms (c1_...), never
 * raw UIDs.
 */
export type {
  Assurance,
  AssuranceCount,
  SecureCardState,
  SecureCardStore,
  SecureCardTx,
  SecureScreenKeys,
  TapAssurance,
  Verdict,
} from '../store/secure-cards.js';
