import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AdminServer, type AdminServerOptions } from '../../gateway/src/admin/server.js';
import type { AdminRoute } from '../../gateway/src/admin/types.js';

const TOKEN = 'http-layer-test-token-0123456789';
const silent = pino({ level: 'silent' });

const routes: AdminRoute[] = [
  { method: 'GET', path: '/healthz', handler: () => ({ status: 200, body: { status: 'ok' } }) },
  { method: 'POST', path: '/api/echo', handler: (req) => ({ status: 200, body: { got: req.body ?? null } }) },
  {
    method: 'POST',
    path: '/api/things/:thingId',
    schema: {
      summary: 'Create a thing',
      params: z.object({ thingId: z.string().min(1) }),
      body: z.object({ name: z.string().min(2), count: z.number().int() }),
    },
    handler: (req) => ({ status: 201, body: { id: req.params.thingId, actor: req.actor } }),
  },
];

let server: AdminServer | undefined;
let cleanup: (() => void) | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  cleanup?.();
  cleanup = undefined;
});

async function start(extra: Partial<AdminServerOptions> = {}): Promise<AdminServer> {
  server = new AdminServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    logger: silent,
    routes,
    publicPaths: ['/healthz'],
    ...extra,
  });
  await server.start();
  return server;
}

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

describe('admin HTTP layer (Fastify)', () => {
  it('answers 413 (a response, not a reset) to a 2 MiB body and still serves the next request', async () => {
    const s = await start();
    const big = JSON.stringify({ blob: 'x'.repeat(2 * 1024 * 1024) });
    const res = await fetch(`${s.url}/api/echo`, { method: 'POST', headers: auth, body: big });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/too large/);
    const ok = await fetch(`${s.url}/api/echo`, { method: 'POST', headers: auth, body: '{"a":1}' });
    expect(await ok.json()).toEqual({ got: { a: 1 } });
  });

  it('keeps the old contract: JSON whatever the content type, empty body, 400 on bad JSON, 401, 404, 405', async () => {
    const s = await start();
    const noType = await fetch(`${s.url}/api/echo`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body: '{"b":2}',
    });
    expect(await noType.json()).toEqual({ got: { b: 2 } });
    const empty = await fetch(`${s.url}/api/echo`, { method: 'POST', headers: auth });
    expect(await empty.json()).toEqual({ got: null });
    const bad = await fetch(`${s.url}/api/echo`, { method: 'POST', headers: auth, body: '{nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'body is not JSON' });
    const anon = await fetch(`${s.url}/api/echo`, { method: 'POST', body: '{}' });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Bearer');
    expect((await fetch(`${s.url}/api/nothing-here`)).status).toBe(401);
    expect((await fetch(`${s.url}/api/nothing-here`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${s.url}/api/echo`, { method: 'PATCH', headers: auth })).status).toBe(405);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it('validates zod route schemas (400 names the field) and publishes them in the OpenAPI document', async () => {
    const s = await start();
    const bad = await fetch(`${s.url}/api/things/t1`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ name: 'x', count: 1.5 }),
    });
    expect(bad.status).toBe(400);
    const issues = ((await bad.json()) as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(issues.join(' ')).toMatch(/name/);
    expect(issues.join(' ')).toMatch(/count/);
    const good = await fetch(`${s.url}/api/things/t1`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ name: 'xy', count: 2 }),
    });
    expect(good.status).toBe(201);
    expect(await good.json()).toEqual({ id: 't1', actor: 'admin-token' });
    const doc = (await (await fetch(`${s.url}/api/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>
      >;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/healthz', '/api/echo', '/api/things/{thingId}']),
    );
    const body = doc.paths['/api/things/{thingId}']?.post?.requestBody?.content['application/json']?.schema;
    expect(body).toMatchObject({ type: 'object', required: ['name', 'count'] });
  });

  it('sends security headers and no-store', async () => {
    const s = await start();
    const res = await fetch(`${s.url}/healthz`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(res.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('strict-transport-security')).toBeNull(); // only over HTTPS
  });

  it('rate-limits per client address with 429 and a message saying to wait', async () => {
    const s = await start({ rateLimit: { max: 5, windowMs: 60_000 } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fetch(`${s.url}/healthz`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const res = await fetch(`${s.url}/healthz`);
    expect(((await res.json()) as { error: string }).error).toMatch(/wait .+ and retry/);
  });

  it('serves HTTPS when a certificate is configured (with HSTS)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vt-tls-'));
    cleanup = () => rmSync(dir, { recursive: true, force: true });
    execFileSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const cert = readFileSync(join(dir, 'cert.pem'));
    const s = await start({ tls: { cert, key: readFileSync(join(dir, 'key.pem')) } });
    expect(s.url).toMatch(/^https:/);
    const got = await new Promise<{ status: number; hsts: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = httpsRequest(`${s.url}/healthz`, { ca: cert }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'], body }),
          );
        });
        req.on('error', reject);
        req.end();
      },
    );
    expect(got.status).toBe(200);
    expect(JSON.parse(got.body)).toEqual({ status: 'ok' });
    expect(got.hsts).toMatch(/max-age=/);
    // plain HTTP to the TLS port is not served
    await expect(fetch(s.url.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
  });
});
