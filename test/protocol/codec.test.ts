import { describe, expect, it } from 'vitest';
import {
  decode,
  encode,
  EXAMPLES,
  LIMITS,
  PAYLOADS,
  TOPIC_LEAVES,
  type TopicLeaf,
} from '../../protocol/index.js';

const clone = <T>(v: T): T => structuredClone(v);
type Obj = Record<string, unknown>;
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('codec round trips', () => {
  it.each(TOPIC_LEAVES)('%s: encode → decode gives the same value', (leaf) => {
    const example = EXAMPLES[leaf];
    const wire = encode(leaf, example as never);
    const back = decode(leaf, 'rdr-0042', wire);
    expect(back).toEqual({ ok: true, value: PAYLOADS[leaf].parse(example) });
    // and again: decode(encode(decode(x))) is stable
    if (!back.ok) throw new Error('unreachable');
    expect(decode(leaf, 'rdr-0042', encode(leaf, back.value as never))).toEqual(back);
  });

  it('encode refuses an invalid payload instead of sending it', () => {
    expect(() => encode('acks', { ...EXAMPLES.acks, upTo: -1 })).toThrow(/invalid acks payload.*upTo/);
  });

  it('the status offline last-will round trips', () => {
    const will = { schemaVersion: 1, readerId: 'rdr-1', state: 'offline' } as const;
    expect(decode('status', 'rdr-1', encode('status', will))).toEqual({ ok: true, value: will });
  });

  it('config defaults are filled in for omitted optional fields', () => {
    const minimal = { schemaVersion: 1, readerId: 'r1', version: 1, visit: {}, allowList: null };
    const r = decode('config', 'r1', bytes(minimal));
    expect(r.ok && r.value).toMatchObject({
      visit: { repeatWindowMs: 10_000, maxOpenMs: 43_200_000 },
      revoked: [],
      feedbackMode: 'normal',
      logLevel: 'info',
    });
  });
});

/** Each class of bad input, per message type. */
describe.each(TOPIC_LEAVES)('bad input on %s', (leaf: TopicLeaf) => {
  const good = () => clone(EXAMPLES[leaf]) as unknown as Obj;
  const reject = (payload: unknown, reason: string, topicReader = 'rdr-0042') => {
    const r = decode(leaf, topicReader, typeof payload === 'string' ? payload : bytes(payload));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
    return r;
  };

  it('wrong types', () => {
    reject({ ...good(), readerId: 42 }, 'invalid-payload');
    reject({ ...good(), schemaVersion: '1' }, 'unsupported-schema-version');
    reject([good()], 'invalid-payload');
    reject('null', 'invalid-payload');
  });

  it('missing fields', () => {
    const g = good();
    const key = Object.keys(g).find((k) => k !== 'schemaVersion' && k !== 'readerId') as string;
    delete g[key];
    const r = reject(g, 'invalid-payload');
    if (!r.ok) expect(r.detail).toContain(key);
    const noReader = good();
    delete noReader.readerId;
    reject(noReader, 'invalid-payload');
  });

  it('extra fields are refused (strict objects)', () => {
    const r = reject({ ...good(), sneaky: true }, 'invalid-payload');
    if (!r.ok) expect(r.detail).toMatch(/sneaky|Unrecognized/);
  });

  it('unknown schema version is refused with a reason, never guessed', () => {
    const r = reject({ ...good(), schemaVersion: 2 }, 'unsupported-schema-version');
    if (!r.ok) expect(r.detail).toMatch(/2 is not supported.*speaks 1/);
    const missing = good();
    delete missing.schemaVersion;
    reject(missing, 'unsupported-schema-version');
  });

  it('topic/payload reader-id mismatch', () => {
    reject(good(), 'reader-mismatch', 'rdr-9999');
  });

  it('oversized payloads and strings', () => {
    reject(Buffer.alloc(LIMITS.maxPayloadBytes + 1, 0x20).toString(), 'oversized');
    reject({ ...good(), readerId: 'r'.repeat(LIMITS.maxIdLength + 1) }, 'invalid-payload');
  });

  it('not JSON, not UTF-8', () => {
    reject('{"schemaVersion":1,', 'invalid-json');
    const r = decode(leaf, 'rdr-0042', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(r).toMatchObject({ ok: false, reason: 'invalid-utf8' });
  });
});

describe('event batch specifics', () => {
  const batch = () => clone(EXAMPLES.events) as unknown as { events: Obj[] } & Obj;

  it('oversized batch is refused', () => {
    const b = batch();
    const first = b.events[0] as Obj;
    b.events = Array.from({ length: LIMITS.maxBatchEvents + 1 }, (_, i) => ({
      ...first,
      seq: i + 1,
      eventId: `e${i}`,
    }));
    const r = decode('events', 'rdr-0042', bytes(b));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.detail).toMatch(/events/);
  });

  it('empty batch is refused', () => {
    expect(decode('events', 'rdr-0042', bytes({ ...batch(), events: [] })).ok).toBe(false);
  });

  it('an event of another reader inside a batch is refused', () => {
    const b = batch();
    (b.events[1] as Obj).readerId = 'rdr-0001';
    const r = decode('events', 'rdr-0042', bytes(b));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.detail).toMatch(/events\.1\.readerId/);
  });

  it('sequences must be strictly increasing inside a batch', () => {
    const b = batch();
    (b.events[1] as Obj).seq = 17;
    expect(decode('events', 'rdr-0042', bytes(b)).ok).toBe(false);
  });

  it('raw card UIDs are refused where a pseudonym is expected, and not echoed in the detail', () => {
    const b = batch();
    (b.events[0] as Obj).card = '04A1B2C3D4E5F6';
    const r = decode('events', 'rdr-0042', bytes(b));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.detail).not.toContain('04A1B2C3D4E5F6');
  });

  it('decision and visit id must agree', () => {
    const b = batch();
    (b.events[0] as Obj).visitId = null;
    expect(decode('events', 'rdr-0042', bytes(b)).ok).toBe(false);
    const c = batch();
    delete (c.events[1] as Obj).rejectReason;
    expect(decode('events', 'rdr-0042', bytes(c)).ok).toBe(false);
  });

  it('unsafe ids cannot reach a topic or key', () => {
    for (const visitId of ['a/b', '+', '#', 'a b', '', '.hidden']) {
      const b = batch();
      (b.events[0] as Obj).visitId = visitId;
      expect(decode('events', 'rdr-0042', bytes(b)).ok, visitId).toBe(false);
    }
  });
});
