import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEVICE_PUBLISH_LEAVES,
  DEVICE_SUBSCRIBE_LEAVES,
  isSafeId,
  parseTopic,
  TOPIC_DEPTH,
  TOPIC_LEAVES,
  topics,
  readerTopic,
} from '../../protocol/index.js';

const safeId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);

describe('topics', () => {
  it('builds the documented topics', () => {
    expect(topics.events('rdr-1')).toBe('visittag/v1/readers/rdr-1/events');
    expect(topics.commandResults('rdr-1')).toBe('visittag/v1/readers/rdr-1/command-results');
    expect(topics.allReaders('status')).toBe('visittag/v1/readers/+/status');
    expect(TOPIC_DEPTH).toBe(5);
  });

  it('device publish and subscribe leaves do not overlap', () => {
    expect(DEVICE_PUBLISH_LEAVES.filter((l) => DEVICE_SUBSCRIBE_LEAVES.includes(l))).toEqual([]);
  });

  it('refuses to build a topic from an unsafe id', () => {
    for (const bad of ['', 'a/b', '+', '#', 'a b', 'x'.repeat(65), '-lead', 'é']) {
      expect(() => readerTopic(bad, 'events'), bad).toThrow(/invalid reader id/);
    }
  });

  it.each([
    ['wildcard +', 'visittag/v1/readers/+/events', /wildcards/],
    ['wildcard #', 'visittag/v1/readers/#', /wildcards/],
    ['too deep', 'visittag/v1/readers/r1/events/extra', /exactly 5 levels/],
    ['too shallow', 'visittag/v1/readers/r1', /exactly 5 levels/],
    ['other version', 'visittag/v2/readers/r1/events', /level 2/],
    ['other root', '$SYS/v1/readers/r1/events', /level 1/],
    ['unknown leaf', 'visittag/v1/readers/r1/secrets', /unknown topic leaf/],
    ['unsafe id', 'visittag/v1/readers/r 1/events', /safe alphabet/],
    ['empty level', 'visittag/v1/readers//events', /safe alphabet/],
    ['leading slash', '/visittag/v1/readers/r1', /level 1/],
  ])('rejects %s', (_n, topic, reason) => {
    const r = parseTopic(topic);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('property: parse(build(id, leaf)) gives back id and leaf', () => {
    fc.assert(
      fc.property(safeId, fc.constantFrom(...TOPIC_LEAVES), (id, leaf) => {
        expect(parseTopic(readerTopic(id, leaf))).toEqual({ ok: true, readerId: id, leaf });
      }),
    );
  });

  it('property: parseTopic never throws, and whatever it accepts is canonical', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc
            .array(
              fc.oneof(
                fc.string({ maxLength: 12 }),
                fc.constantFrom('visittag', 'v1', 'readers', '+', '#', 'events'),
              ),
              {
                maxLength: 8,
              },
            )
            .map((p) => p.join('/')),
        ),
        (topic) => {
          const r = parseTopic(topic);
          if (r.ok) {
            expect(isSafeId(r.readerId)).toBe(true);
            expect(readerTopic(r.readerId, r.leaf)).toBe(topic);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
