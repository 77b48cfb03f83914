import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import {
  ADMIN_TOKEN,
  connectReader,
  connectRefused,
  PASSWORD,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { bundleGateway, spawnGateway, type GatewayChild } from './pg-gateway-child.js';

/**
 * The reader registry shared by three real gateway processes on one PostgreSQL database
 * (`store.engine: "postgres"`, each with its own embedded broker so that a login on each instance can
 * be tried): a reader enrolled through one instance can log in on the others; revoked through one,
 * its sessions on the others are dropped and new logins there are refused; moved through one, the
 * others show its new client; with every instance's LISTEN connection cut, a reader added meanwhile
 * still reaches them (reconnect + pull). Propagation times are printed (not asserted): the bound the
 * test holds is the waits' limits.
 */

const ROUNDS = Number(process.env.VT_REGISTRY_ROUNDS ?? 6);

describe('reader registry shared by three gateway processes on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  const children: GatewayChild[] = [];
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    [pgc, bundle] = await Promise.all([startPgCluster(), bundleGateway()]);
    tmp = tempDir('vt-pg-reg-');
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
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
    'enrol, revoke and move through one instance: the others accept, refuse and show it',
    { timeout: 300_000 },
    async () => {
      const url = await pgc.createDatabase();
      const files = [0, 1, 2].map((i) => {
        const cfg = testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 3 },
          logLevel: 'warn',
        });
        const file = join(tmp.dir, `gw-${i}.json`);
        writeFileSync(file, JSON.stringify(cfg));
        return file;
      });
      children.push(...(await Promise.all(files.map((f) => spawnGateway(bundle.file, f)))));
      const api = async (c: GatewayChild, path: string, method = 'GET', body?: unknown) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return {
          status: res.status,
          body: (await res.json().catch(() => null)) as Record<string, unknown> | null,
        };
      };
      const reader = async (c: GatewayChild, id: string) => {
        const r = await api(c, `/api/readers/${id}`);
        return r.status === 200 ? r.body : null;
      };
      /** ms until `pred` holds on every one of `on` (polled every 10 ms, bounded). */
      const until = async (
        on: GatewayChild[],
        pred: (c: GatewayChild) => Promise<boolean>,
        limitMs = 30_000,
      ) => {
        const t0 = performance.now();
        await Promise.all(on.map((c) => waitUntil(() => pred(c), limitMs)));
        return performance.now() - t0;
      };
      const added: number[] = [];
      const revoked: number[] = [];
      const moved: number[] = [];
      for (let k = 0; k < ROUNDS; k++) {
        const [a, b, c] = [0, 1, 2].map((i) => children[(k + i) % 3] as GatewayChild) as [
          GatewayChild,
          GatewayChild,
          GatewayChild,
        ];
        const id = `r-shared-${k}`;
        // enrolled through a: the others see it and accept its login
        let t0 = performance.now();
        expect(
          (await api(a, '/api/readers', 'POST', { readerId: id, password: PASSWORD, clientRef: `home-${k}` }))
            .status,
        ).toBe(201);
        added.push(
          performance.now() - t0 + (await until([b, c], async (x) => (await reader(x, id)) !== null)),
        );
        const sessions = await Promise.all([b, c].map((x) => connectReader(x.mqttPort, id)));
        clients.push(...sessions);
        const closed = sessions.map((s) => new Promise<void>((res) => s.once('close', () => res())));
        // revoked through a: its sessions on b and c are dropped, new logins there refused
        t0 = performance.now();
        expect((await api(a, `/api/readers/${id}/revoke`, 'POST')).status).toBe(200);
        await Promise.race([
          Promise.all(closed),
          new Promise((_, rej) => setTimeout(() => rej(new Error('sessions not dropped in 30 s')), 30_000)),
        ]);
        revoked.push(performance.now() - t0);
        for (const x of [b, c]) {
          expect(
            (await connectRefused(x.mqttPort, { clientId: id, username: id, password: PASSWORD })).refused,
          ).toBe(true);
          expect((await reader(x, id))?.revoked).toBe(true);
        }
        // moved through b: a and c show the new client
        t0 = performance.now();
        expect((await api(b, `/api/readers/${id}/move`, 'POST', { clientRef: `home-${k}-new` })).status).toBe(
          200,
        );
        moved.push(
          performance.now() -
            t0 +
            (await until([a, c], async (x) => (await reader(x, id))?.clientRef === `home-${k}-new`)),
        );
      }

      // every instance's LISTEN connection cut: a reader added meanwhile still arrives (reconnect, pull)
      const pool = openPgPool({ url, max: 1 });
      try {
        const cut = await pool.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'visittag-readers-%'`,
        );
        expect(cut.rowCount).toBe(3);
        const [a, b, c] = children as [GatewayChild, GatewayChild, GatewayChild];
        expect(
          (
            await api(a, '/api/readers', 'POST', {
              readerId: 'r-after-cut',
              password: PASSWORD,
              clientRef: 'home-x',
            })
          ).status,
        ).toBe(201);
        const afterCut = await until([b, c], async (x) => (await reader(x, 'r-after-cut')) !== null);
        const s = await connectReader(c.mqttPort, 'r-after-cut');
        await s.endAsync(true);
        // every instance listens again (each reconnects on its own back-off from 1 s: the two that saw the
        // reader may have been back before the third, so this waits for all three, bounded)
        const listening = async () =>
          (
            await pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'visittag-readers-%' AND query ILIKE 'LISTEN%'`,
            )
          ).rows[0]?.n;
        await waitUntil(async () => (await listening()) === 3, 30_000);
        expect(await listening()).toBe(3);
        const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)] ?? NaN;
        const fmt = (xs: number[]) => `median ${med(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
        console.info(
          `pg-registry-instances: ${ROUNDS} rounds over 3 processes, load ${loadavg()[0]?.toFixed(1)}: ` +
            `add -> visible on the other two ${fmt(added)}; revoke -> sessions on the other two dropped ${fmt(revoked)}; ` +
            `move -> visible ${fmt(moved)}; add with every LISTEN connection cut -> visible after ${afterCut.toFixed(0)} ms`,
        );
      } finally {
        await pool.end();
      }
    },
  );
});
