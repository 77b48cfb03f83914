/**
 * What the correction routes (routes.ts) need, on either engine: the SQLite service (service.ts
 * `VisitCorrections`, synchronous) and the PostgreSQL one (pg.ts `PgVisitCorrections`, promises) both
 * implement it. The rules are one implementation (service.ts `correctIn`, `addVisitIn`, `withdrawIn`).
 */
import type { Awaitable } from '../store/awaitable.js';
import type { DataScope } from '../auth/scope.js';
import type { VisitRow } from '../store/ports.js';
import type { Flag, FlagResolution, FlagResult, OwnVisit } from './flags.js';
import type { LockResult, PeriodLock } from './periods.js';
import type {
  AddVisitRequest,
  Correction,
  CorrectionRequest,
  CorrectionResult,
  WithdrawRequest,
} from './service.js';

export interface CorrectionsApi {
  correct(req: CorrectionRequest): Awaitable<CorrectionResult>;
  addVisit(req: AddVisitRequest): Awaitable<CorrectionResult>;
  withdraw(req: WithdrawRequest): Awaitable<CorrectionResult>;
  list(visitId: string, visible: (v: VisitRow) => boolean): Awaitable<Correction[]>;
  readonly locks: {
    startOfDay(day: string): number;
    list(areas: readonly string[] | null): Awaitable<PeriodLock[]>;
    lock(areaId: string, month: string, actor: string, note: string | null): Awaitable<LockResult>;
    unlock(areaId: string, month: string, actor: string, reason: string): Awaitable<LockResult>;
  };
  readonly flags: {
    ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): Awaitable<OwnVisit[]>;
    ownFlags(staffRef: string): Awaitable<Flag[]>;
    flag(req: {
      staffRef: string;
      actor: string;
      visitId?: string;
      readerId?: string;
      date?: string;
      message: string;
      requestId?: string;
    }): Awaitable<FlagResult>;
    list(scope: DataScope | null, q: { all: boolean; limit: number }): Awaitable<Flag[]>;
    resolve(
      scope: DataScope | null,
      flagId: number,
      actor: string,
      resolution: FlagResolution,
      note: string | null,
    ): Awaitable<FlagResult>;
  };
  /** Whether a client / staff member is in the caller's scope (adding a visit). */
  readonly scopes: {
    clientInScope(s: DataScope, clientRef: string): Awaitable<boolean>;
    staffInScope(s: DataScope, staffRef: string): Awaitable<boolean>;
  };
}
