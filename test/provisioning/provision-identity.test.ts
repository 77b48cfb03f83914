import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../device/src/core/journal.js';
import { inspectJournal } from '../../device/src/provision/journal-check.js';
import { provision } from '../../device/src/provision/provision.js';
import { PROVISION_PATH, type ProvisionResponse } from '../../protocol/index.js';
import { tempDir } from '../gateway/helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** A stand-in gateway answering the exchange for reader `r-new` (the HTTP path is covered by e2e.test.ts). */
function fakeGateway(calls: { preview: boolean }[]): typeof fetch {
  return ((url: string | URL, init?: RequestInit) => {
    expect(String(url)).toMatch(new RegExp(`${PROVISION_PATH}$`));
    const body = JSON.parse(init?.body as string) as { preview?: boolean };
    calls.push({ preview: body.preview === true });
    const res: ProvisionResponse = {
      schemaVersion: 1,
      readerId: 'r-new',
      clientRef: 'home-9',
      label: null,
      preview: body.preview === true,
      issuedAt: 1_800_000_000_000,
      ...(body.preview
        ? {}
        : {
            mqtt: { url: 'mqtt://gw:1883', username: 'r-new', password: 'p'.repeat(43) },
            fleetKey: 'test-fleet-key-0123456789',
          }),
    };
    return Promise.resolve(new Response(JSON.stringify(res), { status: 200 }));
  }) as typeof fetch;
}

function oldDevice(dir: string): { cfg: string; data: string } {
  const data = join(dir, 'data');
  const cfg = join(dir, 'device.json');
  mkdirSync(data, { recursive: true });
  const j = new Journal({ path: join(data, 'journal.db'), logger: pino({ level: 'silent' }), capacity: 100 });
  for (let seq = 1; seq <= 3; seq++) {
    j.append(
      [
        {
          readerId: 'r-old',
          seq,
          eventId: `e${seq}`,
          card: `c1_${'a'.repeat(32)}`,
          decision: seq % 2 ? 'start' : 'stop',
          visitId: 'v1',
          time: { wallMs: 1_800_000_000_000 + seq, bootId: 'b1', monoMs: seq, synced: true },
        },
      ],
      null,
    );
  }
  j.close();
  writeFileSync(
    cfg,
    JSON.stringify({
      readerId: 'r-old',
      dataDir: data,
      fleetKey: 'test-fleet-key-0123456789',
      mqtt: { url: 'mqtt://old:1883', username: 'r-old', password: 'o'.repeat(30) },
      reader: { driver: 'nfc-pcsc', readerName: 'ACR122' },
      feedback: { driver: 'johnny-five', ioPlugin: 'raspi-io', pins: { green: 'GPIO17', red: 'GPIO27' } },
    }),
  );
  return { cfg, data };
}

describe('provision: identity change with unsent events', () => {
  it('refuses before spending the code; --force-new-identity keeps the old journal aside and keeps driver settings', async () => {
    const tmp = tempDir('vt-prov-id-');
    cleanups.push(tmp.cleanup);
    const { cfg, data } = oldDevice(tmp.dir);
    const calls: { preview: boolean }[] = [];
    const refused = await provision({
      gatewayUrl: 'http://gw:8080',
      code: 'ABCD-EFGH-JK',
      configPath: cfg,
      allowPlainHttp: true,
      allowPlainMqtt: true,
      fetch: fakeGateway(calls),
    });
    expect(refused.ok).toBe(false);
    expect(refused.lines.join('\n')).toContain('3 unsent event(s) of reader "r-old"');
    expect(calls).toEqual([{ preview: true }]); // the code was only previewed, not used
    expect(JSON.parse(readFileSync(cfg, 'utf8'))).toMatchObject({ readerId: 'r-old' });

    const forced = await provision({
      gatewayUrl: 'http://gw:8080',
      code: 'ABCD-EFGH-JK',
      configPath: cfg,
      allowPlainHttp: true,
      allowPlainMqtt: true,
      forceNewIdentity: true,
      fetch: fakeGateway(calls),
      now: () => new Date(Date.UTC(2026, 10, 23, 22, 0, 0)),
    });
    expect(forced.ok).toBe(true);
    const archived = readdirSync(data).find((f) => f.startsWith('journal.r-old.') && f.endsWith('.db'));
    expect(archived).toBeDefined();
    expect(inspectJournal(data)).toBeNull(); // the new identity starts a fresh journal (seq 1)
    const kept = new Journal({
      path: join(data, archived ?? ''),
      logger: pino({ level: 'silent' }),
      capacity: 100,
    });
    expect(kept.depth).toBe(3); // nothing deleted
    kept.close();
    const written = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({
      readerId: 'r-new',
      mqtt: { url: 'mqtt://gw:1883', username: 'r-new' },
      reader: { driver: 'nfc-pcsc', readerName: 'ACR122' },
      feedback: { driver: 'johnny-five', pins: { green: 'GPIO17' } },
    });
    expect(statSync(cfg).mode & 0o777).toBe(0o600);
    expect(existsSync(`${cfg}.tmp-${process.pid}`)).toBe(false);
  });
});
