import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { encode, topics } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import {
  AckCollector,
  batchOf,
  silent,
  storedSeqs,
  tapEvent,
  tempDir,
  testConfig,
  waitUntil,
} from './helpers.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const GW_USER = 'visittag-gateway';
const GW_PASS = 'gateway-broker-password-123';
const READER_PASS = 'reader-broker-password-456';
const SECRET = 'external-test-webhook-secret';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The ACL documented in gateway/README.md ("External broker"), verbatim. */
const MOSQUITTO_ACL = `# the gateway account
user ${GW_USER}
topic read visittag/v1/readers/+/events
topic read visittag/v1/readers/+/status
topic read visittag/v1/readers/+/command-results
topic write visittag/v1/readers/+/acks
topic write visittag/v1/readers/+/config
topic write visittag/v1/readers/+/commands

# every reader: its own subtree only (%u = username = reader id)
pattern write visittag/v1/readers/%u/events
pattern write visittag/v1/readers/%u/status
pattern write visittag/v1/readers/%u/command-results
pattern read visittag/v1/readers/%u/acks
pattern read visittag/v1/readers/%u/config
pattern read visittag/v1/readers/%u/commands
`;

describe('external-broker mode through a real Mosquitto', () => {
  let tmp: ReturnType<typeof tempDir>;
  let broker: ChildProcess;
  let port: number;
  let gw: Gateway;
  let backend: FakeBackend;
  const readers: MqttClient[] = [];

  beforeAll(async () => {
    tmp = tempDir('vt-mosq-');
    chmodSync(tmp.dir, 0o777); // mosquitto drops to its own user when started as root
    const passwd = join(tmp.dir, 'passwd');
    writeFileSync(passwd, '');
    execFileSync('mosquitto_passwd', ['-b', passwd, GW_USER, GW_PASS]);
    execFileSync('mosquitto_passwd', ['-b', passwd, 'r-ext', READER_PASS]);
    execFileSync('mosquitto_passwd', ['-b', passwd, 'r-ext2', READER_PASS]);
    const acl = join(tmp.dir, 'acl');
    writeFileSync(acl, MOSQUITTO_ACL);
    port = await freePort();
    const conf = join(tmp.dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous false',
        `password_file ${passwd}`,
        `acl_file ${acl}`,
        'use_username_as_clientid true',
        'persistence false',
        'log_type all',
        `log_dest file ${join(tmp.dir, 'mosquitto.log')}`,
        '',
      ].join('\n'),
    );
    for (const f of [passwd, acl, conf]) chmodSync(f, 0o644);
    broker = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    await waitForPort(port, 10_000);

    backend = await startFakeBackend({ secret: SECRET });
    const cfg = testConfig(join(tmp.dir, 'gw'), {
      mqtt: { mode: 'external', url: `mqtt://127.0.0.1:${port}`, username: GW_USER, password: GW_PASS },
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 2000,
        batchMax: 50,
        backoff: { baseMs: 20, capMs: 200 },
      },
    });
    gw = createGateway({ config: cfg, logger: silent });
    await gw.registry.addReader({ readerId: 'r-ext', password: READER_PASS, clientRef: 'client-ext' });
    await gw.registry.addReader({ readerId: 'r-ext2', password: READER_PASS, clientRef: 'client-ext2' });
    await gw.start();
    await waitUntil(async () => (await fetch(`${gw.adminUrl}/readyz`)).ok, 10_000);
  });

  afterAll(async () => {
    await Promise.all(readers.map((c) => c.endAsync(true)));
    await gw?.stop();
    await backend?.close();
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
    tmp.cleanup();
  });

  const reader = async (id: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      username: id,
      password: READER_PASS,
      clientId: id,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    readers.push(c);
    return c;
  };

  it('events in, acks out, visits forwarded to the planning backend', async () => {
    const c = await reader('r-ext');
    const acks = await AckCollector.attach(c, 'r-ext');
    const start = tapEvent('r-ext', 1, { decision: 'start', visitId: 'v-ext-1' });
    const stop = tapEvent('r-ext', 2, { decision: 'stop', visitId: 'v-ext-1', card: start.card });
    await acks.publish('r-ext', { ...batchOf('r-ext', []), events: [start, stop] });
    const ack = await acks.waitFor((a) => a.upTo === 2);
    expect(ack.readerId).toBe('r-ext');
    expect(storedSeqs(gw, 'r-ext')).toEqual([1, 2]);
    // the same batch again (device resend through the broker) changes nothing
    await acks.publish('r-ext', { ...batchOf('r-ext', []), events: [start, stop] });
    await waitUntil(() => acks.acks.length >= 2);
    expect(storedSeqs(gw, 'r-ext')).toEqual([1, 2]);
    const got = await waitUntil(() => {
      const types = backend.received().filter((e) => 'visitId' in e && e.visitId === 'v-ext-1');
      return types.some((e) => e.type === 'visit.ended') ? types : null;
    }, 15_000);
    expect(got.filter((e) => e.type === 'visit.started')).toHaveLength(1);
    expect(got.filter((e) => e.type === 'visit.ended')).toHaveLength(1);
  });

  it("the broker's ACL stops a reader writing to another reader's topic; nothing is stored", async () => {
    const evil = await reader('r-ext2');
    await evil.publishAsync(topics.events('r-ext'), encode('events', batchOf('r-ext', [3])), { qos: 1 });
    // a marker through the allowed topic proves the earlier message would have arrived by now
    const acks = await AckCollector.attach(evil, 'r-ext2');
    await acks.publish('r-ext2', batchOf('r-ext2', [1]));
    await acks.waitFor((a) => a.upTo === 1);
    expect(storedSeqs(gw, 'r-ext')).toEqual([1, 2]);
    expect(readFileSync(join(tmp.dir, 'mosquitto.log'), 'utf8')).toMatch(/Denied PUBLISH/);
  });
});
