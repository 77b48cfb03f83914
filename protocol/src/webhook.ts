import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CardRef, ReaderId, SafeId, SeqNo, Text } from './ids.js';
import { LIMITS, SCHEMA_VERSION } from './limits.js';

/** How trustworthy an event's time is. */
export const TimeQuality = z
  .enum(['synced', 'corrected', 'uncorrected'])
  .describe(
    'synced: the device clock was synced; corrected: rebuilt by the gateway from boot id + monotonic time; ' +
      'uncorrected: could not be corrected (flagged; do not use for executed time).',
  );

export const AnomalyKind = z.enum([
  'unknown-card',
  'revoked-card',
  'missing-stop',
  'stop-without-start',
  'concurrent-visit',
  'uncorrected-time',
  'manual-close',
  // added within version 1 (issue 18): a reader refused a card that gave only its UID (policy)
  'uid-only-card',
  // added within version 1 (issue 18): a DESFire card failed the reader's AES authentication
  'card-auth-failed',
]);
export type AnomalyKind = z.infer<typeof AnomalyKind>;

const IsoTime = z.iso
  .datetime({ offset: false })
  .describe('UTC ISO-8601 time, e.g. 2026-11-23T08:15:00.000Z');

const VisitCommon = {
  idempotencyKey: z
    .string()
    .min(8)
    .max(128)
    .describe('Stable per event: the same event always has the same key.'),
  visitId: SafeId,
  readerId: ReaderId,
  clientRef: SafeId.nullable().describe(
    'Client the reader is installed for; null if the reader is unassigned.',
  ),
  staffRef: SafeId.nullable().describe('Staff member holding the card; null for unknown cards.'),
  cardRef: CardRef,
  groupId: SafeId.nullable().describe('Shared by double-staffed visits that overlap at one reader.'),
  anomalies: z.array(AnomalyKind).max(8),
  timeQuality: TimeQuality,
};

export const VisitStarted = z
  .object({ type: z.literal('visit.started'), ...VisitCommon, startedAt: IsoTime, startSeq: SeqNo })
  .strict();

export const VisitEnded = z
  .object({
    type: z.literal('visit.ended'),
    ...VisitCommon,
    startedAt: IsoTime.nullable().describe('null for a stop without a known start.'),
    endedAt: IsoTime,
    durationMs: z.number().int().min(0).nullable(),
    endReason: z.enum(['tap', 'auto-close', 'manual']),
    endSeq: SeqNo.nullable().describe('null for a manual close.'),
    closedBy: Text.optional().describe('Who closed it, for a manual close.'),
    closeReason: Text.optional(),
  })
  .strict();

export const VisitAnomaly = z
  .object({
    type: z.literal('visit.anomaly'),
    idempotencyKey: z.string().min(8).max(128),
    anomaly: AnomalyKind,
    readerId: ReaderId,
    clientRef: SafeId.nullable(),
    staffRef: SafeId.nullable(),
    cardRef: CardRef.nullable(),
    visitId: SafeId.nullable(),
    at: IsoTime,
    seq: SeqNo.nullable(),
    detail: Text,
  })
  .strict();

/**
 * A visit (or a refused tap) recorded while its card was unknown is now attributed to a staff member,
 * because a coordinator assigned the card. Sent once per visit / refused tap, after that visit's
 * `visit.started` / `visit.ended` (or the refused tap's `visit.anomaly`) already in the outbox.
 */
export const VisitAttributed = z
  .object({
    type: z.literal('visit.attributed'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('vt1:{readerId}:{seq}:attributed, seq as in `seq`: stable, sent once.'),
    visitId: SafeId.nullable().describe(
      'The attributed visit; null for a tap the reader refused (no visit was opened, none is invented).',
    ),
    readerId: ReaderId,
    clientRef: SafeId.nullable(),
    cardRef: CardRef,
    staffRef: SafeId.describe('Staff member the card is now assigned to.'),
    previousStaffRef: SafeId.nullable().describe(
      'Staff member the visit had before: always null today (only unattributed visits are attributed).',
    ),
    seq: SeqNo.describe(
      "The tap this is about: the visit's startSeq (its endSeq for a stop without start), or the refused tap.",
    ),
    attributedAt: IsoTime.describe('When the gateway attributed it (the assignment), not the tap time.'),
    attributedBy: Text.describe('Who assigned the card (admin token name, or the CLI).'),
    reason: z.enum(['card-assigned']),
    resolves: z
      .array(z.string().min(8).max(128))
      .max(8)
      .describe('Idempotency keys of the earlier `unknown-card` visit.anomaly events this resolves.'),
  })
  .strict();

/** Alert kinds of the care plan (late: not started N minutes after the planned start; missed: not started
 * by the end of its window; understaffed: a double-staffed visit with only one staff member). */
export const PlanAlertKind = z.enum(['late', 'missed', 'understaffed']);

const PlanAlertCommon = {
  plannedVisitId: SafeId.describe('The planned visit (from the plan import).'),
  areaId: SafeId,
  clientRef: SafeId,
  kind: PlanAlertKind,
  plannedStart: IsoTime.describe('The planned start (UTC).'),
};

/** A planned visit is late, missed or understaffed (gateway/src/care). Sent once per (visit, kind). */
export const PlanAlertRaised = z
  .object({
    type: z.literal('plan.alert.raised'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('pa1:{plannedVisitId}:{kind}:raised: stable, sent once.'),
    visitId: SafeId.nullable().describe('Always null: no executed visit is involved in raising.'),
    ...PlanAlertCommon,
    raisedAt: IsoTime,
  })
  .strict();

/** The alert is over: the visit started, a second staff member came, a reason was set or the plan changed. */
export const PlanAlertCleared = z
  .object({
    type: z.literal('plan.alert.cleared'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('pa1:{plannedVisitId}:{kind}:cleared: stable, sent once, after the raised event.'),
    visitId: SafeId.nullable().describe('The executed visit that cleared it, if one did.'),
    ...PlanAlertCommon,
    clearedAt: IsoTime,
    clearedBy: z.enum(['visit-started', 'second-staff', 'reason-set', 'plan-changed']),
    reasonCode: z.enum(['client-cancelled', 'client-in-hospital', 'staff-ill', 'other']).nullable(),
  })
  .strict();

/** Why a person corrected a visit (issue 13). */
export const CorrectionReason = z
  .enum(['missed-tap', 'wrong-time', 'forgot-card', 'reader-fault', 'other', 'tap-by-mistake'])
  .describe(
    'missed-tap: a start or stop tap was never made; wrong-time: a tap was made at the wrong moment; ' +
      "forgot-card: the staff member had no card and the time is from another record; reader-fault: the reader's " +
      'record is wrong; other: see note; tap-by-mistake (added within version 1): the tap should not count.',
  );

const VisitTimes = z
  .object({
    startedAt: IsoTime.nullable(),
    endedAt: IsoTime.nullable(),
    durationMs: z.number().int().min(0).nullable(),
  })
  .strict();

/**
 * A person corrected a visit's start and/or end time with a reason (added within version 1, issue 13).
 * The gateway keeps the original; `before` is the visit as it was just before this correction, `after`
 * as it is now. Sent once per correction, after the visit's own `visit.started` / `visit.ended`.
 */
export const VisitCorrected = z
  .object({
    type: z.literal('visit.corrected'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('vt1:corrected:{correctionId}: stable, sent once per correction.'),
    correctionId: z.number().int().min(1).describe('Increasing per gateway; later corrections win.'),
    visitId: SafeId,
    readerId: ReaderId,
    clientRef: SafeId.nullable(),
    staffRef: SafeId.nullable(),
    cardRef: CardRef,
    reasonCode: CorrectionReason,
    note: Text.nullable(),
    correctedBy: Text.describe("Who corrected it: 'user:<name>', 'token:<name>' or 'admin-token'."),
    correctedAt: IsoTime.describe('When the correction was made (not the visit time).'),
    before: VisitTimes,
    after: VisitTimes,
  })
  .strict();

/**
 * A person added a visit that no reader recorded (the staff member forgot to tap), with a reason (added
 * within version 1, issue 13). The visit is marked manual: no card was read (`cardRef` null).
 * Sent once per added visit.
 */
export const VisitAdded = z
  .object({
    type: z.literal('visit.added'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('vt1:added:{correctionId}: stable, sent once per added visit.'),
    correctionId: z.number().int().min(1),
    visitId: SafeId,
    readerId: ReaderId.describe("'manual' (no reader recorded it)."),
    clientRef: SafeId,
    staffRef: SafeId,
    cardRef: CardRef.nullable().describe('Always null: no card was read.'),
    manual: z.literal(true),
    startedAt: IsoTime,
    endedAt: IsoTime,
    durationMs: z.number().int().min(0),
    reasonCode: CorrectionReason,
    note: Text.nullable(),
    addedBy: Text.describe("Who added it: 'user:<name>', 'token:<name>' or 'admin-token'."),
    addedAt: IsoTime,
  })
  .strict();

/**
 * A person marked a visit (a tap) as a mistake: it is withdrawn and should not count (added within
 * version 1, issue 13). The gateway keeps the visit's record. Sent once per visit, after its own events.
 */
export const VisitWithdrawn = z
  .object({
    type: z.literal('visit.withdrawn'),
    idempotencyKey: z
      .string()
      .min(8)
      .max(128)
      .describe('vt1:withdrawn:{correctionId}: stable, sent once (a visit is withdrawn at most once).'),
    correctionId: z.number().int().min(1),
    visitId: SafeId,
    readerId: ReaderId,
    clientRef: SafeId.nullable(),
    staffRef: SafeId.nullable(),
    cardRef: CardRef.nullable(),
    startedAt: IsoTime.nullable(),
    endedAt: IsoTime.nullable(),
    reasonCode: CorrectionReason,
    note: Text.nullable(),
    withdrawnBy: Text.describe("Who withdrew it: 'user:<name>', 'token:<name>' or 'admin-token'."),
    withdrawnAt: IsoTime,
  })
  .strict();

export const VisitEvent = z.discriminatedUnion('type', [
  VisitStarted,
  VisitEnded,
  VisitAnomaly,
  VisitAttributed,
  PlanAlertRaised,
  PlanAlertCleared,
  VisitCorrected,
  VisitAdded,
  VisitWithdrawn,
]);
export type VisitEvent = z.infer<typeof VisitEvent>;

export const WebhookBatch = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    batchId: z.string().min(8).max(128),
    sentAt: IsoTime,
    events: z.array(VisitEvent).min(1).max(LIMITS.maxWebhookEvents),
  })
  .strict();
export type WebhookBatch = z.infer<typeof WebhookBatch>;

/** HTTP headers of the webhook contract (lowercase, as Node exposes them). */
export const WEBHOOK_HEADERS = {
  idempotencyKey: 'idempotency-key',
  signature: 'x-visittag-signature',
  timestamp: 'x-visittag-timestamp',
} as const;

/** Batch id: a hash of the event keys it carries, so a resent batch has the same id. */
export function webhookBatchId(eventKeys: readonly string[]): string {
  return `b1_${createHash('sha256').update(eventKeys.join('\n')).digest('hex').slice(0, 40)}`;
}

/** `X-Visittag-Signature` value: `v1=` + hex HMAC-SHA256(secret, `${timestamp}.${rawBody}`). */
export function signWebhook(secret: string, timestampMs: number, rawBody: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampMs}.${rawBody}`).digest('hex')}`;
}

/** Constant-time check of a webhook signature, with a replay window on the timestamp. */
export function verifyWebhook(opts: {
  secret: string;
  signature: string | undefined;
  timestamp: string | undefined;
  rawBody: string;
  nowMs: number;
  toleranceMs?: number;
}): { ok: true } | { ok: false; reason: string } {
  const { signature, timestamp } = opts;
  if (!signature || !timestamp) return { ok: false, reason: 'missing signature or timestamp header' };
  const ts = Number(timestamp);
  if (!Number.isSafeInteger(ts)) return { ok: false, reason: 'timestamp header is not an integer' };
  if (Math.abs(opts.nowMs - ts) > (opts.toleranceMs ?? 300_000)) {
    return { ok: false, reason: 'timestamp outside the replay window' };
  }
  const expected = Buffer.from(signWebhook(opts.secret, ts, opts.rawBody));
  const got = Buffer.from(signature);
  if (expected.length !== got.length || !timingSafeEqual(expected, got)) {
    return { ok: false, reason: 'signature does not match' };
  }
  return { ok: true };
}

/** What a response status means for the gateway's outbox. */
export function classifyWebhookStatus(status: number): 'delivered' | 'retry' | 'dead-letter' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'dead-letter';
}
