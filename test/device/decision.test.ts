import { describe, expect, it } from 'vitest';
import { decideExpiry, decideTap, elapsedMs } from '../../device/src/core/decision.js';
import type { CardState, VisitRules } from '../../device/src/core/decision.js';
import type { EventTime } from '../../protocol/index.js';

const A = 'c1_' + 'a'.repeat(32);
const B = 'c1_' + 'b'.repeat(32);
const H = 3_600_000;
const rules = (over: Partial<VisitRules> = {}): VisitRules => ({
  repeatWindowMs: 10_000,
  maxOpenMs: 12 * H,
  allowList: null,
  revoked: new Set(),
  ...over,
});
const t = (monoMs: number, over: Partial<EventTime> = {}): EventTime => ({
  wallMs: Date.UTC(2026, 0, 5, 8) + monoMs,
  bootId: 'boot-1',
  monoMs,
  synced: true,
  ...over,
});

/** Replays taps of one card through the decision, threading state. */
function run(taps: { card: string; at: EventTime }[], r = rules()) {
  const states = new Map<string, CardState | null>();
  let seq = 1;
  let v = 0;
  return taps.map(({ card, at }) => {
    const out = decideTap({
      card,
      state: states.get(card) ?? null,
      time: at,
      seq,
      rules: r,
      newVisitId: () => `v${++v}`,
    });
    seq += out.events.length;
    states.set(card, out.next);
    return out;
  });
}

describe('tap decision', () => {
  it('start, then stop, with distinct feedback', () => {
    const [a, b] = run([
      { card: A, at: t(0) },
      { card: A, at: t(20 * 60_000) },
    ]);
    expect(a?.events).toEqual([{ decision: 'start', visitId: 'v1' }]);
    expect(a?.feedback).toBe('visit-started');
    expect(b?.events).toEqual([{ decision: 'stop', visitId: 'v1' }]);
    expect(b?.feedback).toBe('visit-ended');
  });

  it('a repeat within the window changes nothing; the window slides with each repeat', () => {
    const out = run([
      { card: A, at: t(0) },
      { card: A, at: t(3_000) },
      { card: A, at: t(12_000) }, // 9 s after the last repeat: still a repeat (card left near the reader)
      { card: A, at: t(30_000) },
    ]);
    expect(out.map((o) => o.events[0]?.decision)).toEqual(['start', 'repeat', 'repeat', 'stop']);
    expect(out[1]?.events[0]?.visitId).toBe('v1');
    expect(out[1]?.feedback).toBe('repeat');
  });

  it('a repeat right after a stop does not reopen the visit', () => {
    const out = run([
      { card: A, at: t(0) },
      { card: A, at: t(60_000) },
      { card: A, at: t(62_000) },
    ]);
    expect(out.map((o) => o.events[0]?.decision)).toEqual(['start', 'stop', 'repeat']);
    expect(out[2]?.next?.open).toBeNull();
  });

  it('two cards at one reader are two overlapping visits (double staffing)', () => {
    const out = run([
      { card: A, at: t(0) },
      { card: B, at: t(1_000) },
      { card: A, at: t(30 * 60_000) },
      { card: B, at: t(31 * 60_000) },
    ]);
    expect(out.map((o) => o.events[0])).toEqual([
      { decision: 'start', visitId: 'v1' },
      { decision: 'start', visitId: 'v2' },
      { decision: 'stop', visitId: 'v1' },
      { decision: 'stop', visitId: 'v2' },
    ]);
  });

  it("a forgotten stop never turns the next day's arrival into a stop", () => {
    const out = run([
      { card: A, at: t(0) },
      { card: A, at: t(24 * H) },
    ]);
    expect(out[1]?.events).toEqual([
      { decision: 'auto-close', visitId: 'v1' },
      { decision: 'start', visitId: 'v2' },
    ]);
    expect(out[1]?.feedback).toBe('visit-started');
    expect(out[1]?.next?.open?.startSeq).toBe(3);
  });

  it('the same holds across a reboot with an unsynced clock (elapsed is a lower bound)', () => {
    const start = t(5 * H, { bootId: 'boot-1' });
    // Rebooted; clock not synced, the wall clock restored from before the power cut, uptime 13 h.
    const next = t(13 * H, { bootId: 'boot-2', wallMs: start.wallMs + 60_000, synced: false });
    expect(elapsedMs(start, next)).toBe(13 * H);
    const out = run([
      { card: A, at: start },
      { card: A, at: next },
    ]);
    expect(out[1]?.events[0]?.decision).toBe('auto-close');
  });

  it('windows are configurable', () => {
    const r = rules({ repeatWindowMs: 0, maxOpenMs: 60_000 });
    const out = run(
      [
        { card: A, at: t(0) },
        { card: A, at: t(1) },
        { card: A, at: t(2) },
        { card: A, at: t(70_000) },
      ],
      r,
    );
    expect(out.map((o) => o.events.map((e) => e.decision).join('+'))).toEqual([
      'start',
      'stop',
      'start',
      'auto-close+start',
    ]);
  });

  it('unknown and revoked cards are rejected (journalled, no state change)', () => {
    const r = rules({ allowList: new Set([A, B]), revoked: new Set([B]) });
    const C = 'c1_' + 'c'.repeat(32);
    const [c, b, a] = run(
      [
        { card: C, at: t(0) },
        { card: B, at: t(1) },
        { card: A, at: t(2) },
      ],
      r,
    );
    expect(c?.events).toEqual([{ decision: 'rejected', visitId: null, rejectReason: 'unknown-card' }]);
    expect(c?.feedback).toBe('rejected');
    expect(c?.next).toBeNull();
    expect(b?.events[0]?.rejectReason).toBe('revoked-card');
    expect(a?.events[0]?.decision).toBe('start');
  });

  it('auto-close by timer only when expired', () => {
    const state: CardState = { open: { visitId: 'v1', startSeq: 1, startedAt: t(0) }, lastTap: null };
    expect(decideExpiry({ state, time: t(12 * H - 1), rules: rules() })).toBeNull();
    const d = decideExpiry({ state, time: t(12 * H), rules: rules() });
    expect(d?.event).toEqual({ decision: 'auto-close', visitId: 'v1' });
    expect(d?.next.open).toBeNull();
  });
});
