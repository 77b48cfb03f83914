import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, createServer as createHttpsServer } from 'node:https';
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Server,
} from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import { PROVISION_PATH, SCHEMA_VERSION } from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  silent,
  startGateway,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import { deviceCli, RunningDevice } from './cli-child.js';

/**
 * Issue 16, provisioning over TLS: the exchange runs on HTTPS, the code's last group pins the gateway's
 * certificate key, the broker CA comes with the credentials and the reader then uses mqtts with it.
 * Everything on loopback with real sockets; certificates made here with the openssl CLI.
 */

const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });

/** A self-signed EC certificate for 127.0.0.1 (key mode 0600, as the gateway requires). */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  ossl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  );
  chmodSync(key, 0o600);
  return { cert, key };
}

/** A private CA and a broker certificate for 127.0.0.1 it signed. */
function brokerCerts(dir: string): { ca: string; cert: string; key: string } {
  const p = (f: string) => join(dir, f);
  ossl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=visittag-test-broker-ca',
    '-keyout',
    p('broker-ca.key'),
    '-out',
    p('broker-ca.pem'),
  );
  ossl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    p('broker.key'),
    '-out',
    p('broker.csr'),
  );
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1' > '${p('broker.ext')}'`]);
  ossl(
    'x509',
    '-req',
    '-in',
    p('broker.csr'),
    '-CA',
    p('broker-ca.pem'),
    '-CAkey',
    p('broker-ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('broker.ext'),
    '-out',
    p('broker.pem'),
  );
  chmodSync(p('broker.key'), 0o600);
  return { ca: p('broker-ca.pem'), cert: p('broker.pem'), key: p('broker.key') };
}

const listen = async (s: Server): Promise<number> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
};

/** `visittag-device provision` with no plain-HTTP/MQTT flag: what a technician types in production. */
const provisionArgs = (gatewayUrl: string, code: string, cfg: string, data: string) => [
  'provision',
  '--gateway',
  gatewayUrl,
  '--code',
  code,
  '--config',
  cfg,
  '--data-dir',
  data,
  '--reader',
  'simulated',
  '--feedback',
  'simulated',
];

/** What a provisioning attempt left in a device folder that did not exist before (must be nothing). */
const leftIn = (dir: string): boolean => existsSync(dir);

describe('provisioning over HTTPS with a pinned gateway', () => {
  const tmp = tempDir('vt-prov-tls-');
  const certs = join(tmp.dir, 'certs');
  let gw: Gateway;
  let broker: { ca: string; cert: string; key: string };
  let attacker: { cert: string; key: string };
  let admin: { cert: string; key: string };
  const servers: Server[] = [];
  const devices: RunningDevice[] = [];

  beforeAll(async () => {
    mkdirSync(certs);
    admin = selfSigned(certs, 'gateway-admin');
    attacker = selfSigned(certs, 'attacker');
    broker = brokerCerts(certs);
    const dataDir = join(tmp.dir, 'gw');
    gw = createGateway({
      config: testConfig(dataDir, {
        admin: {
          host: '127.0.0.1',
          port: 0,
          token: ADMIN_TOKEN,
          tls: { certFile: admin.cert, keyFile: admin.key },
        },
        mqtt: {
          mode: 'embedded',
          host: '127.0.0.1',
          port: 0,
          tls: { certFile: broker.cert, keyFile: broker.key, caFile: broker.ca },
        },
      }),
      logger: silent,
    });
    trackDataDir(gw, dataDir);
    await gw.start();
  });
  afterAll(async () => {
    for (const d of devices) await d.stop();
    for (const s of servers) s.close();
    await gw.stop();
    tmp.cleanup();
  });

  it('a proxy with another certificate (rewriting the answer) is refused before the code is sent; the code then provisions over HTTPS and the reader taps over mqtts with the delivered CA', async () => {
    expect(gw.adminUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const issued = await gw.enrollment.issue({ clientRef: 'home-tls', label: 'hallway' });
    // Four groups: the secret (10 symbols) and the gateway pin (4).
    expect(issued.code).toMatch(/^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{2}$/);

    // The attacker: an HTTPS proxy with its own certificate that forwards to the gateway and hands
    // the reader its own broker and CA.
    const seen: string[] = [];
    const proxy = createHttpsServer(
      { cert: readFileSync(attacker.cert), key: readFileSync(attacker.key) },
      (req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          seen.push(body);
          const up = httpsRequest(
            `${gw.adminUrl}${req.url ?? '/'}`,
            { method: 'POST', headers: { 'content-type': 'application/json' }, rejectUnauthorized: false },
            (ures) => {
              let text = '';
              ures.on('data', (c: Buffer) => (text += c.toString()));
              ures.on('end', () => {
                const j = JSON.parse(text) as { mqttUrl?: string; mqtt?: { url: string; ca?: string } };
                if (j.mqttUrl) j.mqttUrl = 'mqtts://127.0.0.1:1';
                if (j.mqtt)
                  j.mqtt = { ...j.mqtt, url: 'mqtts://127.0.0.1:1', ca: readFileSync(attacker.cert, 'utf8') };
                res.writeHead(ures.statusCode ?? 502, { 'content-type': 'application/json' });
                res.end(JSON.stringify(j));
              });
            },
          );
          up.end(body);
        });
      },
    );
    servers.push(proxy);
    const proxyUrl = `https://127.0.0.1:${await listen(proxy)}`;

    // Control: a client that does not pin is fooled by this proxy (it answers with its own broker).
    const fooled = await new Promise<{ mqttUrl?: string }>((done, fail) => {
      const r = httpsRequest(
        `${proxyUrl}${PROVISION_PATH}`,
        { method: 'POST', headers: { 'content-type': 'application/json' }, rejectUnauthorized: false },
        (res) => {
          let t = '';
          res.on('data', (c: Buffer) => (t += c.toString()));
          res.on('end', () => done(JSON.parse(t) as { mqttUrl?: string }));
        },
      );
      r.on('error', fail);
      r.end(JSON.stringify({ schemaVersion: SCHEMA_VERSION, code: issued.code.slice(0, 12), preview: true }));
    });
    expect(fooled.mqttUrl).toBe('mqtts://127.0.0.1:1');
    expect(seen).toHaveLength(1);

    // The reader: refused at the pin, before anything is sent; nothing written anywhere.
    const dev = join(tmp.dir, 'dev-a');
    const cfg = join(dev, 'etc', 'device.json');
    const data = join(dev, 'data');
    const mitm = await deviceCli(provisionArgs(proxyUrl, issued.code, cfg, data));
    expect(mitm.code).toBe(2);
    expect(mitm.stderr).toContain('REFUSED (gateway-not-pinned)');
    expect(mitm.stderr).toContain('is not the gateway this code was issued by');
    expect(mitm.stderr).toContain('Fix: check the last group of the code and the --gateway address');
    expect(mitm.stderr).toContain('The code was not sent and still works');
    expect(leftIn(dev)).toBe(false); // no config, no CA file, no journal, no data folder
    expect(seen).toHaveLength(1); // the proxy never got the code from the reader
    expect(gw.registry.getReader(issued.readerId)).toBeUndefined();

    // Typing the code without its pin does not downgrade: the proxy's certificate is not trusted.
    const stripped = await deviceCli(provisionArgs(proxyUrl, issued.code.slice(0, 12), cfg, data));
    expect(stripped.code).toBe(2);
    expect(stripped.stderr).toContain('REFUSED (untrusted-gateway)');
    expect(stripped.stderr).toContain('including its last group (the gateway pin)');
    expect(leftIn(dev)).toBe(false);
    expect(seen).toHaveLength(1);

    // The same code at the real gateway (lower case, as a technician may type it): provisioned.
    const ok = await deviceCli(provisionArgs(gw.adminUrl, issued.code.toLowerCase(), cfg, data));
    expect(ok.stderr).not.toMatch(/REFUSED/);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`provisioned as reader "${issued.readerId}" for client home-tls`);
    const written = JSON.parse(readFileSync(cfg, 'utf8')) as {
      mqtt: { url: string; ca: string; password: string };
    };
    expect(written.mqtt.url).toBe(`mqtts://127.0.0.1:${gw.mqttPort}`);
    expect(written.mqtt.ca).toBe(join(dev, 'etc', 'broker-ca.pem'));
    expect(readFileSync(written.mqtt.ca, 'utf8').trim()).toBe(readFileSync(broker.ca, 'utf8').trim());

    // The reader connects over mqtts, trusting only the delivered private CA, and its tap is stored.
    const device = new RunningDevice(cfg, dev);
    devices.push(device);
    await device.waitFor((l) => l.type === 'ready');
    device.send('tap 04AABBCCDDEE61');
    await device.waitFor((l) => l.type === 'tap' && l.decision === 'start');
    await waitUntil(() => storedSeqs(gw, issued.readerId).includes(1), 30_000);
    await device.stop();
  }, 120_000);

  it('a relay that alters the exchange answer on the way makes provisioning fail plainly and write nothing', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-tls-2' });
    const adminPort = Number(new URL(gw.adminUrl).port);
    // A TCP relay in front of the real gateway (so the real certificate, and the pin, pass). On the
    // second connection (the exchange proper, after the preview) it flips a byte in the TLS record
    // that carries the gateway's answer.
    let connections = 0;
    let altered = 0;
    const records = (onRecord: (r: Buffer) => Buffer) => {
      let pending = Buffer.alloc(0);
      return (chunk: Buffer): Buffer => {
        pending = Buffer.concat([pending, chunk]);
        const out: Buffer[] = [];
        for (let i = 0; i < 10_000 && pending.length >= 5; i++) {
          const len = pending.readUInt16BE(3);
          if (pending.length < 5 + len) break;
          out.push(onRecord(Buffer.from(pending.subarray(0, 5 + len))));
          pending = pending.subarray(5 + len);
        }
        return Buffer.concat(out);
      };
    };
    const relay = createNetServer((client) => {
      const n = ++connections;
      const upstream = netConnect(adminPort, '127.0.0.1');
      let clientAppRecords = 0;
      const up = records((r) => {
        if (r[0] === 0x17) clientAppRecords++;
        return r;
      });
      const down = records((r) => {
        // Client app-data records: its Finished, then the request. Records over 600 bytes after it
        // carry the answer (the PEM CA alone is longer); session tickets are shorter and pass.
        if (n === 2 && r[0] === 0x17 && clientAppRecords >= 2 && r.length > 5 + 600) {
          r[r.length - 1] = (r[r.length - 1] ?? 0) ^ 0x01;
          altered++;
        }
        return r;
      });
      client.on('data', (c: Buffer) => upstream.write(up(c)));
      upstream.on('data', (c: Buffer) => client.write(down(c)));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    servers.push(relay);
    const relayUrl = `https://127.0.0.1:${await listen(relay)}`;

    const dev = join(tmp.dir, 'dev-b');
    const res = await deviceCli(
      provisionArgs(relayUrl, issued.code, join(dev, 'device.json'), join(dev, 'data')),
    );
    expect(connections).toBe(2); // preview, then the exchange
    expect(altered).toBeGreaterThan(0);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('REFUSED (connection-broken)');
    expect(res.stderr).toContain('broke or was altered during the exchange');
    expect(res.stderr).toContain('Fix: run the same command again; if it then says used-code');
    expect(res.stderr).toContain('Nothing was written.');
    expect(leftIn(dev)).toBe(false);
    // The gateway did spend the code (its answer was lost): the retry says so, with the fix.
    const again = await deviceCli(
      provisionArgs(gw.adminUrl, issued.code, join(dev, 'device.json'), join(dev, 'data')),
    );
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('REFUSED (used-code)');
    expect(leftIn(dev)).toBe(false);
  }, 90_000);

  it("the coordinator's CLI prints a pinned code and an https provision line without plain flags, and it provisions", async () => {
    const cfgFile = join(tmp.dir, 'gw-cli.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        dataDir: join(tmp.dir, 'gw'),
        fleetKey: 'test-fleet-key-0123456789',
        mqtt: {
          mode: 'embedded',
          host: '127.0.0.1',
          port: gw.mqttPort,
          tls: { certFile: broker.cert, keyFile: broker.key, caFile: broker.ca },
        },
        admin: {
          host: '127.0.0.1',
          port: gw.adminPort,
          token: ADMIN_TOKEN,
          tls: { certFile: admin.cert, keyFile: admin.key },
        },
      }),
    );
    const out: string[] = [];
    const code = await gatewayMain(
      ['readers', 'enroll', '--client', 'home-tls-3', '--config', cfgFile],
      (l) => out.push(l),
      (l) => out.push(l),
    );
    expect(code).toBe(0);
    const text = out.join('\n');
    const issued = /enrollment code: (\S+)/.exec(text)?.[1] ?? '';
    expect(issued).toMatch(/^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{2}$/);
    expect(text).toContain(
      `on the reader:   visittag-device provision --gateway https://127.0.0.1:${gw.adminPort} --code ${issued}`,
    );
    expect(text).not.toContain('--allow-plain');
    const dev = join(tmp.dir, 'dev-c');
    const res = await deviceCli(
      provisionArgs(gw.adminUrl, issued, join(dev, 'device.json'), join(dev, 'data')),
    );
    expect(res.stderr).not.toMatch(/REFUSED/);
    expect(res.code).toBe(0);
  }, 60_000);
});

describe('plain HTTP and plain MQTT need an explicit flag', () => {
  const tmp = tempDir('vt-prov-plain-');
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway(join(tmp.dir, 'gw'));
  });
  afterAll(async () => {
    await gw.stop();
    tmp.cleanup();
  });

  it('refuses an http:// gateway and then an mqtt:// broker before the code is used; with both flags it provisions', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-plain' });
    expect(issued.code).toMatch(/^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{2}$/); // no pin without HTTPS
    const dev = join(tmp.dir, 'dev');
    const args = provisionArgs(gw.adminUrl, issued.code, join(dev, 'device.json'), join(dev, 'data'));

    const http = await deviceCli(args);
    expect(http.code).toBe(2);
    expect(http.stderr).toContain('REFUSED (plain-http)');
    expect(http.stderr).toContain('only on a closed test network pass --allow-plain-http');

    const mqtt = await deviceCli([...args, '--allow-plain-http']);
    expect(mqtt.code).toBe(2);
    expect(mqtt.stderr).toContain('REFUSED (plain-mqtt): the gateway hands out the broker mqtt://');
    expect(mqtt.stderr).toContain('pass --allow-plain-mqtt');
    expect(mqtt.stderr).toContain('the code is still valid');
    expect(leftIn(dev)).toBe(false);
    expect(gw.registry.getReader(issued.readerId)).toBeUndefined();

    const both = await deviceCli([...args, '--allow-plain-http', '--allow-plain-mqtt']);
    expect(both.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dev, 'device.json'), 'utf8'))).not.toHaveProperty('mqtt.ca');
  }, 60_000);
});
