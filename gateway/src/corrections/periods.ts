import type { LockResult, PeriodLock, PeriodLockStore } from '../store/corrections.js';

/**
 * Period locks (attestation): a unit manager (or an admin) locks a month of an area after approving it;
 * from then on a visit of that area's clients whose time falls in that month is corrected, added,
 * withdrawn or closed only by a unit manager of that area (audited as them, the lock named in the audit
 * row); coordinators and admins are refused until someone with the right to lock unlocks it (with a
 * reason). Lock and unlock are audited. A month is the calendar month in the care plan's time zone ("2026-11").
 */
export type { LockResult, PeriodLock };

export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/** A period lock's calendar: local days and months in the care plan's time zone (no I/O). */
export class PeriodClock {
  private readonly monthFmt: Intl.DateTimeFormat;
  constructor(readonly timeZone: string) {
    this.monthFmt = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
    });
  }

  /** Start of a local day ("YYYY-MM-DD") in the plan's time zone, as ms. */
  startOfDay(day: string): number {
    const utc = Date.parse(`${day}T00:00:00Z`);
    const f = new Intl.DateTimeFormat('en-GB', {
      timeZone: this.timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    const wall = (ms: number): number => {
      const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
      return Date.parse(`${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:00Z`);
    };
    // the zone's offset at that time (twice: the offset of the guess may differ across a DST change)
    let t = utc - (wall(utc) - utc);
    t = utc - (wall(t) - t);
    return t;
  }

  /** "YYYY-MM" of a time, in the plan's time zone. */
  monthOf(ms: number): string {
    const parts = this.monthFmt.formatToParts(ms);
    const y = parts.find((p) => p.type === 'year')?.value ?? '0000';
    const m = parts.find((p) => p.type === 'month')?.value ?? '00';
    return `${y}-${m}`;
  }
}

/** Period locks over the store's synchronous port (SQLite; PostgreSQL: pg.ts over its own adapter). */
export class PeriodLocks {
  private readonly cal: PeriodClock;
  constructor(
    private readonly d: {
      store: PeriodLockStore;
      now: () => number;
      timeZone: string;
    },
  ) {
    this.cal = new PeriodClock(d.timeZone);
  }

  /** Start of a local day ("YYYY-MM-DD") in the plan's time zone, as ms. */
  startOfDay(day: string): number {
    return this.cal.startOfDay(day);
  }

  /** "YYYY-MM" of a time, in the plan's time zone. */
  monthOf(ms: number): string {
    return this.cal.monthOf(ms);
  }

  /** The area of a registered client (null: not in the care registry, so no area's lock applies). */
  areaOf(clientRef: string | null): string | null {
    return clientRef === null ? null : this.d.store.areaOf(clientRef);
  }

  get(areaId: string, month: string): PeriodLock | null {
    return this.d.store.get(areaId, month);
  }

  /** The lock that covers any of these times of this client's visit, if one does. */
  lockFor(clientRef: string | null, times: (number | null)[]): PeriodLock | null {
    const area = this.areaOf(clientRef);
    if (area === null) return null;
    for (const t of times) {
      if (t === null) continue;
      const l = this.get(area, this.monthOf(t));
      if (l) return l;
    }
    return null;
  }

  /** Locks of these areas (null: every area), newest month first. */
  list(areas: readonly string[] | null): PeriodLock[] {
    return this.d.store.list(areas);
  }

  /** Locks a month of an area (audited in the same transaction); 404 for an unknown area, 409 when locked. */
  lock(areaId: string, month: string, actor: string, note: string | null): LockResult {
    return this.d.store.lock(areaId, month, actor, note, this.d.now());
  }

  unlock(areaId: string, month: string, actor: string, reason: string): LockResult {
    return this.d.store.unlock(areaId, month, actor, reason, this.d.now());
  }
}

/**
 * Who may change visits where a lock applies: coordinators and admins outside locked periods only
 * ('outside-locks'); a unit manager, otherwise read-only on visits, only inside a locked period of their
 * own areas ('inside-locks'), audited as themselves.
 */
export type LockRule = 'outside-locks' | 'inside-locks';

/** The role's rule: a unit manager changes only inside locked periods, everyone else only outside. */
export const lockRuleOf = (role: string | undefined): LockRule =>
  role === 'unit-manager' ? 'inside-locks' : 'outside-locks';

/** The refusal of a change inside a locked period: who locked it and who may change it (the UI words it in Swedish). */
export function lockedRefusal(l: PeriodLock): { ok: false; status: 423; error: string; lock: PeriodLock } {
  return {
    ok: false,
    status: 423,
    error:
      `the period ${l.month} of area ${l.areaId} is locked (attested) by ${l.lockedBy} at ` +
      `${new Date(l.lockedAtMs).toISOString()}: a unit manager of area ${l.areaId} makes this change, or ` +
      `unlocks the period with a reason (POST /api/periods/locks/${l.areaId}/${l.month}/unlock)`,
    lock: l,
  };
}

/** A unit manager's change outside every locked period: that is a coordinator's work. */
export const outsideLockRefusal = {
  ok: false as const,
  status: 403 as const,
  error:
    'a unit manager changes visits only inside a locked (attested) period of their areas; ' +
    'outside one, a coordinator makes the change',
};

/** Null when the change may go ahead under the lock that covers it (null: none) and the caller's rule. */
export function lockGate(
  lock: PeriodLock | null,
  rule: LockRule = 'outside-locks',
): ReturnType<typeof lockedRefusal> | typeof outsideLockRefusal | null {
  if (rule === 'outside-locks') return lock === null ? null : lockedRefusal(lock);
  return lock === null ? outsideLockRefusal : null;
}
