import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import { ADMIN_TOKEN, tempDir, testConfig } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { bundleGateway, spawnGateway, type GatewayChild } from './pg-gateway-child.js';

/**
 * Accounts, sessions and the audit log shared by two real gateway processes on one PostgreSQL database
 * (`store.engine: "postgres"`, issue 14): a user created through A's API logs in on B and the session
 * works on both; logged out on A, the cookie is refused on B; disabled on A, B's session of that user
 * ends; API changes made on both instances at once land in ONE audit log, in one order, and the audit
 * API of either instance shows the same entries; failed logins on both count toward one limit. No
 * password, hash or cookie reaches the logs.
 */

const PASSWORD = 'a-long-password-1';
const USERS_PER_INSTANCE = Number(process.env.VT_ACCESS_USERS ?? 8);

describe('accounts, sessions and audit log shared by two gateway processes on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  const children: GatewayChild[] = [];
  beforeAll(async () => {
    [pgc, bundle] = await Promise.all([startPgCluster(), bundleGateway()]);
    tmp = tempDir('vt-pg-access-');
  }, 120_000);
  afterAll(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null) {
        c.proc.kill('SIGTERM');
        await c.exited;
      }
    }
    bundle?.cleanup();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'a user made on A logs in on B; logout and disabling on A end the session on B; one audit log',
    {
      timeout: 300_000,
    },
    async () => {
      const url = await pgc.createDatabase();
      const files = [0, 1].map((i) => {
        const cfg = testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 3 },
          logLevel: 'info',
        });
        const file = join(tmp.dir, `gw-${i}.json`);
        writeFileSync(file, JSON.stringify(cfg));
        return file;
      });
      children.push(...(await Promise.all(files.map((f) => spawnGateway(bundle.file, f)))));
      const [a, b] = children as [GatewayChild, GatewayChild];
      const call = async (
        c: GatewayChild,
        path: string,
        o: { method?: string; body?: unknown; cookie?: string; csrf?: string; admin?: boolean } = {},
      ) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
          method: o.method ?? 'GET',
          headers: {
            ...(o.admin ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {}),
            ...(o.cookie ? { cookie: `vt_session=${o.cookie}` } : {}),
            ...(o.csrf ? { 'x-csrf-token': o.csrf } : {}),
            ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
        });
        const setCookie = res.headers.get('set-cookie') ?? '';
        return {
          status: res.status,
          body: (await res.json().catch(() => null)) as Record<string, unknown> | null,
          cookie: /vt_session=([^;]*)/.exec(setCookie)?.[1] ?? null,
        };
      };
      const login = async (c: GatewayChild, name: string) => {
        const r = await call(c, '/api/auth/login', { method: 'POST', body: { name, password: PASSWORD } });
        return {
          status: r.status,
          cookie: r.cookie ?? '',
          csrf: typeof r.body?.csrf === 'string' ? r.body.csrf : '',
        };
      };
      const me = async (c: GatewayChild, cookie: string) =>
        (await call(c, '/api/auth/me', { cookie })).status;

      // made through A, logs in on B; the session is good on both
      const made = await call(a, '/api/users', {
        method: 'POST',
        admin: true,
        body: {
          name: 'anna.s',
          displayName: 'Anna S',
          role: 'coordinator',
          areas: ['north'],
          password: PASSWORD,
        },
      });
      expect(made.status).toBe(201);
      const userId = String(
        (made.body?.user as { userId?: string } | undefined)?.userId ?? made.body?.userId,
      );
      const s1 = await login(b, 'anna.s');
      expect(s1.status).toBe(200);
      expect(s1.cookie).not.toBe('');
      expect(await me(b, s1.cookie)).toBe(200);
      expect(await me(a, s1.cookie)).toBe(200);
      // logged out on A: refused on B at the next request
      expect(
        (await call(a, '/api/auth/logout', { method: 'POST', cookie: s1.cookie, csrf: s1.csrf })).status,
      ).toBe(200);
      expect(await me(b, s1.cookie)).toBe(401);
      expect(await me(a, s1.cookie)).toBe(401);
      // a new session on B, the account disabled through A: B refuses it, and a new login on B
      const s2 = await login(b, 'anna.s');
      expect(await me(b, s2.cookie)).toBe(200);
      const disabled = await call(a, `/api/users/${userId}`, {
        method: 'PUT',
        admin: true,
        body: { disabled: true, reason: 'left the job' },
      });
      expect(disabled.status).toBe(200);
      expect(await me(b, s2.cookie)).toBe(401);
      expect((await login(b, 'anna.s')).status).toBe(401);

      // changes through both instances at once: one audit log, one order, the same on either API
      await Promise.all(
        [a, b].flatMap((c, i) =>
          Array.from({ length: USERS_PER_INSTANCE }, (_, k) =>
            call(c, '/api/users', {
              method: 'POST',
              admin: true,
              body: {
                name: `u${i}-${k}`,
                displayName: `U ${i} ${k}`,
                role: 'technician',
                password: PASSWORD,
              },
            }).then((r) => expect(r.status).toBe(201)),
          ),
        ),
      );
      const exported = async (c: GatewayChild) =>
        (await call(c, '/api/audit/export?format=json', { admin: true })).body?.entries as Array<{
          seq: number;
          action: string;
          target: string;
          actor: string;
        }>;
      const [onA, onB] = await Promise.all([exported(a), exported(b)]);
      expect(onA).toEqual(onB);
      const seqs = onA.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(onA.filter((e) => e.action === 'user.create')).toHaveLength(1 + 2 * USERS_PER_INSTANCE);
      // the entries made on A and on B before the burst, in the order they happened
      expect(
        onA
          .filter((e) => e.target === `user:${userId}`)
          .map((e) => e.action)
          .slice(0, 4),
      ).toEqual(['user.create', 'session.login', 'session.login', 'user.update']);
      // the newest-first page of either instance is the tail of the same log
      const page = (await call(b, '/api/audit?limit=5', { admin: true })).body?.entries as Array<{
        seq: number;
      }>;
      expect(page.map((e) => e.seq)).toEqual(seqs.slice(-5).reverse());
      // failed logins are counted by both instances together: 5 wrong passwords on each, then the right one
      // is refused on both (the limit is 10 per name and 15 minutes, not 10 per instance)
      for (let i = 0; i < 10; i++) {
        const r = await call(i % 2 ? b : a, '/api/auth/login', {
          method: 'POST',
          body: { name: 'u0-0', password: 'not-the-password' },
        });
        expect(r.status).toBe(401);
      }
      expect((await login(a, 'u0-0')).status).toBe(429);
      expect((await login(b, 'u0-0')).status).toBe(429);
      expect((await login(b, 'u1-0')).status).toBe(200); // another name is not affected

      // on PostgreSQL, not in the instances' SQLite files: one table
      const pool = openPgPool({ url, max: 1 });
      try {
        const n = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
        expect(n.rows[0]?.n).toBe(onA.length + 1); // and the login of u1-0 above
        const hashes = await pool.query<{ h: string }>('SELECT password_hash AS h FROM auth_users LIMIT 1');
        const hash = hashes.rows[0]?.h ?? '';
        expect(hash.length).toBeGreaterThan(20);
        // no secret in either instance's log
        for (const c of children) {
          const text = c.lines().join('\n');
          for (const secret of [PASSWORD, hash, s1.cookie, s2.cookie, s1.csrf])
            expect(text).not.toContain(secret);
        }
      } finally {
        await pool.end();
      }
      console.log(
        `access shared by 2 instances: ${onA.length} audit entries in one order, load ${loadavg()[0]?.toFixed(1)}`,
      );
    },
  );
});
