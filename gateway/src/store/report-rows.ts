/**
 * A visit row as both report sources read it (sqlite/reports/source.ts over SQLite, postgres/reports.ts over
 * PostgreSQL) and its one mapping to the report visit (report-types.ts `ReportVisit`).
 */
import type { ExecutedVisit } from './care-model.js';
import type { ReportVisit } from './report-types.js';

/** The columns both sources select for a report visit. */
export interface ReportVisitRow {
  reader_id: string;
  visit_id: string;
  client_ref: string | null;
  staff_ref: string | null;
  card_ref: string;
  group_id: string | null;
  state: 'open' | 'closed';
  started_at_ms: number | null;
  ended_at_ms: number | null;
  end_reason: string | null;
  time_quality: ExecutedVisit['timeQuality'];
  anomalies_json: string;
  updated_at_ms: number;
  received_at_ms: number | null;
  planned_visit_id: string | null;
  /** The match row's key: null when the matching has not seen the visit yet. */
  vm_key: string | null;
}

const NO_ANOMALIES: string[] = [];

/**
 * `audited`: the visit has an audit row (a manual end counts as corrected too); `linked`: the source knows the
 * plan links (a visit the matching has not seen carries none: reports then use the matches).
 */
export function toReportVisit(
  r: ReportVisitRow,
  f: { audited: boolean; linked: boolean; withdrawn: boolean },
): ReportVisit {
  return {
    readerId: r.reader_id,
    visitId: r.visit_id,
    clientRef: r.client_ref,
    staffRef: r.staff_ref,
    cardRef: r.card_ref,
    groupId: r.group_id,
    state: r.state,
    startedAtMs: r.started_at_ms,
    endedAtMs: r.ended_at_ms,
    endReason: r.end_reason,
    timeQuality: r.time_quality,
    anomalies: r.anomalies_json === '[]' ? NO_ANOMALIES : (JSON.parse(r.anomalies_json) as string[]),
    corrected: f.audited || r.end_reason === 'manual',
    updatedAtMs: r.updated_at_ms,
    receivedAtMs: r.received_at_ms || null,
    ...(f.linked && r.vm_key !== null ? { plannedVisitId: r.planned_visit_id } : {}),
    ...(f.withdrawn ? { withdrawn: true } : {}),
  };
}
