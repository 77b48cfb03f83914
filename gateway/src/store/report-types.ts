/**
 * The reports' shared data types: the facts a ReportSource gives (registries, visits, windows, tap counts),
 * the parameters of executed vs planned and the cells it is computed from (in memory or in SQL), and data
 * quality's counts. Types only. They live in store/ (moved from reports/types.ts, issue 14) because the
 * report port (store/reports.ts) and its adapters (store/sqlite/reports/, store/postgres/reports.ts) speak
 * them as much as the reports (gateway/src/reports/) do.
 */
import type {
  Area,
  Client,
  ExecutedVisit,
  PlannedVisit,
  Provider,
  ServiceCode,
  Staff,
  Team,
} from './care-model.js';

export interface Registries {
  providers: Provider[];
  areas: Area[];
  teams: Team[];
  clients: Client[];
  staff: Staff[];
  serviceCodes: ServiceCode[];
}

/** An executed visit with corrections applied, plus what only the ingest knows. */
export interface ReportVisit extends ExecutedVisit {
  /** When the gateway received the later of the visit's taps (ms); null if unknown. */
  receivedAtMs: number | null;
  /**
   * The planned visit this visit was matched to (null: unplanned), when the source knows the link; when
   * absent, reports derive it from the matches' executedKeys.
   */
  plannedVisitId?: string | null;
  /**
   * A coordinator marked the visit as a mistake (a `withdrawn` correction, gateway/src/corrections): it counts
   * in no report's figures, only as a withdrawn tap in data quality. Absent: not withdrawn.
   */
  withdrawn?: boolean;
}

/** A half-open UTC window [fromMs, toMs). */
export interface UtcWindow {
  fromMs: number;
  toMs: number;
}

/** Taps a reader delivered in a window by assurance level (secure card proved itself, or UID only). */
export interface TapCount {
  readerId: string;
  assurance: 'secure' | 'uid-only';
  taps: number;
}

export interface QualityCounts {
  /** Visits that count (withdrawn ones are not among them). */
  visits: number;
  /** Stop closed by the gateway (missing stop), not corrected since. */
  autoClosed: number;
  /** Changed by a person (manual close, a card assigned later, a correction). */
  corrected: number;
  /** Card still unknown (no staff member). */
  unknownCard: number;
  /** Reader clock unsynced and not correctable: the time is the device's guess. */
  uncorrectableTime: number;
  /** Taps received more than `lateDeliveryHours` after the visit. */
  lateDelivered: number;
  /** Still open, or a stop without a start. */
  incomplete: number;
  /** Visits withdrawn as a mistaken tap: left out of `visits` and of every figure. */
  withdrawn: number;
}

/**
 * Quality counts of one reader and client, the unit both ways of computing a report share (visits in memory
 * in reports/quality.ts, SQL in store/sqlite/reports/executed.ts). `ord` places the cell's first visit among the report's visits (the area
 * of a reader's first visit of a known area is the reader's area in the assurance table).
 */
export interface QualityCell {
  readerId: string;
  clientRef: string | null;
  ord: number | string;
  counts: QualityCounts;
}

export type Period = 'day' | 'week' | 'month' | 'range';

export type Dimension = 'client' | 'team' | 'area' | 'provider' | 'serviceCode';

export interface ExecutedParams {
  fromDate: string;
  toDate: string;
  period: Period;
  groupBy: readonly Dimension[];
  lateDeliveryHours?: number;
}

export type MissedField =
  'missedClientCancelled' | 'missedClientInHospital' | 'missedStaffIll' | 'missedOther' | 'missedNoReason';

export type ServiceCodes = PlannedVisit['serviceCodes'];

/** Planned visits of one local date, client and service-code list (minutes summed, statuses counted). */
export interface PlannedCell {
  date: string;
  clientRef: string;
  codes: ServiceCodes;
  visits: number;
  minutes: number;
  matched: number;
  late: number;
  understaffed: number;
  pending: number;
  missed: number;
  /** Missed visits by reason (field names of the report row). */
  reasons: Record<MissedField, number>;
}

/** Occasions that started on one local date, of one client and planned service-code list (null: unplanned). */
export interface ExecutedCell {
  date: string;
  clientRef: string | null;
  codes: ServiceCodes | null;
  occasions: number;
  withoutMinutes: number;
  /** Sums over the occasions of known length, in ms (exact integers). */
  lengthMs: number;
  staffMs: number;
}

/** The per-visit differences (executed − planned minutes) summarised. */
export interface DiffSummary {
  count: number;
  sumLengthMs: number;
  sumPlannedMinutes: number;
  median: number | null;
  p10: number | null;
  p90: number | null;
  bins: number[];
}

/**
 * What executed vs planned is computed from: cells, a difference summary and quality cells. Computed from
 * facts in memory (`executedCellsOf`) or aggregated in SQL (store/sqlite/reports/executed.ts); both give the same cells,
 * and `executedFromCells` makes the report from either.
 */
export interface ExecutedCells {
  planned: PlannedCell[];
  executed: ExecutedCell[];
  diffs: DiffSummary;
  quality: QualityCell[];
}

/** Continuity: the counted occasions of one client on one local date. */
export interface ContinuityDayCell {
  clientRef: string;
  date: string;
  /** Home-care occasions (alarm/meal-only and home-nursing-only ones left out). */
  occasions: number;
  /** Of them, made by two or more distinct staff (or unknown cards). */
  doubleStaffed: number;
}

/** Continuity: the staff one client met in the counted hours. */
export interface ContinuityClientCell {
  clientRef: string;
  /** Distinct staff members who started a counted visit. */
  staff: number;
  /** Distinct staff members who were an occasion's first counted staff (earliest start, then staff ref). */
  firstStaff: number;
  /** Counted visits (a staff member's visit that started in the counted hours). */
  counted: number;
  /** Of them, by the client's named care contact. */
  byContact: number;
}

/**
 * What the continuity measure is computed from: per client and day, per client, and the quality cells of
 * the visits it used. From facts in memory (`continuityCellsOf`) or aggregated in SQL
 * (store/sqlite/reports/continuity.ts); `continuityFromCells` makes the report from either.
 */
export interface ContinuityCells {
  days: ContinuityDayCell[];
  clients: ContinuityClientCell[];
  quality: QualityCell[];
}

/** The continuity cells' parameters: local dates, the counted hours in minutes of the day [from, to). */
export interface ContinuityCellParams {
  fromDate: string;
  toDate: string;
  countFromMinute: number;
  countToMinute: number;
  lateDeliveryHours?: number;
}
