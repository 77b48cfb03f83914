import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, encode, EventBatch, TOPIC_LEAVES } from '../../protocol/index.js';

const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);
const safeId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const time = fc.record({
  wallMs: fc.integer({ min: 946_684_800_000, max: 7_258_118_400_000 }),
  bootId: safeId,
  monoMs: fc.nat(),
  synced: fc.boolean(),
});

/** Arbitrary valid event batches for one reader. */
const batch = safeId.chain((readerId) =>
  fc
    .record({
      start: fc.integer({ min: 1, max: 1_000_000 }),
      sentAt: time,
      events: fc.array(
        fc.record({
          card: hex32.map((h) => `c1_${h}`),
          decision: fc.constantFrom('start', 'stop', 'repeat', 'rejected', 'auto-close'),
          visit: safeId,
          time,
          selftest: fc.option(fc.boolean(), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 30 },
      ),
    })
    .map(({ start, sentAt, events }) => ({
      schemaVersion: 1 as const,
      readerId,
      sentAt,
      events: events.map((e, i) => ({
        readerId,
        seq: start + i,
        eventId: `${readerId}.${start + i}`.slice(0, 64),
        card: e.card,
        decision: e.decision,
        visitId: e.decision === 'rejected' ? null : e.visit,
        ...(e.decision === 'rejected' ? { rejectReason: 'unknown-card' as const } : {}),
        time: e.time,
        ...(e.selftest === undefined ? {} : { selftest: e.selftest }),
      })),
    })),
);

describe('codec properties', () => {
  it('any valid event batch round trips exactly', () => {
    fc.assert(
      fc.property(batch, (b) => {
        expect(EventBatch.safeParse(b).success).toBe(true);
        expect(decode('events', b.readerId, encode('events', b))).toEqual({ ok: true, value: b });
      }),
      { numRuns: 300 },
    );
  });

  it('decode never throws on arbitrary bytes, for every leaf', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TOPIC_LEAVES), fc.uint8Array({ maxLength: 512 }), (leaf, bytes) => {
        const r = decode(leaf, 'rdr-1', bytes);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 1000 },
    );
  });

  it('decode never throws on arbitrary JSON values and its rejection detail stays bounded', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TOPIC_LEAVES), fc.jsonValue(), (leaf, value) => {
        const r = decode(leaf, 'rdr-1', JSON.stringify(value) ?? 'null');
        if (!r.ok) expect(r.detail.length).toBeLessThanOrEqual(500);
      }),
      { numRuns: 1000 },
    );
  });

  it('a valid batch mutated by one field is either still valid or rejected with a reason (never throws)', () => {
    fc.assert(
      fc.property(batch, fc.jsonValue(), fc.nat(), (b, junk, pick) => {
        const ev = b.events[pick % b.events.length] as Record<string, unknown>;
        const keys = Object.keys(ev);
        ev[keys[pick % keys.length] as string] = junk;
        const r = decode('events', b.readerId, JSON.stringify(b));
        if (!r.ok) expect(['invalid-payload', 'reader-mismatch']).toContain(r.reason);
      }),
      { numRuns: 300 },
    );
  });
});
