import { z } from 'zod';
import { CorrectionReason, SafeId } from '../../../protocol/index.js';
import type { AdminRequest, AdminResponse, AdminRoute, Principal } from '../admin/types.js';
import { scopeOf } from '../auth/scope.js';
import type { VisitRow } from '../visits/repo.js';
import { FLAG_RESOLUTIONS } from './flags.js';
import { lockRuleOf, MONTH_PATTERN } from './periods.js';
import type { CorrectionsApi } from './port.js';
import { REASONS_BY_KIND, type CorrectionResult } from './service.js';

/** Labels of the reason codes, Swedish first (the web app's default), English second. */
const LABELS: { code: z.infer<typeof CorrectionReason>; sv: string; en: string }[] = [
  { code: 'missed-tap', sv: 'Glömd stämpling', en: 'Missed tap' },
  { code: 'wrong-time', sv: 'Fel tid', en: 'Wrong time' },
  { code: 'forgot-card', sv: 'Glömt kortet', en: 'Forgot the card' },
  { code: 'reader-fault', sv: 'Fel på läsaren', en: 'Reader fault' },
  { code: 'other', sv: 'Annat (se anteckning)', en: 'Other (see note)' },
  { code: 'tap-by-mistake', sv: 'Felstämpling (ska inte räknas)', en: 'Tap by mistake (should not count)' },
];
/** Labels of the reason codes and the correction kinds each fits (times, added, withdrawn). */
export const CORRECTION_REASONS = LABELS.map((l) => ({
  ...l,
  kinds: (['times', 'added', 'withdrawn'] as const).filter((k) => REASONS_BY_KIND[k].includes(l.code)),
}));

const RequestId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{8,100}$/, 'requestId: 8-100 characters of letters, digits and . _ : -');
const Note = z.string().trim().max(500);
const AddBody = z
  .object({
    clientRef: SafeId,
    staffRef: SafeId,
    startedAt: z.iso.datetime({ offset: true }),
    endedAt: z.iso.datetime({ offset: true }),
    reasonCode: CorrectionReason,
    note: Note.optional(),
    requestId: RequestId.optional(),
  })
  .strict();
const WithdrawBody = z
  .object({
    readerId: SafeId.optional(),
    reasonCode: CorrectionReason,
    note: Note.optional(),
    requestId: RequestId.optional(),
  })
  .strict();
const Month = z.string().regex(MONTH_PATTERN, 'month: YYYY-MM');
const LockBody = z.object({ areaId: SafeId, month: Month, note: Note.optional() }).strict();
const UnlockBody = z.object({ reason: z.string().trim().min(1).max(500) }).strict();
const LockParams = z.object({ areaId: SafeId, month: Month });
const Day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'date: YYYY-MM-DD');
const FlagBody = z
  .object({
    visitId: SafeId.optional(),
    readerId: SafeId.optional(),
    date: Day.optional(),
    message: z.string().trim().min(1).max(500),
    requestId: RequestId.optional(),
  })
  .strict();
const ResolveBody = z.object({ resolution: z.enum(FLAG_RESOLUTIONS), note: Note.optional() }).strict();
const OwnQuery = z.object({ from: Day, to: Day });

/** The answer to a refused or accepted correction (423 carries the lock: who, when, which month). */
function answer(r: CorrectionResult, wake: () => void, changed?: () => void): AdminResponse {
  if (!r.ok) {
    const error =
      r.status === 404
        ? 'not-found'
        : r.status === 403
          ? 'forbidden'
          : r.status === 409
            ? 'conflict'
            : r.status === 423
              ? 'period-locked'
              : 'bad-request';
    return { status: r.status, body: { error, detail: r.error, ...(r.lock ? { lock: r.lock } : {}) } };
  }
  if (r.created) {
    wake();
    changed?.();
  }
  return {
    status: r.created ? 201 : 200,
    body: {
      correction: r.correction,
      visit: { ...r.visit, startedAt: isoOf(r.visit.startedAtMs), endedAt: isoOf(r.visit.endedAtMs) },
    },
  };
}

/** A care-staff account not bound to a staff member (the policy already refuses every other role). */
const forbidden = (detail: string): AdminResponse => ({ status: 409, body: { error: 'not-bound', detail } });
const notFound = (detail: string): AdminResponse => ({ status: 404, body: { error: 'not-found', detail } });

/** The staff member behind a care-staff session; others have no own registrations. */
function ownStaff(req: AdminRequest): string | null {
  const p = req.principal;
  return p && p.role === 'care-staff' && p.staffRef ? p.staffRef : null;
}

const IsoTime = z.iso.datetime({ offset: true });
const CorrectionBody = z
  .object({
    readerId: SafeId.optional(),
    startedAt: IsoTime.optional(),
    endedAt: IsoTime.optional(),
    reasonCode: CorrectionReason,
    note: z.string().trim().max(500).optional(),
    requestId: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{8,100}$/, 'requestId: 8-100 characters of letters, digits and . _ : -')
      .optional(),
  })
  .strict();
const Params = z.object({ visitId: SafeId });

const isoOf = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface CorrectionRouteDeps {
  /** The SQLite service (service.ts) or the PostgreSQL one (pg.ts). */
  corrections: CorrectionsApi;
  /** Whether the caller may see (and so correct) this visit: the area scope (gateway/src/auth/scope.ts). */
  visible?: (principal: Principal | undefined, v: VisitRow) => boolean;
  /**
   * The same, read once per request (PostgreSQL: the caller's clients fetched first); used instead of
   * `visible` when given.
   */
  visibleFor?: (principal: Principal | undefined) => Promise<(v: VisitRow) => boolean>;
  /** Wake the forwarder after an event was queued. */
  wake: () => void;
  /**
   * A visit was corrected, added or withdrawn: re-match the plan and evaluate alerts now (the care plan's
   * tick), so a withdrawn visit stops counting for its planned visit at once, not at the next tick.
   */
  changed?: () => void;
}

/**
 * `POST /api/visits/:visitId/corrections` (coordinators; admin), `GET` of the same path (who may read
 * visits), `GET /api/corrections/reasons`. Scoped: a visit outside the caller's areas answers 404.
 */
export function correctionRoutes(d: CorrectionRouteDeps): AdminRoute[] {
  const visibility = async (p: Principal | undefined): Promise<(v: VisitRow) => boolean> =>
    d.visibleFor ? d.visibleFor(p) : (v) => d.visible?.(p, v) ?? false;
  return [
    {
      method: 'POST',
      path: '/api/visits/:visitId/corrections',
      scoped: true,
      schema: {
        summary: 'Correct a visit (start and/or end time) with a reason code; sends visit.corrected once',
        tags: ['visits'],
        params: Params,
        body: CorrectionBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = CorrectionBody.parse(req.body);
        const visible = await visibility(req.principal);
        return answer(
          await d.corrections.correct({
            visitId: req.params.visitId ?? '',
            ...(body.readerId ? { readerId: body.readerId } : {}),
            ...(body.startedAt ? { startedAtMs: Date.parse(body.startedAt) } : {}),
            ...(body.endedAt ? { endedAtMs: Date.parse(body.endedAt) } : {}),
            reasonCode: body.reasonCode,
            note: body.note ? body.note : null,
            actor: req.actor,
            ...(body.requestId ? { requestId: body.requestId } : {}),
            visible,
            lockRule: lockRuleOf(req.principal?.role),
          }),
          d.wake,
          d.changed,
        );
      },
    },
    {
      method: 'GET',
      path: '/api/visits/:visitId/corrections',
      scoped: true,
      schema: {
        summary: "A visit's corrections, oldest first (the first one's before is the original)",
        tags: ['visits'],
        params: Params,
      },
      handler: async (req): Promise<AdminResponse> => {
        const list = await d.corrections.list(req.params.visitId ?? '', await visibility(req.principal));
        return { status: 200, body: { corrections: list } };
      },
    },
    {
      method: 'GET',
      path: '/api/corrections/reasons',
      scoped: true,
      schema: { summary: 'Reason codes of a correction, with Swedish and English labels', tags: ['visits'] },
      handler: () => ({ status: 200, body: { reasons: CORRECTION_REASONS } }),
    },
    ...moreRoutes(d, visibility),
  ];
}

/** Adding a missing visit, withdrawing a tap, period locks, care staff's own registrations and flags. */
function moreRoutes(
  d: CorrectionRouteDeps,
  visibility: (p: Principal | undefined) => Promise<(v: VisitRow) => boolean>,
): AdminRoute[] {
  const { locks, flags, scopes } = d.corrections;
  const dayMs = (day: string, end: boolean): number =>
    locks.startOfDay(
      end ? new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10) : day,
    );
  return [
    {
      method: 'POST',
      path: '/api/visits/manual',
      scoped: true,
      schema: {
        summary:
          'Add a visit no reader recorded (forgot to tap) with a reason; marked manual; sends visit.added once',
        tags: ['visits'],
        body: AddBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = AddBody.parse(req.body);
        const scope = scopeOf(req.principal);
        if (scope !== null) {
          if (!(await scopes.clientInScope(scope, body.clientRef)))
            return notFound('no such client in your areas');
          if (!(await scopes.staffInScope(scope, body.staffRef)))
            return notFound('no such staff member in your areas');
        }
        return answer(
          await d.corrections.addVisit({
            clientRef: body.clientRef,
            staffRef: body.staffRef,
            startedAtMs: Date.parse(body.startedAt),
            endedAtMs: Date.parse(body.endedAt),
            reasonCode: body.reasonCode,
            note: body.note ? body.note : null,
            actor: req.actor,
            ...(body.requestId ? { requestId: body.requestId } : {}),
            lockRule: lockRuleOf(req.principal?.role),
          }),
          d.wake,
          d.changed,
        );
      },
    },
    {
      method: 'POST',
      path: '/api/visits/:visitId/withdraw',
      scoped: true,
      schema: {
        summary: 'Mark a visit (a tap) as a mistake with a reason: withdrawn, sends visit.withdrawn once',
        tags: ['visits'],
        params: Params,
        body: WithdrawBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = WithdrawBody.parse(req.body);
        const visible = await visibility(req.principal);
        return answer(
          await d.corrections.withdraw({
            visitId: req.params.visitId ?? '',
            ...(body.readerId ? { readerId: body.readerId } : {}),
            reasonCode: body.reasonCode,
            note: body.note ? body.note : null,
            actor: req.actor,
            ...(body.requestId ? { requestId: body.requestId } : {}),
            visible,
            lockRule: lockRuleOf(req.principal?.role),
          }),
          d.wake,
          d.changed,
        );
      },
    },
    {
      method: 'GET',
      path: '/api/periods/locks',
      scoped: true,
      schema: { summary: 'Locked (attested) months of your areas', tags: ['periods'] },
      handler: async (req) => {
        const scope = scopeOf(req.principal);
        return { status: 200, body: { locks: await locks.list(scope === null ? null : scope.areas) } };
      },
    },
    {
      method: 'POST',
      path: '/api/periods/locks',
      scoped: true,
      schema: {
        summary: 'Lock (attest) a month of an area: corrections inside it are refused until unlocked',
        tags: ['periods'],
        body: LockBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = LockBody.parse(req.body);
        const scope = scopeOf(req.principal);
        if (scope !== null && !scope.areas.includes(body.areaId)) return notFound('no such area among yours');
        const r = await locks.lock(body.areaId, body.month, req.actor, body.note ? body.note : null);
        if (!r.ok)
          return {
            status: r.status,
            body: {
              error: r.status === 404 ? 'not-found' : 'conflict',
              detail: r.error,
              ...(r.lock ? { lock: r.lock } : {}),
            },
          };
        return { status: 201, body: { lock: r.lock } };
      },
    },
    {
      method: 'POST',
      path: '/api/periods/locks/:areaId/:month/unlock',
      scoped: true,
      schema: {
        summary: 'Unlock a locked month (a reason is required)',
        tags: ['periods'],
        params: LockParams,
        body: UnlockBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = UnlockBody.parse(req.body);
        const areaId = req.params.areaId ?? '';
        const scope = scopeOf(req.principal);
        if (scope !== null && !scope.areas.includes(areaId)) return notFound('no such area among yours');
        const r = await locks.unlock(areaId, req.params.month ?? '', req.actor, body.reason);
        if (!r.ok) return { status: r.status, body: { error: 'not-found', detail: r.error } };
        return { status: 200, body: { unlocked: r.lock } };
      },
    },
    {
      method: 'GET',
      path: '/api/me/visits',
      schema: {
        summary: "Care staff: your own registrations from 'from' to 'to' (local dates, at most 62 days)",
        tags: ['me'],
        querystring: OwnQuery,
      },
      handler: async (req): Promise<AdminResponse> => {
        const staff = ownStaff(req);
        if (!staff)
          return forbidden('only a care-staff account bound to a staff member has own registrations');
        const q = OwnQuery.safeParse(Object.fromEntries(req.query.entries()));
        if (!q.success)
          return { status: 400, body: { error: 'bad-request', detail: 'from and to: YYYY-MM-DD' } };
        const fromMs = dayMs(q.data.from, false);
        const toMs = dayMs(q.data.to, true);
        if (toMs <= fromMs || toMs - fromMs > 62 * 86_400_000)
          return {
            status: 400,
            body: { error: 'bad-request', detail: 'to must be on or after from, at most 62 days' },
          };
        return { status: 200, body: { visits: await flags.ownVisits(staff, fromMs, toMs, 2000) } };
      },
    },
    {
      method: 'GET',
      path: '/api/me/flags',
      schema: { summary: 'Care staff: your flags and what the coordinator did', tags: ['me'] },
      handler: async (req): Promise<AdminResponse> => {
        const staff = ownStaff(req);
        if (!staff) return forbidden('only a care-staff account bound to a staff member has flags');
        return { status: 200, body: { flags: await flags.ownFlags(staff) } };
      },
    },
    {
      method: 'POST',
      path: '/api/me/flags',
      schema: {
        summary: 'Care staff: flag a mistake in one of your visits (visitId) or a missing visit (date)',
        tags: ['me'],
        body: FlagBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const staff = ownStaff(req);
        if (!staff) return forbidden('only a care-staff account bound to a staff member can flag');
        const body = FlagBody.parse(req.body);
        const r = await flags.flag({
          staffRef: staff,
          actor: req.actor,
          message: body.message,
          ...(body.visitId ? { visitId: body.visitId } : {}),
          ...(body.readerId ? { readerId: body.readerId } : {}),
          ...(body.date ? { date: body.date } : {}),
          ...(body.requestId ? { requestId: body.requestId } : {}),
        });
        if (!r.ok)
          return {
            status: r.status,
            body: { error: r.status === 404 ? 'not-found' : 'bad-request', detail: r.error },
          };
        return { status: r.created ? 201 : 200, body: { flag: r.flag } };
      },
    },
    {
      method: 'GET',
      path: '/api/flags',
      scoped: true,
      schema: {
        summary: "Care staff's flags in your areas (open ones; ?state=all for every one)",
        tags: ['visits'],
      },
      handler: async (req): Promise<AdminResponse> => ({
        status: 200,
        body: {
          flags: await flags.list(scopeOf(req.principal), {
            all: req.query.get('state') === 'all',
            limit: 500,
          }),
        },
      }),
    },
    {
      method: 'POST',
      path: '/api/flags/:flagId/resolve',
      scoped: true,
      schema: {
        summary: 'Mark a flag handled, saying what was done (corrected, added, withdrawn, no-change)',
        tags: ['visits'],
        params: z.object({ flagId: z.coerce.number().int().min(1) }),
        body: ResolveBody,
      },
      handler: async (req): Promise<AdminResponse> => {
        const body = ResolveBody.parse(req.body);
        const r = await flags.resolve(
          scopeOf(req.principal),
          Number(req.params.flagId),
          req.actor,
          body.resolution,
          body.note ? body.note : null,
        );
        if (!r.ok)
          return {
            status: r.status,
            body: { error: r.status === 404 ? 'not-found' : 'conflict', detail: r.error },
          };
        return { status: 200, body: { flag: r.flag } };
      },
    },
  ];
}
