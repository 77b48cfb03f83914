/** The corrections' SQLite steps live in the store (store/sqlite/corrections-migrations.ts); this name stays for callers. */
export { correctionMigrations } from '../store/sqlite/corrections-migrations.js';
