/**
 * Property: for one reader, whatever the arrival order of its batches (reordered, split, repeated),
 * the visit engine produces exactly the same outbox as for in-order delivery, with unique keys, one
 * start and at most one end per visit, and every start before its end.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TapEvent } from '../../protocol/index.js';
import { addReader, card, createEnv, ingestBatch, outboxEvents, tap } from './helpers.js';

type Step = { card: number; kind: 'tap' | 'repeat' | 'reject' | 'selftest' | 'auto-close' };

/** A device-like decision sequence: per card, start when closed, stop (or auto-close) when open. */
function deviceTaps(steps: Step[]): TapEvent[] {
  const open = new Map<number, string>();
  const out: TapEvent[] = [];
  let visits = 0;
  for (const s of steps) {
    const seq = out.length + 1;
    const c = card(s.card);
    const cur = open.get(s.card);
    if (s.kind === 'reject') {
      out.push(
        tap('r1', seq, {
          card: card(50 + s.card),
          decision: 'rejected',
          visitId: null,
          rejectReason: 'unknown-card',
        }),
      );
    } else if (s.kind === 'selftest') {
      out.push(tap('r1', seq, { card: c, decision: 'start', visitId: `st${seq}`, selftest: true }));
    } else if (s.kind === 'repeat' && cur) {
      out.push(tap('r1', seq, { card: c, decision: 'repeat', visitId: cur }));
    } else if (cur) {
      out.push(
        tap('r1', seq, { card: c, decision: s.kind === 'auto-close' ? 'auto-close' : 'stop', visitId: cur }),
      );
      open.delete(s.card);
    } else {
      const v = `v${++visits}`;
      open.set(s.card, v);
      out.push(tap('r1', seq, { card: c, decision: 'start', visitId: v }));
    }
  }
  return out;
}

function run(batches: TapEvent[][]): string[] {
  const env = createEnv();
  try {
    addReader(env.db, 'r1', 'client-1');
    env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-1' });
    env.pipeline.registry.addCard({ cardRef: card(2), staffRef: 'staff-2' });
    for (const b of batches) {
      ingestBatch(env.db, { readerId: 'r1', events: b });
      env.pipeline.processNow();
    }
    return outboxEvents(env.db).map((e) => JSON.stringify(e));
  } finally {
    void env.close();
  }
}

const stepArb = fc.record({
  card: fc.integer({ min: 1, max: 3 }),
  kind: fc.constantFrom<Step['kind']>('tap', 'tap', 'tap', 'repeat', 'reject', 'selftest', 'auto-close'),
});

describe('arrival order (property)', () => {
  it('any split, reordering and repetition of batches yields the in-order outbox', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (steps, cuts, shuffle) => {
          const events = deviceTaps(steps);
          const baseline = run([events]);
          // Split at random cut points, shuffle the pieces, and repeat some of them.
          const points = [...new Set(cuts.map((c) => c % events.length))].sort((a, b) => a - b);
          const pieces: TapEvent[][] = [];
          let from = 0;
          for (const p of [...points, events.length]) {
            if (p > from) pieces.push(events.slice(from, p));
            from = Math.max(from, p);
          }
          const order = pieces.map((p, i) => ({ p, k: shuffle[i] ?? i }));
          order.sort((a, b) => a.k - b.k);
          const arrivals = order.map((o) => o.p);
          for (const [i, k] of shuffle.entries()) if (k % 3 === 0 && pieces[i]) arrivals.push(pieces[i]);
          const got = run(arrivals);
          expect(got).toEqual(baseline);

          const parsed = got.map(
            (j) => JSON.parse(j) as { type: string; idempotencyKey: string; visitId: string | null },
          );
          expect(new Set(parsed.map((e) => e.idempotencyKey)).size).toBe(parsed.length);
          const seen = new Map<string, string[]>();
          for (const e of parsed) {
            if (e.type === 'visit.anomaly' || e.visitId === null) continue;
            seen.set(e.visitId, [...(seen.get(e.visitId) ?? []), e.type]);
          }
          for (const types of seen.values()) {
            expect(['visit.started', 'visit.started,visit.ended']).toContain(types.join(','));
          }
        },
      ),
      { numRuns: 20, seed: 20261123 },
    );
  });
});
