/**
 * The invariant checker: compares what reached the fake planning backend with the scenario's ground
 * truth and with what the workers saw (the feedback of every tap). Pure: data in, named checks out.
 */
import type { VisitEvent } from '../protocol/index.js';
import { checkAttributions, matchTaps, type Matched } from './checker-match.js';
import type { Intent, Scenario } from './scenario/types.js';

export type FeedbackSeen =
  'visit-started' | 'visit-ended' | 'repeat' | 'rejected' | 'fault-reader' | 'fault-storage' | 'identify';

/** One tap the simulator made, and what the worker saw. */
export interface TapRecord {
  readerId: string;
  cardRef: string;
  staffRef: string | null;
  /** True (virtual) time of the tap. */
  atMs: number;
  intent: Intent;
  visitKey: string;
  /** Feedback pattern shown for this tap; null when none (reader off). */
  feedback: FeedbackSeen | null;
}

export interface ReaderSeqState {
  readerId: string;
  contiguousUpto: number;
  maxSeen: number;
  /** The device's own last sequence number (from its status), when known. */
  deviceLastSeq: number | null;
  /** Unacknowledged events left on the device. */
  deviceQueueDepth: number | null;
}

export interface Tolerances {
  /** Allowed time error for a synced timestamp, on top of the reader's own clock skew. */
  syncedMs: number;
  /** Allowed time error for a timestamp the gateway corrected (boot id + monotonic anchor). */
  correctedMs: number;
}

export const DEFAULT_TOLERANCES: Tolerances = { syncedMs: 5_000, correctedMs: 60_000 };

export interface CheckInput {
  scenario: Scenario;
  taps: readonly TapRecord[];
  received: readonly VisitEvent[];
  backend: {
    duplicates: number;
    conflicts: number;
    rejectedSignatures: number;
    invalidBatches: number;
    rejectionReasons?: () => string[];
  };
  /** Keys the backend refused on purpose (4xx faults); they are dead letters, not losses. */
  refusedKeys: readonly string[];
  readers: readonly ReaderSeqState[];
  tolerances?: Tolerances;
  /** Largest |clock skew| each reader ran with (ms). */
  skewMs: ReadonlyMap<string, number>;
  /** Readers that booted with an unsynced clock: their times may be corrected or uncorrected. */
  unsyncedReaders: ReadonlySet<string>;
  /** Virtual time when the run ended (after the drain). */
  endMs: number;
}

export interface CheckResult {
  name: string;
  /** invariant: a breach fails the run; quality: reported, does not fail it. */
  severity: 'invariant' | 'quality';
  ok: boolean;
  summary: string;
  failures: string[];
}

const MAX_LISTED = 20;

function result(
  name: string,
  severity: CheckResult['severity'],
  summary: string,
  failures: string[],
): CheckResult {
  return { name, severity, ok: failures.length === 0, summary, failures: failures.slice(0, MAX_LISTED) };
}

const expectedFeedback: Record<Intent, readonly FeedbackSeen[]> = {
  start: ['visit-started'],
  stop: ['visit-ended'],
  repeat: ['repeat'],
  'wrong-reader': ['visit-started'],
};

export function runChecks(input: CheckInput): CheckResult[] {
  const tol = input.tolerances ?? DEFAULT_TOLERANCES;
  const s = input.scenario;
  const truthByKey = new Map(s.truth.map((v) => [v.key, v]));
  const results: CheckResult[] = [];
  const iso = (ms: number) => new Date(ms).toISOString();

  // 1. The device decided what the worker meant (unknown cards: rejected, or accepted and flagged).
  const decisionFailures: string[] = [];
  for (const t of input.taps) {
    if (t.feedback === null) continue;
    const truth = truthByKey.get(t.visitKey);
    const ok =
      expectedFeedback[t.intent].includes(t.feedback) ||
      (truth?.kind === 'unknown-card' && t.feedback === 'rejected');
    if (!ok)
      decisionFailures.push(
        `${t.readerId} ${t.visitKey} @${iso(t.atMs)}: meant ${t.intent}, saw ${t.feedback}`,
      );
  }
  results.push(
    result('device-decisions-match-truth', 'invariant', `${input.taps.length} taps`, decisionFailures),
  );

  // 2. Every positive-feedback tap reached the backend, once; 3. nothing arrived that nobody tapped.
  const m: Matched = matchTaps(input, tol);
  const refused = new Set(input.refusedKeys);
  results.push(
    result(
      'positive-feedback-taps-delivered',
      'invariant',
      `${m.expected} taps with feedback expecting a backend event, ${m.matched} delivered`,
      m.missing.filter((x) => !refused.has(x.key ?? '')).map((x) => x.text),
    ),
  );
  const dupFailures: string[] = [];
  if (input.backend.conflicts > 0)
    dupFailures.push(`${input.backend.conflicts} keys redelivered with different content`);
  dupFailures.push(...m.doubles);
  results.push(
    result(
      'exactly-once-by-key',
      'invariant',
      `${input.received.length} keys, ${input.backend.duplicates} redeliveries deduped by key`,
      dupFailures,
    ),
  );
  results.push(result('no-phantom-events', 'invariant', `${m.unmatched.length} unexplained`, m.unmatched));

  // 4. Visits match the ground truth: staff, client, times and durations within tolerance.
  results.push(result('visits-match-truth', 'invariant', m.visitSummary, m.visitFailures));

  // 5. Anomalies: expected ones present, none unexplained.
  results.push(result('anomalies-as-expected', 'invariant', m.anomalySummary, m.anomalyFailures));

  // 6. No sequence gaps left; nothing left unacknowledged on the devices.
  const gapFailures: string[] = [];
  for (const r of input.readers) {
    if (r.maxSeen > r.contiguousUpto)
      gapFailures.push(`${r.readerId}: gap above ${r.contiguousUpto} (max seen ${r.maxSeen})`);
    if (r.deviceLastSeq !== null && r.deviceLastSeq !== r.contiguousUpto) {
      gapFailures.push(
        `${r.readerId}: device at seq ${r.deviceLastSeq}, gateway holds up to ${r.contiguousUpto}`,
      );
    }
    if (r.deviceQueueDepth !== null && r.deviceQueueDepth > 0) {
      gapFailures.push(`${r.readerId}: ${r.deviceQueueDepth} events still unacknowledged on the device`);
    }
  }
  results.push(result('no-sequence-gaps', 'invariant', `${input.readers.length} readers`, gapFailures));

  // 7. The webhook contract held (signatures, schema).
  const hook: string[] = [];
  if (input.backend.rejectedSignatures) {
    const why = [...new Set(input.backend.rejectionReasons?.() ?? [])].join('; ');
    hook.push(`${input.backend.rejectedSignatures} requests with a bad signature (${why})`);
  }
  if (input.backend.invalidBatches) hook.push(`${input.backend.invalidBatches} invalid batches`);
  results.push(result('webhook-contract', 'invariant', 'signatures and schema', hook));

  // 7b. Attributions of cards assigned later: after what they attribute, once each.
  const attr = checkAttributions(input.received);
  results.push(result('attributions-after-their-visit', 'invariant', attr.summary, attr.failures));

  // 8. concurrent-visit only where the registered taps have the same card open at two homes (a false flag
  // accuses a care worker): an invariant.
  results.push(
    result(
      'no-false-concurrent-visit',
      'invariant',
      `${m.lateConcurrent.length} unexplained`,
      m.lateConcurrent,
    ),
  );

  // 9. Double-staffed visits share a group id (quality).
  results.push(result('double-staffing-grouped', 'quality', m.groupSummary, m.groupFailures));
  return results;
}

export function breaches(results: readonly CheckResult[]): CheckResult[] {
  return results.filter((r) => !r.ok && r.severity === 'invariant');
}
