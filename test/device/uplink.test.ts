import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { DeviceSettingsInput, TapReport } from '../../device/index.js';
import { decode, encode, pseudonymiseCard, topics } from '../../protocol/index.js';
import type { Status } from '../../protocol/index.js';
import { BrokerAndPeer, FakeClock, FLEET_KEY, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const uid = (i: number) => (0x10000000 + i).toString(16).toUpperCase();

async function setup(over: Partial<DeviceSettingsInput> = {}, brokerUp = true, ram = false) {
  const { dir, cleanup } = tempDir('vt-device-', { ram });
  cleanups.push(cleanup);
  const net = new BrokerAndPeer();
  await net.start();
  cleanups.push(() => net.close());
  if (brokerUp) await net.bringUp();
  const reader = new SimulatedCardReader();
  const feedback = new SimulatedFeedback({ maxRecords: 100 });
  const config = settings(dir, {
    mqttUrl: net.url,
    uplink: {
      batchSize: 100,
      window: 8,
      ackTimeoutMs: 400,
      backoff: { baseMs: 20, capMs: 200 },
      statusIntervalMs: 60_000,
    },
    journal: { capacity: 100_000, warnAtFraction: 0.9 },
    visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
    ...over,
  });
  const device = createDevice({
    config,
    logger: silentLogger,
    cardReader: reader,
    feedback,
    clockSynced: () => true,
  });
  cleanups.push(() => device.stop());
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  await device.start();
  return { dir, net, reader, feedback, device, taps };
}

function journalDepth(dir: string): number {
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM events').get()?.n ?? -1;
  } finally {
    db.close();
  }
}

describe('uplink', () => {
  it('offline: 10,000 taps with no gateway, then it appears: all delivered in order, acked, journal empty', async () => {
    const s = await setup({}, false, true);
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) s.reader.tap(uid(i % 50));
    await waitFor(() => s.taps.length === 10_000, 60_000, '10,000 taps');
    const tapMs = performance.now() - t0;
    expect(s.device.status().queueDepth).toBe(10_000);
    expect(s.device.status().connected).toBe(false);

    const t1 = performance.now();
    await s.net.bringUp();
    await waitFor(() => s.device.status().queueDepth === 0, 60_000, 'drain');
    const drainMs = performance.now() - t1;
    console.log(
      `[device offline test] 10,000 taps journalled in ${tapMs.toFixed(0)} ms (${((tapMs * 1000) / 10_000).toFixed(0)} µs/tap incl. feedback); ` +
        `drain after gateway appeared: ${drainMs.toFixed(0)} ms, ${s.net.batches} batches, ${s.net.acksSent} acks, ${s.net.duplicates} duplicates`,
    );
    expect(s.net.received.size).toBe(10_000);
    expect(s.net.contiguous).toBe(10_000);
    expect(s.net.arrivalOrder).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    expect(s.net.batches).toBeLessThan(10_000 / 50); // batched, not one message per event
    expect(journalDepth(s.dir)).toBe(0);
    expect(s.device.status().lastAckedSeq).toBe(10_000);
  });

  it('a lost ack: the device resends, the gateway sees duplicates it can dedupe; delete only after the ack', async () => {
    const s = await setup();
    s.net.ackEnabled = false;
    for (let i = 0; i < 5; i++) s.reader.tap(uid(i));
    await waitFor(() => s.net.received.size === 5, 10_000, 'delivery');
    // The broker PUBACKed every batch, and the ack timeout fired at least once: still nothing deleted.
    await waitFor(() => s.net.duplicates >= 5, 10_000, 'a resend');
    expect(s.device.status().uplink?.resends).toBeGreaterThanOrEqual(1);
    expect(journalDepth(s.dir)).toBe(5);
    const firstCopy = s.net.received.get(3);

    s.net.ackEnabled = true;
    s.net.dropAcks = 1; // the next ack is lost as well
    await waitFor(() => journalDepth(s.dir) === 0, 10_000, 'deletion after an ack');
    expect(s.net.contiguous).toBe(5);
    // A resend is the same event (same seq, same eventId): dedupe by reader + seq is safe.
    expect(s.net.received.get(3)).toEqual(firstCopy);
    expect(s.device.status().lastAckedSeq).toBe(5);
  });

  it('status: retained online on connect, last will "offline" when the connection dies, offline on clean stop', async () => {
    const s = await setup();
    const seen: Status[] = [];
    const peer = s.net.peer;
    if (!peer) throw new Error('no peer');
    peer.on('message', (topic, payload) => {
      if (topic !== topics.status('reader-1')) return;
      const d = decode('status', 'reader-1', payload);
      if (d.ok) seen.push(d.value);
    });
    await peer.subscribeAsync(topics.status('reader-1'), { qos: 1 });
    await waitFor(() => seen.some((x) => x.state === 'online'), 10_000, 'retained online status');
    const online = seen.find((x) => x.state === 'online');
    expect(online?.state === 'online' && online.readerAttached).toBe(true);

    // Kill the device's connection from the broker side: the broker publishes the last will.
    // The will and the reconnect's "online" can arrive between two polls (the device's backoff starts at 20 ms),
    // so look for each state after the index of the one before it rather than at the last message only.
    const after = (from: number, state: Status['state']): number =>
      seen.findIndex((x, i) => i >= from && x.state === state);
    const beforeDrop = seen.length;
    expect(s.net.dropClient('reader-1')).toBe(true);
    await waitFor(() => after(beforeDrop, 'offline') >= 0, 10_000, 'last will');
    // The device reconnects by itself (own backoff) and says online again.
    const will = after(beforeDrop, 'offline');
    await waitFor(() => after(will + 1, 'online') >= 0, 10_000, 'reconnect');
    await s.device.stop();
    await waitFor(() => seen.at(-1)?.state === 'offline', 10_000, 'offline on clean stop');
  });

  it('pushed config: allow-list applied and persisted; an invalid one is refused and the last good kept', async () => {
    const s = await setup({ visit: { repeatWindowMs: 10_000, maxOpenMs: 12 * 3_600_000 } });
    const peer = s.net.peer;
    if (!peer) throw new Error('no peer');
    const allowed = pseudonymiseCard(uid(1), FLEET_KEY);
    const revoked = pseudonymiseCard(uid(2), FLEET_KEY);
    peer.publish(
      topics.config('reader-1'),
      encode('config', {
        schemaVersion: 1,
        readerId: 'reader-1',
        version: 3,
        visit: { repeatWindowMs: 10_000, maxOpenMs: 12 * 3_600_000 },
        allowList: [allowed, revoked],
        revoked: [revoked],
      }),
      { qos: 1, retain: true },
    );
    await waitFor(() => s.device.status().configVersion === 3, 10_000, 'config applied');
    s.reader.tap(uid(1));
    s.reader.tap(uid(2));
    s.reader.tap(uid(3));
    await waitFor(() => s.taps.length === 3, 10_000, 'taps');
    expect(s.taps.map((t) => t.decision)).toEqual(['start', 'rejected', 'rejected']);
    expect(s.feedback.signals.map((x) => x.pattern)).toEqual(['visit-started', 'rejected', 'rejected']);

    peer.publish(
      topics.config('reader-1'),
      Buffer.from('{"schemaVersion":1,"readerId":"reader-1","version":9}'),
      {
        qos: 1,
        retain: true,
      },
    );
    await waitFor(() => s.device.status().configError !== null, 10_000, 'config refused');
    expect(s.device.status().configVersion).toBe(3);
    expect(s.device.status().configError).toMatch(/invalid-payload/);

    // The allow-list survives a restart without the gateway.
    await s.device.stop();
    await s.net.close();
    const reader = new SimulatedCardReader();
    const again = createDevice({
      config: settings(s.dir),
      logger: silentLogger,
      cardReader: reader,
      feedback: new SimulatedFeedback(),
      clockSynced: () => true,
    });
    cleanups.push(() => again.stop());
    const taps: TapReport[] = [];
    again.on('tap', (t) => taps.push(t));
    await again.start();
    expect(again.status().configVersion).toBe(3);
    reader.tap(uid(3));
    await waitFor(() => taps.length === 1, 10_000, 'tap after restart');
    expect(taps[0]?.decision).toBe('rejected');
  });

  it('an ack that reports a gap makes the device resend from it; commands get results', async () => {
    // A long ack timeout: only the gap report can cause the resend seen here.
    const s = await setup({
      uplink: {
        batchSize: 100,
        window: 8,
        ackTimeoutMs: 60_000,
        backoff: { baseMs: 20, capMs: 200 },
        statusIntervalMs: 60_000,
      },
    });
    s.net.ackEnabled = false;
    for (let i = 0; i < 6; i++) s.reader.tap(uid(i));
    await waitFor(() => s.net.received.size === 6, 10_000, 'delivery');
    const peer = s.net.peer;
    if (!peer) throw new Error('no peer');
    // The gateway says: I hold 1..2 and 5..6, missing 3..4.
    const batchesBefore = s.net.batches;
    peer.publish(
      topics.acks('reader-1'),
      encode('acks', {
        schemaVersion: 1,
        readerId: 'reader-1',
        upTo: 2,
        rejected: [],
        gaps: [{ from: 3, to: 4 }],
      }),
      { qos: 1 },
    );
    await waitFor(() => s.net.batches > batchesBefore, 10_000, 'resend after gap');
    expect(s.net.batchFirstSeqs.at(-1)).toBe(3);
    expect(s.device.status().uplink?.resends).toBe(1);
    expect(journalDepth(s.dir)).toBe(4);
    s.net.ackEnabled = true;
    s.net.sendAck();
    await waitFor(() => journalDepth(s.dir) === 0, 10_000, 'all acked');

    const results: unknown[] = [];
    await peer.subscribeAsync(topics.commandResults('reader-1'), { qos: 1 });
    peer.on('message', (topic, payload) => {
      if (topic === topics.commandResults('reader-1')) {
        const d = decode('command-results', 'reader-1', payload);
        if (d.ok) results.push(d.value);
      }
    });
    peer.publish(
      topics.commands('reader-1'),
      encode('commands', {
        schemaVersion: 1,
        readerId: 'reader-1',
        commandId: 'cmd-1',
        kind: 'identify',
        issuedAt: Date.now(),
      }),
      { qos: 1 },
    );
    peer.publish(topics.commands('reader-1'), Buffer.from('{"garbage":'), { qos: 1 });
    await waitFor(() => results.length === 1, 10_000, 'command result');
    expect(results[0]).toMatchObject({ commandId: 'cmd-1', status: 'ok' });
    expect(s.feedback.signals.at(-1)?.pattern).toBe('identify');
    expect(s.device.isRunning).toBe(true);
  });

  it('a wiped journal under the same reader id continues after the gateway sequence instead of losing taps', async () => {
    const s = await setup();
    for (let i = 0; i < 5; i++) s.reader.tap(uid(i));
    await waitFor(() => journalDepth(s.dir) === 0 && s.net.contiguous === 5, 10_000, 'first life acked');
    await s.device.stop();
    // The SD card is replaced: same reader id, an empty journal, seq starts at 1 again.
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const reader = new SimulatedCardReader();
    const fresh = createDevice({
      config: settings(dir, {
        mqttUrl: s.net.url,
        uplink: {
          batchSize: 100,
          window: 8,
          ackTimeoutMs: 400,
          backoff: { baseMs: 20, capMs: 200 },
          statusIntervalMs: 60_000,
        },
      }),
      logger: silentLogger,
      cardReader: reader,
      feedback: new SimulatedFeedback(),
      clockSynced: () => true,
    });
    cleanups.push(() => fresh.stop());
    const taps: TapReport[] = [];
    fresh.on('tap', (t) => taps.push(t));
    await fresh.start();
    for (let i = 10; i < 13; i++) reader.tap(uid(i));
    await waitFor(() => taps.length === 3, 10_000, 'taps');
    expect(taps.map((t) => t.seq)).toEqual([1, 2, 3]);
    await waitFor(
      () => s.net.contiguous === 8 && journalDepth(dir) === 0,
      10_000,
      'renumbered and delivered',
    );
    expect([6, 7, 8].map((q) => s.net.received.get(q)?.eventId)).toEqual(taps.map((t) => t.eventId));
    expect(fresh.status().lastAckedSeq).toBe(8);
    // Numbering goes on after the gateway's sequence.
    reader.tap(uid(20));
    await waitFor(() => taps.length === 4, 10_000, 'next tap');
    expect(taps[3]?.seq).toBe(9);
  });

  it('while the gateway does not ack, resends back off (doubling timeout, one probe batch) on an injected clock', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const net = new BrokerAndPeer();
    await net.start();
    cleanups.push(() => net.close());
    await net.bringUp();
    net.ackEnabled = false;
    const clock = new FakeClock();
    const reader = new SimulatedCardReader({ clock });
    const device = createDevice({
      config: settings(dir, {
        mqttUrl: net.url,
        uplink: {
          batchSize: 10,
          window: 4,
          ackTimeoutMs: 1_000,
          backoff: { baseMs: 100, capMs: 8_000 },
          statusIntervalMs: 3_600_000,
        },
        visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
      }),
      clock,
      logger: silentLogger,
      cardReader: reader,
      feedback: new SimulatedFeedback(),
      clockSynced: () => true,
    });
    cleanups.push(() => device.stop());
    const taps: TapReport[] = [];
    device.on('tap', (t) => taps.push(t));
    await device.start();
    await waitFor(
      () => device.status().connected && (device.status().uplink?.batchesSent ?? -1) === 0,
      10_000,
      'connected',
    );
    for (let i = 0; i < 100; i++) reader.tap(uid(i % 5));
    await waitFor(() => taps.length === 100, 10_000, 'taps');
    await waitFor(() => net.batches === 4, 10_000, 'a full window');
    const sent = () => device.status().uplink?.batchesSent ?? -1;
    expect(sent()).toBe(4);
    // Timeouts at +1 s, then +2 s, +4 s: one probe batch each, never the whole window again.
    const probes: number[] = [];
    for (const step of [1_000, 2_000, 4_000]) {
      clock.advance(step - 1);
      expect(sent()).toBe(4 + probes.length);
      clock.advance(1);
      probes.push(sent());
      await waitFor(() => net.batches === sent(), 10_000, 'probe delivered');
    }
    expect(probes).toEqual([5, 6, 7]);
    expect(net.batchFirstSeqs.slice(4)).toEqual([1, 1, 1]);
    // The gateway is back: one ack reopens the window and everything drains.
    net.ackEnabled = true;
    net.sendAck();
    await waitFor(() => journalDepth(dir) === 0, 10_000, 'drain');
    expect(net.contiguous).toBe(100);
  });
});
