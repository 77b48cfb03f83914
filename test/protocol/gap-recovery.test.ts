import { describe, expect, it } from 'vitest';
import { decode, encode, EXAMPLES } from '../../protocol/index.js';

// Journal epochs and tombstones (issue 16): optional additions within version 1.

const base = EXAMPLES.events;
const event = base.events[0];
const batch = (over: Record<string, unknown>) => JSON.stringify({ ...base, ...over });
const check = (over: Record<string, unknown>) => {
  const d = decode('events', 'rdr-0042', batch(over));
  return d.ok ? 'ok' : d.detail;
};

describe('event batch: epoch and tombstones', () => {
  it('a batch without them is still valid (the legacy epoch)', () => {
    expect(check({})).toBe('ok');
  });

  it('accepts an epoch and tombstones beside events, and tombstones alone', () => {
    expect(
      check({ epoch: 'j0123456789abcdef', tombstones: [{ from: 1, to: 16, reason: 'quarantined' }] }),
    ).toBe('ok');
    expect(
      check({ events: [], tombstones: [{ from: 19, to: 19, reason: 'quarantined', detail: 'torn row' }] }),
    ).toBe('ok');
  });

  it('refuses a batch with neither events nor tombstones, naming the field', () => {
    expect(check({ events: [] })).toMatch(/events: must hold at least one event or tombstone/);
    expect(check({ events: [], tombstones: [] })).toMatch(/at least one event or tombstone/);
  });

  it('refuses inverted, overlapping or unordered ranges and a tombstone over an event of the batch', () => {
    expect(check({ tombstones: [{ from: 5, to: 4, reason: 'quarantined' }] })).toMatch(/to must be ≥ from/);
    expect(
      check({
        tombstones: [
          { from: 1, to: 5, reason: 'quarantined' },
          { from: 5, to: 6, reason: 'quarantined' },
        ],
      }),
    ).toMatch(/ordered and disjoint/);
    expect(check({ tombstones: [{ from: 10, to: 20, reason: 'quarantined' }] })).toMatch(
      /covers the seq of an event/,
    );
  });

  it('refuses an unknown reason, an unsafe epoch and more than 50 ranges', () => {
    expect(check({ tombstones: [{ from: 1, to: 1, reason: 'lost-it' }] })).toMatch(/tombstones\.0\.reason/);
    expect(check({ epoch: 'j/../x' })).toMatch(/epoch/);
    const many = Array.from({ length: 51 }, (_, i) => ({
      from: i * 2 + 100,
      to: i * 2 + 100,
      reason: 'quarantined',
    }));
    expect(check({ tombstones: many })).toMatch(/tombstones/);
  });

  it('an ack may name its epoch', () => {
    const ack = encode('acks', { ...EXAMPLES.acks, epoch: 'j0123456789abcdef' });
    const d = decode('acks', 'rdr-0042', ack);
    expect(d.ok && d.value.epoch).toBe('j0123456789abcdef');
    expect(event.seq).toBe(17);
  });
});
