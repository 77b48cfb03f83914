import { Aedes } from 'aedes';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { Device } from '../../device/index.js';
import { decode, encode, topics } from '../../protocol/index.js';
import type { EventBatch } from '../../protocol/index.js';
import { settings, silentLogger, tempDir, waitFor } from './helpers.js';

// Gap recovery over real MQTT (issue 16): a reader with a quarantined journal row declares it with a tombstone
// and its whole sequence is then held; a wiped journal under the same reader id sends a new epoch, so its seqs
// 1, 2, … never collide with the old epoch's, and an ack of the old epoch cannot delete the new journal's taps.

const READER = 'reader-1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A scripted gateway that keys seqs by (epoch, seq), counts tombstoned seqs as held and echoes the epoch. */
class EpochGateway {
  readonly held = new Map<string, Map<number, string>>(); // epoch → seq → eventId or "tombstone:<reason>"
  conflicts = 0;
  duplicates = 0;
  /** When set, batches are stored but not acked. */
  ackOff = false;
  readonly batches: EventBatch[] = [];
  private broker!: Aedes;
  private server!: Server;
  private peer!: MqttClient;
  url = '';

  async start(): Promise<void> {
    this.broker = await Aedes.createBroker();
    this.server = createServer((sock) => this.broker.handle(sock));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.peer = connect(this.url, { clientId: 'gw', reconnectPeriod: 0 });
    this.peer.on('error', () => undefined);
    await new Promise<void>((r) => this.peer.once('connect', () => r()));
    await this.peer.subscribeAsync(topics.events(READER), { qos: 1 });
    this.peer.on('message', (_t, payload) => this.onBatch(payload));
  }

  private onBatch(payload: Buffer): void {
    const d = decode('events', READER, payload);
    if (!d.ok) throw new Error(`gateway got an invalid batch: ${d.detail}`);
    const b = d.value;
    this.batches.push(b);
    const epoch = b.epoch ?? '';
    const seqs = this.held.get(epoch) ?? new Map<number, string>();
    this.held.set(epoch, seqs);
    const put = (seq: number, id: string) => {
      const had = seqs.get(seq);
      if (had === undefined) seqs.set(seq, id);
      else if (had === id) this.duplicates++;
      else this.conflicts++;
    };
    for (const e of b.events) put(e.seq, e.eventId);
    for (const t of b.tombstones ?? []) for (let s = t.from; s <= t.to; s++) put(s, `tombstone:${t.reason}`);
    if (!this.ackOff) this.ack(epoch === '' ? undefined : epoch);
  }

  contiguous(epoch: string): number {
    const seqs = this.held.get(epoch);
    let n = 0;
    while (seqs?.has(n + 1)) n++;
    return n;
  }

  ack(epoch: string | undefined, upTo = this.contiguous(epoch ?? '')): void {
    this.peer.publish(
      topics.acks(READER),
      encode('acks', { schemaVersion: 1, readerId: READER, upTo, rejected: [], ...(epoch ? { epoch } : {}) }),
      { qos: 1 },
    );
  }

  async close(): Promise<void> {
    await this.peer.endAsync(true);
    await new Promise<void>((r) => this.broker.close(() => r()));
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

async function startDevice(
  dir: string,
  url: string,
  epoch: string,
): Promise<{ device: Device; reader: SimulatedCardReader }> {
  const reader = new SimulatedCardReader();
  const device = createDevice({
    config: settings(dir, {
      mqttUrl: url,
      uplink: {
        batchSize: 100,
        window: 4,
        ackTimeoutMs: 400,
        backoff: { baseMs: 20, capMs: 200 },
        statusIntervalMs: 60_000,
      },
      visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
    }),
    logger: silentLogger,
    cardReader: reader,
    feedback: new SimulatedFeedback(),
    clockSynced: () => true,
    journalHooks: { newEpoch: () => epoch },
  });
  await device.start();
  return { device, reader };
}

async function setup() {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const gw = new EpochGateway();
  await gw.start();
  cleanups.push(() => gw.close());
  return { dir, gw };
}

describe('gap recovery over MQTT', () => {
  it('a quarantined row goes out as a tombstone and the whole sequence is held', async () => {
    const { dir, gw } = await setup();
    let d = await startDevice(dir, 'mqtt://127.0.0.1:1', 'j-a'); // no broker: taps stay in the journal
    for (let i = 0; i < 4; i++) d.reader.tap(`0411223${i}`);
    await waitFor(() => d.device.status().queueDepth === 4, 10_000, 'four taps journalled');
    await d.device.stop();
    const db = new Database(join(dir, 'journal.db'));
    db.prepare('UPDATE events SET event_json = ? WHERE seq = 2').run('{"torn');
    db.close();

    d = await startDevice(dir, gw.url, 'j-unused');
    cleanups.push(() => d.device.stop());
    await waitFor(() => d.device.status().queueDepth === 0 && gw.contiguous('j-a') === 4, 10_000, 'all held');
    expect([...(gw.held.get('j-a')?.entries() ?? [])].filter(([, v]) => v.startsWith('tombstone'))).toEqual([
      [2, 'tombstone:quarantined'],
    ]);
    expect(gw.held.size).toBe(1); // one epoch: the journal kept its own across the restart
    expect(gw.conflicts).toBe(0);
  });

  it('a wiped journal under the same reader id: a new epoch, no duplicate-conflict, no lost tap; an old-epoch ack deletes nothing', async () => {
    const { dir, gw } = await setup();
    let d = await startDevice(dir, gw.url, 'j-first');
    for (let i = 0; i < 3; i++) d.reader.tap(`0455667${i}`);
    await waitFor(
      () => gw.contiguous('j-first') === 3 && d.device.status().queueDepth === 0,
      10_000,
      'first epoch delivered',
    );
    await d.device.stop();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `journal.db${suffix}`), { force: true });

    d = await startDevice(dir, gw.url, 'j-second');
    cleanups.push(() => d.device.stop());
    // An ack of the old epoch arrives (late, or from a gateway that does not know the new epoch yet).
    for (let i = 0; i < 2; i++) d.reader.tap(`0488990${i}`);
    await waitFor(
      () => gw.contiguous('j-second') === 2 && d.device.status().queueDepth === 0,
      10_000,
      'second epoch delivered',
    );
    expect(gw.conflicts).toBe(0);
    expect(gw.held.get('j-first')?.size).toBe(3);
    expect([...(gw.held.get('j-second')?.keys() ?? [])]).toEqual([1, 2]);
    const ids = [...gw.held.values()].flatMap((m) => [...m.values()]);
    expect(new Set(ids).size).toBe(5); // five taps, five distinct events, none lost

    // Two taps journalled while the gateway acks only in the old epoch: the journal keeps them.
    gw.ackOff = true;
    for (let i = 0; i < 2; i++) d.reader.tap(`04AABBC${i}`);
    await waitFor(() => d.device.status().queueDepth === 2, 10_000, 'two more taps journalled');
    gw.ack('j-first', 3); // would delete seq 3 of the new epoch, never stored
    await new Promise((r) => setTimeout(r, 300));
    expect(d.device.status().queueDepth).toBe(2);
    gw.ackOff = false;
    gw.ack('j-second');
    await waitFor(() => d.device.status().queueDepth === 0, 10_000, 'acked in its own epoch');
  });
});
