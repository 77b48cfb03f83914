/**
 * Re-enrolling a reader (`readers enroll --reader ID`) re-issues its credentials, often because they may
 * have leaked: a session logged in with the old password is dropped at the exchange and cannot log in
 * again with it, while the re-provisioned device connects with the new one and keeps its journal.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { silent, storedSeqs, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { deviceCli, RunningDevice, simulatedProvisionArgs } from './cli-child.js';

function login(url: string, readerId: string, password: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = connect(url, {
      clientId: readerId,
      username: readerId,
      password,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

describe('re-enrolling a reader whose old credentials are in use', () => {
  const tmp = tempDir('vt-prov-rekey-');
  let gw: Gateway;
  beforeAll(async () => {
    gw = createGateway({ config: testConfig(join(tmp.dir, 'gw')), logger: silent });
    await gw.start();
  });
  afterAll(async () => {
    await gw.stop();
    tmp.cleanup();
  });

  it('drops the old session at the exchange, refuses the old password, the device goes on with the new one', async () => {
    const dir = join(tmp.dir, 'dev');
    const cfg = join(dir, 'device.json');
    const provision = async (code: string) =>
      deviceCli(simulatedProvisionArgs(gw.adminUrl, code, cfg, join(dir, 'data')));
    const first = await gw.enrollment.issue({ clientRef: 'home-40' });
    expect((await provision(first.code)).code).toBe(0);
    const oldCfg = JSON.parse(readFileSync(cfg, 'utf8')) as { mqtt: { url: string; password: string } };
    const dev = new RunningDevice(cfg, dir);
    await dev.waitFor((l) => l.type === 'ready');
    dev.send('tap 04AABBCCDDEE41');
    await waitUntil(() => storedSeqs(gw, first.readerId).includes(1), 20_000);
    await dev.stop(); // the technician stops the service to re-provision

    // Someone else holds the old password and is logged in with it.
    const intruder = await login(oldCfg.mqtt.url, first.readerId, oldCfg.mqtt.password);
    let dropped = false;
    intruder.on('close', () => (dropped = true));

    const again = await gw.enrollment.issue({ clientRef: 'home-40', readerId: first.readerId });
    expect((await provision(again.code)).code).toBe(0);
    await waitUntil(() => dropped, 10_000);
    intruder.end(true);
    await expect(login(oldCfg.mqtt.url, first.readerId, oldCfg.mqtt.password)).rejects.toThrow();

    const newCfg = JSON.parse(readFileSync(cfg, 'utf8')) as { mqtt: { password: string } };
    expect(newCfg.mqtt.password).not.toBe(oldCfg.mqtt.password);
    const dev2 = new RunningDevice(cfg, dir);
    try {
      await dev2.waitFor((l) => l.type === 'ready');
      dev2.send('tap 04AABBCCDDEE42'); // a second worker: the journal's numbering goes on
      await dev2.waitFor((l) => l.type === 'tap' && l.seq === 2 && l.decision === 'start');
      await waitUntil(() => storedSeqs(gw, first.readerId).includes(2), 20_000);
      expect(storedSeqs(gw, first.readerId)).toEqual([1, 2]);
    } finally {
      await dev2.stop();
    }
  }, 90_000);
});
