import { z } from 'zod';
import { CorrectionReason, SafeId } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute, Principal } from '../admin/types.js';
import type { VisitRow } from '../visits/repo.js';
import type { VisitCorrections } from './service.js';

/** Labels of the reason codes, Swedish first (the web app's default), English second. */
export const CORRECTION_REASONS: { code: z.infer<typeof CorrectionReason>; sv: string; en: string }[] = [
  { code: 'missed-tap', sv: 'Glömd stämpling', en: 'Missed tap' },
  { code: 'wrong-time', sv: 'Fel tid', en: 'Wrong time' },
  { code: 'forgot-card', sv: 'Glömt kortet', en: 'Forgot the card' },
  { code: 'reader-fault', sv: 'Fel på läsaren', en: 'Reader fault' },
  { code: 'other', sv: 'Annat (se anteckning)', en: 'Other (see note)' },
];

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
  corrections: VisitCorrections;
  /** Whether the caller may see (and so correct) this visit: the area scope (gateway/src/auth/scope.ts). */
  visible: (principal: Principal | undefined, v: VisitRow) => boolean;
  /** Wake the forwarder after an event was queued. */
  wake: () => void;
}

/**
 * `POST /api/visits/:visitId/corrections` (coordinators; admin), `GET` of the same path (who may read
 * visits), `GET /api/corrections/reasons`. Scoped: a visit outside the caller's areas answers 404.
 */
export function correctionRoutes(d: CorrectionRouteDeps): AdminRoute[] {
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
      handler: (req): AdminResponse => {
        const body = CorrectionBody.parse(req.body);
        const r = d.corrections.correct({
          visitId: req.params.visitId ?? '',
          ...(body.readerId ? { readerId: body.readerId } : {}),
          ...(body.startedAt ? { startedAtMs: Date.parse(body.startedAt) } : {}),
          ...(body.endedAt ? { endedAtMs: Date.parse(body.endedAt) } : {}),
          reasonCode: body.reasonCode,
          note: body.note ? body.note : null,
          actor: req.actor,
          ...(body.requestId ? { requestId: body.requestId } : {}),
          visible: (v) => d.visible(req.principal, v),
        });
        if (!r.ok) {
          const error = r.status === 404 ? 'not-found' : r.status === 409 ? 'conflict' : 'bad-request';
          return { status: r.status, body: { error, detail: r.error } };
        }
        if (r.created) d.wake();
        return {
          status: r.created ? 201 : 200,
          body: {
            correction: r.correction,
            visit: { ...r.visit, startedAt: isoOf(r.visit.startedAtMs), endedAt: isoOf(r.visit.endedAtMs) },
          },
        };
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
      handler: (req): AdminResponse => {
        const list = d.corrections.list(req.params.visitId ?? '', (v) => d.visible(req.principal, v));
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
  ];
}
