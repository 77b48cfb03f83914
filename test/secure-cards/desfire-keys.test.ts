/**
 * DESFire key provisioning (issue 18): the reader's config refuses key number 0 (the application
 * master) and resolves the key file beside the config; the reader's key file and the gateway's
 * `desfireKey` are checked like the other key files (mode 0600, format), and no error shows the key.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadDeviceSettings, parseDeviceSettings } from '../../device/src/config.js';
import { readDesfireKeyFile } from '../../device/src/secure/key-file.js';
import { loadSecureKeyFile } from '../../gateway/src/secure-cards/keys.js';
import { DESFIRE_MASTER, MASTER } from './helpers.js';

const KEY = DESFIRE_MASTER.toString('hex');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-desfire-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const base = (desfire: unknown) => ({
  readerId: 'rdr-1',
  dataDir: 'data',
  fleetKey: 'test-fleet-key-0123456789abcdef',
  mqtt: { url: 'mqtt://127.0.0.1:1' },
  reader: { driver: 'nfc-pcsc', desfire },
  feedback: { driver: 'simulated' },
});

describe('reader.desfire in the device config', () => {
  it('refuses key number 0 and a malformed application id, naming the field', () => {
    const err = (() => {
      try {
        parseDeviceSettings(base({ keyFile: 'k', aid: 'F56A', keyNo: 0 }));
        return null;
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.problems.join('\n')).toMatch(/reader\.desfire\.keyNo/);
    expect(err?.problems.join('\n')).toMatch(/reader\.desfire\.aid: must be 6 hex characters/);
  });

  it('defaults keyNo to 1 and resolves a relative key file beside the config', () => {
    const cfg = join(dir, 'device.json');
    writeFileSync(cfg, JSON.stringify(base({ keyFile: 'desfire.key', aid: 'F56A01' })));
    const s = loadDeviceSettings(cfg);
    expect(s.reader).toMatchObject({
      desfire: { keyFile: join(dir, 'desfire.key'), aid: 'F56A01', keyNo: 1 },
    });
  });
});

describe('DESFire key files', () => {
  it('the reader file: read when 0600, refused (with the fix, without the key) when loose, missing or malformed', () => {
    const f = join(dir, 'desfire.key');
    writeFileSync(f, JSON.stringify({ version: 1, desfireKey: KEY }), { mode: 0o600 });
    expect(readDesfireKeyFile(f)).toEqual(DESFIRE_MASTER);
    chmodSync(f, 0o640);
    expect(() => readDesfireKeyFile(f)).toThrow(/mode 640.*Fix: chmod 600/);
    expect(() => readDesfireKeyFile(join(dir, 'none.key'))).toThrow(/cannot be read.*remove reader\.desfire/);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, JSON.stringify({ version: 1, desfireKey: KEY.slice(2) }), { mode: 0o600 });
    const msg = (() => {
      try {
        readDesfireKeyFile(bad);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(msg).toMatch(/desfireKey: must be 32 hex characters/);
    expect(msg).not.toContain(KEY.slice(2));
  });

  it('the gateway file: desfireKey is optional; desfireKeyNo 0 is refused', () => {
    const f = join(dir, 'secure-cards.key');
    const write = (o: object) =>
      writeFileSync(f, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex'), ...o }), {
        mode: 0o600,
      });
    write({});
    expect(loadSecureKeyFile(f).desfireKeyNo).toBeNull();
    write({ desfireKey: KEY });
    expect(loadSecureKeyFile(f).desfireKeyNo).toBe(1);
    write({ desfireKey: KEY, desfireKeyNo: 0 });
    expect(() => loadSecureKeyFile(f)).toThrow(/desfireKeyNo/);
  });
});
