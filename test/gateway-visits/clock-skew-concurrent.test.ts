import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ALERT_THRESHOLDS, deriveAlerts } from '../../gateway/src/fleet/alerts.js';
import type { EventTime } from '../../protocol/index.js';
import { T0, addReader, card, createEnv, ingestBatch, ofType, outboxEvents, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';

// Issue 16: a reader whose clock says "synced" but runs off made false "same worker at two homes" flags. The
// gateway measures each synced boot's offset (batch sentAt against receive time): a clock ahead by more than the
// bound is corrected; one behind by more is distrusted (kept, and the concurrent-visit check widened by it).

const MIN = 60_000;
let env: TestEnv;
afterEach(async () => {
  await env.close();
});

function setup(): TestEnv {
  env = createEnv();
  addReader(env.db, 'r1', 'client-1');
  addReader(env.db, 'r2', 'client-2');
  env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  return env;
}

/** A synced reader whose clock reads `skewMs` off the gateway's: its batch is sent at true time `trueMs`. */
const sentAt = (trueMs: number, skewMs: number): EventTime => ({
  wallMs: trueMs + skewMs,
  bootId: 'boot1',
  monoMs: trueMs - T0 + 1000,
  synced: true,
});
const at = (trueMs: number, skewMs: number) => ({ wallMs: trueMs + skewMs, monoMs: trueMs - T0 + 1000 });

/** Anna at home 1 from 08:00 to 08:30 (r1, a good clock), then at home 2 from `startB` (r2, `skewB` off). */
function twoHomes(startB: number, skewB: number, endA = T0 + 30 * MIN) {
  const { db, pipeline } = setup();
  ingestBatch(db, {
    readerId: 'r1',
    sentAt: sentAt(endA + 1000, 0),
    receivedAtMs: endA + 1500,
    events: [
      tap('r1', 1, { card: card(1), decision: 'start', visitId: 'a1', time: at(T0, 0) }),
      tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'a1', time: at(endA, 0) }),
    ],
  });
  ingestBatch(db, {
    readerId: 'r2',
    sentAt: sentAt(startB + 1000, skewB),
    receivedAtMs: startB + 1500, // half a second in transit
    events: [tap('r2', 1, { card: card(1), decision: 'start', visitId: 'b1', time: at(startB, skewB) })],
  });
  pipeline.processNow();
  return outboxEvents(db);
}

describe('concurrent-visit and clocks that say they are synced', () => {
  it('a reader 60 s behind, 40 s of travel: no concurrent-visit flag (the check is widened by its offset)', () => {
    const out = twoHomes(T0 + 30 * MIN + 40_000, -60_000);
    expect(ofType(out, 'visit.anomaly')).toEqual([]);
    const b = ofType(out, 'visit.started').find((s) => s.visitId === 'b1');
    expect(b?.anomalies).toEqual([]);
    // Distrusted, not shifted: transit could explain part of a clock that looks behind.
    expect(b?.timeQuality).toBe('synced');
  });

  it('a reader 90 s ahead: its times are corrected by the measured offset (within the transit)', () => {
    const { db, pipeline } = setup();
    const trueStart = T0 + 10 * MIN;
    ingestBatch(db, {
      readerId: 'r2',
      sentAt: sentAt(trueStart + 1000, 90_000),
      receivedAtMs: trueStart + 1500,
      events: [
        tap('r2', 1, { card: card(1), decision: 'start', visitId: 'b1', time: at(trueStart, 90_000) }),
      ],
    });
    pipeline.processNow();
    const b = ofType(outboxEvents(db), 'visit.started')[0];
    expect(b?.timeQuality).toBe('corrected');
    const err = Date.parse(b?.startedAt ?? '') - trueStart;
    expect(err).toBeGreaterThanOrEqual(0);
    expect(err).toBeLessThanOrEqual(500); // the transit of the batch that measured it
  });

  it('the order of processing does not matter: the same travel, home 2 processed first, no flag on the end', () => {
    const { db, pipeline } = setup();
    const startB = T0 + 30 * MIN + 40_000;
    ingestBatch(db, {
      readerId: 'r2',
      sentAt: sentAt(startB + 1000, -60_000),
      receivedAtMs: startB + 1500,
      events: [tap('r2', 1, { card: card(1), decision: 'start', visitId: 'b1', time: at(startB, -60_000) })],
    });
    pipeline.processNow();
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: sentAt(startB + 2000, 0),
      receivedAtMs: startB + 2500,
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'a1', time: at(T0, 0) }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'a1', time: at(T0 + 30 * MIN, 0) }),
      ],
    });
    pipeline.processNow();
    expect(ofType(outboxEvents(db), 'visit.anomaly')).toEqual([]);
  });

  it.each([0, -60_000, 90_000])(
    'a real overlap (the card used at home 2 while its visit at home 1 is open) is still flagged (home 2 clock %i ms off)',
    (skew) => {
      // Home 1 ends at 08:30; the card starts a visit at home 2 at 08:10.
      const out = twoHomes(T0 + 10 * MIN, skew);
      const flags = ofType(out, 'visit.anomaly').filter((a) => a.anomaly === 'concurrent-visit');
      expect(flags.map((f) => f.readerId)).toEqual(['r2']);
    },
  );
});

describe('the reader is flagged', () => {
  const reader = (clockOffsetMs: number | null, clockSynced: boolean) => ({
    readerId: 'r2',
    clientRef: 'client-2',
    revoked: false,
    connected: true,
    lastSeenMs: T0,
    clockSynced,
    clockOffsetMs,
    status: { state: 'online', queueDepth: 0, readerAttached: true, freeStorageBytes: 1e10, faults: [] },
  });
  const kinds = (offset: number | null, synced = true) =>
    deriveAlerts(reader(offset, synced), T0, DEFAULT_ALERT_THRESHOLDS).map((a) => a.kind);

  it('a "synced" clock more than 5 s off raises clock-offset, either way; within it, or unsynced, it does not', () => {
    expect(kinds(-60_000)).toEqual(['clock-offset']);
    expect(kinds(90_000)).toEqual(['clock-offset']);
    expect(kinds(4_000)).toEqual([]);
    expect(kinds(null)).toEqual([]);
    expect(kinds(-60_000, false)).toEqual(['clock-unsynced']); // unsynced: corrected per boot instead
  });
});
