/**
 * Secure cards on PostgreSQL shared by two instances (issue 14), on a cluster this test starts:
 * - the verifier of two "instances" (two pools, two stores) given the same SUN message, or the same
 *   DESFire transcript, at the same moment by four readers (three at one instance, whose store screens the
 *   last two in one transaction), round after round: accepted exactly once per round, the others refused as
 *   replayed (the per-card lock of store/postgres/secure-cards.ts);
 * - two gateway instances in this process (`store.engine: "postgres"`, one database, each its own
 *   embedded broker) and, beside them, one SQLite gateway, run the same story: a secure tap accepted
 *   through one, its resend through the other accepted again (same verdict), its replay and a UID-only
 *   copy through the other refused, another reader's replay refused, and the same fresh message
 *   published at both at once accepted once. The verdicts PostgreSQL records equal SQLite's.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticateDesfire, DesfireReaderKey } from '../../device/src/drivers/desfire-auth.js';
import { createPgGateway } from '../../gateway/pg-instance.js';
import { SecureCardKeys } from '../../gateway/src/secure-cards/keys.js';
import { SecureCardPolicy } from '../../gateway/src/secure-cards/policy.js';
import { SecureCardVerifier } from '../../gateway/src/secure-cards/verifier.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgSecureCardStore } from '../../gateway/src/store/postgres/secure-cards.js';
import type { TapAssurance } from '../../gateway/src/store/secure-cards.js';
import { pseudonymiseCard, type Ack, type CardProof, type TapEvent } from '../../protocol/index.js';
import {
  AckCollector,
  connectReader,
  dbOf,
  PASSWORD,
  silent,
  startGateway,
  tempDir,
  testConfig,
} from '../gateway/helpers.js';
import {
  DESFIRE_AID,
  DESFIRE_MASTER,
  desfireCard,
  MASTER,
  personalisedCard,
  tapProof,
} from '../secure-cards/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const FLEET = 'test-fleet-key-0123456789'; // the gateway test config's fleet key
const T0 = Date.UTC(2026, 11, 7, 8, 0, 0);
const ROUNDS = Number(process.env.VT_SECURE_RACE_ROUNDS ?? 40);

function ev(readerId: string, seq: number, uid: string, proof?: CardProof): TapEvent {
  return {
    readerId,
    seq,
    eventId: `${readerId}-e${seq}`,
    card: pseudonymiseCard(uid, FLEET),
    decision: 'start',
    visitId: `${readerId}-v${seq}`,
    time: { wallMs: T0 + seq * 60_000, bootId: 'boot-1', monoMs: seq * 60_000, synced: true },
    ...(proof ? { cardProof: proof } : {}),
  };
}

const batch = (readerId: string, ...events: TapEvent[]) => ({
  schemaVersion: 1 as const,
  readerId,
  sentAt: { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true },
  events,
});

describe('secure cards shared by two instances on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let keyFile: string;
  beforeAll(async () => {
    pgc = await startPgCluster();
    tmp = tempDir('vt-pg-secure-');
    keyFile = join(tmp.dir, 'secure-cards.key');
    writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }), {
      mode: 0o600,
    });
    chmodSync(keyFile, 0o600);
  }, 120_000);
  afterAll(async () => {
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'the same SUN counter or DESFire nonce at two instances at once: accepted once per round',
    { timeout: 180_000 },
    async () => {
      const url = await pgc.createDatabase();
      const pools: PgPool[] = [openPgPool({ url, max: 2 }), openPgPool({ url, max: 2 })];
      try {
        await migrate(pools[0] as PgPool, postgresMigrations);
        const keys = new SecureCardKeys(MASTER, { key: DESFIRE_MASTER, keyNo: 1 });
        // instance a screens one transaction at a time: of three screenings at once the last two share one
        const [a, b] = pools.map(
          (pool, i) =>
            new SecureCardVerifier({
              keys,
              store: new PgSecureCardStore(pool, i === 0 ? { maxInFlight: 1 } : {}),
              policy: () => SecureCardPolicy.parse({}),
              fleetKey: FLEET,
              logger: pino({ level: 'silent' }),
            }),
        ) as [SecureCardVerifier, SecureCardVerifier];
        const sunUid = '04A1A2A3A4A5A6';
        const sun = await personalisedCard(sunUid);
        const desUid = Buffer.from('04B1B2B3B4B5B6', 'hex');
        const chip = desfireCard(desUid);
        const desKey = new DesfireReaderKey(DESFIRE_AID, 1, DESFIRE_MASTER);
        const desfireProof = async (): Promise<CardProof> => {
          chip.powerOn();
          const r = await authenticateDesfire((x) => Promise.resolve(chip.respond(x)), {
            key: desKey,
            uid: chip.uid,
          });
          if (!r.ok) throw new Error(r.reason);
          return r.proof;
        };
        const outcomes: string[] = [];
        for (let k = 1; k <= ROUNDS; k++) {
          const desfire = k % 2 === 0;
          const uid = desfire ? desUid.toString('hex').toUpperCase() : sunUid;
          const proof = desfire ? await desfireProof() : await tapProof(sun);
          // three readers, two at one instance (screened in one transaction there) and one at the other,
          // present the same message at the same moment
          const got = await Promise.all([
            a.assessBatch('r-a', null, [ev('r-a', k, uid, proof)], T0 + k),
            b.assessBatch('r-b', null, [ev('r-b', k, uid, proof)], T0 + k),
            a.assessBatch('r-c', null, [ev('r-c', k, uid, proof)], T0 + k),
            a.assessBatch('r-d', null, [ev('r-d', k, uid, proof)], T0 + k),
          ]);
          const codes = got
            .map((t) => t[0]?.code)
            .sort()
            .join('+');
          outcomes.push(codes);
        }
        // every round: one accepted ('secure'), the others refused as replays
        expect(outcomes.filter((o) => o !== 'replayed+replayed+replayed+secure')).toEqual([]);
        const rows = await (pools[0] as PgPool).query<{ verdict: string; n: number }>(
          'SELECT verdict, count(*)::int AS n FROM secure_taps GROUP BY verdict ORDER BY verdict',
        );
        expect(rows.rows).toEqual([
          { verdict: 'accepted', n: ROUNDS },
          { verdict: 'refused', n: 3 * ROUNDS },
        ]);
        // a redelivered batch screened at both instances at once: the same verdict at both, one row
        const p = await tapProof(sun);
        const again = ev('r-a', ROUNDS + 1, sunUid, p);
        const [x, y] = await Promise.all([
          a.assessBatch('r-a', null, [again], T0),
          b.assessBatch('r-a', null, [again], T0),
        ]);
        // (a verdict read back has nonce null where the deciding instance's has none)
        const same = (t: TapAssurance | null | undefined) => ({ ...t, nonce: t?.nonce ?? null });
        expect(same(x[0])).toEqual(same(y[0]));
        expect(x[0]?.verdict).toBe('accepted');
      } finally {
        await Promise.all(pools.map((p) => p.end()));
      }
    },
  );

  it(
    'a tap accepted through one instance: its resend through the other gets the same verdict, its replay and a UID copy are refused; as on SQLite',
    { timeout: 240_000 },
    async () => {
      const url = await pgc.createDatabase();
      const policy = { uidOnly: 'flag', clone: 'refuse' };
      const cfg = (i: number) =>
        testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 4 },
          secureCards: { keyFile, policy },
        });
      const pgA = createPgGateway({ config: cfg(0), logger: silent });
      const pgB = createPgGateway({ config: cfg(1), logger: silent });
      const sq = await startGateway(join(tmp.dir, 'sqlite'), { secureCards: { keyFile, policy } });
      const pool = openPgPool({ url, max: 2 });
      const clients: MqttClient[] = [];
      try {
        await pgA.start();
        await pgB.start();
        // the same card, personalised once per engine's run (each run starts its counter at 1)
        const run = async (
          ports: [number, number],
          addReader: (id: string) => Promise<void>,
          afterAdd: () => Promise<void>,
          uid: string,
        ) => {
          for (const r of ['r-1', 'r-2', 'r-3', 'r-4']) await addReader(r);
          await afterAdd();
          const card = await personalisedCard(uid);
          const session = async (port: number, r: string) => {
            const c = await connectReader(port, r);
            clients.push(c);
            return { c, acks: await AckCollector.attach(c, r) };
          };
          const summary = (a: Ack) => [a.upTo, a.rejected.map((x) => `${x.seq}:${x.detail?.split(':')[0]}`)];
          const out: unknown[] = [];
          const p1 = await tapProof(card);
          // r-1 taps through the first instance
          let s = await session(ports[0], 'r-1');
          await s.acks.publish('r-1', batch('r-1', ev('r-1', 1, uid, p1)));
          out.push(summary(await s.acks.waitFor((a) => a.upTo === 1, 30_000)));
          await s.c.endAsync(true);
          // r-1's next session is with the other instance: a resend of seq 1, then a replay and a UID copy
          s = await session(ports[1], 'r-1');
          await s.acks.publish('r-1', batch('r-1', ev('r-1', 1, uid, p1)));
          out.push(summary(await s.acks.waitFor((a) => a.upTo === 1, 30_000)));
          await s.acks.publish('r-1', batch('r-1', ev('r-1', 2, uid, p1), ev('r-1', 3, uid)));
          out.push(summary(await s.acks.waitFor((a) => a.upTo === 3, 30_000)));
          // another reader replays the message through the other instance
          const s2 = await session(ports[1], 'r-2');
          await s2.acks.publish('r-2', batch('r-2', ev('r-2', 1, uid, p1)));
          out.push(summary(await s2.acks.waitFor((a) => a.upTo === 1, 30_000)));
          // the same fresh message at both instances at once: one accepted
          const [s3, s4] = await Promise.all([session(ports[0], 'r-3'), session(ports[1], 'r-4')]);
          const p2 = await tapProof(card);
          await Promise.all([
            s3.acks.publish('r-3', batch('r-3', ev('r-3', 1, uid, p2))),
            s4.acks.publish('r-4', batch('r-4', ev('r-4', 1, uid, p2))),
          ]);
          const [a3, a4] = await Promise.all([
            s3.acks.waitFor((a) => a.upTo === 1, 30_000),
            s4.acks.waitFor((a) => a.upTo === 1, 30_000),
          ]);
          out.push(
            [a3, a4]
              .map((a) => (a.rejected.length === 0 ? 'accepted' : `${a.rejected[0]?.detail?.split(':')[0]}`))
              .sort(),
          );
          // the real card's next tap, through the first instance
          await s.c.endAsync(true);
          s = await session(ports[0], 'r-1');
          await s.acks.publish('r-1', batch('r-1', ev('r-1', 4, uid, await tapProof(card))));
          out.push(summary(await s.acks.waitFor((a) => a.upTo === 4, 30_000)));
          return out;
        };
        const pgOut = await run(
          [pgA.mqttPort ?? 0, pgB.mqttPort ?? 0],
          async (id) => {
            await pgA.registry.addReader({ readerId: id, password: PASSWORD, clientRef: 'client-1' });
          },
          async () => {
            await pgA.syncReaders();
            await pgB.syncReaders();
          },
          '04C1C2C3C4C5C6',
        );
        const sqOut = await run(
          [sq.mqttPort ?? 0, sq.mqttPort ?? 0],
          async (id) => {
            await sq.registry.addReader({ readerId: id, password: PASSWORD, clientRef: 'client-1' });
          },
          () => Promise.resolve(),
          '04C1C2C3C4C5C6',
        );
        expect(pgOut).toEqual([
          [1, []],
          [1, []], // the resend: the same verdict, not a replay
          [3, ['2:secure card replayed', '3:secure card clone-suspect']],
          [1, ['1:secure card replayed']],
          ['accepted', 'secure card replayed'],
          [4, []],
        ]);
        expect(pgOut).toEqual(sqOut);
        // the verdicts recorded: the same rows on both engines (the race's winner aside)
        const cols = `reader_id, seq, assurance, verdict, code, counter, proof_kind`;
        const norm = (rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
          rows.map((r) => ({
            ...r,
            ...(r.reader_id === 'r-3' || r.reader_id === 'r-4' ? { reader_id: 'r-3|4' } : {}),
            seq: Number(r.seq),
            counter: r.counter === null ? null : Number(r.counter),
          }));
        const pgRows = norm(
          (await pool.query(`SELECT ${cols} FROM secure_taps ORDER BY reader_id, seq`)).rows as Array<
            Record<string, unknown>
          >,
        );
        const sqRows = norm(
          dbOf(sq).prepare(`SELECT ${cols} FROM secure_taps ORDER BY reader_id, seq`).all() as Array<
            Record<string, unknown>
          >,
        );
        const key = (r: Record<string, unknown>) => JSON.stringify(r);
        expect(pgRows.map(key).sort()).toEqual(sqRows.map(key).sort());
        expect(pgRows.filter((r) => r.verdict === 'accepted').length).toBe(3); // r-1 seq 1 and 4, one of r-3/r-4
        // the refused taps are held as rejected (not lost), the accepted ones stored as events
        const stored = await pool.query<{ reader_id: string; seq: number }>(
          "SELECT reader_id, seq FROM events WHERE reader_id = 'r-1' ORDER BY seq",
        );
        expect(stored.rows.map((r) => Number(r.seq))).toEqual([1, 4]);
        const held = await pool.query<{ seq: number; detail: string }>(
          "SELECT seq, detail FROM rejected_events WHERE reader_id = 'r-1' ORDER BY seq",
        );
        expect(held.rows.map((r) => [Number(r.seq), r.detail.split(':')[0]])).toEqual([
          [2, 'secure card replayed'],
          [3, 'secure card clone-suspect'],
        ]);
      } finally {
        await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
        await pool.end();
        await pgA.stop();
        await pgB.stop();
        await sq.stop();
      }
    },
  );
});
