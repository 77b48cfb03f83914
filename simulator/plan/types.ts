/**
 * A care plan the simulator plays (issue 11): the registries and planned visits a municipality's planning
 * system would export, plus where the readers hang and who works which shift. Generated from a seed
 * (`generate.ts`) or loaded from a JSON file (`load.ts`), then played by seeded staff (`behaviour.ts`).
 */
import type { Area, Client, Provider, ServiceCode, Staff, Team } from '../../gateway/src/care/model.js';

export interface PlanHome {
  clientRef: string;
  readerId: string;
  /** Position in km, for travel times. */
  x: number;
  y: number;
}

/** One planned visit as the plan import's JSON rows carry it, with its area. */
export interface PlanVisitRow {
  plannedVisitId: string;
  clientRef: string;
  areaId: string;
  /** Local date (YYYY-MM-DD) and start (HH:MM) in the plan's time zone. */
  date: string;
  start: string;
  plannedMinutes: number;
  staffCount: 1 | 2;
  staffRefs: string[];
  serviceCodes: { code: string; standardMinutes: number | null; grantedMinutes: number | null }[];
}

/** A staff member's working day: 'day' 07:00-15:00, 'evening' 14:00-22:30, or off. */
export type Shift = 'day' | 'evening' | 'off';

export interface SimPlan {
  /** Seed the plan was generated from (0 for a hand-written plan). */
  seed: number;
  timeZone: string;
  /** First local date and the number of days. */
  fromDate: string;
  days: number;
  registry: {
    providers: Provider[];
    areas: Area[];
    teams: Team[];
    clients: Client[];
    staff: Staff[];
    serviceCodes: ServiceCode[];
  };
  homes: PlanHome[];
  /** staffRef → one shift per day (index 0 = fromDate). */
  shifts: Record<string, Shift[]>;
  visits: PlanVisitRow[];
}

export interface PlanParams {
  seed: number;
  clients: number;
  staff: number;
  days: number;
  /** First local date (default 2026-11-23, a Monday). */
  fromDate?: string;
  timeZone?: string;
}

/** What the simulated day did to one planned visit: the ground truth the plan checks use. */
export interface PlannedOutcome {
  plannedVisitId: string;
  clientRef: string;
  areaId: string;
  startMs: number;
  staffCount: 1 | 2;
  /**
   * made: somebody came (arrivals of each staff member, first first); client-absent: the client's
   * registered absence (nobody went); uncovered: the planned staff was ill and nobody was free;
   * forgotten: nobody came (a slip of the route); overrun: the staff could not get there in the window.
   */
  outcome: 'made' | 'client-absent' | 'uncovered' | 'forgotten' | 'overrun';
  arrivalsMs: number[];
  staffRefs: string[];
  /** True when a substitute or another colleague covered for an ill planned staff member. */
  covered: boolean;
}

export interface UnplannedOutcome {
  clientRef: string;
  readerId: string;
  staffRef: string;
  startMs: number;
}
