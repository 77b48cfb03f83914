/**
 * Row shapes of the care plan's tables and their mapping, shared by both adapters (sqlite/care.ts,
 * postgres/care.ts), and the webhook events an alert change queues: one source for both engines.
 */
import type { VisitEvent } from '../../../protocol/index.js';
import {
  type Alert,
  type AlertKind,
  type ExecutedVisit,
  type MissedReasonCode,
  type PlanForMatch,
  type PlanMatch,
  type PlanVersion,
} from './care-model.js';
import type { AlertChange, ReplacePlanInput } from './care.js';

/** Planned visit ids of an import that are active in another area or version (the import is refused). */
export type PlanConflicts = { plannedVisitId: string; areaId: string; localDate: string }[];

/** Thrown inside an import's transaction so that nothing of it is kept; the adapter answers with the conflicts. */
export class PlanConflict extends Error {
  constructor(readonly conflicts: PlanConflicts) {
    super('planned visit ids active elsewhere');
  }
}

/** The version an accepted import records. */
export const planVersionOf = (
  input: ReplacePlanInput,
  planVersionId: number,
  supersedes: PlanVersion['supersedes'],
): PlanVersion => ({
  planVersionId,
  areaId: input.areaId,
  fromDate: input.fromDate,
  toDate: input.toDate,
  importedAtMs: input.nowMs,
  importedBy: input.importedBy,
  source: input.source,
  visitCount: input.visits.length,
  supersedes,
});

export interface PlanRow {
  plan_version_id: number;
  planned_visit_id: string;
  area_id: string;
  client_ref: string;
  local_date: string;
  local_start: string;
  start_ms: number;
  planned_minutes: number;
  service_codes_json: string;
  staff_count: number;
  staff_refs_json: string;
}
export const toPlan = (r: PlanRow): PlanForMatch => ({
  plannedVisitId: r.planned_visit_id,
  clientRef: r.client_ref,
  areaId: r.area_id,
  localDate: r.local_date,
  localStart: r.local_start,
  startMs: r.start_ms,
  plannedMinutes: r.planned_minutes,
  serviceCodes: JSON.parse(r.service_codes_json) as PlanForMatch['serviceCodes'],
  staffCount: r.staff_count === 2 ? 2 : 1,
  plannedStaffRefs: JSON.parse(r.staff_refs_json) as string[],
  planVersionId: r.plan_version_id,
});

export interface MatchRow {
  planned_visit_id: string;
  area_id: string;
  client_ref: string;
  start_ms: number;
  local_date: string;
  staff_count: number;
  window_end_ms: number;
  executed_keys_json: string;
  late_minutes: number | null;
  status: string;
  reason_code: string | null;
}
export const toMatch = (r: MatchRow): PlanMatch => ({
  plannedVisitId: r.planned_visit_id,
  areaId: r.area_id,
  clientRef: r.client_ref,
  startMs: r.start_ms,
  localDate: r.local_date,
  staffCount: r.staff_count === 2 ? 2 : 1,
  windowEndMs: r.window_end_ms,
  executedKeys: JSON.parse(r.executed_keys_json) as string[],
  lateMinutes: r.late_minutes,
  status: r.status as PlanMatch['status'],
  reasonCode: (r.reason_code ?? null) as MissedReasonCode | null,
});

export interface VisitRowRaw {
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
  /** SQLite: 0/1; PostgreSQL: a boolean. */
  corrected: number | boolean;
}
export const toExecuted = (r: VisitRowRaw): ExecutedVisit => ({
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
  anomalies: JSON.parse(r.anomalies_json) as string[],
  corrected: r.corrected === 1 || r.corrected === true || r.end_reason === 'manual',
  updatedAtMs: r.updated_at_ms,
});
export const VISIT_COLS = `v.reader_id, v.visit_id, v.client_ref, v.staff_ref, v.card_ref, v.group_id, v.state,
  v.started_at_ms, v.ended_at_ms, v.end_reason, v.time_quality, v.anomalies_json, v.updated_at_ms,
  EXISTS (SELECT 1 FROM visit_audit a WHERE a.reader_id = v.reader_id AND a.visit_id = v.visit_id) AS corrected`;

export interface AlertRow {
  planned_visit_id: string;
  kind: AlertKind;
  area_id: string;
  client_ref: string;
  planned_start_ms: number;
  raised_at_ms: number;
  cleared_at_ms: number | null;
  cleared_by: Alert['clearedBy'];
  reason_code: MissedReasonCode | null;
}
export const toAlert = (r: AlertRow): Alert => ({
  plannedVisitId: r.planned_visit_id,
  clientRef: r.client_ref,
  areaId: r.area_id,
  kind: r.kind,
  raisedAtMs: r.raised_at_ms,
  clearedAtMs: r.cleared_at_ms,
  clearedBy: r.cleared_by,
  reasonCode: r.reason_code,
});

export const alertKey = (plannedVisitId: string, kind: AlertKind, what: 'raised' | 'cleared'): string =>
  `pa1:${plannedVisitId}:${kind}:${what}`;

/** The event queued when an alert is raised (idempotent by its key). */
export const alertRaisedEvent = (a: Alert, plannedStartMs: number): VisitEvent => ({
  type: 'plan.alert.raised',
  idempotencyKey: alertKey(a.plannedVisitId, a.kind, 'raised'),
  visitId: null,
  plannedVisitId: a.plannedVisitId,
  areaId: a.areaId,
  clientRef: a.clientRef,
  kind: a.kind,
  plannedStart: new Date(plannedStartMs).toISOString(),
  raisedAt: new Date(a.raisedAtMs).toISOString(),
});

/** The event queued when an open alert is cleared; `visitKey` is the visit that cleared it, if any. */
export const alertClearedEvent = (
  c: AlertChange['clear'][number],
  row: Pick<AlertRow, 'area_id' | 'client_ref' | 'planned_start_ms'>,
  reason: MissedReasonCode | null,
  visitKey: string | null,
): VisitEvent => ({
  type: 'plan.alert.cleared',
  idempotencyKey: alertKey(c.plannedVisitId, c.kind, 'cleared'),
  visitId: visitKey === null ? null : visitKey.slice(visitKey.indexOf('/') + 1),
  plannedVisitId: c.plannedVisitId,
  areaId: row.area_id,
  clientRef: row.client_ref,
  kind: c.kind,
  plannedStart: new Date(row.planned_start_ms).toISOString(),
  clearedAt: new Date(c.clearedAtMs).toISOString(),
  clearedBy: c.clearedBy,
  reasonCode: reason,
});
