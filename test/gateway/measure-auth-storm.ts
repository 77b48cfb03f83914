/**
 * Measures how long the gateway takes to admit N readers connecting at once: first ever (one scrypt
 * KDF run each), then again after a gateway restart (the verified-credential cache admits them).
 * CPU time is reported too: wall time on a shared machine says more about the neighbours.
 * Not a test (no assertion on speed): `npx tsx test/gateway/measure-auth-storm.ts [N] [logN] [connPerSec]`.
 * Raw CONNECT packets over TCP keep the client side light, so the gateway's cost dominates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { createGateway } from '../../gateway/index.js';
import { hashPassword } from '../../gateway/src/broker/credentials.js';
import { parseGatewaySettings } from '../../gateway/src/config.js';

const N = Number(process.argv[2] ?? 10_000);
const LOG_N = Number(process.argv[3] ?? 11);
const RATE = Number(process.argv[4] ?? 100_000);
const PASSWORD = 'storm-password-0123456789-abcdef';

function connectPacket(id: string): Buffer {
  const s = (v: string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([s('MQTT'), Buffer.from([4, 0xc2, 0, 60]), s(id), s(id), s(PASSWORD)]);
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    len.push(b);
  } while (n);
  return Buffer.concat([Buffer.from([0x10, ...len]), body]);
}

/** Connects every reader (at most `window` in flight, retrying refused ones like a device would). */
async function storm(
  port: number,
  window: number,
): Promise<{ ms: number; cpuMs: number; sockets: Socket[] }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const sockets: Socket[] = [];
  let next = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const sock = netConnect(port, '127.0.0.1');
      sock.setNoDelay(true);
      sock.on('error', () => undefined);
      let done = false;
      sock.once('connect', () => sock.write(connectPacket(`r${i}`)));
      sock.once('data', (d: Buffer) => {
        done = true;
        if (d[0] === 0x20 && d[3] === 0) {
          sockets.push(sock);
          resolve();
        } else {
          sock.destroy();
          setTimeout(() => void one(i).then(resolve), 50);
        }
      });
      sock.once('close', () => {
        if (!done) setTimeout(() => void one(i).then(resolve), 50); // refused by the rate limit: retry
      });
    });
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < N) await one(next++);
    }),
  );
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, sockets };
}

const dir = mkdtempSync(join(tmpdir(), 'vt-storm-'));
const parsed = parseGatewaySettings({
  dataDir: dir,
  fleetKey: 'storm-fleet-key-0123456789',
  mqtt: {
    mode: 'embedded',
    host: '127.0.0.1',
    port: 0,
    maxConnectionsPerSecond: RATE,
    connectionBurst: Math.min(RATE, 1000),
    kdf: { logN: LOG_N, r: 8, p: 1 },
  },
  admin: { host: '127.0.0.1', port: 0, token: 'storm-admin-token-0123' },
});
if (!parsed.ok) throw new Error(parsed.error);
const logger = pino({ level: 'silent' });
let gw = createGateway({ config: parsed.config, logger });
// One hash, N rows: verification cost is the same as with per-reader salts, set-up is fast.
const hash = await hashPassword(PASSWORD, { logN: LOG_N, r: 8, p: 1 });
// The readers are written by this script's own connection (the gateway hands out no database handle).
const direct = new Database(join(parsed.config.dataDir, 'gateway.db'));
const ins = direct.prepare(
  'INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES (?, ?, NULL, NULL, NULL, 0)',
);
direct.transaction(() => {
  for (let i = 0; i < N; i++) ins.run(`r${i}`, hash);
})();
direct.close();
await gw.stop();
gw = createGateway({ config: parsed.config, logger });
await gw.start();
// 1. first connection ever of every reader: each needs one KDF run
const first = await storm(gw.mqttPort ?? 0, 500);
first.sockets.forEach((s) => s.destroy());
await gw.stop();
// 2. the same fleet after a gateway restart: the verified-credential cache (DB + key file) admits it
gw = createGateway({ config: parsed.config, logger });
await gw.start();
const restart = await storm(gw.mqttPort ?? 0, 500);
const kdf = /visittag_auth_kdf_runs (\d+)/.exec(gw.metrics.render())?.[1];
console.log(
  JSON.stringify({
    readers: N,
    scryptLogN: LOG_N,
    maxConnectionsPerSecond: RATE,
    firstConnectMs: Math.round(first.ms),
    firstConnectCpuMs: Math.round(first.cpuMs),
    afterRestartMs: Math.round(restart.ms),
    afterRestartCpuMs: Math.round(restart.cpuMs),
    kdfRunsAfterRestart: Number(kdf),
    note: 'cpu = this process (gateway + the light raw-socket clients), all threads',
  }),
);
restart.sockets.forEach((s) => s.destroy());
await gw.stop();
rmSync(dir, { recursive: true, force: true });
