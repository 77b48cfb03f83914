/** The audit log port (store/ports.ts; adapters: store/sqlite/audit.ts, store/postgres/audit.ts). */
export type { Awaitable, AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from '../store/ports.js';
