import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayArgv } from '../support/entries.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  batchOf,
  connectReader,
  connectRefused,
  PASSWORD,
  tempDir,
  waitUntil,
} from '../gateway/helpers.js';
import { ROOT, type CliResult } from './cli-child.js';

/**
 * `visittag-gateway readers revoke ID` as a child process against a real gateway process (gateway/main.ts
 * run, embedded broker and admin API on port 0, found through <dataDir>/admin-endpoint.json): a connected
 * reader is dropped at once and refused on reconnect, its stored events stay; with the token wrong the
 * CLI refuses and changes nothing; with the gateway stopped it revokes in the database and says so.
 */

function gatewayCli(args: string[], timeoutMs = 40_000): Promise<CliResult> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [...gatewayArgv(), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      fail(new Error(`visittag-gateway ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

interface GatewayChild {
  proc: ChildProcess;
  mqttPort: number;
  adminPort: number;
  exited: Promise<number | null>;
}

async function startGatewayProcess(cfgFile: string): Promise<GatewayChild> {
  const proc = spawn(process.execPath, [...gatewayArgv(), 'run', '--config', cfgFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<{ mqttPort: number; adminPort: number }>((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`gateway not ready in 30 s: ${stderr}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"event":"ready"')) {
          clearTimeout(timer);
          res(JSON.parse(line) as { mqttPort: number; adminPort: number });
        }
      }
    });
    void exited.then((code) => rej(new Error(`gateway exited (${code}) before ready: ${stderr}`)));
  });
  return { proc, ...ready, exited };
}

async function stopGatewayProcess(g: GatewayChild): Promise<void> {
  if (g.proc.exitCode !== null) return;
  g.proc.kill('SIGTERM');
  const t = setTimeout(() => g.proc.kill('SIGKILL'), 15_000);
  await g.exited;
  clearTimeout(t);
}

describe('CLI readers revoke reaches the running gateway', () => {
  const tmp = tempDir('vt-cli-revoke-');
  const dataDir = join(tmp.dir, 'gw');
  const cfgFile = join(tmp.dir, 'gateway.json');
  const wrongCfgFile = join(tmp.dir, 'gateway-wrong-token.json');
  const WRONG_TOKEN = 'not-the-admin-token-0123456789';
  const settings = (token: string) => ({
    dataDir,
    fleetKey: 'test-fleet-key-0123456789',
    logLevel: 'warn',
    mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token },
    ingest: { groupCommitMs: 5, groupCommitMax: 100 },
  });
  let gw: GatewayChild;
  const clients: MqttClient[] = [];

  const api = async (path: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`http://127.0.0.1:${gw.adminPort}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const reader = async (id: string) =>
    (await api(`/api/readers/${id}`)).body as {
      connected: boolean;
      revoked: boolean;
      clientRef: string | null;
      contiguousUpto: number;
    };
  /** A registered reader connected over MQTT with `seqs` delivered and acknowledged. */
  const connectedReader = async (id: string, seqs: number[]) => {
    expect(
      (
        await api('/api/readers', {
          method: 'POST',
          body: { readerId: id, clientRef: 'home-1', password: PASSWORD },
        })
      ).status,
    ).toBe(201);
    const c = await connectReader(gw.mqttPort, id);
    clients.push(c);
    const acks = await AckCollector.attach(c, id);
    await acks.publish(id, batchOf(id, seqs));
    await acks.waitFor((a) => a.upTo === seqs[seqs.length - 1]);
    let closed = false;
    c.on('close', () => (closed = true));
    return { client: c, closed: () => closed };
  };

  beforeAll(async () => {
    writeFileSync(cfgFile, JSON.stringify(settings(ADMIN_TOKEN)));
    writeFileSync(wrongCfgFile, JSON.stringify(settings(WRONG_TOKEN)));
    gw = await startGatewayProcess(cfgFile);
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await stopGatewayProcess(gw);
    tmp.cleanup();
  });

  it('while connected: the CLI revoke drops the connection at once, the reconnect is refused, stored events stay', async () => {
    const a = await connectedReader('rdr-live-a', [1, 2]);
    expect((await reader('rdr-live-a')).connected).toBe(true);

    const r = await gatewayCli(['readers', 'revoke', 'rdr-live-a', '--config', cfgFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('revoked by the running gateway: its live connection was dropped');
    expect(r.stdout).not.toContain('gateway not running');

    await waitUntil(() => a.closed(), 5_000); // dropped by the gateway, not by the client
    const again = await connectRefused(gw.mqttPort, {
      clientId: 'rdr-live-a',
      username: 'rdr-live-a',
      password: PASSWORD,
      protocolVersion: 4,
    });
    expect(again.refused).toBe(true);
    const view = await reader('rdr-live-a');
    expect(view).toMatchObject({ revoked: true, connected: false, contiguousUpto: 2 });
  }, 60_000);

  it('with a wrong admin token: refused with the fix, exit 1, no fallback to the database', async () => {
    const b = await connectedReader('rdr-live-b', [1]);
    const r = await gatewayCli(['readers', 'revoke', 'rdr-live-b', '--config', wrongCfgFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refused the admin token');
    expect(r.stderr).toContain(`admin.token in ${wrongCfgFile}`);
    expect(r.stdout + r.stderr).not.toContain(WRONG_TOKEN);
    expect(r.stdout).not.toContain('gateway not running');
    const view = await reader('rdr-live-b');
    expect(view).toMatchObject({ revoked: false, connected: true });
    expect(b.closed()).toBe(false);

    // readers move goes the same way: applied by the running gateway.
    const m = await gatewayCli(['readers', 'move', 'rdr-live-b', '--client', 'home-2', '--config', cfgFile]);
    expect(m.code).toBe(0);
    expect(m.stdout).toContain('reader rdr-live-b now serves home-2 (applied by the running gateway)');
    expect((await reader('rdr-live-b')).clientRef).toBe('home-2');
  }, 60_000);

  it('with the gateway stopped: revoked in the database, said so, refused when the gateway starts', async () => {
    await stopGatewayProcess(gw);
    expect(existsSync(join(dataDir, 'admin-endpoint.json'))).toBe(false);
    const r = await gatewayCli(['readers', 'revoke', 'rdr-live-b', '--config', cfgFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('gateway not running: revoked in the database; takes effect when it starts');

    gw = await startGatewayProcess(cfgFile);
    const again = await connectRefused(gw.mqttPort, {
      clientId: 'rdr-live-b',
      username: 'rdr-live-b',
      password: PASSWORD,
      protocolVersion: 4,
    });
    expect(again.refused).toBe(true);
    expect(await reader('rdr-live-b')).toMatchObject({ revoked: true, contiguousUpto: 1 });
  }, 90_000);
});
