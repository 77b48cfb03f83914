/** The care plan's SQLite adapter moved to gateway/src/store/sqlite/care.ts (issue 14). */
export { alertKey, createSqliteCareStore, type SqliteCareStoreOptions } from '../../store/sqlite/care.js';
