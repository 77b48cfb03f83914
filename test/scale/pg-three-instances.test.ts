import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { createDynsecCredentials } from '../../gateway/src/broker/dynsec.js';
import { utcToLocal } from '../../gateway/src/care/time.js';
import type { GatewaySettings } from '../../gateway/src/config.js';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import { decode } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { ADMIN_TOKEN, card, PASSWORD, silent, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { startMosquitto, type MosquittoBroker } from '../support/mosquitto.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import {
  bundleGateway,
  eventsPayload,
  spawnGateway,
  tapOf,
  topics,
  type GatewayChild,
} from './pg-gateway-child.js';

/**
 * Three real gateway processes on ONE PostgreSQL database behind a real Mosquitto 2 (MQTT 5 shared
 * subscription `$share/visittag/…`: each batch goes to one instance). Simulated readers keep sending
 * everything above their acked mark plus new taps; mid-burst an instance picked by a seeded die is
 * killed with SIGKILL and started again, KILLS times; then PostgreSQL crashes and restarts (immediate
 * stop: recovery from the WAL), then the broker restarts. At the end every tap is stored once, every reader's
 * prefix is complete, every outbox row was delivered, and the fake backend holds every visit event
 * exactly once by idempotency key (one visit.started and one visit.ended per visit). The readers are
 * added on one instance only; the others take them from PostgreSQL, and a revoke through one instance
 * reaches the others. Before the burst a care plan is imported whose late and missed alerts fall due during
 * the kills and restarts (a 1 s sweep tick from the settings file): each alert is raised once and its event
 * reaches the backend once by key.
 */

const SECRET = 'pg-three-instances-secret-0123';
const GW = { username: 'visittag-gateway', password: 'gateway-broker-password-0123456789' };
const READERS = ['r3i-1', 'r3i-2', 'r3i-3', 'r3i-4'];
/** SIGKILLs of a random instance (each restarted at once); VT_KILLS=20 for the full run. */
const KILLS = Number(process.env.VT_KILLS ?? 4);
/** Taps each reader may send per kill cycle (the devices are held to an allowance that grows per cycle). */
const STEP = 12;
const TAPS = 6 * Math.ceil((24 + STEP * (KILLS + 2)) / 6); // per reader: 3 cards, whole start/stop pairs
const SEED = Number(process.env.VT_SEED ?? 0x5eed3);

/** mulberry32: a failing run replays with VT_SEED. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A device: every tick, the taps above its acked mark (at most 30) and one or two new ones up to its
 * allowance. It reconnects by itself (the broker restart) and resubscribes to its acks.
 */
class Device {
  acked = 0;
  next = 1;
  /** Highest seq it may send so far. */
  allowance = 24;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    readonly id: string,
    private readonly client: MqttClient,
    private readonly random: () => number,
  ) {
    client.on('message', (topic, payload) => {
      if (topic !== topics.acks(id)) return;
      const d = decode('acks', id, payload);
      if (d.ok && d.value.upTo > this.acked) this.acked = d.value.upTo;
    });
  }
  start(): void {
    this.timer = setInterval(() => this.tick(), 40);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
  private tick(): void {
    const cap = Math.min(TAPS, this.allowance) + 1;
    if (this.next < cap) this.next = Math.min(cap, this.next + 1 + Math.floor(this.random() * 2));
    const seqs: number[] = [];
    for (let s = this.acked + 1; s < this.next && seqs.length < 30; s++) seqs.push(s);
    if (!seqs.length) return;
    const payload = eventsPayload(
      this.id,
      seqs.map((s) => tapOf(this.id, s, card)),
    );
    this.client.publish(topics.events(this.id), payload, { qos: 1 }, () => undefined);
  }
}

describe('three gateway instances on one PostgreSQL behind Mosquitto: SIGKILLs, a PostgreSQL crash, a broker restart', () => {
  let pgc: PgCluster;
  let broker: MosquittoBroker;
  let backend: FakeBackend;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  const children: GatewayChild[] = [];
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    [pgc, broker, bundle] = await Promise.all([startPgCluster(), startMosquitto(), bundleGateway()]);
    backend = await startFakeBackend({ secret: SECRET });
    tmp = tempDir('vt-pg-3i-');
    // the operator's set-up on the broker: the gateways' account and the readers' accounts
    const admin = createDynsecCredentials({ url: broker.url, ...broker.admin, logger: silent });
    await admin.start();
    await admin.ensureRoles();
    await admin.upsertGateway(GW.username, GW.password);
    for (const r of READERS) await admin.upsertReader(r, PASSWORD);
    await admin.stop();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    bundle?.cleanup();
    await backend?.close();
    await broker?.destroy();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it('0 taps lost, every visit event once at the backend', { timeout: 600_000 }, async () => {
    const random = rng(SEED);
    const url = await pgc.createDatabase();
    const configs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const cfg: GatewaySettings = testConfig(join(tmp.dir, `gw-${i}`), {
        store: { engine: 'postgres', url, poolMax: 4 },
        mqtt: {
          mode: 'external',
          url: broker.url,
          ...GW,
          clientId: `gw-${i}`,
          protocolVersion: 5,
          sharedGroup: 'visittag',
        },
        // the lease of a claimed outbox row is (batchMax + 1) × timeoutMs: 11 s after a kill
        backend: {
          url: backend.url,
          secret: SECRET,
          timeoutMs: 1000,
          batchMax: 10,
          backoff: { baseMs: 20, capMs: 200 },
        },
        ingest: { groupCommitMs: 5, groupCommitMax: 50 },
        care: { tickSeconds: 1 },
        logLevel: 'warn',
      });
      // the readers are added on instance 0 only (its SQLite registry, the CLI's offline path): the others
      // take them from PostgreSQL's readers, where instance 0 puts them at start
      if (i === 0) {
        const offline = createGateway({ config: cfg, logger: silent });
        for (const r of READERS) {
          await offline.registry.addReader({ readerId: r, password: PASSWORD, clientRef: `home-${r}` });
        }
        await offline.stop();
      }
      const file = join(tmp.dir, `gw-${i}.json`);
      writeFileSync(file, JSON.stringify(cfg));
      configs.push(file);
    }
    children.push(await spawnGateway(bundle.file, configs[0] as string));
    children.push(...(await Promise.all(configs.slice(1).map((f) => spawnGateway(bundle.file, f)))));

    // a care plan whose alerts fall due during the chaos: late after 1 min, missed after 2 (the last one about a
    // minute after the import), imported through instance 1
    const MIN = 60_000;
    const api = async (c: GatewayChild, path: string, method: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: await res.json().catch((): unknown => null) };
    };
    const planVia = children[1] as GatewayChild;
    const areas = [{ areaId: 'a-3i', name: 'Area 3i', lateAfterMinutes: 1, missedAfterMinutes: 2 }];
    expect((await api(planVia, '/api/plan/registry', 'PUT', { areas })).status).toBe(200);
    const minute = Math.floor(Date.now() / MIN) * MIN;
    const planRows = [minute - 3 * MIN, minute - MIN].map((startMs, n) => {
      const l = utcToLocal(startMs);
      return {
        plannedVisitId: `pv-3i-${n}`,
        clientRef: `k-3i-${n}`,
        date: l.date,
        start: l.time,
        plannedMinutes: 30,
      };
    });
    const planDates = planRows.map((r) => r.date).sort();
    const imported = await api(planVia, '/api/plan/import', 'POST', {
      areaId: 'a-3i',
      fromDate: planDates[0],
      toDate: planDates[planDates.length - 1],
      visits: planRows,
    });
    expect(imported.status, JSON.stringify(imported.body)).toBe(200);
    const expectedAlerts = planRows
      .flatMap((r) => [`${r.plannedVisitId}:late`, `${r.plannedVisitId}:missed`])
      .sort();

    const devices: Device[] = [];
    for (const r of READERS) {
      const c = await mqtt.connectAsync(broker.url, {
        clientId: r,
        username: r,
        password: PASSWORD,
        protocolVersion: 5,
        reconnectPeriod: 200,
        connectTimeout: 5000,
      });
      c.on('error', () => undefined);
      clients.push(c);
      await c.subscribeAsync(topics.acks(r), { qos: 1 });
      devices.push(new Device(r, c, random));
    }
    devices.forEach((d) => d.start());
    let redeliveriesBeforeRestarts = 0;
    try {
      /** Grants every device STEP more taps and waits until some of them are acked (the burst goes on). */
      const progress = async (what: string) => {
        devices.forEach((d) => (d.allowance = Math.min(TAPS, d.allowance + STEP)));
        const target = devices.map((d) => Math.max(d.acked, d.allowance - STEP) + 4);
        await waitUntil(() => devices.every((d, i) => d.acked >= (target[i] ?? 0)), 90_000).catch(() => {
          throw new Error(`no progress (${what}): acked ${devices.map((d) => d.acked).join(',')}`);
        });
      };
      for (let k = 0; k < KILLS; k++) {
        // mid-burst: every reader has new taps acked since the last kill, then a random instance dies
        await progress(`before kill ${k}`);
        const victim = Math.floor(random() * 3);
        const killed = children[victim] as GatewayChild;
        killed.proc.kill('SIGKILL');
        await killed.exited;
        children[victim] = await spawnGateway(bundle.file, configs[victim] as string);
      }
      redeliveriesBeforeRestarts = backend.duplicates;
      // PostgreSQL crashes (no checkpoint) and comes back on the same port: the instances retry
      await progress('before the PostgreSQL restart');
      pgc.restart('immediate');
      await progress('after the PostgreSQL restart');
      // the broker restarts: instances and devices reconnect, the devices resend above their acks
      await broker.restart();
      devices.forEach((d) => (d.allowance = TAPS));
      await waitUntil(() => devices.every((d) => d.acked === TAPS), 120_000).catch(() => {
        throw new Error(`not all acked after the broker restart: ${devices.map((d) => d.acked).join(',')}`);
      });
    } finally {
      devices.forEach((d) => d.stop());
    }

    const pool = openPgPool({ url, max: 2 });
    try {
      // every late/missed alert raised once, its event once at the backend by key (the last fires ~1 min after import)
      const alertKeys = async () =>
        (
          await pool.query<{ k: string }>(
            `SELECT planned_visit_id || ':' || kind AS k FROM care_alerts ORDER BY 1`,
          )
        ).rows.map((r) => r.k);
      await waitUntil(async () => (await alertKeys()).length >= expectedAlerts.length, 180_000);
      expect(await alertKeys()).toEqual(expectedAlerts);
      const raisedKeys = expectedAlerts.map((e) => `pa1:${e}:raised`);
      const queued = await pool.query<{ k: string; n: number }>(
        `SELECT idempotency_key AS k, count(*)::int AS n FROM outbox WHERE idempotency_key LIKE 'pa1:%'
          GROUP BY idempotency_key ORDER BY 1`,
      );
      expect(queued.rows).toEqual(raisedKeys.map((k) => ({ k, n: 1 })));
      // every tap stored once; every reader's prefix complete
      const stored = await pool.query<{ r: string; n: number; lo: number; hi: number }>(
        'SELECT reader_id AS r, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM events GROUP BY reader_id ORDER BY reader_id',
      );
      expect(stored.rows).toEqual(READERS.map((r) => ({ r, n: TAPS, lo: 1, hi: TAPS })));
      const seq = await pool.query<{ r: string; u: number }>(
        'SELECT reader_id AS r, contiguous_upto::int AS u FROM reader_seq ORDER BY reader_id',
      );
      expect(seq.rows).toEqual(READERS.map((r) => ({ r, u: TAPS })));
      // every reader processed by the visits engine (the sweep catches a reader whose instance died)
      await waitUntil(
        async () =>
          (
            await pool.query(
              `SELECT 1 FROM reader_seq s LEFT JOIN visit_cursor c USING (reader_id)
                WHERE COALESCE(c.processed_upto, 0) < s.contiguous_upto`,
            )
          ).rowCount === 0,
        60_000,
      );
      // every outbox row delivered (a dead instance's claims expire), each key once at the backend
      await waitUntil(
        async () =>
          (await pool.query(`SELECT 1 FROM outbox WHERE state <> 'delivered'`)).rowCount === 0 &&
          (await pool.query('SELECT 1 FROM outbox')).rowCount === backend.received().length,
        90_000,
      );
      const keys = (await pool.query<{ k: string }>('SELECT idempotency_key AS k FROM outbox')).rows.map(
        (x) => x.k,
      );
      const got = backend.received();
      expect(got.map((e) => e.idempotencyKey).sort()).toEqual([...keys].sort());
      expect(backend.conflicts).toBe(0);
      const started = got.filter((e) => e.type === 'visit.started').map((e) => `${e.readerId}/${e.visitId}`);
      const ended = got.filter((e) => e.type === 'visit.ended').map((e) => `${e.readerId}/${e.visitId}`);
      const visits = READERS.length * (TAPS / 2);
      expect(new Set(started).size).toBe(visits);
      expect(started.length).toBe(visits);
      expect(new Set(ended).size).toBe(visits);
      expect(ended.length).toBe(visits);
      const alerted = got.filter((e) => e.type === 'plan.alert.raised').map((e) => e.idempotencyKey);
      expect(alerted.sort()).toEqual(raisedKeys);
      // a revoke through one instance reaches the others' registries (PostgreSQL's readers are the shared truth)
      expect(
        (await api(children[1] as GatewayChild, `/api/readers/${READERS[0]}/revoke`, 'POST')).status,
      ).toBe(200);
      for (const c of [children[0], children[2]] as GatewayChild[]) {
        await waitUntil(
          async () =>
            ((await api(c, `/api/readers/${READERS[0]}`, 'GET')).body as { revoked?: boolean }).revoked ===
            true,
          20_000,
        );
      }
      // what a crash can cost at most: a delivery the dead instance made but had not marked (sent again, same key)
      console.info(
        `pg-three-instances: seed ${SEED}, ${KILLS} SIGKILLs, PostgreSQL and broker restarted, ${TAPS} taps x ${READERS.length} readers, ${got.length} events delivered once by key, ${backend.duplicates} redeliveries of a key (${redeliveriesBeforeRestarts} by the kills), ${expectedAlerts.length} alerts raised once`,
      );
    } finally {
      await pool.end();
      for (const c of children) {
        if (c.proc.exitCode === null) {
          c.proc.kill('SIGTERM');
          await c.exited;
        }
      }
    }
  });
});
