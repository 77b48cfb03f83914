import { describe, expect, it } from 'vitest';
import type { AuthApiToken, AuthSession, AuthStore, AuthUser } from '../../gateway/src/store/ports.js';

/**
 * The AuthStore port's contract (accounts, sessions, API tokens), through the interface only (every
 * call awaited). Each adapter supplies a factory: a fresh, migrated, empty store, and `close`. That
 * several instances share the rows is shown with real processes in test/scale/pg-access-instances.
 */
export interface AuthFixture {
  store: AuthStore;
  close: () => Promise<void>;
}

const user = (n: string, over: Partial<AuthUser> = {}): AuthUser => ({
  userId: `u_${n}`,
  name: n,
  displayName: `Name ${n}`,
  role: 'coordinator',
  areas: ['north', 'söder'],
  provider: 'p1',
  staffRef: null,
  passwordHash: 'scrypt$not-a-real-hash',
  oidcSubject: null,
  disabledAt: null,
  createdAtMs: 1_000,
  ...over,
});
const session = (h: string, userId: string, at = 10_000): AuthSession => ({
  idHash: h,
  userId,
  csrf: `csrf-${h}`,
  createdAtMs: at,
  expiresAtMs: at + 3_600_000,
  lastSeenMs: at,
});
const token = (id: string, at: number): AuthApiToken => ({
  tokenId: id,
  name: `tok-${id}`,
  role: 'technician',
  areas: [],
  provider: null,
  secretHash: `sha-${id}`,
  createdBy: 'user:admin',
  createdAtMs: at,
  expiresAtMs: null,
  revokedAtMs: null,
});

export function describeAuthStoreContract(name: string, make: () => Promise<AuthFixture>): void {
  describe(`AuthStore contract: ${name}`, () => {
    const withStore = async (fn: (s: AuthStore) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f.store);
      } finally {
        await f.close();
      }
    };

    it('stores accounts with every field, finds them by id, name and OIDC subject, lists by name', () =>
      withStore(async (s) => {
        expect(await s.countUsers()).toBe(0);
        expect(await s.userByName('nobody')).toBeNull();
        const b = user('bertil', { role: 'care-staff', staffRef: 'staff-7', provider: null, areas: [] });
        const a = user('anna', { oidcSubject: 'https://idp|sub-1', passwordHash: null, disabledAt: 5 });
        await s.insertUser(b);
        await s.insertUser(a);
        expect(await s.countUsers()).toBe(2);
        expect(await s.userById('u_bertil')).toEqual(b);
        expect(await s.userByName('anna')).toEqual(a);
        expect(await s.userByOidcSubject('https://idp|sub-1')).toEqual(a);
        expect((await s.listUsers()).map((u) => u.name)).toEqual(['anna', 'bertil']);
      }));

    it('a second account with the same name or OIDC subject is refused', () =>
      withStore(async (s) => {
        await s.insertUser(user('anna', { oidcSubject: 'iss|1' }));
        await expect(
          Promise.resolve().then(() => s.insertUser(user('anna', { userId: 'u_other' }))),
        ).rejects.toThrow();
        await expect(
          Promise.resolve().then(() => s.insertUser(user('berit', { oidcSubject: 'iss|1' }))),
        ).rejects.toThrow();
        expect(await s.countUsers()).toBe(1);
      }));

    it('updates every field but the id', () =>
      withStore(async (s) => {
        await s.insertUser(user('anna'));
        const after = user('anna', {
          displayName: 'Anna S',
          role: 'unit-manager',
          areas: ['east'],
          provider: null,
          staffRef: 'staff-1',
          passwordHash: 'scrypt$new',
          oidcSubject: 'iss|2',
          disabledAt: 99,
        });
        await s.updateUser(after);
        expect(await s.userById('u_anna')).toEqual(after);
      }));

    it('a session is found with its account in one look-up; touch, delete, per user and expiry', () =>
      withStore(async (s) => {
        await s.insertUser(user('anna'));
        await s.insertUser(user('bo'));
        expect(await s.sessionWithUser('h1')).toBeNull();
        await s.insertSession(session('h1', 'u_anna', 10_000));
        await s.insertSession(session('h2', 'u_anna', 20_000));
        await s.insertSession(session('h3', 'u_bo', 30_000));
        expect(await s.sessionWithUser('h1')).toEqual({
          session: session('h1', 'u_anna', 10_000),
          user: user('anna'),
        });
        await s.touchSession('h1', 15_000);
        expect((await s.sessionWithUser('h1'))?.session.lastSeenMs).toBe(15_000);
        await s.deleteSession('h1');
        expect(await s.sessionWithUser('h1')).toBeNull();
        expect(await s.deleteSessionsOf('u_anna')).toBe(1);
        expect(await s.sessionWithUser('h2')).toBeNull();
        // h3 expires at 30_000 + 1 h
        expect(await s.deleteExpiredSessions(30_000 + 3_600_000 - 1)).toBe(0);
        expect(await s.deleteExpiredSessions(30_000 + 3_600_000)).toBe(1);
        expect(await s.sessionWithUser('h3')).toBeNull();
      }));

    it('a session whose account is gone is not found', () =>
      withStore(async (s) => {
        await s.insertSession(session('h9', 'u_ghost'));
        expect(await s.sessionWithUser('h9')).toBeNull();
      }));

    it('failed logins: counted per key within the window from the first one, then a new window; cleared', () =>
      withStore(async (s) => {
        const W = 60_000;
        expect(await s.loginFailures('k1', 1_000, W)).toBe(0);
        for (let i = 0; i < 3; i++) await s.noteLoginFailure('k1', 1_000 + i, W);
        await s.noteLoginFailure('k2', 1_000, W);
        expect(await s.loginFailures('k1', 1_000 + W, W)).toBe(3);
        expect(await s.loginFailures('k1', 1_001 + W, W)).toBe(0); // that window has passed
        await s.noteLoginFailure('k1', 2_000 + W, W); // a new window begins
        expect(await s.loginFailures('k1', 2_000 + W, W)).toBe(1);
        expect(await s.loginFailures('k2', 1_000, W)).toBe(1);
        await s.clearLoginFailures('k1');
        expect(await s.loginFailures('k1', 2_000 + W, W)).toBe(0);
      }));

    it('API tokens: stored, listed in creation order, revoked once', () =>
      withStore(async (s) => {
        await s.insertToken({ ...token('t2', 2_000), expiresAtMs: 9_000, areas: ['north'], provider: 'p' });
        await s.insertToken(token('t1', 1_000));
        expect(await s.tokenById('nope')).toBeNull();
        expect(await s.tokenById('t2')).toEqual({
          ...token('t2', 2_000),
          expiresAtMs: 9_000,
          areas: ['north'],
          provider: 'p',
        });
        expect((await s.listTokens()).map((t) => t.tokenId)).toEqual(['t1', 't2']);
        expect(await s.revokeToken('t1', 5_000)).toBe(true);
        expect(await s.revokeToken('t1', 6_000)).toBe(false);
        expect(await s.revokeToken('nope', 6_000)).toBe(false);
        expect((await s.tokenById('t1'))?.revokedAtMs).toBe(5_000);
      }));
  });
}
