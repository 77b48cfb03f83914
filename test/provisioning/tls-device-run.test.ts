import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDeviceSettings } from '../../device/src/config.js';
import { plainBrokerProblem } from '../../device/src/provision/plain.js';
import { provision } from '../../device/src/provision/provision.js';
import type { ProvisionRequest, ProvisionResponse } from '../../protocol/index.js';
import { tempDir } from '../gateway/helpers.js';
import { deviceCli } from './cli-child.js';

/** Issue 16: a reader talks to a broker off its own machine over TLS unless its config says otherwise. */
describe('visittag-device run and a broker without TLS', () => {
  const tmp = tempDir('vt-dev-plain-');
  afterAll(() => tmp.cleanup());
  const FLEET_KEY = 'test-fleet-key-0123456789';

  it('refuses a plain broker on another machine before anything starts, naming the fix', async () => {
    const cfg = join(tmp.dir, 'etc', 'device.json');
    const data = join(tmp.dir, 'data');
    mkdirSync(join(tmp.dir, 'etc'));
    // TEST-NET-1 address: never contacted, the refusal comes before any connection.
    writeFileSync(
      cfg,
      JSON.stringify({
        readerId: 'rdr-plain',
        dataDir: data,
        fleetKey: FLEET_KEY,
        mqtt: { url: 'mqtt://192.0.2.10:1883', username: 'rdr-plain', password: 'p'.repeat(30) },
      }),
    );
    const r = await deviceCli(['run', '--config', cfg, '--sim-control', 'stdin'], {
      RUNTIME_DIRECTORY: tmp.dir,
    });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('REFUSED: mqtt.url is mqtt://192.0.2.10:1883, a broker without TLS');
    expect(r.stderr).toContain('set "allowPlain": true in "mqtt"');
    expect(r.stderr).toContain('Nothing was started.');
    expect(existsSync(data)).toBe(false); // no journal folder
  }, 60_000);

  it('accepts TLS, loopback and an explicit allowPlain', () => {
    expect(plainBrokerProblem({ url: 'ws://gw.example:9001' })).toContain('without TLS');
    expect(plainBrokerProblem({ url: 'mqtts://gw.example:8883' })).toBeNull();
    expect(plainBrokerProblem({ url: 'mqtt://127.0.0.1:1883' })).toBeNull();
    expect(plainBrokerProblem({ url: 'mqtt://[::1]:1883' })).toBeNull();
    expect(plainBrokerProblem({ url: 'mqtt://localhost:1883' })).toBeNull();
    expect(plainBrokerProblem({ url: 'mqtt://gw.example:1883', allowPlain: true })).toBeNull();
  });

  it('provision --allow-plain-mqtt to a broker on another machine writes allowPlain, so run starts', async () => {
    const answer = (body: ProvisionRequest): ProvisionResponse => ({
      schemaVersion: 1,
      readerId: 'rdr-lab',
      clientRef: 'lab-1',
      label: null,
      preview: body.preview === true,
      issuedAt: 1_800_000_000_000,
      ...(body.preview
        ? { mqttUrl: 'mqtt://gw.lab:1883' }
        : {
            mqtt: { url: 'mqtt://gw.lab:1883', username: 'rdr-lab', password: 'p'.repeat(43) },
            fleetKey: FLEET_KEY,
          }),
    });
    const fakeGateway = ((_url: URL, init: { body: string }) =>
      Promise.resolve(
        new Response(JSON.stringify(answer(JSON.parse(init.body) as ProvisionRequest)), { status: 200 }),
      )) as unknown as typeof fetch;
    const cfg = join(tmp.dir, 'lab', 'device.json');
    const base = {
      gatewayUrl: 'http://gw.lab:8080',
      code: 'ABCD-EFGH-JK',
      configPath: cfg,
      dataDir: join(tmp.dir, 'lab', 'data'),
      allowPlainHttp: true,
      fetch: fakeGateway,
    };
    const refused = await provision(base);
    expect(refused.ok).toBe(false);
    expect(refused.lines.join('\n')).toContain('REFUSED (plain-mqtt)');
    expect(existsSync(cfg)).toBe(false);

    const ok = await provision({ ...base, allowPlainMqtt: true });
    expect(ok.ok).toBe(true);
    const written = JSON.parse(readFileSync(cfg, 'utf8')) as { mqtt: { allowPlain?: boolean } };
    expect(written.mqtt.allowPlain).toBe(true);
    expect(plainBrokerProblem(loadDeviceSettings(cfg).mqtt)).toBeNull();
  });
});
