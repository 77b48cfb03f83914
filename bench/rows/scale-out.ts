/**
 * Scale-out row (issue 14): three gateway processes vs one, each on PostgreSQL behind Mosquitto 2 with
 * an MQTT 5 shared subscription, the same load generator (lightweight MQTT clients, one batch in flight
 * per reader, waiting for the gateway's app-level ack) side by side in one run. Each topology gets a
 * fresh database; the broker, the PostgreSQL server, the gateways and the generator all share this box.
 * The figure is acked taps/s (durable in PostgreSQL); how long the visits engine then needed to catch up
 * is in the details, so a figure that only moved work past the end of the burst shows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { createDynsecCredentials } from '../../gateway/src/broker/dynsec.js';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import { startMosquitto } from '../../test/support/mosquitto.js';
import { startPgCluster } from '../../test/support/pg-cluster.js';
import { bundleGateway, spawnGateway, type GatewayChild } from '../../test/scale/pg-gateway-child.js';
import { ADMIN_TOKEN, BACKEND_SECRET, FLEET_KEY, readerIds, type RowContext } from '../lib/ctx.js';
import { cardsFor, Fleet, sum } from '../lib/harness.js';
import { wallNow } from '../lib/stats.js';
import { benchCards } from '../lib/taps.js';
import type { Row } from '../lib/types.js';

const GATEWAY = { username: 'visittag-gateway', password: 'bench-gateway-broker-password-0123' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function adminCall(port: number, path: string, body?: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

interface Run {
  instances: number;
  tapsPerSec: number;
  taps: number;
  failed: number;
  elapsedMs: number;
  /** Events not yet through the visits engine when the burst ended, and ms until they were (null: not in 60 s). */
  visitLag: { atEnd: number; catchUpMs: number | null };
}

export async function scaleOutRows(ctx: RowContext): Promise<Row[]> {
  const p = ctx.profile.ingest;
  const [pgc, broker, bundle] = await Promise.all([
    startPgCluster({ prefix: 'visittag-bench-pg-' }),
    startMosquitto(),
    bundleGateway(),
  ]);
  ctx.onCleanup(() => pgc.destroy());
  ctx.onCleanup(() => broker.destroy());
  ctx.onCleanup(() => Promise.resolve(bundle.cleanup()));
  const children: GatewayChild[] = [];
  ctx.onCleanup(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    await Promise.resolve();
  });
  const gen = await ctx.worker('gen', 'loadgen');
  // the operator's set-up on the broker: roles, the gateways' account, every reader's account
  const dynsec = createDynsecCredentials({
    url: broker.url,
    ...broker.admin,
    logger: pino({ level: 'silent' }),
  });
  await dynsec.start();
  await dynsec.ensureRoles();
  await dynsec.upsertGateway(GATEWAY.username, GATEWAY.password);

  const run = async (instances: number): Promise<Run> => {
    const url = await pgc.createDatabase(`bench_${instances}`);
    const readers = readerIds(`so${instances}`, p.readers);
    for (const r of readers) await dynsec.upsertReader(r.readerId, r.password);
    const configFile = (i: number): string => {
      const dir = ctx.tempDir(`scale-out-${instances}-${i}`);
      const file = join(dir, 'gateway.json');
      writeFileSync(
        file,
        JSON.stringify({
          dataDir: join(dir, 'data'),
          fleetKey: FLEET_KEY,
          store: { engine: 'postgres', url, poolMax: 4 },
          mqtt: {
            mode: 'external',
            url: broker.url,
            ...GATEWAY,
            clientId: `bench-gw-${instances}-${i}`,
            protocolVersion: 5,
            sharedGroup: 'visittag',
          },
          admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
          backend: { secret: BACKEND_SECRET },
          logLevel: 'warn',
        }),
      );
      return file;
    };
    // instance 0 first (it applies the migrations), then the others together
    const first = await spawnGateway(bundle.file, configFile(0));
    children.push(first);
    const rest = await Promise.all(
      Array.from({ length: instances - 1 }, (_, i) => spawnGateway(bundle.file, configFile(i + 1))),
    );
    children.push(...rest);
    const started = [first, ...rest];
    for (const r of readers) {
      const res = await adminCall(first.adminPort, '/api/readers', r);
      if (res.status !== 201) throw new Error(`adding ${r.readerId}: HTTP ${res.status}`);
    }
    const cards = benchCards(cardsFor(readers.length), FLEET_KEY);
    for (const [i, c] of cards.entries()) {
      const res = await adminCall(first.adminPort, `/api/cards/${c.cardRef}/assign`, {
        staffRef: `staff-${i + 1}`,
      });
      if (res.status !== 200) throw new Error(`assigning a card: HTTP ${res.status}`);
    }
    // every instance admits every reader (each takes the readers from PostgreSQL within 5 s)
    const deadline = wallNow() + 30_000;
    for (const c of started) {
      for (;;) {
        const list = (await (await adminCall(c.adminPort, '/api/readers')).json()) as { readers: unknown[] };
        if (list.readers.length >= readers.length) break;
        if (wallNow() > deadline) throw new Error('an instance did not take the readers from PostgreSQL');
        await sleep(200);
      }
    }
    ctx.say(`${instances} gateway instance(s) on PostgreSQL: burst`);
    const fleet = await Fleet.start(ctx, {
      reuse: [gen],
      name: `so-gen-${instances}`,
      url: broker.url,
      readers,
      batchSize: p.batchSize,
      appAcks: true,
    });
    await fleet.all('connect', { timeoutMs: 60_000, concurrency: 50 });
    const rs = await fleet.all<{
      messages: number;
      taps: number;
      failed: number;
      startedAt: number;
      lastAt: number;
    }>(
      'burst',
      {
        durationMs: p.durationMs,
        batches: Math.max(2, Math.ceil(p.maxTapsPerReader / p.batchSize)),
        waitFor: 'ack',
        startAt: wallNow() + 300,
      },
      p.durationMs + 120_000,
    );
    const elapsedMs = Math.max(...rs.map((r) => r.lastAt)) - Math.min(...rs.map((r) => r.startedAt));
    const messages = sum(rs.map((r) => r.messages));
    // the visits engine runs behind the acks: events stored but not yet past the visit cursor
    const pool = openPgPool({ url, max: 1 });
    const behind = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            `SELECT COALESCE(SUM(GREATEST(s.contiguous_upto - COALESCE(c.processed_upto, 0), 0)), 0) AS n
               FROM reader_seq s LEFT JOIN visit_cursor c USING (reader_id)`,
          )
        ).rows[0]?.n ?? 0,
      );
    const atEnd = await behind();
    const t0 = wallNow();
    let lag = atEnd;
    while (lag > 0 && wallNow() - t0 < 60_000) {
      await sleep(50);
      lag = await behind();
    }
    await pool.end();
    await fleet.all('close');
    for (const c of started) {
      c.proc.kill('SIGTERM');
      await c.exited;
    }
    return {
      instances,
      tapsPerSec: (messages * p.batchSize) / (Math.max(1, elapsedMs) / 1000),
      taps: messages * p.batchSize,
      failed: sum(rs.map((r) => r.failed)),
      elapsedMs,
      visitLag: { atEnd, catchUpMs: lag > 0 ? null : wallNow() - t0 },
    };
  };

  const one = await run(1);
  const three = await run(3);
  await dynsec.stop();
  return [
    ctx.done({
      id: 'gateway-pg-3-vs-1',
      figure: 'gateway processes on PostgreSQL behind Mosquitto (shared subscription): 3 instances vs 1',
      generator: 'lightweight MQTT clients',
      value: Math.round(three.tapsPerSec),
      unit: 'taps/s',
      baseline: Math.round(one.tapsPerSec),
      baselineLabel: '1 instance',
      ratio: three.tapsPerSec / one.tapsPerSec,
      target: '— (context)',
      met: null,
      note:
        `${p.readers} readers, batches of ${p.batchSize} taps, one in flight per reader, ${p.durationMs / 1000} s each, acked = durable in PostgreSQL; ` +
        'broker, PostgreSQL, the gateways and the generator share this box (2 cores here): more instances add processes competing for the same cores, ' +
        'so this shows that instances share the load correctly and what the contention costs, not what 3 machines would do',
      details: { one, three },
    }),
  ];
}
