import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:tls';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import { settings, silentLogger, tempDir, waitFor } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI). */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const p = (f: string) => join(dir, f);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ossl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=visittag-test-ca',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
  );
  ossl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
  );
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1' > ${p('ext.cnf')}`]);
  ossl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    p('ext.cnf'),
    '-out',
    p('server.pem'),
  );
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

describe('uplink over TLS with per-reader credentials', () => {
  it('connects with the CA and its password; a wrong password is refused and retried, never accepted', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const certs = makeCerts(dir);
    const logins: { user: string | undefined; ok: boolean }[] = [];
    const broker = await Aedes.createBroker({
      authenticate: (_client, username, password, done) => {
        const ok = username === 'reader-1' && password?.toString() === 'correct horse battery';
        logins.push({ user: username, ok });
        done(null, ok);
      },
    });
    const server: Server = createServer(
      { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
      (sock) => broker.handle(sock),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          broker.close();
        }),
    );
    const url = `mqtts://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const uplink = {
      batchSize: 100,
      window: 8,
      ackTimeoutMs: 5_000,
      backoff: { baseMs: 20, capMs: 100 },
      statusIntervalMs: 60_000,
    };

    const wrong = createDevice({
      config: settings(join(dir, 'wrong'), {
        mqtt: { url, ca: certs.ca, username: 'reader-1', password: 'guess' },
        uplink,
      }),
      logger: silentLogger,
      cardReader: new SimulatedCardReader(),
      feedback: new SimulatedFeedback(),
      clockSynced: () => true,
    });
    cleanups.push(() => wrong.stop());
    await wrong.start();
    await waitFor(() => logins.filter((l) => !l.ok).length >= 2, 10_000, 'refused logins, retried');
    expect(wrong.status().connected).toBe(false);
    await wrong.stop();

    const reader = new SimulatedCardReader();
    const good = createDevice({
      config: settings(join(dir, 'good'), {
        mqtt: { url, ca: certs.ca, username: 'reader-1', password: 'correct horse battery' },
        uplink,
      }),
      logger: silentLogger,
      cardReader: reader,
      feedback: new SimulatedFeedback(),
      clockSynced: () => true,
    });
    cleanups.push(() => good.stop());
    await good.start();
    await waitFor(() => good.status().connected, 10_000, 'TLS connection');
    expect(logins.at(-1)).toEqual({ user: 'reader-1', ok: true });
  });
});
