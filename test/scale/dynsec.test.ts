import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDynsecCredentials, type BrokerCredentials } from '../../gateway/src/broker/dynsec.js';
import { topics } from '../../protocol/index.js';
import { startMosquitto, type MosquittoBroker } from '../support/mosquitto.js';

const silent = pino({ level: 'silent' });
const PW = 'reader-broker-password-0123456789';
const GW = { username: 'visittag-gateway', password: 'gateway-broker-password-0123456789' };

const tryConnect = async (
  b: MosquittoBroker,
  username: string,
  password: string,
  protocolVersion: 4 | 5 = 4,
): Promise<MqttClient | Error> => {
  try {
    return await mqtt.connectAsync(b.url, {
      username,
      password,
      clientId: username,
      protocolVersion,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
  } catch (err) {
    return err as Error;
  }
};

describe('reader credentials on Mosquitto through the dynamic security plugin', () => {
  let broker: MosquittoBroker;
  let creds: BrokerCredentials;
  const clients: MqttClient[] = [];
  const connect = async (u: string, p: string, v: 4 | 5 = 4): Promise<MqttClient> => {
    const c = await tryConnect(broker, u, p, v);
    if (c instanceof Error) throw c;
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    broker = await startMosquitto();
    creds = createDynsecCredentials({
      url: broker.url,
      username: broker.admin.username,
      password: broker.admin.password,
      logger: silent,
    });
    await creds.start();
    await creds.ensureRoles();
    await creds.ensureRoles(); // idempotent
    await creds.upsertGateway(GW.username, GW.password);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await creds?.stop();
    await broker?.destroy();
  });

  it('an unknown reader cannot log in; an enrolled one can, and only with its password', async () => {
    expect(await tryConnect(broker, 'r-dyn-1', PW)).toBeInstanceOf(Error);
    await creds.upsertReader('r-dyn-1', PW);
    const ok = await tryConnect(broker, 'r-dyn-1', PW);
    expect(ok).not.toBeInstanceOf(Error);
    if (!(ok instanceof Error)) await ok.endAsync();
    expect(await tryConnect(broker, 'r-dyn-1', `${PW}-wrong`)).toBeInstanceOf(Error);
  });

  it("a reader publishes its own events to gateways' shared subscription; another reader's topic is denied", async () => {
    await creds.upsertReader('r-dyn-2', PW);
    await creds.upsertReader('r-dyn-3', PW);
    const g1 = await connect(GW.username, GW.password, 5);
    const g2 = await mqtt.connectAsync(broker.url, {
      ...GW,
      clientId: 'gw-2',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(g2);
    const got: Array<{ gw: number; topic: string; body: string }> = [];
    g1.on('message', (topic, p) => got.push({ gw: 1, topic, body: p.toString() }));
    g2.on('message', (topic, p) => got.push({ gw: 2, topic, body: p.toString() }));
    const filter = `$share/visittag/${topics.allReaders('events')}`;
    const s1 = await g1.subscribeAsync(filter, { qos: 1 });
    const s2 = await g2.subscribeAsync(filter, { qos: 1 });
    expect(s1[0]?.qos).toBe(1);
    expect(s2[0]?.qos).toBe(1);

    const r2 = await connect('r-dyn-2', PW);
    const r3 = await connect('r-dyn-3', PW);
    await r3.publishAsync(topics.events('r-dyn-2'), 'forged', { qos: 1 }); // denied by the role
    for (let i = 0; i < 20; i++) await r2.publishAsync(topics.events('r-dyn-2'), `m${i}`, { qos: 1 });
    await waitFor(() => got.length >= 20);
    await new Promise((r) => setTimeout(r, 200));
    expect(got.map((g) => g.body).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    expect(got.every((g) => g.topic === topics.events('r-dyn-2'))).toBe(true);
    // shared subscription: each message went to exactly one gateway (the group spreads them)
    expect(new Set(got.map((g) => g.gw)).size).toBe(2);

    // a reader cannot subscribe to another reader's acks
    await expect(r3.subscribeAsync(topics.acks('r-dyn-2'), { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const own = await r3.subscribeAsync(topics.acks('r-dyn-3'), { qos: 1 });
    expect(own[0]?.qos).toBe(1);
    // the gateway can write a reader's acks, the reader receives them
    const acks: string[] = [];
    r3.on('message', (_t, p) => acks.push(p.toString()));
    await g1.publishAsync(topics.acks('r-dyn-3'), 'ack-1', { qos: 1 });
    await waitFor(() => acks.length === 1);
  });

  it('revocation drops a live connection at once and refuses the next login; re-enrolment lets it in', async () => {
    await creds.upsertReader('r-dyn-4', PW);
    const r = await connect('r-dyn-4', PW);
    const closed = new Promise<void>((resolve) => r.once('close', () => resolve()));
    await creds.disableReader('r-dyn-4');
    await closed;
    expect(await tryConnect(broker, 'r-dyn-4', PW)).toBeInstanceOf(Error);
    const NEW = `${PW}-new`;
    await creds.upsertReader('r-dyn-4', NEW); // re-enrolled with a new password
    expect(await tryConnect(broker, 'r-dyn-4', PW)).toBeInstanceOf(Error);
    const back = await connect('r-dyn-4', NEW);
    expect(back.connected).toBe(true);
  });

  it('a password change drops a session still logged in with the old password', async () => {
    await creds.upsertReader('r-dyn-5', PW);
    const r = await connect('r-dyn-5', PW);
    const closed = new Promise<void>((resolve) => r.once('close', () => resolve()));
    await creds.upsertReader('r-dyn-5', `${PW}-rotated`);
    await closed;
  });

  it('accounts survive a broker restart (the plugin keeps them in its file)', async () => {
    await creds.upsertReader('r-dyn-6', PW);
    await creds.disableReader('r-dyn-4');
    await creds.stop();
    await broker.restart();
    expect(await tryConnect(broker, 'r-dyn-6', PW)).not.toBeInstanceOf(Error);
    expect(await tryConnect(broker, 'r-dyn-4', `${PW}-new`)).toBeInstanceOf(Error);
    await creds.start();
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
