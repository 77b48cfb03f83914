/**
 * The checker's verdict on concurrent-visit flags: a flag is right only where the card was REGISTERED open at two
 * homes (the taps as the worker finally made them: a stop that met a dead reader counts when it was made again),
 * within what the two readers' clocks may be off. Pure: a hand-made day of one worker at two homes.
 */
import { describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { runChecks, type CheckInput, type TapRecord } from '../../simulator/checker.js';
import type { Scenario, TruthVisit } from '../../simulator/scenario/types.js';

const T0 = Date.parse('2026-03-02T08:00:00Z');
const MIN = 60_000;
const CARD = 'c1_aaaa';
const iso = (ms: number) => new Date(ms).toISOString();

function truth(key: string, readerId: string, startMs: number, endMs: number | null): TruthVisit {
  return {
    key,
    readerId,
    clientRef: `client-${readerId}`,
    staffRef: 'staff-001',
    cardRef: CARD,
    startMs,
    endMs,
    kind: 'normal',
    errors: [],
    groupKey: null,
  };
}

function tap(t: TruthVisit, intent: 'start' | 'stop', atMs: number): TapRecord {
  return {
    readerId: t.readerId,
    cardRef: CARD,
    staffRef: 'staff-001',
    atMs,
    intent,
    visitKey: t.key,
    feedback: intent === 'start' ? 'visit-started' : 'visit-ended',
  };
}

function started(t: TruthVisit, seq: number, atMs: number): VisitEvent {
  return {
    type: 'visit.started',
    idempotencyKey: `vt1:${t.readerId}:${seq}:started`,
    visitId: `${t.readerId}.v${seq}`,
    readerId: t.readerId,
    clientRef: t.clientRef,
    staffRef: 'staff-001',
    cardRef: CARD,
    groupId: null,
    anomalies: [],
    timeQuality: 'synced',
    startedAt: iso(atMs),
    startSeq: seq,
  };
}

function ended(t: TruthVisit, seq: number, startMs: number, atMs: number): VisitEvent {
  return {
    type: 'visit.ended',
    idempotencyKey: `vt1:${t.readerId}:${seq + 1}:ended`,
    visitId: `${t.readerId}.v${seq}`,
    readerId: t.readerId,
    clientRef: t.clientRef,
    staffRef: 'staff-001',
    cardRef: CARD,
    groupId: null,
    anomalies: [],
    timeQuality: 'synced',
    startedAt: iso(startMs),
    endedAt: iso(atMs),
    durationMs: atMs - startMs,
    endReason: 'tap',
    endSeq: seq + 1,
  };
}

function concurrent(readerId: string, visitId: string, seq: number, atMs: number): VisitEvent {
  return {
    type: 'visit.anomaly',
    idempotencyKey: `vt1:${readerId}:${seq}:anomaly:concurrent-visit`,
    anomaly: 'concurrent-visit',
    readerId,
    clientRef: `client-${readerId}`,
    staffRef: 'staff-001',
    cardRef: CARD,
    visitId,
    at: iso(atMs),
    seq,
    detail: 'the same staff member has a visit open at another home',
  };
}

function input(visits: TruthVisit[], taps: TapRecord[], received: VisitEvent[]): CheckInput {
  const scenario = {
    params: {
      seed: 1,
      readers: 2,
      staff: 1,
      hours: 8,
      startMs: T0,
      repeatWindowMs: 10_000,
      maxOpenMs: 3 * 60 * MIN,
      errorRates: {},
      pairShare: 0,
    },
    fleetKey: 'k',
    endMs: T0 + 8 * 60 * MIN,
    homes: [],
    staff: [],
    unknownCards: [],
    actions: [],
    truth: visits,
  } as unknown as Scenario;
  return {
    scenario,
    taps,
    received,
    backend: { duplicates: 0, conflicts: 0, rejectedSignatures: 0, invalidBatches: 0 },
    refusedKeys: [],
    readers: [],
    skewMs: new Map(),
    unsyncedReaders: new Set(),
    endMs: T0 + 8 * 60 * MIN,
  };
}

const verdict = (i: CheckInput) => runChecks(i).find((r) => r.name === 'no-false-concurrent-visit');

describe('checker: no-false-concurrent-visit judges the registered taps', () => {
  // The worker leaves home A at 08:30 and starts at home B at 08:33 (a three-minute walk).
  const a = truth('staff-001#1', 'rdr-a', T0, T0 + 30 * MIN);
  const b = truth('staff-001#2', 'rdr-b', T0 + 33 * MIN, T0 + 60 * MIN);
  const visitEvents = (aStopMs: number) => [
    started(a, 1, T0),
    ended(a, 1, T0, aStopMs),
    started(b, 1, b.startMs),
    ended(b, 1, b.startMs, b.endMs as number),
  ];

  it('a flag at B while A was registered closed is false (the stop reached the gateway late)', () => {
    const taps = [tap(a, 'start', T0), tap(a, 'stop', a.endMs as number), tap(b, 'start', b.startMs)];
    taps.push(tap(b, 'stop', b.endMs as number));
    const got = verdict(
      input([a, b], taps, [...visitEvents(a.endMs as number), concurrent('rdr-b', 'rdr-b.v1', 1, b.startMs)]),
    );
    expect(got?.ok).toBe(false);
    expect(got?.failures[0]).toContain('unexpected concurrent-visit at rdr-b');
  });

  it('a flag at B is right when the stop at A met a dead reader and was made again after B began', () => {
    const replayed = b.startMs + 10 * MIN;
    const taps = [tap(a, 'start', T0), tap(a, 'stop', replayed), tap(b, 'start', b.startMs)];
    taps.push(tap(b, 'stop', b.endMs as number));
    const got = verdict(
      input([a, b], taps, [...visitEvents(replayed), concurrent('rdr-b', 'rdr-b.v1', 1, b.startMs)]),
    );
    expect(got?.ok).toBe(true);
  });

  it('a flag at B is right when A was never tapped out (registered open until its auto-close)', () => {
    const open = { ...a, endMs: null };
    const taps = [tap(open, 'start', T0), tap(b, 'start', b.startMs), tap(b, 'stop', b.endMs as number)];
    const received = [
      started(open, 1, T0),
      ...visitEvents(0).slice(2),
      concurrent('rdr-b', 'rdr-b.v1', 1, b.startMs),
    ];
    expect(verdict(input([open, b], taps, received))?.ok).toBe(true);
  });

  it('a flag on A at its late-arriving stop is right when B began inside A, false when B began after', () => {
    const late = b.startMs + 10 * MIN;
    const tapsOverlap = [tap(a, 'start', T0), tap(a, 'stop', late), tap(b, 'start', b.startMs)];
    const onA = concurrent('rdr-a', 'rdr-a.v1', 2, late);
    expect(verdict(input([a, b], tapsOverlap, [...visitEvents(late), onA]))?.ok).toBe(true);
    const tapsApart = [tap(a, 'start', T0), tap(a, 'stop', a.endMs as number), tap(b, 'start', b.startMs)];
    const onA2 = concurrent('rdr-a', 'rdr-a.v1', 2, a.endMs as number);
    expect(verdict(input([a, b], tapsApart, [...visitEvents(a.endMs as number), onA2]))?.ok).toBe(false);
  });

  it('within what the clocks may be off, a flag is not counted false', () => {
    // B began 3 s after A's stop; synced clocks may each be 5 s off.
    const b2 = { ...b, startMs: (a.endMs as number) + 3_000 };
    const taps = [tap(a, 'start', T0), tap(a, 'stop', a.endMs as number), tap(b2, 'start', b2.startMs)];
    const received = [started(a, 1, T0), ended(a, 1, T0, a.endMs as number), started(b2, 1, b2.startMs)];
    expect(
      verdict(input([a, b2], taps, [...received, concurrent('rdr-b', 'rdr-b.v1', 1, b2.startMs)]))?.ok,
    ).toBe(true);
  });
});
