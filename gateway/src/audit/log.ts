import type { AuditEntry, AuditStore } from './store.js';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

/** Records changes with the real actor and the time from the injected clock. */
export class AuditLog {
  constructor(
    private readonly store: AuditStore,
    private readonly now: () => number,
  ) {}

  async record(r: AuditRecord): Promise<AuditEntry> {
    return this.store.append({
      atMs: this.now(),
      actor: r.actor,
      action: r.action,
      target: r.target,
      before: r.before ?? null,
      after: r.after ?? null,
      reason: r.reason ?? null,
    });
  }
}

const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  // a leading = + - @ would be read as a formula by spreadsheet programs
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

/** CSV (RFC 4180, UTF-8 with BOM so spreadsheet programs read å, ä, ö), oldest first. */
export function auditCsv(entries: readonly AuditEntry[]): string {
  const head = ['seq', 'time_utc', 'actor', 'action', 'target', 'reason', 'before', 'after'];
  const lines = entries.map((e) =>
    [e.seq, new Date(e.atMs).toISOString(), e.actor, e.action, e.target, e.reason, e.before, e.after]
      .map(csvCell)
      .join(','),
  );
  return `\uFEFF${[head.join(','), ...lines].join('\r\n')}\r\n`;
}
