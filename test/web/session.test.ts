import { describe, expect, it } from 'vitest';
import { createAccess, Role } from '../../gateway/src/auth/index.js';
import { sqliteAccessStores } from '../../gateway/src/store/sqlite/access.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../gateway/helpers.js';

/** Session expiry on an injected clock: 30 min idle, 12 h absolute, ended by disabling the account. */
describe('session expiry', () => {
  it('ends a session after the idle time, after the absolute maximum, and when the user is disabled', async () => {
    const tmp = tempDir('vt-web-session-');
    let now = 1_000_000;
    const db = openDatabase(`${tmp.dir}/gateway.db`, sqliteMigrations);
    try {
      const access = createAccess({
        stores: sqliteAccessStores(db, (r) => Role.parse(r)),
        now: () => now,
        session: { hashCost: { logN: 10, r: 8, p: 1 } },
      });
      const auth = access.service;
      const u = await auth.createUser('test', {
        name: 'coord',
        displayName: 'C',
        role: 'coordinator',
        password: 'a-long-password-1',
      });
      const a = await auth.login('coord', 'a-long-password-1');
      now += 29 * 60_000;
      expect(await auth.session(a.cookie)).not.toBeNull(); // activity at 29 min keeps it alive
      now += 29 * 60_000;
      expect(await auth.session(a.cookie)).not.toBeNull();
      now += 30 * 60_000; // 30 min without a request
      expect(await auth.session(a.cookie)).toBeNull();

      const b = await auth.login('coord', 'a-long-password-1');
      const loginAt = now;
      while (now + 20 * 60_000 < loginAt + 12 * 3600_000) {
        now += 20 * 60_000; // active every 20 min ...
        expect(await auth.session(b.cookie)).not.toBeNull();
      }
      now += 20 * 60_000;
      expect(await auth.session(b.cookie)).toBeNull(); // ... but 12 h after login it ends anyway

      const c = await auth.login('coord', 'a-long-password-1');
      expect(await auth.session(c.cookie)).not.toBeNull();
      await auth.updateUser('admin-token', u.userId, { disabled: true, reason: 'left the job' });
      expect(await auth.session(c.cookie)).toBeNull();
      await expect(auth.login('coord', 'a-long-password-1')).rejects.toThrow(/wrong name or password/);
    } finally {
      db.close();
      tmp.cleanup();
    }
  });
});
