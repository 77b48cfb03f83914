import { afterEach, describe, expect, it } from 'vitest';
import {
  checkPasswordStrength,
  CredentialVerifier,
  generateReaderPassword,
  hashPassword,
  verifyPassword,
  type AuthTagStore,
} from '../../gateway/src/broker/credentials.js';
import { connectReader, connectRefused, PASSWORD, startGateway, tempDir } from './helpers.js';

const KDF = { logN: 10, r: 8, p: 1 };

class MapTags implements AuthTagStore {
  readonly m = new Map<string, Buffer>();
  get = (id: string) => this.m.get(id);
  set = (id: string, t: Buffer) => void this.m.set(id, t);
  delete = (id: string) => void this.m.delete(id);
}

describe('reader credentials', () => {
  it('hashes with scrypt (self-describing), verifies, and refuses other passwords and junk hashes', async () => {
    const h = await hashPassword(PASSWORD, KDF);
    expect(h).toMatch(/^scrypt\$10\$8\$1\$[\w-]+\$[\w-]{43}$/);
    expect(h).not.toContain(PASSWORD);
    expect(await verifyPassword(PASSWORD, h)).toBe(true);
    expect(await verifyPassword(PASSWORD + 'x', h)).toBe(false);
    expect(await verifyPassword(PASSWORD, 'plain')).toBe(false);
    expect(await verifyPassword(PASSWORD, 'scrypt$99$8$1$AA$AA')).toBe(false);
    expect(generateReaderPassword()).toHaveLength(43);
    expect(checkPasswordStrength('short')).toMatch(/at least 20/);
    expect(checkPasswordStrength(generateReaderPassword())).toBeNull();
  });

  it('the verified-credential cache skips the KDF, survives a new verifier with the same key, and is bound to the hash', async () => {
    const key = Buffer.alloc(32, 7);
    const tags = new MapTags();
    const h = await hashPassword(PASSWORD, KDF);
    const v1 = new CredentialVerifier({ cacheKey: key, tags });
    expect(await v1.verify('r1', PASSWORD, h)).toBe(true);
    expect(await v1.verify('r1', PASSWORD, h)).toBe(true);
    expect(v1.kdfRuns).toBe(1);
    // "restart": a new verifier with the same key and tag table
    const v2 = new CredentialVerifier({ cacheKey: key, tags });
    expect(await v2.verify('r1', PASSWORD, h)).toBe(true);
    expect(v2.kdfRuns).toBe(0);
    expect(await v2.verify('r1', 'wrong-password-wrong-password', h)).toBe(false);
    expect(v2.kdfRuns).toBe(1);
    // a new hash (password changed) invalidates the tag
    const h2 = await hashPassword('another-password-0123456789', KDF);
    expect(await v2.verify('r1', PASSWORD, h2)).toBe(false);
    // another key (key file lost) means KDF again, never a false accept
    const v3 = new CredentialVerifier({ cacheKey: Buffer.alloc(32, 9), tags });
    expect(await v3.verify('r1', PASSWORD, h)).toBe(true);
    expect(v3.kdfRuns).toBe(1);
  });

  describe('through the gateway', () => {
    let cleanup: (() => void) | undefined;
    afterEach(() => cleanup?.());

    it('after a restart, readers are admitted without the KDF; a changed password is enforced', async () => {
      const tmp = tempDir();
      cleanup = tmp.cleanup;
      let gw = await startGateway(tmp.dir);
      await gw.registry.addReader({ readerId: 'r-1', password: PASSWORD, clientRef: null });
      await (await connectReader(gw.mqttPort ?? 0, 'r-1')).endAsync(true);
      expect(gw.metrics.render()).toMatch(/visittag_auth_kdf_runs 1/);
      await gw.stop();
      gw = await startGateway(tmp.dir);
      await (await connectReader(gw.mqttPort ?? 0, 'r-1')).endAsync(true);
      expect(gw.metrics.render()).toMatch(/visittag_auth_kdf_runs 0/);
      const bad = await connectRefused(gw.mqttPort ?? 0, {
        clientId: 'r-1',
        username: 'r-1',
        password: 'not-the-password-0123456789',
      });
      expect(bad.refused).toBe(true);
      const NEW = 'the-new-reader-password-0123456789';
      await gw.registry.setPassword('r-1', NEW);
      const old = await connectRefused(gw.mqttPort ?? 0, {
        clientId: 'r-1',
        username: 'r-1',
        password: PASSWORD,
      });
      expect(old.refused).toBe(true);
      await (await connectReader(gw.mqttPort ?? 0, 'r-1', NEW)).endAsync(true);
      await gw.stop();
    });
  });
});
