import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../gateway/main.js';
import { parseGatewaySettings } from '../../gateway/src/config.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  batchOf,
  connectRefused,
  PASSWORD,
  startGateway,
  tempDir,
} from './helpers.js';

describe('gateway config', () => {
  it('reports every bad field at once, naming the field and the fix', () => {
    const r = parseGatewaySettings({
      dataDir: 'x',
      fleetKey: 'short',
      mqtt: { mode: 'embedded', prot: 1 },
      admin: { port: '80' },
      ingest: { groupCommitMs: -1 },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatch(/fleetKey: .*16/);
    expect(r.error).toMatch(/mqtt: Unrecognized key: "prot": remove it or check the spelling/);
    expect(r.error).toMatch(/admin\.port: has the wrong type: expected number/);
    expect(r.error).toMatch(/admin\.token: is missing: add it/);
    expect(r.error).toMatch(/ingest\.groupCommitMs/);
  });

  it('fills defaults for a minimal config', () => {
    const r = parseGatewaySettings({
      dataDir: '/d',
      fleetKey: 'k'.repeat(16),
      admin: { token: 't'.repeat(16) },
    });
    expect(r.ok && r.config.mqtt.mode).toBe('embedded');
    expect(r.ok && r.config.ingest).toEqual({ groupCommitMs: 10, groupCommitMax: 200 });
    expect(r.ok && r.config.backend.url).toBeUndefined();
  });
});

describe('visittag-gateway CLI', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  const cli = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      args,
      (l) => out.push(l),
      (l) => err.push(l),
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('--help, bad config exit 78, readers add/list/move/revoke on the store', async () => {
    const tmp = tempDir();
    cleanup = tmp.cleanup;
    expect((await cli(['--help'])).out).toMatch(/Usage:\n\s+visittag-gateway run/);
    const bad = join(tmp.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ dataDir: 'd' }));
    const b = await cli(['check-config', '--config', bad]);
    expect(b.code).toBe(78);
    expect(b.err).toMatch(/fleetKey: is missing/);
    const cfg = join(tmp.dir, 'gw.json');
    writeFileSync(
      cfg,
      JSON.stringify({ dataDir: 'data', fleetKey: 'f'.repeat(20), admin: { token: ADMIN_TOKEN, port: 0 } }),
    );
    expect((await cli(['check-config', '--config', cfg])).out).toContain(join(tmp.dir, 'data'));
    const add = await cli([
      'readers',
      'add',
      'r-cli',
      '--client',
      'client-9',
      '--label',
      'Flat 9',
      '--config',
      cfg,
    ]);
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/password: [\w-]{43}/);
    const dup = await cli(['readers', 'add', 'r-cli', '--client', 'client-9', '--config', cfg]);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/already exists/);
    expect((await cli(['readers', 'add', 'r-x', '--config', cfg])).err).toMatch(/--client/);
    expect((await cli(['readers', 'move', 'r-cli', '--client', 'client-10', '--config', cfg])).code).toBe(0);
    expect((await cli(['readers', 'revoke', 'r-cli', '--config', cfg])).code).toBe(0);
    const list = await cli(['readers', 'list', '--config', cfg]);
    expect(list.out).toBe('r-cli\tclient-10\trevoked\tupTo=0\tFlat 9');
    expect((await cli(['bogus', '--config', cfg])).code).toBe(64);
  });
});

describe('embedded broker over TLS', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  it('serves mqtts with the configured certificate and still authenticates readers', async () => {
    const tmp = tempDir();
    cleanup = tmp.cleanup;
    const key = join(tmp.dir, 'gw.key');
    const crt = join(tmp.dir, 'gw.crt');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', key, '-out', crt,
    ], { stdio: 'ignore' }); // prettier-ignore
    const gw = await startGateway(join(tmp.dir, 'data'), {
      mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0, tls: { certFile: crt, keyFile: key } },
    });
    try {
      await gw.registry.addReader({ readerId: 'r-tls', password: PASSWORD, clientRef: null });
      const c = await mqtt.connectAsync(`mqtts://127.0.0.1:${gw.mqttPort}`, {
        clientId: 'r-tls',
        username: 'r-tls',
        password: PASSWORD,
        ca: readFileSync(crt),
        reconnectPeriod: 0,
      });
      const acks = await AckCollector.attach(c, 'r-tls');
      await acks.publish('r-tls', batchOf('r-tls', [1]));
      await acks.waitFor((a) => a.upTo === 1);
      await c.endAsync(true);
      // a plain-TCP client gets no MQTT session on the TLS port
      const plain = await connectRefused(gw.mqttPort ?? 0, {
        clientId: 'r-tls',
        username: 'r-tls',
        password: PASSWORD,
      });
      expect(plain.refused).toBe(true);
    } finally {
      await gw.stop();
    }
  });
});
