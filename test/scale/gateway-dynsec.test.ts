import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { createDynsecCredentials } from '../../gateway/src/broker/dynsec.js';
import { AckCollector, batchOf, storedSeqs, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { startMosquitto, type MosquittoBroker } from '../support/mosquitto.js';

const silent = pino({ level: 'silent' });
const GW = { username: 'visittag-gateway', password: 'gateway-broker-password-0123456789' };

/**
 * Provisioning and revocation reach an external Mosquitto 2 through its dynamic security plugin
 * (`mqtt.dynamicSecurity`): a reader enrolled with a code can log in to the broker with the password the
 * exchange handed it and deliver taps to the gateway there; once revoked it is dropped and refused.
 */
describe('a gateway on an external Mosquitto keeps reader accounts in step (dynamic security)', () => {
  let broker: MosquittoBroker;
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  const clients: MqttClient[] = [];
  const tryConnect = async (username: string, password: string): Promise<MqttClient | Error> => {
    try {
      const c = await mqtt.connectAsync(broker.url, {
        username,
        password,
        clientId: username,
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      clients.push(c);
      return c;
    } catch (err) {
      return err as Error;
    }
  };

  beforeAll(async () => {
    broker = await startMosquitto();
    // the operator's one-time set-up: the gateway's own account (docs/scale-out.md, "Mosquitto 2 (one node; the test set-up)")
    const admin = createDynsecCredentials({ url: broker.url, ...broker.admin, logger: silent });
    await admin.start();
    await admin.ensureRoles();
    await admin.upsertGateway(GW.username, GW.password);
    await admin.stop();
    tmp = tempDir('vt-gw-dynsec-');
    gw = createGateway({
      config: testConfig(tmp.dir, {
        mqtt: {
          mode: 'external',
          url: broker.url,
          ...GW,
          protocolVersion: 5,
          sharedGroup: 'visittag',
          dynamicSecurity: broker.admin,
        },
      }),
      logger: silent,
    });
    await gw.start();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await gw?.stop();
    await broker?.destroy();
    tmp?.cleanup();
  });

  it('an enrolled reader logs in and delivers; a revoked one is dropped and refused', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-70' });
    const R = issued.readerId;
    expect(await tryConnect(R, 'not-the-password-0123456789-abcdef')).toBeInstanceOf(Error);
    const ex = await gw.enrollment.exchange({ code: issued.code, source: '127.0.0.1' });
    expect(ex.ok).toBe(true);
    const password = ex.ok ? (ex.body.mqtt?.password ?? '') : '';
    const reader = await tryConnect(R, password);
    expect(reader).not.toBeInstanceOf(Error);
    if (reader instanceof Error) return;
    const acks = await AckCollector.attach(reader, R);
    await acks.publish(R, batchOf(R, [1, 2]));
    await acks.waitFor((a) => a.upTo === 2);
    expect(storedSeqs(gw, R)).toEqual([1, 2]);

    let closed = false;
    reader.on('close', () => (closed = true));
    gw.registry.revokeReader(R);
    await waitUntil(() => closed, 10_000);
    expect(await tryConnect(R, password)).toBeInstanceOf(Error);

    // re-enrolment of the same id: a new password works on the broker again, the old one does not
    const again = await gw.enrollment.issue({ clientRef: 'home-70', readerId: R });
    const ex2 = await gw.enrollment.exchange({ code: again.code, source: '127.0.0.1' });
    const password2 = ex2.ok ? (ex2.body.mqtt?.password ?? '') : '';
    expect(password2).not.toBe(password);
    expect(await tryConnect(R, password)).toBeInstanceOf(Error);
    expect(await tryConnect(R, password2)).not.toBeInstanceOf(Error);
  }, 60_000);
});
