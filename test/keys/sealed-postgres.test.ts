import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { createPgGateway } from '../../gateway/pg-instance.js';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import { GatewayCardKeys, pseudonymiseCard, sealCardUid, type PayloadInputOf } from '../../protocol/index.js';
import { AckCollector, connectReader, PASSWORD, silent, tempDir, testConfig } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * Sealed cards on the PostgreSQL engine (issue 16): the unsealing happens in the message handling before
 * the store, so a gateway on `store.engine: "postgres"` stores the same `c1_` and never the UID. Real
 * PostgreSQL cluster, the gateway in process, a reader over real MQTT publishing a sealed-v1 batch (one
 * fleet-key tap beside it), a resend deduped.
 */
const FLEET = 'test-fleet-key-0123456789';
const UID = '04A1B2C3D4E5F6';
const keys = new GatewayCardKeys(FLEET);

function filesUnder(dir: string, out: string[] = [], depth = 0): string[] {
  if (depth > 8) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) filesUnder(p, out, depth + 1);
    else if (st.isFile()) out.push(p);
  }
  return out;
}

describe('sealed cards on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    pgc = await startPgCluster();
    tmp = tempDir('vt-keys-pg-');
  }, 120_000);
  afterAll(async () => {
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'a sealed tap is stored as the fleet pseudonym; no UID in PostgreSQL or the gateway files',
    { timeout: 120_000 },
    async () => {
      const url = await pgc.createDatabase();
      const cfg = testConfig(join(tmp.dir, 'data'), { store: { engine: 'postgres', url, poolMax: 4 } });
      const offline = createGateway({ config: cfg, logger: silent }); // the reader registry is the SQLite file
      await offline.registry.addReader({ readerId: 'r-sealed', password: PASSWORD, clientRef: 'home-s' });
      await offline.stop();
      const gw = createPgGateway({ config: cfg, logger: silent });
      await gw.start();
      const pool = openPgPool({ url, max: 2 });
      try {
        const client = await connectReader(gw.mqttPort ?? 0, 'r-sealed');
        const acks = await AckCollector.attach(client, 'r-sealed');
        const time = (monoMs: number) => ({ wallMs: Date.now(), bootId: 'boot-s', monoMs, synced: true });
        const batch: PayloadInputOf<'events'> = {
          schemaVersion: 1,
          readerId: 'r-sealed',
          sentAt: time(30),
          events: [
            {
              readerId: 'r-sealed',
              seq: 1,
              eventId: 'e-s-1',
              card: keys.readerRef('r-sealed', UID),
              sealedCard: sealCardUid(UID, keys.publicKey, 'r-sealed'),
              decision: 'start',
              visitId: 'v-s-1',
              time: time(10),
            },
            {
              // a fleet-key tap in the same stream (a reader's journal from before it was moved over)
              readerId: 'r-sealed',
              seq: 2,
              eventId: 'e-s-2',
              card: pseudonymiseCard(UID, FLEET),
              decision: 'stop',
              visitId: 'v-s-1',
              time: time(20),
            },
          ],
        };
        await acks.publish('r-sealed', batch);
        await acks.waitFor((a) => a.upTo === 2, 30_000);
        await acks.publish('r-sealed', batch); // a resend: the same content once unsealed, a duplicate
        await acks.waitFor((a) => a.upTo === 2 && acks.acks.length >= 2, 30_000);
        expect(acks.acks.flatMap((a) => a.rejected)).toEqual([]);
        await client.endAsync(true);

        const rows = await pool.query<{ seq: number; event_json: string }>(
          "SELECT seq::int AS seq, event_json FROM events WHERE reader_id = 'r-sealed' ORDER BY seq",
        );
        expect(rows.rows.map((r) => r.seq)).toEqual([1, 2]);
        for (const r of rows.rows) {
          const e = JSON.parse(r.event_json) as { card: string; sealedCard?: string };
          expect(e.card).toBe(pseudonymiseCard(UID, FLEET));
          expect(e.sealedCard).toBeUndefined();
        }
        await pool.query('CHECKPOINT'); // the rows reach the data files too, not only the WAL
      } finally {
        await pool.end();
        await gw.stop();
      }
      // no spelling of the UID in any file of the PostgreSQL cluster or the gateway's data directory
      const forms = [Buffer.from(UID), Buffer.from(UID.toLowerCase()), Buffer.from(UID, 'hex')];
      const files = [...filesUnder(pgc.dir), ...filesUnder(join(tmp.dir, 'data'))];
      expect(files.length).toBeGreaterThan(10);
      const holding = files.filter((f) => {
        const bytes = readFileSync(f);
        return forms.some((x) => bytes.includes(x));
      });
      expect(holding).toEqual([]);
    },
  );
});
