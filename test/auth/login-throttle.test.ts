import { describe, expect, it } from 'vitest';
import { createAccess, Role } from '../../gateway/src/auth/index.js';
import { sqliteAccessStores } from '../../gateway/src/store/sqlite/access.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../gateway/helpers.js';

/**
 * The failed-login throttle on an injected clock (issue 14: counted in the store, so on PostgreSQL every
 * instance counts together): 10 failures of a name within 15 minutes refuse even the right password
 * (429) until the window has passed; a good login clears the count; the name typed is stored only hashed.
 */
describe('failed-login throttle', () => {
  it('refuses a name after 10 failures for the rest of the window; a success clears it', async () => {
    const tmp = tempDir('vt-login-throttle-');
    let now = 1_000_000;
    const db = openDatabase(`${tmp.dir}/gateway.db`, sqliteMigrations);
    try {
      const access = createAccess({
        stores: sqliteAccessStores(db, (r) => Role.parse(r)),
        now: () => now,
        session: { hashCost: { logN: 10, r: 8, p: 1 } },
      });
      const auth = access.service;
      await auth.createUser('test', {
        name: 'anna',
        displayName: 'A',
        role: 'coordinator',
        password: 'a-long-password-1',
      });
      for (let i = 0; i < 9; i++)
        await expect(auth.login('anna', 'wrong-password-x')).rejects.toMatchObject({ statusCode: 401 });
      expect((await auth.login('anna', 'a-long-password-1')).user.name).toBe('anna'); // clears the count
      for (let i = 0; i < 10; i++)
        await expect(auth.login('anna', 'wrong-password-x')).rejects.toMatchObject({ statusCode: 401 });
      await expect(auth.login('anna', 'a-long-password-1')).rejects.toMatchObject({ statusCode: 429 });
      now += 15 * 60_000 + 1; // the window began with the first failure, so it has passed now
      expect((await auth.login('anna', 'a-long-password-1')).user.name).toBe('anna');
      // the names typed are not stored, only hashes
      const keys = db.prepare('SELECT name_key FROM auth_login_failures').pluck().all() as string[];
      expect(keys.join()).not.toContain('anna');
    } finally {
      db.close();
      tmp.cleanup();
    }
  });
});
