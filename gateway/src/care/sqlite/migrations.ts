/** The care plan's SQLite migrations moved to gateway/src/store/sqlite/care-migrations.ts (issue 14). */
export { careMigrations } from '../../store/sqlite/care-migrations.js';
