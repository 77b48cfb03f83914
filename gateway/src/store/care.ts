/**
 * The care plan's ONE persistence port (tables care_*; reads visits and visit_audit): every SQL statement
 * of gateway/src/care lives behind it. Adapters: sqlite/care.ts (better-sqlite3, synchronous transactions
 * answered as settled promises) and postgres/care.ts (several instances on one database: each write unit
 * takes one transaction-level advisory lock, so two instances never rematch or raise alerts at once).
 * Async at unit-of-work granularity: each method is one transaction.
 */
import type {
  PlanForMatch,
  PlanMatch,
  Alert,
  AlertKind,
  Area,
  Client,
  ExecutedVisit,
  ExecutedVisitSource,
  MissedReasonCode,
  PlannedVisit,
  PlanVersion,
  Provider,
  ServiceCode,
  Staff,
  Team,
} from './care-model.js';

export interface RegistryBatch {
  providers?: Provider[];
  areas?: Area[];
  teams?: Team[];
  clients?: Client[];
  staff?: Staff[];
  serviceCodes?: ServiceCode[];
}

export type NewPlannedVisit = Omit<PlannedVisit, 'planVersionId'>;

export interface ReplacePlanInput {
  areaId: string;
  fromDate: string;
  toDate: string;
  visits: NewPlannedVisit[];
  importedBy: string;
  source: string;
  nowMs: number;
}

export interface PlanConflict {
  plannedVisitId: string;
  areaId: string;
  localDate: string;
}

export type ReplacePlanResult =
  { ok: true; version: PlanVersion; replaced: number } | { ok: false; conflicts: PlanConflict[] };

/** What a rematch reads (one client, a time range) and what it writes back. */
export interface RematchInput {
  plans: PlanForMatch[];
  visits: ExecutedVisit[];
  reasons: Map<string, MissedReasonCode>;
}
export interface RematchOutput {
  plans: PlanMatch[];
  visits: {
    key: string;
    clientRef: string;
    timeMs: number;
    localDate: string;
    plannedVisitId: string | null;
  }[];
}

export interface AlertChange {
  raise: Alert[];
  clear: {
    plannedVisitId: string;
    kind: AlertKind;
    clearedAtMs: number;
    clearedBy: NonNullable<Alert['clearedBy']>;
    /** The reason code that cleared it (set by a person, or given by a registered client absence). */
    reasonCode?: MissedReasonCode | null;
  }[];
}

/** What the alert evaluation reads: active plans started in [fromMs, toMs), their matches, open alerts. */
export interface AlertInput {
  plans: PlanForMatch[];
  matches: Map<string, PlanMatch>;
  open: Alert[];
  /** Plans with an open alert that are no longer in the active plan. */
  goneOpen: Alert[];
  reasons: Map<string, MissedReasonCode>;
}

export interface VisitChangeCursor {
  updatedAtMs: number;
  key: string;
}

export interface CareStore extends ExecutedVisitSource {
  upsertRegistry(batch: RegistryBatch, nowMs: number): Promise<void>;
  listAreas(): Promise<Area[]>;
  listClients(areaId?: string): Promise<Client[]>;
  listStaff(areaId?: string): Promise<Staff[]>;
  listServiceCodes(): Promise<ServiceCode[]>;
  listProviders(): Promise<Provider[]>;
  listTeams(areaId?: string): Promise<Team[]>;

  /** Atomically replaces the active plan of (area, fromDate..toDate); the old rows stay, inactive. */
  replacePlan(input: ReplacePlanInput): Promise<ReplacePlanResult>;
  planVersions(areaId?: string): Promise<PlanVersion[]>;
  /** Active planned visits starting in [fromMs, toMs). */
  activePlans(q: {
    fromMs: number;
    toMs: number;
    areaId?: string;
    clientRefs?: string[];
  }): Promise<PlanForMatch[]>;
  /** The active planned visit with this id, or null. */
  plannedVisit(plannedVisitId: string): Promise<PlanForMatch | null>;
  /** Planned visits of one version (active or not). */
  plansOfVersion(planVersionId: number): Promise<PlanForMatch[]>;
  /** Clients with active plans in [fromMs, toMs) of an area (for rematching after an import). */
  clientsWithPlans(q: { fromMs: number; toMs: number; areaId?: string }): Promise<string[]>;

  setReason(
    r: { plannedVisitId: string; reasonCode: MissedReasonCode; actor: string; note: string },
    nowMs: number,
  ): Promise<boolean>;

  /**
   * One unit of work: reads the client's active plans and executed visits in [fromMs, toMs) (not those
   * withdrawn as a mistake), calls the pure `compute`, replaces the stored matches of those plans and
   * visits with its result.
   */
  rematch(
    clientRef: string,
    range: { fromMs: number; toMs: number },
    compute: (input: RematchInput) => RematchOutput,
  ): Promise<RematchOutput>;
  /** Stored matches; with `nowMs`, a plan still 'pending' whose window has closed reads as 'missed'. */
  /** `rematch` for several clients over one range, in ONE unit of work (one commit). */
  rematchMany(
    clientRefs: readonly string[],
    range: { fromMs: number; toMs: number },
    compute: (clientRef: string, input: RematchInput) => RematchOutput,
  ): Promise<void>;
  matches(q: {
    fromMs: number;
    toMs: number;
    areaId?: string;
    clientRef?: string;
    nowMs?: number;
  }): Promise<PlanMatch[]>;
  unplanned(q: { fromMs: number; toMs: number; clientRef?: string }): Promise<RematchOutput['visits']>;

  /** Executed visits changed after the cursor (by the gateway's updated_at_ms), in order, up to `limit`. */
  changedVisits(
    cursor: VisitChangeCursor | null,
    limit: number,
  ): Promise<{ visits: ExecutedVisit[]; cursor: VisitChangeCursor | null }>;
  /** Where these executed visits were last matched (client, time), to re-match the old place too. */
  previousMatchOf(
    keys: readonly string[],
  ): Promise<Array<{ key: string; clientRef: string; timeMs: number }>>;
  getCursor(): Promise<VisitChangeCursor | null>;
  setCursor(c: VisitChangeCursor): Promise<void>;

  /** One unit of work: reads the alert input, calls `decide`, writes alerts and their webhook events. */
  alertTick(
    range: { fromMs: number; toMs: number },
    decide: (input: AlertInput) => AlertChange,
  ): Promise<AlertChange>;
  alerts(q: { open?: boolean; areaId?: string; limit?: number }): Promise<Alert[]>;
  openAlertCounts(): Promise<Record<AlertKind, number>>;
}
