/**
 * The care-plan vocabulary (issue 11), shared with reports (issue 12): registries (providers, areas, teams,
 * clients, staff, service codes), the plan (planned visits in versions), executed visits as the plan sees
 * them, matches and alerts. Pure: types and zod schemas only, no I/O.
 *
 * Stability: other modules import these names. Change them only additively (new optional fields, new
 * types); never rename or narrow.
 *
 * Lives in store/ (moved from care/model.ts, which re-exports it) because the care plan's store port and
 * its adapters (store/care.ts, store/sqlite/care.ts, store/postgres/care.ts) speak these types.
 *
 * Time: every stored instant is UTC epoch ms (`...Ms`). Local dates and times ('YYYY-MM-DD', 'HH:MM') are
 * in the plan's time zone (default Europe/Stockholm, injected). A visit crossing midnight belongs to the
 * local day it started.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------- basics

/** Pseudonymous references: letters, digits and `._:-`, never a name or a personal number. */
export const Ref = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._:-]+$/, {
    message:
      'use a pseudonymous id of letters, digits and . _ : - (1-64 characters); never a name or a personal number',
  });
export type Ref = z.infer<typeof Ref>;

const isRealDate = (s: string): boolean => {
  const [y, m, d] = s.split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
};

/** A calendar date in the plan's time zone, `YYYY-MM-DD`. */
export const LocalDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'write the date as YYYY-MM-DD, e.g. 2026-03-29' })
  .refine(isRealDate, { message: 'no such calendar date; check day and month' });
export type LocalDate = z.infer<typeof LocalDate>;

/** A wall-clock time in the plan's time zone, `HH:MM` (24 h). */
export const LocalTime = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'write the time as HH:MM (24 h), e.g. 07:30' });
export type LocalTime = z.infer<typeof LocalTime>;

export const EpochMs = z.number().int().min(0);

// ------------------------------------------------------------------------------------------ registries

export const ProviderKind = z
  .enum(['municipal', 'lov'])
  .describe("municipal: the municipality's own; lov: a private provider under the free-choice system (LOV)");
export type ProviderKind = z.infer<typeof ProviderKind>;

export const Provider = z
  .object({ providerId: Ref, name: z.string().min(1).max(200), kind: ProviderKind })
  .strict();
export type Provider = z.infer<typeof Provider>;

/** A home-care area (hemtjänstområde). It can hold clients of several providers: scope = (area, provider). */
export const Area = z
  .object({
    areaId: Ref,
    name: z.string().min(1).max(200),
    /** Minutes after the planned start before a `late` alert; null = the gateway's default. */
    lateAfterMinutes: z.number().int().min(1).max(600).nullable().default(null),
    /** Minutes after the planned start before `late` becomes `missed`; null = the gateway's default. */
    missedAfterMinutes: z.number().int().min(1).max(1440).nullable().default(null),
  })
  .strict();
export type Area = z.infer<typeof Area>;

export const Team = z.object({ teamId: Ref, areaId: Ref, name: z.string().min(1).max(200) }).strict();
export type Team = z.infer<typeof Team>;

/** Decision types from the needs assessor's decision (biståndsbeslut). Open set; these are the known ones. */
export const KNOWN_DECISION_TYPES = [
  'personal-care',
  'service',
  'safety-alarm',
  'meal-delivery',
  'relief',
  'escort',
] as const;
/** Decisions that alone do not put a client in the continuity measure's population. */
export const NON_COUNTING_DECISION_TYPES: readonly string[] = [
  'safety-alarm',
  'meal-delivery',
  'relief',
  'escort',
];

export const AbsenceKind = z.enum(['hospital', 'short-term-stay', 'other']);
export type AbsenceKind = z.infer<typeof AbsenceKind>;

/** A period the client did not live at home (both dates inclusive). */
export const Absence = z
  .object({ from: LocalDate, to: LocalDate, kind: AbsenceKind })
  .strict()
  .refine((a) => a.from <= a.to, { message: 'absence "from" must not be after "to"' });
export type Absence = z.infer<typeof Absence>;

export const Client = z
  .object({
    clientRef: Ref,
    areaId: Ref,
    teamId: Ref.nullable(),
    providerId: Ref,
    /** Birth year, if the integrator gives it; the age criterion is derived from it. */
    birthYear: z.number().int().min(1880).max(2100).nullable().default(null),
    /**
     * The integrator's explicit answer to the age criterion of the continuity measure (65+ in the period),
     * when it gives no birth year. If both are given, this flag wins.
     */
    kkikEligible: z.boolean().nullable().default(null),
    decisionTypes: z.array(z.string().min(1).max(64)).max(32).default([]),
    /** Named care contact (fast omsorgskontakt), a staff ref. */
    careContactStaffRef: Ref.nullable().default(null),
    palliative: z.boolean().default(false),
    activeFrom: LocalDate,
    activeTo: LocalDate.nullable().default(null),
    absences: z.array(Absence).max(366).default([]),
  })
  .strict();
export type Client = z.infer<typeof Client>;

export const StaffCategory = z
  .enum(['care', 'licensed-health', 'rehab', 'substitute'])
  .describe('licensed-health and rehab staff are left out of the continuity measure');
export type StaffCategory = z.infer<typeof StaffCategory>;

export const Staff = z
  .object({
    staffRef: Ref,
    teamId: Ref.nullable(),
    areaId: Ref.nullable(),
    category: StaffCategory,
    activeFrom: LocalDate,
    activeTo: LocalDate.nullable().default(null),
  })
  .strict();
export type Staff = z.infer<typeof Staff>;

export const ServiceCodeKind = z.enum([
  'personal-care',
  'service',
  'safety-alarm',
  'meal-delivery',
  'hsl',
  'other',
]);
export type ServiceCodeKind = z.infer<typeof ServiceCodeKind>;

/** A service code (insatskod) with its standard time (schablontid); HSL codes have none. */
export const ServiceCode = z
  .object({
    code: Ref,
    label: z.string().min(1).max(200),
    kind: ServiceCodeKind,
    standardMinutes: z.number().min(0).max(1440).nullable(),
  })
  .strict();
export type ServiceCode = z.infer<typeof ServiceCode>;

// ----------------------------------------------------------------------------------------------- plan

export const PlannedServiceCode = z
  .object({
    code: Ref,
    standardMinutes: z.number().min(0).max(1440).nullable(),
    /** The granted minutes (beviljad tid) of the decision this visit's share comes from, if known. */
    grantedMinutes: z.number().min(0).max(100000).nullable(),
  })
  .strict();
export type PlannedServiceCode = z.infer<typeof PlannedServiceCode>;

export const StaffCount = z.union([z.literal(1), z.literal(2)]);
export type StaffCount = z.infer<typeof StaffCount>;

/** One planned visit. `startMs` is derived once from (localDate, localStart, time zone) at import. */
export const PlannedVisit = z
  .object({
    plannedVisitId: Ref,
    clientRef: Ref,
    localDate: LocalDate,
    localStart: LocalTime,
    startMs: EpochMs,
    plannedMinutes: z.number().min(0).max(1440),
    serviceCodes: z.array(PlannedServiceCode).max(32),
    staffCount: StaffCount,
    plannedStaffRefs: z.array(Ref).max(2),
    planVersionId: z.number().int().min(1),
  })
  .strict();
export type PlannedVisit = z.infer<typeof PlannedVisit>;

/** One import: replaces the plan of (area, fromDate..toDate inclusive); earlier versions are kept. */
export const PlanVersion = z
  .object({
    planVersionId: z.number().int().min(1),
    areaId: Ref,
    fromDate: LocalDate,
    toDate: LocalDate,
    importedAtMs: EpochMs,
    importedBy: z.string().min(1).max(200),
    source: z.string().max(500),
    visitCount: z.number().int().min(0),
    /** The version it replaced for that range, if any. */
    supersedes: z.array(z.number().int().min(1)),
  })
  .strict();
export type PlanVersion = z.infer<typeof PlanVersion>;

// ------------------------------------------------------------------------------------- executed visits

/** An executed visit as the plan and reports see it (from the gateway's visits, corrections applied). */
export interface ExecutedVisit {
  readerId: string;
  visitId: string;
  /** The client at the reader at the visit's time (reader → client history); null if unassigned. */
  clientRef: string | null;
  staffRef: string | null;
  cardRef: string;
  groupId: string | null;
  state: 'open' | 'closed';
  startedAtMs: number | null;
  endedAtMs: number | null;
  /** 'tap' | 'auto-close' | 'manual' (manual close is a correction) or null while open. */
  endReason: string | null;
  timeQuality: 'synced' | 'corrected' | 'uncorrected';
  anomalies: string[];
  /** True when a person changed it (manual close, attribution of a card assigned later). */
  corrected: boolean;
  updatedAtMs: number;
}

/** A stable key of one executed visit: `<readerId>/<visitId>`. */
export const executedKey = (v: Pick<ExecutedVisit, 'readerId' | 'visitId'>): string =>
  `${v.readerId}/${v.visitId}`;

/** The read port reports and matching use for executed visits (never the visits table directly). */
export interface ExecutedVisitSource {
  /** Visits that started (or, without a start, ended) in [fromMs, toMs) and were not withdrawn as a mistake. */
  executedBetween(fromMs: number, toMs: number, clientRefs?: readonly string[]): Promise<ExecutedVisit[]>;
}

// --------------------------------------------------------------------------------------------- matches

export const MissedReasonCode = z
  .enum(['client-cancelled', 'client-in-hospital', 'staff-ill', 'other'])
  .describe('why a planned visit was not made, set by a coordinator (or the import)');
export type MissedReasonCode = z.infer<typeof MissedReasonCode>;

export const MatchStatus = z
  .enum(['matched', 'late', 'missed', 'unplanned', 'understaffed', 'pending'])
  .describe(
    'matched: started within the window and on time; late: started later than the late threshold; ' +
      'missed: no visit by the end of the window; unplanned: an executed visit with no plan; ' +
      'understaffed: a double-staffed plan with fewer than two staff; pending: window still open, nothing yet',
  );
export type MatchStatus = z.infer<typeof MatchStatus>;

export interface Match {
  /** null for an unplanned executed visit. */
  plannedVisitId: string | null;
  clientRef: string;
  status: MatchStatus;
  /** Executed visit keys (`executedKey`), ordered; a double-staffed plan can hold two. */
  executedKeys: string[];
  /** Minutes the first start came after the planned start (negative = early); null without a visit. */
  lateMinutes: number | null;
  reasonCode: MissedReasonCode | null;
  /** Local date the match belongs to (planned date, or the executed visit's local start date). */
  localDate: string;
}

// ---------------------------------------------------------------------------------------------- alerts

export const AlertKind = z.enum(['late', 'missed', 'understaffed']);
export type AlertKind = z.infer<typeof AlertKind>;

export interface Alert {
  plannedVisitId: string;
  clientRef: string;
  areaId: string;
  kind: AlertKind;
  raisedAtMs: number;
  clearedAtMs: number | null;
  /** Why it cleared: the visit started, a reason code was set, or the plan changed. */
  clearedBy: 'visit-started' | 'reason-set' | 'plan-changed' | 'second-staff' | null;
  reasonCode: MissedReasonCode | null;
}

// ------------------------------------------------------------------------------------------- derived

const yearOf = (d: string): number => Number(d.slice(0, 4));

/** Did the client live at home for the whole period [from, to] (no absence overlapping it)? */
export const livedAtHomeThroughout = (c: Pick<Client, 'absences'>, from: string, to: string): boolean =>
  !c.absences.some((a) => a.from <= to && a.to >= from);

/**
 * Is the client 65+ in the period starting `periodStart` (by birth year: turns 65 in that year or
 * earlier), or by the explicit flag? null when neither is known.
 */
export const is65Plus = (
  c: Pick<Client, 'birthYear' | 'kkikEligible'>,
  periodStart: string,
): boolean | null => {
  if (c.kkikEligible !== null) return c.kkikEligible;
  if (c.birthYear === null) return null;
  return yearOf(periodStart) - c.birthYear >= 65;
};

/** Has the client a decision that is not only safety alarm / meal delivery / relief / escort? */
export const hasCountingDecision = (c: Pick<Client, 'decisionTypes'>): boolean =>
  c.decisionTypes.some((t) => !NON_COUNTING_DECISION_TYPES.includes(t));

/**
 * Counts in the continuity measure's population: 65+ (unknown age counts as not) AND a decision that is
 * not only safety alarm, meal delivery, relief or escort. (The measure's other rules, two or more visits
 * every day and living at home throughout, need the visits and the period: see reports.)
 */
export const countsInContinuityMeasure = (
  c: Pick<Client, 'birthYear' | 'kkikEligible' | 'decisionTypes'>,
  periodStart: string,
): boolean => is65Plus(c, periodStart) === true && hasCountingDecision(c);

/** Is the client active on the local date? */
export const isActiveOn = (x: { activeFrom: string; activeTo: string | null }, date: string): boolean =>
  x.activeFrom <= date && (x.activeTo === null || x.activeTo >= date);

// ---------------------------------------------------------------------------------------------- matching

/** A planned visit as matching and alerts see it (with its area, for per-area thresholds). */
export type PlanForMatch = PlannedVisit & { areaId: string };

/** The stored result for one planned visit. */
export interface PlanMatch extends Match {
  plannedVisitId: string;
  areaId: string;
  startMs: number;
  staffCount: 1 | 2;
  /** After this instant a plan with no visit is missed. */
  windowEndMs: number;
}
