import type { DataScope } from '../auth/scope.js';
import { flagEntry, type FlagRowRaw, type FlagStore, type FlagStoreResult } from '../store/corrections.js';

/**
 * Care staff's own registrations (a record they can check, not surveillance) and their flags: a staff
 * member tells the coordinator that one of their visits is wrong, or that a visit is missing. The
 * coordinator sees the flags of their areas, acts with the corrections (correct, add, withdraw) and
 * marks the flag resolved; the staff member sees what became of it. Flags are audited.
 */
export interface OwnVisit {
  readerId: string;
  visitId: string;
  clientRef: string | null;
  state: 'open' | 'closed';
  startedAtMs: number | null;
  endedAtMs: number | null;
  /** Added by hand by a coordinator (no reader recorded it). */
  manual: boolean;
  /** Marked as a mistake: does not count. */
  withdrawn: boolean;
  /** Times corrected by a coordinator. */
  corrected: boolean;
}

export const FLAG_RESOLUTIONS = ['corrected', 'added', 'withdrawn', 'no-change'] as const;
export type FlagResolution = (typeof FLAG_RESOLUTIONS)[number];

export interface Flag {
  flagId: number;
  staffRef: string;
  readerId: string | null;
  visitId: string | null;
  clientRef: string | null;
  /** The day of a missing visit (YYYY-MM-DD), when the flag is about no recorded visit. */
  date: string | null;
  message: string;
  createdAtMs: number;
  resolvedBy: string | null;
  resolvedAtMs: number | null;
  resolution: FlagResolution | null;
  resolutionNote: string | null;
}

/** A stored flag as the feature shows it (the same fields on both engines). */
export const toFlag = (r: FlagRowRaw): Flag => ({
  ...flagEntry(r),
  resolution: r.resolution as FlagResolution | null,
});

export type FlagResult =
  { ok: true; created: boolean; flag: Flag } | { ok: false; status: 400 | 404 | 409; error: string };

const toResult = (r: FlagStoreResult): FlagResult => (r.ok ? { ...r, flag: toFlag(r.flag) } : r);

/** Care staff's flags over the store's synchronous port (SQLite; PostgreSQL: pg.ts over its own adapter). */
export class StaffFlags {
  constructor(private readonly d: { store: FlagStore; now: () => number }) {}

  /** The staff member's own visits that started (or, without a start, ended) in [fromMs, toMs), oldest first. */
  ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): OwnVisit[] {
    return this.d.store.ownVisits(staffRef, fromMs, toMs, limit).map((r) => ({
      readerId: r.reader_id,
      visitId: r.visit_id,
      clientRef: r.client_ref,
      state: r.state,
      startedAtMs: r.started_at_ms,
      endedAtMs: r.ended_at_ms,
      manual: r.manual,
      withdrawn: r.withdrawn,
      corrected: r.corrected,
    }));
  }

  /**
   * A staff member flags one of their own visits (visitId) or a missing one (date). Another staff
   * member's visit answers 404 like a visit that does not exist. A resent requestId returns the first flag.
   */
  flag(req: {
    staffRef: string;
    actor: string;
    visitId?: string;
    readerId?: string;
    date?: string;
    message: string;
    requestId?: string;
  }): FlagResult {
    return toResult(this.d.store.flag({ ...req, nowMs: this.d.now() }));
  }

  /** The staff member's own flags, newest first. */
  ownFlags(staffRef: string, limit = 200): Flag[] {
    return this.d.store.ownFlags(staffRef, limit).map(toFlag);
  }

  /** Flags in the scope (null: all), open ones only unless `all`, newest first. */
  list(scope: DataScope | null, q: { all: boolean; limit: number }): Flag[] {
    return this.d.store.list(scope, q).map(toFlag);
  }

  /** A coordinator marks a flag handled, saying what was done. A flag outside the scope answers 404. */
  resolve(
    scope: DataScope | null,
    flagId: number,
    actor: string,
    resolution: FlagResolution,
    note: string | null,
  ): FlagResult {
    return toResult(this.d.store.resolve(scope, flagId, actor, resolution, note, this.d.now()));
  }
}
