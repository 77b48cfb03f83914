export { AuditLog, auditCsv, type AuditRecord } from './log.js';
export { auditRoutes } from './routes.js';
export type { AuditEntry, AuditStore } from './store.js';
