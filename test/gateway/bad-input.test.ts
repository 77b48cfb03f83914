import { connect as netConnect, type Socket } from 'node:net';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { decode, topics, type TopicLeaf } from '../../protocol/index.js';
import {
  AckCollector,
  batchOf,
  connectReader,
  PASSWORD,
  dbOf,
  startGateway,
  storedSeqs,
  tempDir,
  waitUntil,
} from './helpers.js';

// ───────────── raw MQTT 3.1.1 packet builders (no client library in the way) ─────────────
function varLen(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const packet = (header: number, body: Buffer) =>
  Buffer.concat([Buffer.from([header]), varLen(body.length), body]);
function connectPkt(clientId: string, username?: string, password?: string, level = 4): Buffer {
  const flags = 0x02 | (username !== undefined ? 0x80 : 0) | (password !== undefined ? 0x40 : 0);
  const parts = [str('MQTT'), Buffer.from([level, flags, 0, 60]), str(clientId)];
  if (username !== undefined) parts.push(str(username));
  if (password !== undefined) parts.push(str(password));
  return packet(0x10, Buffer.concat(parts));
}
const publishPkt = (topic: string | Buffer, payload: Buffer) =>
  packet(0x30, Buffer.concat([str(topic), payload]));
const subscribePkt = (topic: string | Buffer) =>
  packet(0x82, Buffer.concat([Buffer.from([0, 1]), str(topic), Buffer.from([1])]));

/** Writes the chunks to a fresh socket and waits for the server to close it (or gives up after 2 s). */
async function rawSession(
  port: number,
  chunks: Buffer[],
  waitCloseMs = 2000,
): Promise<{ closedByServer: boolean; received: Buffer }> {
  const sock: Socket = netConnect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  const got: Buffer[] = [];
  sock.on('data', (d: Buffer) => got.push(d));
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  const closed = new Promise<boolean>((resolve) => {
    sock.once('close', () => resolve(true));
    setTimeout(() => resolve(false), waitCloseMs).unref();
  });
  for (const c of chunks) {
    if (!sock.destroyed) sock.write(c);
    await new Promise((r) => setTimeout(r, 20));
  }
  const closedByServer = await closed;
  sock.destroy();
  return { closedByServer, received: Buffer.concat(got) };
}

describe('bad input: raw malformed MQTT packets and fuzzed payloads never break the gateway', () => {
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  let good: MqttClient;
  let goodAcks: AckCollector;
  let goodSeq = 0;
  const GOOD = 'r-good';
  const EVIL = 'r-evil';
  const port = () => gw.mqttPort ?? 0;

  /** The bystander reader is still served: a new event is stored and acked. */
  async function bystanderServed(): Promise<void> {
    goodSeq++;
    await goodAcks.publish(GOOD, batchOf(GOOD, [goodSeq]));
    await goodAcks.waitFor((a) => a.upTo === goodSeq);
  }

  beforeAll(async () => {
    tmp = tempDir();
    gw = await startGateway(tmp.dir, {
      mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0, connectTimeoutMs: 300 },
    });
    await gw.registry.addReader({ readerId: GOOD, password: PASSWORD, clientRef: 'c-good' });
    await gw.registry.addReader({ readerId: EVIL, password: PASSWORD, clientRef: 'c-evil' });
    good = await connectReader(port(), GOOD);
    goodAcks = await AckCollector.attach(good, GOOD);
    await bystanderServed();
  });
  afterAll(async () => {
    await good.endAsync(true);
    await gw.stop();
    tmp.cleanup();
  });

  const auth = () => connectPkt(EVIL, EVIL, PASSWORD);
  const cases: Array<[string, () => Buffer[]]> = [
    ['not MQTT at all', () => [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]],
    ['remaining length with 5 continuation bytes', () => [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])]],
    ['declared 200 MiB packet', () => [Buffer.from([0x10, 0x80, 0x80, 0x80, 0x64, 1, 2, 3])]],
    ['truncated CONNECT, then silence', () => [connectPkt(EVIL, EVIL, PASSWORD).subarray(0, 9)]],
    ['PUBLISH before CONNECT', () => [publishPkt(topics.events(EVIL), Buffer.from('{}'))]],
    ['MQTT 5 CONNECT', () => [connectPkt(EVIL, EVIL, PASSWORD, 5)]],
    ['CONNECT without credentials', () => [connectPkt(EVIL)]],
    ['CONNECT with a wildcard client id', () => [connectPkt('r-evil/#', 'r-evil/#', PASSWORD)]],
    ['CONNECT with a 10 kB client id', () => [connectPkt('x'.repeat(10_000), 'x', PASSWORD)]],
    [
      'authenticated, then an oversized publish',
      () => [auth(), publishPkt(topics.events(EVIL), Buffer.alloc(400_000, 0x20))],
    ],
    [
      'authenticated, then a 500-level topic',
      () => [auth(), publishPkt('a/'.repeat(500) + 'b', Buffer.from('{}'))],
    ],
    ['authenticated, then a 500-level subscription', () => [auth(), subscribePkt('a/'.repeat(500) + '#')]],
    [
      'authenticated, then an invalid UTF-8 topic',
      () => [auth(), publishPkt(Buffer.from([0x76, 0x74, 0xff, 0xfe, 0x2f]), Buffer.from('{}'))],
    ],
    ['authenticated, then a second CONNECT', () => [auth(), auth()]],
    ['authenticated, then a reserved packet type 15', () => [auth(), Buffer.from([0xf0, 0x00])]],
    ['authenticated, then a subscribe to $SYS', () => [auth(), subscribePkt('$SYS/#')]],
  ];

  it.each(cases)(
    '%s: the connection is refused or closed, another reader keeps being served',
    async (_name, make) => {
      const r = await rawSession(port(), make());
      // every case is a protocol violation, an auth failure or an ACL refusal: never a silent success
      const connackOk = r.received.length >= 4 && r.received[0] === 0x20 && r.received[3] === 0;
      const subackRefused = r.received.includes(0x90) && r.received.at(-1) === 0x80;
      expect(r.closedByServer || subackRefused, 'closed or refused').toBe(true);
      if (connackOk && !subackRefused) expect(r.closedByServer).toBe(true);
      gw.flush();
      expect(storedSeqs(gw, EVIL)).toEqual([]);
      await bystanderServed();
    },
  );

  it('random bytes after a valid CONNECT (fast-check) never crash the broker', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        await rawSession(port(), [auth(), Buffer.from(bytes), Buffer.from([0xe0, 0x00])], 100);
      }),
      { numRuns: 40, seed: 42 },
    );
    await bystanderServed();
  });

  it('fuzzed payloads on every reader topic: valid ones are stored, the rest rejected, nothing else changes', async () => {
    const evil = await connectReader(port(), EVIL);
    const validSeqs = new Set<number>();
    let invalid = 0;
    const valid = (seq: number) => batchOf(EVIL, [seq]);
    const mutated = fc
      .tuple(
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom('schemaVersion', 'readerId', 'sentAt', 'events', 'extra'),
        fc.oneof(fc.anything(), fc.constant(undefined)),
      )
      .map(([seq, key, value]) => {
        const b: Record<string, unknown> = { ...valid(seq) };
        if (value === undefined) delete b[key];
        else b[key] = value;
        return Buffer.from(JSON.stringify(b) ?? 'null');
      });
    const eventMutation = fc
      .tuple(
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom('seq', 'eventId', 'card', 'decision', 'visitId', 'time', 'readerId', 'rejectReason'),
        fc.anything(),
      )
      .map(([seq, key, value]) => {
        const b = valid(seq);
        const e: Record<string, unknown> = { ...b.events[0], [key]: value };
        return Buffer.from(JSON.stringify({ ...b, events: [e] }) ?? 'null');
      });
    const payloads = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.json().map((j) => Buffer.from(j)),
      mutated,
      eventMutation,
      fc.integer({ min: 1, max: 40 }).map((s) => Buffer.from(JSON.stringify(valid(s)))),
    );
    const leaves: TopicLeaf[] = ['events', 'status', 'command-results'];
    const samples = fc.sample(fc.tuple(fc.constantFrom(...leaves), payloads), { numRuns: 300, seed: 7 });
    const rejectsBefore = (dbOf(gw).prepare('SELECT COUNT(*) FROM rejects').pluck().get() as number) ?? 0;
    for (const [leaf, payload] of samples) {
      const d = decode(leaf, EVIL, payload);
      if (d.ok && leaf === 'events')
        for (const e of (d.value as { events: Array<{ seq: number }> }).events) validSeqs.add(e.seq);
      if (!d.ok) invalid++;
      await evil.publishAsync(topics[leaf === 'command-results' ? 'commandResults' : leaf](EVIL), payload, {
        qos: 1,
      });
    }
    expect(invalid).toBeGreaterThan(50);
    expect(validSeqs.size).toBeGreaterThan(5);
    await waitUntil(() => {
      gw.flush();
      const n = dbOf(gw).prepare('SELECT COUNT(*) FROM rejects').pluck().get() as number;
      return n - rejectsBefore === invalid;
    });
    expect(storedSeqs(gw, EVIL)).toEqual([...validSeqs].sort((a, b) => a - b));
    await evil.endAsync(true);
    await bystanderServed();
  });
});
