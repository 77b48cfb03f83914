/**
 * Local time for reports (ReportClock, calendar arithmetic). It lives in gateway/src/store/report-time.ts
 * since the SQLite report aggregation moved under the store (issue 14), which places instants in local days
 * too; this module keeps the names other modules import.
 */
export * from '../store/report-time.js';
