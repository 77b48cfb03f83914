/**
 * Visit corrections on PostgreSQL (`store.engine: "postgres"`, several instances on one database): the same
 * rules as the SQLite gateway (service.ts `correctIn`, `addVisitIn`, `withdrawIn`), each one transaction of
 * the PostgreSQL adapter (store/postgres/corrections.ts: the corrections' lock, the visit's reader lock,
 * the visit row, visit_audit, the correction, the audit log and the outbox event together), and period
 * locks and care staff's flags on the shared tables. The answers are the SQLite service's, as promises.
 */
import type { Clock } from '../../../protocol/index.js';
import type { DataScope } from '../auth/scope.js';
import type { Async, AsyncCorrectionStore, FlagStore, PeriodLockStore } from '../store/corrections.js';
import type { VisitRow } from '../store/ports.js';
import { toFlag, type Flag, type FlagResolution, type FlagResult, type OwnVisit } from './flags.js';
import { PeriodClock, type LockResult, type PeriodLock } from './periods.js';
import type { CorrectionsApi } from './port.js';
import {
  addVisitIn,
  correctIn,
  withdrawIn,
  type AddVisitRequest,
  type Correction,
  type CorrectionContext,
  type CorrectionRequest,
  type CorrectionResult,
  type ReasonCode,
  type WithdrawRequest,
} from './service.js';

export interface PgCorrectionsDeps {
  /** store/postgres/corrections.ts `PgCorrectionStore`, `PgPeriodLockStore`, `PgFlagStore`. */
  store: AsyncCorrectionStore;
  locks: Async<PeriodLockStore>;
  flags: Async<FlagStore>;
  /** Is this client in the caller's scope; is this staff member (the care registry on PostgreSQL). */
  scopes: {
    clients(s: DataScope): Promise<Set<string>>;
    staffInScope(s: DataScope, staffRef: string): Promise<boolean>;
  };
  clock: Clock;
  /** Time zone of a period lock's month (the care plan's). */
  timeZone: string;
}

export class PgVisitCorrections implements CorrectionsApi {
  private readonly cal: PeriodClock;
  private readonly ctx: CorrectionContext;
  constructor(private readonly d: PgCorrectionsDeps) {
    this.cal = new PeriodClock(d.timeZone);
    this.ctx = { now: () => d.clock.now(), monthOf: (ms) => this.cal.monthOf(ms) };
  }

  correct(req: CorrectionRequest): Promise<CorrectionResult> {
    return this.d.store.run((tx) => correctIn(tx, this.ctx, req));
  }

  addVisit(req: AddVisitRequest): Promise<CorrectionResult> {
    return this.d.store.run((tx) => addVisitIn(tx, this.ctx, req));
  }

  withdraw(req: WithdrawRequest): Promise<CorrectionResult> {
    return this.d.store.run((tx) => withdrawIn(tx, this.ctx, req));
  }

  async list(visitId: string, visible: (v: VisitRow) => boolean): Promise<Correction[]> {
    return (await this.d.store.listOf(visitId))
      .filter((x) => x.visit !== null && visible(x.visit))
      .map((x) => ({ ...x.correction, reasonCode: x.correction.reasonCode as ReasonCode }));
  }

  /** The period lock covering a visit of this client at any of these times (a manual close checks it). */
  async lockFor(clientRef: string | null, times: (number | null)[]): Promise<PeriodLock | null> {
    const area = clientRef === null ? null : await this.d.locks.areaOf(clientRef);
    if (area === null) return null;
    for (const t of times) {
      if (t === null) continue;
      const l = await this.d.locks.get(area, this.cal.monthOf(t));
      if (l) return l;
    }
    return null;
  }

  readonly locks = {
    startOfDay: (day: string): number => this.cal.startOfDay(day),
    list: (areas: readonly string[] | null): Promise<PeriodLock[]> => this.d.locks.list(areas),
    lock: (areaId: string, month: string, actor: string, note: string | null): Promise<LockResult> =>
      this.d.locks.lock(areaId, month, actor, note, this.d.clock.now()),
    unlock: (areaId: string, month: string, actor: string, reason: string): Promise<LockResult> =>
      this.d.locks.unlock(areaId, month, actor, reason, this.d.clock.now()),
  };

  readonly flags = {
    ownVisits: async (staffRef: string, fromMs: number, toMs: number, limit: number): Promise<OwnVisit[]> =>
      (await this.d.flags.ownVisits(staffRef, fromMs, toMs, limit)).map((r) => ({
        readerId: r.reader_id,
        visitId: r.visit_id,
        clientRef: r.client_ref,
        state: r.state,
        startedAtMs: r.started_at_ms,
        endedAtMs: r.ended_at_ms,
        manual: r.manual,
        withdrawn: r.withdrawn,
        corrected: r.corrected,
      })),
    ownFlags: async (staffRef: string): Promise<Flag[]> =>
      (await this.d.flags.ownFlags(staffRef)).map(toFlag),
    flag: async (req: Parameters<CorrectionsApi['flags']['flag']>[0]): Promise<FlagResult> => {
      const r = await this.d.flags.flag({ ...req, nowMs: this.d.clock.now() });
      return r.ok ? { ...r, flag: toFlag(r.flag) } : r;
    },
    list: async (scope: DataScope | null, q: { all: boolean; limit: number }): Promise<Flag[]> =>
      (await this.d.flags.list(scope, q)).map(toFlag),
    resolve: async (
      scope: DataScope | null,
      flagId: number,
      actor: string,
      resolution: FlagResolution,
      note: string | null,
    ): Promise<FlagResult> => {
      const r = await this.d.flags.resolve(scope, flagId, actor, resolution, note, this.d.clock.now());
      return r.ok ? { ...r, flag: toFlag(r.flag) } : r;
    },
  };

  readonly scopes = {
    clientInScope: async (s: DataScope, clientRef: string): Promise<boolean> =>
      (await this.d.scopes.clients(s)).has(clientRef),
    staffInScope: (s: DataScope, staffRef: string): Promise<boolean> =>
      this.d.scopes.staffInScope(s, staffRef),
  };

  /** The caller's visibility of visit rows, read once per request (admins and technicians see all). */
  async visibleFor(scope: DataScope | null): Promise<(v: VisitRow) => boolean> {
    if (scope === null) return () => true;
    const clients = await this.d.scopes.clients(scope);
    return (v) => v.clientRef !== null && clients.has(v.clientRef);
  }
}
