import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import pino from 'pino';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../gateway/src/admin/server.js';
import { type Access, createAccess, Role } from '../../gateway/src/auth/index.js';
import { sqliteAccessStores } from '../../gateway/src/store/sqlite/access.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../gateway/helpers.js';

/** OIDC single sign-on against a real OpenID provider (npm oidc-provider) on loopback, driven by Chromium. */
let idp: Server;
let gateway: AdminServer;
let access: Access;
let browser: Browser;
let cleanup: () => void;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  const tmp = tempDir('vt-web-oidc-');
  cleanup = tmp.cleanup;
  idp = createServer();
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', () => r()));
  const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const gwPort = await freePort();
  const redirectUri = `http://127.0.0.1:${gwPort}/api/auth/oidc/callback`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'visittag',
        client_secret: 'visittag-test-secret-0123456789',
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, preferred_username: id }),
    }),
  });
  idp.on('request', provider.callback());
  const db = openDatabase(`${tmp.dir}/gateway.db`, sqliteMigrations);
  access = createAccess({
    stores: sqliteAccessStores(db, (r) => Role.parse(r)),
    now: () => Date.now(),
    oidc: {
      issuer,
      clientId: 'visittag',
      clientSecret: 'visittag-test-secret-0123456789',
      redirectUri,
      allowHttp: true,
    },
  });
  await access.service.createUser('test', {
    name: 'sso-coord',
    displayName: 'SSO Coordinator',
    role: 'coordinator',
  });
  gateway = new AdminServer({
    host: '127.0.0.1',
    port: gwPort,
    token: 'oidc-test-admin-token-0123456789',
    logger: pino({ level: 'silent' }),
    routes: [
      { method: 'GET', path: '/', handler: () => ({ status: 200, body: 'home', contentType: 'text/plain' }) },
      ...access.routes,
    ],
    publicPaths: ['/', ...access.publicPaths],
    authenticate: access.authenticate,
    authorize: access.authorize,
  });
  await gateway.start();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  idp?.closeAllConnections();
  await new Promise<void>((r) => (idp ? idp.close(() => r()) : r()));
  cleanup?.();
});

async function signIn(login: string): Promise<{ url: string; me: number; body: string }> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${gateway.url}/api/auth/oidc/start`);
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any-password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL((u) => u.href.startsWith(gateway.url));
  const me = await page.evaluate(async () => {
    const r = await fetch('/api/auth/me');
    return { status: r.status, body: await r.text() };
  });
  const url = page.url();
  await ctx.close();
  return { url, me: me.status, body: me.body };
}

describe('single sign-on (OpenID Connect) against a local provider', () => {
  it('logs in the account named by the provider, with the role from the gateway, and audits the binding', async () => {
    const r = await signIn('sso-coord');
    expect(r.url).toBe(`${gateway.url}/`);
    expect(r.me).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({
      kind: 'session',
      user: { name: 'sso-coord', role: 'coordinator', sso: true },
    });
    const bound = (await access.auditStore.list({ limit: 10, action: 'user.sso-bound' }))[0];
    expect(bound?.actor).toBe('user:sso-coord');
  }, 60_000);

  it('gives no session to a person the gateway has no account for', async () => {
    const r = await signIn('stranger');
    expect(r.url).toContain('error=sso-no-account');
    expect(r.me).toBe(401);
  }, 60_000);
});
