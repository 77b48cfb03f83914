/**
 * Matching for the checker: pairs each tap that got feedback with the backend event it must have
 * produced (same reader and card, nearest time within the tolerance), then checks visits and
 * anomalies against the ground truth. Taps of one card at one reader are minutes apart in every
 * scenario (repeats produce no event), so nearest-in-time matching is unambiguous.
 */
import type { VisitEvent } from '../protocol/index.js';
import type { CheckInput, TapRecord, Tolerances } from './checker.js';
import type { TruthVisit } from './scenario/types.js';

type Started = Extract<VisitEvent, { type: 'visit.started' }>;
type Ended = Extract<VisitEvent, { type: 'visit.ended' }>;
type Anomaly = Extract<VisitEvent, { type: 'visit.anomaly' }>;
type Attributed = Extract<VisitEvent, { type: 'visit.attributed' }>;

export interface Matched {
  expected: number;
  matched: number;
  missing: { key?: string; text: string }[];
  doubles: string[];
  unmatched: string[];
  visitSummary: string;
  visitFailures: string[];
  anomalySummary: string;
  anomalyFailures: string[];
  /** concurrent-visit flags the truth does not explain (out-of-order arrival across readers). */
  lateConcurrent: string[];
  groupSummary: string;
  groupFailures: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const bucket = (readerId: string, cardRef: string | null) => `${readerId}|${cardRef ?? '-'}`;

function group<T extends VisitEvent>(events: readonly T[], key: (e: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const e of events) {
    const k = key(e);
    const list = m.get(k);
    if (list) list.push(e);
    else m.set(k, [e]);
  }
  return m;
}

export function matchTaps(input: CheckInput, tol: Tolerances): Matched {
  const { scenario: s, received } = input;
  const starts = received.filter((e): e is Started => e.type === 'visit.started');
  const ends = received.filter((e): e is Ended => e.type === 'visit.ended');
  const anomalies = received.filter((e): e is Anomaly => e.type === 'visit.anomaly');
  const tolFor = (readerId: string, quality: string): number => {
    const skew = input.skewMs.get(readerId) ?? 0;
    if (quality === 'synced') return skew + tol.syncedMs;
    if (quality === 'corrected') return skew + tol.correctedMs;
    return Number.POSITIVE_INFINITY; // uncorrected: matched by order
  };

  const used = new Set<VisitEvent>();
  const tapEvent = new Map<TapRecord, VisitEvent>();
  const missing: Matched['missing'] = [];
  let expected = 0;
  const pools = {
    'visit-started': group(starts, (e) => bucket(e.readerId, e.cardRef)),
    'visit-ended': group(
      ends.filter((e) => e.endReason === 'tap'),
      (e) => bucket(e.readerId, e.cardRef),
    ),
    rejected: group(
      anomalies.filter((e) => e.anomaly === 'unknown-card' || e.anomaly === 'revoked-card'),
      (e) => bucket(e.readerId, e.cardRef),
    ),
  };
  const timeOf = (e: VisitEvent): { ms: number; quality: string } => {
    if (e.type === 'visit.started') return { ms: Date.parse(e.startedAt), quality: e.timeQuality };
    if (e.type === 'visit.ended') return { ms: Date.parse(e.endedAt), quality: e.timeQuality };
    if (e.type === 'visit.anomaly') return { ms: Date.parse(e.at), quality: 'corrected' };
    if (e.type !== 'visit.attributed') return { ms: 0, quality: 'corrected' }; // plan alerts: never in a pool
    return { ms: Date.parse(e.attributedAt), quality: 'corrected' }; // never in a pool
  };
  const positive = input.taps.filter(
    (t) => t.feedback === 'visit-started' || t.feedback === 'visit-ended' || t.feedback === 'rejected',
  );
  // Pass 1: within tolerance, nearest first. Pass 2: uncorrected events, in order.
  for (const pass of [1, 2]) {
    for (const t of positive) {
      if (tapEvent.has(t)) continue;
      const pool = pools[t.feedback as keyof typeof pools].get(bucket(t.readerId, t.cardRef)) ?? [];
      let best: VisitEvent | null = null;
      let bestD = Number.POSITIVE_INFINITY;
      for (const e of pool) {
        if (used.has(e)) continue;
        const { ms, quality } = timeOf(e);
        const d = Math.abs(ms - t.atMs);
        if (pass === 1 ? d <= tolFor(t.readerId, quality) && d < bestD : quality === 'uncorrected' && !best) {
          best = e;
          bestD = d;
        }
      }
      if (best) {
        used.add(best);
        tapEvent.set(t, best);
      }
    }
  }
  for (const t of positive) {
    expected++;
    if (!tapEvent.has(t)) {
      missing.push({
        text: `${t.readerId} ${t.visitKey}: "${t.feedback}" shown @${iso(t.atMs)} but no matching backend event`,
      });
    }
  }

  // Doubles: one visit id started or tap-ended twice under different keys.
  const doubles: string[] = [];
  for (const [id, list] of group(starts, (e) => e.visitId)) {
    if (list.length > 1)
      doubles.push(
        `visit ${id} started ${list.length} times (${list.map((e) => e.idempotencyKey).join(', ')})`,
      );
  }
  for (const [id, list] of group(ends, (e) => e.visitId)) {
    if (list.length > 1)
      doubles.push(
        `visit ${id} ended ${list.length} times (${list.map((e) => e.idempotencyKey).join(', ')})`,
      );
  }

  // Visits against the truth.
  const startTapOf = new Map<string, TapRecord>();
  const stopTapOf = new Map<string, TapRecord>();
  for (const t of input.taps) {
    if (t.feedback === 'visit-started' && !startTapOf.has(t.visitKey)) startTapOf.set(t.visitKey, t);
    if (t.feedback === 'visit-ended') stopTapOf.set(t.visitKey, t);
  }
  const visitFailures: string[] = [];
  const startOfTruth = new Map<string, Started>();
  const openTruthByVisitId = new Map<string, TruthVisit>();
  let compared = 0;
  for (const v of s.truth) {
    const st = startTapOf.get(v.key);
    const se = st ? tapEvent.get(st) : undefined;
    if (!st || !se || se.type !== 'visit.started') continue;
    compared++;
    startOfTruth.set(v.key, se);
    if (v.endMs === null) openTruthByVisitId.set(se.visitId, v);
    if (se.staffRef !== v.staffRef)
      visitFailures.push(`${v.key}: staff ${se.staffRef} at the backend, truth ${v.staffRef}`);
    if (se.clientRef !== v.clientRef)
      visitFailures.push(`${v.key}: client ${se.clientRef}, truth ${v.clientRef}`);
    if (v.endMs === null) continue;
    const sp = stopTapOf.get(v.key);
    const ee = sp ? tapEvent.get(sp) : undefined;
    if (!ee || ee.type !== 'visit.ended') continue;
    if (ee.visitId !== se.visitId) {
      visitFailures.push(`${v.key}: ended visit ${ee.visitId} is not the started one ${se.visitId}`);
      continue;
    }
    if (ee.timeQuality !== 'uncorrected' && se.timeQuality !== 'uncorrected' && ee.durationMs !== null) {
      const want = (sp as TapRecord).atMs - st.atMs; // what the worker did (taps may be retried late)
      const allowed = 2 * Math.max(tolFor(v.readerId, se.timeQuality), tolFor(v.readerId, ee.timeQuality));
      if (Math.abs(ee.durationMs - want) > allowed) {
        visitFailures.push(`${v.key}: duration ${ee.durationMs} ms, truth ${want} ms (±${allowed})`);
      }
    }
  }

  // Backend events nobody tapped for.
  const unmatched: string[] = [];
  for (const e of [...starts, ...ends]) {
    if (used.has(e)) continue;
    if (e.type === 'visit.ended' && e.endReason === 'auto-close') {
      const truth = openTruthByVisitId.get(e.visitId);
      if (truth) continue;
      unmatched.push(
        `${e.idempotencyKey}: auto-closed visit ${e.visitId} that has no open visit in the truth`,
      );
      continue;
    }
    unmatched.push(`${e.idempotencyKey}: ${e.type} of ${e.readerId} nobody tapped for`);
  }

  // Anomalies.
  const anomalyFailures: string[] = [];
  const lateConcurrent: string[] = [];
  const byKind: Record<string, number> = {};
  const margin = 5 * 60_000;
  const clockTol = (readerId: string): number =>
    (input.skewMs.get(readerId) ?? 0) +
    (input.unsyncedReaders.has(readerId) ? tol.correctedMs : tol.syncedMs);
  // What the readers registered, the only thing the gateway can know: each visit from its start tap to its stop
  // tap as the worker finally made them (a tap that met a dead reader is made again once the reader is back, so
  // the registered stop is the later one), or to its auto-close when no stop was registered.
  const registered = s.truth.flatMap((v) => {
    const st = startTapOf.get(v.key);
    if (!st) return [];
    const sp = stopTapOf.get(v.key);
    const endMs = sp ? sp.atMs : st.atMs + s.params.maxOpenMs;
    return [
      {
        readerId: v.readerId,
        cardRef: v.cardRef,
        startMs: st.atMs,
        endMs,
        visitId: startOfTruth.get(v.key)?.visitId,
      },
    ];
  });
  for (const a of anomalies) {
    byKind[a.anomaly] = (byKind[a.anomaly] ?? 0) + 1;
    const truthOfCard = s.truth.filter((v) => v.cardRef === a.cardRef);
    const unknown = truthOfCard.length > 0 && truthOfCard.every((v) => v.kind === 'unknown-card');
    const at = Date.parse(a.at);
    let ok: boolean;
    switch (a.anomaly) {
      case 'unknown-card':
        ok = unknown;
        break;
      case 'missing-stop':
        ok = a.visitId !== null && openTruthByVisitId.has(a.visitId);
        break;
      case 'concurrent-visit': {
        // Right when the card was registered open at another home at that moment (flagged at a start), or when
        // the flagged visit's registered span overlaps one of the card's at another home (flagged at its end).
        const others = registered.filter((r) => r.cardRef === a.cardRef && r.readerId !== a.readerId);
        const own = registered.find((r) => a.visitId !== null && r.visitId === a.visitId);
        // Tolerance: what the two readers' clocks may be off (a flag the clocks alone explain is not false).
        const m = (r: { readerId: string }) => clockTol(a.readerId) + clockTol(r.readerId);
        ok =
          others.some((r) => r.startMs - m(r) <= at && at <= r.endMs + m(r)) ||
          (own !== undefined &&
            others.some((r) => r.startMs <= own.endMs + m(r) && own.startMs <= r.endMs + m(r)));
        break;
      }
      case 'uncorrected-time':
        ok = input.unsyncedReaders.has(a.readerId);
        break;
      case 'revoked-card':
      case 'stop-without-start':
      case 'manual-close':
      case 'uid-only-card': // the simulator's cards never meet a refusing secure-card policy
      case 'card-auth-failed': // nor a DESFire authentication
        ok = false;
        break;
    }
    if (ok) continue;
    const text = `${a.idempotencyKey}: unexpected ${a.anomaly} at ${a.readerId} @${a.at}`;
    // Reported under its own invariant, no-false-concurrent-visit (a false flag accuses a care worker).
    if (a.anomaly === 'concurrent-visit') lateConcurrent.push(text);
    else anomalyFailures.push(text);
  }
  for (const v of s.truth) {
    if (v.kind === 'unknown-card' && startTapOf.has(v.key)) {
      if (
        !anomalies.some(
          (a) => a.anomaly === 'unknown-card' && a.cardRef === v.cardRef && a.readerId === v.readerId,
        )
      ) {
        anomalyFailures.push(`${v.key}: unknown card at ${v.readerId} not flagged`);
      }
    }
    const se = startOfTruth.get(v.key);
    if (v.endMs === null && se && v.startMs + s.params.maxOpenMs + margin < input.endMs) {
      const closed = ends.find((e) => e.visitId === se.visitId && e.endReason === 'auto-close');
      const flagged = anomalies.some((a) => a.anomaly === 'missing-stop' && a.visitId === se.visitId);
      if (!closed || !flagged) {
        anomalyFailures.push(
          `${v.key}: open since ${iso(v.startMs)}, expected auto-close + missing-stop (closed ${!!closed}, flagged ${flagged})`,
        );
      }
    }
  }

  // Double staffing. The gateway groups visits that are open at the same reader at the same time; a second
  // staff member who arrives after the first has tapped out makes two visits, not a group (the care plan's
  // matching still counts both against the double-staffed plan).
  const groupFailures: string[] = [];
  // The first started event of a pair cannot know its partner yet: use the latest word (the end).
  const groups = new Map<string, { ids: (string | null)[]; spans: [number, number][] }>();
  for (const v of s.truth) {
    const se = startOfTruth.get(v.key);
    if (!v.groupKey || !se) continue;
    const end = ends.find((e) => e.visitId === se.visitId);
    const g = groups.get(v.groupKey) ?? { ids: [], spans: [] };
    g.ids.push(end ? end.groupId : se.groupId);
    g.spans.push([v.startMs, v.endMs ?? Number.POSITIVE_INFINITY]);
    groups.set(v.groupKey, g);
  }
  let sequential = 0;
  for (const [key, g] of groups) {
    if (g.ids.length < 2) continue;
    const spans = [...g.spans].sort((a, b) => a[0] - b[0]);
    let openUntil = spans[0]?.[1] ?? 0;
    let together = true;
    for (const [from, to] of spans.slice(1)) {
      if (from >= openUntil) together = false;
      openUntil = Math.max(openUntil, to);
    }
    const ids = new Set(g.ids);
    if (together) {
      if (ids.size !== 1 || ids.has(null)) groupFailures.push(`${key}: group ids ${[...ids].join(', ')}`);
    } else {
      sequential++;
      if (g.ids.some((id) => id !== null))
        groupFailures.push(`${key}: one after the other, yet grouped (${[...ids].join(', ')})`);
    }
  }

  return {
    expected,
    matched: tapEvent.size,
    missing,
    doubles,
    unmatched,
    visitSummary: `${compared} truth visits compared (tolerance synced ±${tol.syncedMs} ms, corrected ±${tol.correctedMs} ms, plus skew)`,
    visitFailures,
    anomalySummary:
      Object.entries(byKind)
        .map(([k, n]) => `${k}: ${n}`)
        .join(', ') || 'none',
    anomalyFailures,
    lateConcurrent,
    groupSummary: `${groups.size} double-staffed calls (${sequential} with the second staff member after the first had left: two visits, not grouped)`,
    groupFailures,
  };
}

/**
 * `visit.attributed` events (a card assigned after it was seen unknown): each one must come after what
 * it attributes (the visit's started/ended, or the refused tap's anomaly it resolves, in arrival order),
 * be about the card of that visit, and be the only attribution of that visit / tap. They are not taps:
 * they never count as phantom visits.
 */
export function checkAttributions(received: readonly VisitEvent[]): { summary: string; failures: string[] } {
  const failures: string[] = [];
  const seenVisit = new Map<string, string>(); // reader|visitId -> cardRef
  const seenAnomaly = new Map<string, Anomaly>();
  const attributed = new Set<string>();
  let n = 0;
  for (const e of received) {
    if (e.type === 'visit.started' || e.type === 'visit.ended') {
      seenVisit.set(`${e.readerId}|${e.visitId}`, e.cardRef);
      continue;
    }
    if (e.type === 'visit.anomaly') {
      seenAnomaly.set(e.idempotencyKey, e);
      continue;
    }
    if (e.type !== 'visit.attributed') continue; // plan alerts (gateway/src/care)
    const a: Attributed = e;
    n++;
    const what = a.visitId === null ? `refused tap ${a.readerId}#${a.seq}` : `visit ${a.visitId}`;
    const id = a.visitId === null ? `${a.readerId}|#${a.seq}` : `${a.readerId}|${a.visitId}`;
    if (attributed.has(id)) failures.push(`${a.idempotencyKey}: ${what} attributed twice`);
    attributed.add(id);
    if (a.visitId !== null) {
      const card = seenVisit.get(`${a.readerId}|${a.visitId}`);
      if (card === undefined)
        failures.push(`${a.idempotencyKey}: ${what} attributed before the backend saw it`);
      else if (card !== a.cardRef) failures.push(`${a.idempotencyKey}: ${what} is not a visit of that card`);
    } else if (!a.resolves.some((k) => seenAnomaly.get(k)?.cardRef === a.cardRef)) {
      failures.push(`${a.idempotencyKey}: ${what} attributed before its unknown-card anomaly arrived`);
    }
    for (const k of a.resolves) {
      if (!seenAnomaly.has(k)) failures.push(`${a.idempotencyKey}: resolves ${k}, not received before`);
    }
  }
  return { summary: `${n} attributions`, failures };
}
