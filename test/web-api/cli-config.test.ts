import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main } from '../../gateway/main.js';
import { loadGatewaySettings } from '../../gateway/src/config.js';
import { ADMIN_TOKEN, silent, tempDir } from '../gateway/helpers.js';

/**
 * The first admin from the command line (no default password), the gateway config keys for the admin
 * API's TLS and single sign-on with the errors they give, on real config files and a real gateway.
 */
let gw: Gateway | null = null;
let cleanup: (() => void) | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
  cleanup?.();
  cleanup = null;
});

function configFile(dir: string, admin: Record<string, unknown> = {}): string {
  const file = join(dir, 'gateway.json');
  writeFileSync(
    file,
    JSON.stringify({
      dataDir: './data',
      fleetKey: 'test-fleet-key-0123456789',
      mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN, ...admin },
    }),
  );
  return file;
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function startFrom(file: string): Promise<Gateway> {
  const loaded = loadGatewaySettings(file);
  if (!loaded.ok) throw new Error(loaded.error);
  gw = createGateway({ config: loaded.config, logger: silent });
  await gw.start();
  return gw;
}

async function login(
  url: string,
  name: string,
  password: string,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password }),
  });
  return { status: res.status, body: await res.json() };
}

describe('first admin from the CLI', () => {
  it('adds the first admin with a generated password shown once, which logs in; audited as the OS user', async () => {
    const tmp = tempDir('vt-user-cli-');
    cleanup = tmp.cleanup;
    const file = configFile(tmp.dir);
    const none = await run(['user', 'list', '--config', file]);
    expect(none.out).toMatch(
      /no users: add the first admin with: visittag-gateway user add admin --role admin/,
    );
    const r = await run(['user', 'add', 'admin', '--role', 'admin', '--config', file]);
    expect(r.code).toBe(0);
    const password = /password \(shown once[^)]*\): (\S+)/.exec(r.out)?.[1] ?? '';
    expect(password.length).toBeGreaterThanOrEqual(20);
    const bad = await run(['user', 'add', 'x', '--role', 'boss', '--config', file]);
    expect(bad.code).toBe(64);
    expect(bad.err).toMatch(/--role is required: one of admin, technician, coordinator/);
    const again = await run(['user', 'add', 'admin', '--role', 'admin', '--config', file]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/exists/);

    const g = await startFrom(file);
    expect((await login(g.adminUrl, 'admin', 'wrong-password-123')).status).toBe(401);
    const ok = await login(g.adminUrl, 'admin', password);
    expect(ok.status).toBe(200);
    expect(JSON.stringify(ok.body)).toMatch(/"role":\s*"admin"/);
    const audit = (await (
      await fetch(`${g.adminUrl}/api/audit?action=user.create`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { entries: { actor: string }[] };
    expect(audit.entries[0]?.actor).toMatch(/^cli:/);
    expect(JSON.stringify(audit.entries)).not.toContain(password);
  });

  it('takes a password from stdin in a real child process (visittag-gateway user add … --password-stdin)', async () => {
    const tmp = tempDir('vt-user-cli-');
    cleanup = tmp.cleanup;
    const file = configFile(tmp.dir);
    const child = spawn(
      process.execPath,
      [
        join('node_modules', 'tsx', 'dist', 'cli.mjs'),
        'gateway/main.ts',
        'user',
        'add',
        'anna',
        '--role',
        'coordinator',
        '--areas',
        'area-a,area-b',
        '--password-stdin',
        '--config',
        file,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end('anna-secret-password-42\n');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(out).toMatch(/user anna added \(role coordinator, areas area-a,area-b\)/);
    expect(code).toBe(0);
    expect(out).not.toContain('anna-secret-password-42');
    const g = await startFrom(file);
    const ok = await login(g.adminUrl, 'anna', 'anna-secret-password-42');
    expect(ok.status).toBe(200);
    expect(JSON.stringify(ok.body)).toMatch(/area-b/);
  }, 60_000);
});

describe('admin.tls and admin.oidc in the gateway config', () => {
  it('serves HTTPS with Secure session cookies from admin.tls files, relative to the config file', async () => {
    const tmp = tempDir('vt-admin-tls-');
    cleanup = tmp.cleanup;
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(tmp.dir, 'key.pem'), '-out', join(tmp.dir, 'cert.pem'),
    ], { stdio: 'ignore' }); // prettier-ignore
    chmodSync(join(tmp.dir, 'key.pem'), 0o600);
    const file = configFile(tmp.dir, { tls: { certFile: 'cert.pem', keyFile: 'key.pem' } });
    const added = await run(['user', 'add', 'admin', '--role', 'admin', '--config', file]);
    const password = /password \(shown once[^)]*\): (\S+)/.exec(added.out)?.[1] ?? '';
    const g = await startFrom(file);
    expect(g.adminUrl).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const ca = readFileSync(join(tmp.dir, 'cert.pem'));
    const res = await new Promise<{ status: number; cookie: string; hsts: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${g.adminUrl}/api/auth/login`,
        { ca, method: 'POST', headers: { 'content-type': 'application/json' } },
        (r) => {
          r.resume();
          r.on('end', () =>
            resolve({
              status: r.statusCode ?? 0,
              cookie: String(r.headers['set-cookie'] ?? ''),
              hsts: String(r.headers['strict-transport-security'] ?? ''),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ name: 'admin', password }));
    });
    expect(res.status).toBe(200);
    expect(res.cookie).toMatch(/vt_session=.*; Secure/);
    expect(res.hsts).toMatch(/max-age=/);
  });

  it('refuses to start on a missing, non-PEM or world-readable key file, naming the field and the fix', () => {
    const tmp = tempDir('vt-admin-tls-');
    cleanup = tmp.cleanup;
    const missing = configFile(tmp.dir, { tls: { certFile: 'nope.pem', keyFile: 'key.pem' } });
    const l1 = loadGatewaySettings(missing);
    if (!l1.ok) throw new Error(l1.error);
    expect(() => createGateway({ config: l1.config, logger: silent })).toThrow(
      /admin\.tls\.certFile: cannot read .*nope\.pem \(ENOENT\): give the path of the certificate/,
    );
    writeFileSync(join(tmp.dir, 'cert.pem'), 'hello');
    const l2 = loadGatewaySettings(
      configFile(tmp.dir, { tls: { certFile: 'cert.pem', keyFile: 'key.pem' } }),
    );
    if (!l2.ok) throw new Error(l2.error);
    expect(() => createGateway({ config: l2.config, logger: silent })).toThrow(
      /admin\.tls\.certFile: .* is not a PEM/,
    );
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=x', '-keyout', join(tmp.dir, 'key.pem'), '-out', join(tmp.dir, 'cert.pem')], { stdio: 'ignore' }); // prettier-ignore
    chmodSync(join(tmp.dir, 'key.pem'), 0o644);
    expect(() => createGateway({ config: l2.config, logger: silent })).toThrow(/chmod 600 .*key\.pem/);
  });

  it('validates admin.oidc with the field named, and mounts the SSO routes when it is set', async () => {
    const tmp = tempDir('vt-admin-oidc-');
    cleanup = tmp.cleanup;
    const bad = loadGatewaySettings(configFile(tmp.dir, { oidc: { issuer: 'not a url', clientId: 'x' } }));
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error).toMatch(/admin\.oidc\.issuer/);
      expect(bad.error).toMatch(/admin\.oidc\.clientSecret: is missing/);
    }
    const file = configFile(tmp.dir, {
      oidc: {
        issuer: 'http://127.0.0.1:9/',
        clientId: 'visittag',
        clientSecret: 'secret-0123456789',
        redirectUri: 'http://127.0.0.1:8080/api/auth/oidc/callback',
        allowHttp: true,
      },
    });
    const g = await startFrom(file);
    const paths = g.admin.mountedRoutes().map((r) => r.path);
    expect(paths).toContain('/api/auth/oidc/start');
  });
});
