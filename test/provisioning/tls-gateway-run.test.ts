import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main as gatewayMain } from '../../gateway/main.js';
import { parseGatewaySettings } from '../../gateway/src/config.js';
import { plainBrokerProblem } from '../../gateway/src/enrollment/tls.js';
import { ADMIN_TOKEN, tempDir } from '../gateway/helpers.js';

/** Issue 16: mqtts is the production default; a plain broker off loopback needs `mqtt.allowPlain`. */
describe('visittag-gateway run and a broker without TLS', () => {
  const tmp = tempDir('vt-gw-plain-');
  afterAll(() => tmp.cleanup());

  const mqttOf = (mqtt: Record<string, unknown>) => {
    const p = parseGatewaySettings({
      dataDir: tmp.dir,
      fleetKey: 'test-fleet-key-0123456789',
      mqtt,
      admin: { token: ADMIN_TOKEN },
    });
    if (!p.ok) throw new Error(p.error);
    return p.config.mqtt;
  };

  it('refuses to start a plain broker on a network address, with the fix, and creates nothing', async () => {
    const dataDir = join(tmp.dir, 'data');
    const cfg = join(tmp.dir, 'gateway.json');
    // gateway.example.json without its tls block: embedded broker on 0.0.0.0, no TLS.
    writeFileSync(
      cfg,
      JSON.stringify({
        dataDir,
        fleetKey: 'test-fleet-key-0123456789',
        mqtt: { mode: 'embedded', host: '0.0.0.0', port: 0 },
        admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
      }),
    );
    const lines: string[] = [];
    const code = await gatewayMain(
      ['run', '--config', cfg],
      (l) => lines.push(l),
      (l) => lines.push(l),
    );
    expect(code).toBe(78);
    const text = lines.join('\n');
    expect(text).toContain('mqtt.tls is not set and the broker listens on 0.0.0.0');
    expect(text).toContain('Fix: set mqtt.tls');
    expect(text).toContain('"allowPlain": true');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('allows TLS, loopback, an explicit allowPlain and an external broker', () => {
    expect(plainBrokerProblem(mqttOf({ mode: 'embedded', host: '0.0.0.0' }))).toContain(
      'mqtt.tls is not set',
    );
    expect(plainBrokerProblem(mqttOf({ mode: 'embedded' }))).toContain('listens on 0.0.0.0'); // the default
    expect(
      plainBrokerProblem(
        mqttOf({ mode: 'embedded', host: '0.0.0.0', tls: { certFile: 'c.pem', keyFile: 'k.pem' } }),
      ),
    ).toBeNull();
    expect(plainBrokerProblem(mqttOf({ mode: 'embedded', host: '127.0.0.1' }))).toBeNull();
    expect(plainBrokerProblem(mqttOf({ mode: 'embedded', host: '0.0.0.0', allowPlain: true }))).toBeNull();
    expect(
      plainBrokerProblem(
        mqttOf({ mode: 'external', url: 'mqtts://broker.example:8883', username: 'gw', password: 'p' }),
      ),
    ).toBeNull();
  });

  it('refuses an external broker without TLS on another machine, with the fix, and creates nothing', async () => {
    const ext = (url: string, more: Record<string, unknown> = {}) =>
      plainBrokerProblem(mqttOf({ mode: 'external', url, username: 'gw', password: 'p', ...more }));
    expect(ext('mqtt://broker.example:1883')).toContain('external broker without TLS on another machine');
    expect(ext('ws://10.0.0.5:9001')).toContain('Fix: use the broker');
    expect(ext('tcp://broker.example')).toContain('"allowPlain": true');
    expect(ext('mqtt://127.0.0.1:1883')).toBeNull(); // tests, the simulator, a broker on this machine
    expect(ext('mqtt://localhost:1883')).toBeNull();
    expect(ext('mqtt://[::1]:1883')).toBeNull();
    expect(ext('wss://broker.example:443')).toBeNull();
    expect(ext('mqtt://broker.example:1883', { allowPlain: true })).toBeNull();

    const dataDir = join(tmp.dir, 'data-ext');
    const cfg = join(tmp.dir, 'gateway-ext.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        dataDir,
        fleetKey: 'test-fleet-key-0123456789',
        mqtt: { mode: 'external', url: 'mqtt://broker.example:1883', username: 'gw', password: 'p' },
        admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
      }),
    );
    const lines: string[] = [];
    const code = await gatewayMain(
      ['run', '--config', cfg],
      (l) => lines.push(l),
      (l) => lines.push(l),
    );
    expect(code).toBe(78);
    expect(lines.join('\n')).toContain('mqtt.url is mqtt://broker.example:1883');
    expect(lines.join('\n')).not.toContain('"password"');
    expect(existsSync(dataDir)).toBe(false);
  });
});
