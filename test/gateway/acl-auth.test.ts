import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { encode, topics } from '../../protocol/index.js';
import {
  AckCollector,
  batchOf,
  connectReader,
  connectRefused,
  PASSWORD,
  startGateway,
  storedSeqs,
  tempDir,
} from './helpers.js';

describe('embedded broker: authentication and per-reader ACL (real MQTT over TCP)', () => {
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  const clients: MqttClient[] = [];
  const port = () => gw.mqttPort ?? 0;

  beforeAll(async () => {
    tmp = tempDir();
    gw = await startGateway(tmp.dir);
    for (const id of ['r-a', 'r-b', 'r-c', 'r-d']) {
      await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: `client-${id}` });
    }
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => {
    await gw.stop();
    tmp.cleanup();
  });

  it('accepts a registered reader, stores its events and acks them after the commit', async () => {
    const c = await connectReader(port(), 'r-a');
    clients.push(c);
    const acks = await AckCollector.attach(c, 'r-a');
    await acks.publish('r-a', batchOf('r-a', [1, 2, 3]));
    const ack = await acks.waitFor((a) => a.upTo === 3);
    expect(ack.gaps ?? []).toEqual([]);
    expect(storedSeqs(gw, 'r-a')).toEqual([1, 2, 3]);
  });

  it('refuses a wrong password, an unknown reader and a client id that differs from the username', async () => {
    const wrong = await connectRefused(port(), {
      clientId: 'r-a',
      username: 'r-a',
      password: 'x'.repeat(30),
    });
    expect(wrong.refused).toBe(true);
    const unknown = await connectRefused(port(), { clientId: 'r-zz', username: 'r-zz', password: PASSWORD });
    expect(unknown.refused).toBe(true);
    const spoof = await connectRefused(port(), { clientId: 'r-b', username: 'r-a', password: PASSWORD });
    expect(spoof.refused).toBe(true);
    const anonymous = await connectRefused(port(), { clientId: 'r-a' });
    expect(anonymous.refused).toBe(true);
    expect(gw.metrics.render()).toMatch(
      /visittag_mqtt_connections_refused_total\{reason="bad-password"\} [1-9]/,
    );
  });

  it("refuses publishing to another reader's topic, and nothing is stored", async () => {
    const c = await connectReader(port(), 'r-c');
    clients.push(c);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.publish(topics.events('r-b'), encode('events', batchOf('r-b', [1])), { qos: 1 });
    await closed; // MQTT 3.1.1 has no negative PUBACK: aedes closes the offending connection
    // a topic that is not the reader's own (acks leaf, wrong root) is refused the same way
    const c2 = await connectReader(port(), 'r-c');
    clients.push(c2);
    const closed2 = new Promise<void>((resolve) => c2.once('close', () => resolve()));
    c2.publish('visittag/v1/readers/r-c/acks', Buffer.from('{}'), { qos: 1 });
    await closed2;
    gw.flush();
    expect(storedSeqs(gw, 'r-b')).toEqual([]);
    expect(gw.store.seqState('r-b')).toEqual({ contiguousUpto: 0, maxSeen: 0 });
    expect(gw.metrics.render()).toMatch(/visittag_mqtt_acl_denied_total\{action="publish"\} [2-9]/);
  });

  it('refuses subscribing to #, +, $SYS and other readers; grants its own acks', async () => {
    const c = await connectReader(port(), 'r-d');
    clients.push(c);
    const grantedQos = async (filter: string): Promise<number> => {
      try {
        const g = await c.subscribeAsync(filter, { qos: 1 });
        return g[0]?.qos ?? -1;
      } catch (err) {
        // MQTT.js rejects when the SUBACK carries 0x80 (failure)
        const packet = (err as { packet?: { granted?: number[] } }).packet;
        return packet?.granted?.[0] ?? -1;
      }
    };
    for (const refusedFilter of [
      '#',
      'visittag/v1/readers/+/acks',
      'visittag/v1/readers/r-d/#',
      '$SYS/#',
      topics.acks('r-a'),
      topics.events('r-d'),
    ]) {
      expect(await grantedQos(refusedFilter), refusedFilter).toBe(128);
    }
    expect(await grantedQos(topics.acks('r-d'))).toBe(1);
    expect(await grantedQos(topics.config('r-d'))).toBe(1);
    expect(gw.metrics.render()).toMatch(/visittag_mqtt_acl_denied_total\{action="subscribe"\} [6-9]/);
  });

  it('a reader never receives another reader’s acks', async () => {
    const d = await connectReader(port(), 'r-d');
    clients.push(d);
    const seen: string[] = [];
    d.on('message', (t) => seen.push(t));
    await d.subscribeAsync(topics.acks('r-d'), { qos: 1 });
    const a = await connectReader(port(), 'r-a');
    clients.push(a);
    const acks = await AckCollector.attach(a, 'r-a');
    await acks.publish('r-a', batchOf('r-a', [4]));
    await acks.waitFor((x) => x.upTo >= 4);
    expect(seen.filter((t) => !t.endsWith('/r-d/acks'))).toEqual([]);
  });

  it('a revoked reader is dropped at once and cannot connect again', async () => {
    await gw.registry.addReader({ readerId: 'r-rev', password: PASSWORD, clientRef: null });
    const c = await connectReader(port(), 'r-rev');
    clients.push(c);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    gw.registry.revokeReader('r-rev');
    await closed;
    const again = await connectRefused(port(), { clientId: 'r-rev', username: 'r-rev', password: PASSWORD });
    expect(again.refused).toBe(true);
    expect(gw.metrics.render()).toMatch(/visittag_mqtt_connections_refused_total\{reason="revoked"\} 1/);
  });
});
