import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import {
  AckCollector,
  ADMIN_TOKEN,
  card,
  connectReader,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { bundleGateway, eventsPayload, spawnGateway, tapOf, topics } from './pg-gateway-child.js';

/**
 * The real gateway process with `store.engine: "postgres"` (gateway/pg-instance.ts) on a cluster this
 * test starts: a reader added beforehand in the local SQLite file (taken into the shared registry at start), cards assigned through the admin API
 * (PostgreSQL card store), taps over MQTT, acks, and the fake planning backend receives every visit event
 * exactly once, with the staff member; the stored rows are in PostgreSQL. The start-up line names what
 * still lives in SQLite and that nothing is left unserved.
 */

const SECRET = 'pg-gateway-webhook-secret-0123';
const READERS = ['r-pg-1', 'r-pg-2'];
const TAPS = 24; // per reader: 3 cards, 4 visits each (start + stop)

describe('gateway process on PostgreSQL', () => {
  let pgc: PgCluster;
  let backend: FakeBackend;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  beforeAll(async () => {
    [pgc, bundle] = await Promise.all([startPgCluster(), bundleGateway()]);
    backend = await startFakeBackend({ secret: SECRET });
    tmp = tempDir('vt-pg-gw-');
  }, 120_000);
  afterAll(async () => {
    bundle?.cleanup();
    await backend?.close();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'taps over MQTT: stored in PostgreSQL, every visit event reaches the backend once',
    { timeout: 180_000 },
    async () => {
      const url = await pgc.createDatabase();
      const cfg = testConfig(join(tmp.dir, 'data'), {
        store: { engine: 'postgres', url, poolMax: 4 },
        backend: {
          url: backend.url,
          secret: SECRET,
          timeoutMs: 5000,
          batchMax: 50,
          backoff: { baseMs: 20, capMs: 200 },
        },
        logLevel: 'info',
      });
      // readers added offline in the local SQLite file (the CLI's offline path, or an older version):
      // the instance inserts them into PostgreSQL's shared registry when it starts
      const offline = createGateway({ config: cfg, logger: silent });
      for (const r of READERS)
        await offline.registry.addReader({ readerId: r, password: PASSWORD, clientRef: `home-${r}` });
      await offline.stop();
      const cfgFile = join(tmp.dir, 'gateway.json');
      writeFileSync(cfgFile, JSON.stringify(cfg));

      const child = await spawnGateway(bundle.file, cfgFile);
      const pool = openPgPool({ url, max: 2 });
      try {
        const mode = child
          .lines()
          .map(
            (l) =>
              JSON.parse(l) as {
                msg?: string;
                onPostgres?: string[];
                onSqlite?: string[];
                notServed?: string[];
              },
          )
          .find((l) => l.msg?.startsWith('store.engine postgres'));
        expect(mode?.onPostgres).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/^reader registry/),
            expect.stringMatching(/^accounts, sessions, API tokens and the audit log/),
            expect.stringMatching(/^care plan/),
            expect.stringMatching(/^reader replacement/),
            expect.stringMatching(/^card lifecycle/),
            expect.stringMatching(/^reports/),
            expect.stringMatching(/^visit corrections/),
            'web app',
          ]),
        );
        expect(mode?.onSqlite).toEqual(['the cache of verified reader credentials']);
        expect(mode?.onPostgres).toEqual(expect.arrayContaining([expect.stringMatching(/^secure cards/)]));
        // everything is served on PostgreSQL now (secure cards were the last, issue 14)
        expect(mode?.notServed).toEqual([]);

        // cards 1 and 2 assigned on PostgreSQL through the admin API; card 3 stays unknown
        for (const [k, staff] of [
          [1, 'staff-anna'],
          [2, 'staff-bo'],
        ] as const) {
          const res = await fetch(`http://127.0.0.1:${child.adminPort}/api/cards/${card(k)}/assign`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ staffRef: staff }),
          });
          expect(res.status).toBe(200);
        }

        for (const r of READERS) {
          const client = await connectReader(child.mqttPort, r);
          const acks = await AckCollector.attach(client, r);
          // two batches, the second re-sending part of the first (a device resend)
          const taps = Array.from({ length: TAPS }, (_, i) => tapOf(r, i + 1, card));
          await client.publishAsync(topics.events(r), eventsPayload(r, taps.slice(0, 16)), { qos: 1 });
          await client.publishAsync(topics.events(r), eventsPayload(r, taps.slice(10)), { qos: 1 });
          await acks.waitFor((a) => a.upTo === TAPS, 30_000);
          await client.endAsync(true);
        }

        // stored in PostgreSQL, each tap once
        const stored = await pool.query<{ reader_id: string; n: number }>(
          'SELECT reader_id, count(*)::int AS n FROM events GROUP BY reader_id ORDER BY reader_id',
        );
        expect(stored.rows).toEqual(READERS.map((r) => ({ reader_id: r, n: TAPS })));

        // 2 readers × 12 visits × (started + ended), plus one unknown-card anomaly per visit of card 3
        const visitsPerReader = TAPS / 2;
        await waitUntil(() => backend.received().length >= READERS.length * visitsPerReader * 2, 60_000);
        await waitUntil(
          async () =>
            (await pool.query(`SELECT 1 FROM outbox WHERE state <> 'delivered'`)).rowCount === 0 &&
            (await pool.query(`SELECT 1 FROM outbox`)).rowCount === backend.received().length,
          30_000,
        );
        const got = backend.received();
        const keys = got.map((e) => e.idempotencyKey);
        expect(new Set(keys).size).toBe(keys.length);
        expect(backend.conflicts).toBe(0);
        const started = got.filter((e) => e.type === 'visit.started');
        const ended = got.filter((e) => e.type === 'visit.ended');
        expect(started.length).toBe(READERS.length * visitsPerReader);
        expect(ended.length).toBe(READERS.length * visitsPerReader);
        const staffOf = (k: number) =>
          new Set(
            started.filter((e) => e.type === 'visit.started' && e.cardRef === card(k)).map((e) => e.staffRef),
          );
        expect(staffOf(1)).toEqual(new Set(['staff-anna']));
        expect(staffOf(2)).toEqual(new Set(['staff-bo']));
        expect(staffOf(3)).toEqual(new Set([null]));
        // the reader pages show PostgreSQL's sequence state (a copy refreshed every 5 s)
        await waitUntil(async () => {
          const res = await fetch(`http://127.0.0.1:${child.adminPort}/api/readers`, {
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          });
          const body = (await res.json()) as { readers: Array<{ readerId: string; contiguousUpto: number }> };
          return READERS.every((r) => body.readers.find((x) => x.readerId === r)?.contiguousUpto === TAPS);
        }, 20_000);
        // a gap accepted by an operator (the gap watch on PostgreSQL): seq 25 never comes, 26-28 pair on
        const r0 = READERS[0] as string;
        const client = await connectReader(child.mqttPort, r0);
        const acks = await AckCollector.attach(client, r0);
        const more = [26, 27, 28].map((q) => tapOf(r0, q, card));
        await client.publishAsync(topics.events(r0), eventsPayload(r0, more), { qos: 1 });
        await acks.waitFor((a) => a.upTo === TAPS && a.gaps?.some((g) => g.from === 25) === true, 30_000);
        const accept = await fetch(`http://127.0.0.1:${child.adminPort}/api/readers/${r0}/gaps/accept`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ reason: 'device journal lost seq 25' }),
        });
        expect(accept.status).toBe(200);
        await acks.waitFor((a) => a.upTo === 28, 30_000);
        await client.endAsync(true);
        const held = await pool.query<{ seq: number }>(
          'SELECT seq FROM rejected_events WHERE reader_id = $1',
          [r0],
        );
        expect(held.rows.map((x) => Number(x.seq))).toEqual([25]);
        // the reader's client came from the local file's row (inserted into PostgreSQL at start)
        expect(new Set(started.map((e) => e.clientRef))).toEqual(new Set(READERS.map((r) => `home-${r}`)));
      } finally {
        await pool.end();
        child.proc.kill('SIGTERM');
        expect(await child.exited).toBe(0);
      }
    },
  );
});
