/**
 * Sealed readers' card lists on PostgreSQL (issue 16): two gateway instances (gateway/pg-instance.ts) on one
 * PostgreSQL cluster this test starts, each with its embedded broker on loopback. The sealed card UID vault is one
 * table both instances share (never a UID file per instance, never a raw UID); the card lists are pushed by a
 * timer on the instance holding the lease `card-push` (one instance), with no admin call, once a UID learned on
 * the OTHER instance lets a sealed reader's list name the card; a card known only by its c1_ reference is counted
 * (metric) and `visittag-gateway cards uids` names the fix.
 *
 * The clock is the real one except that a 60 s timer runs after 300 ms (the card-list tick and the others).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgGateway, type PgGateway } from '../../gateway/pg-instance.js';
import { cardsCommand } from '../../gateway/src/cards/cli.js';
import { openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import {
  decode,
  encode,
  GatewayCardKeys,
  sealCardUid,
  topics,
  type Clock,
  type TimerHandle,
} from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  connectReader,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const FLEET = 'test-fleet-key-0123456789';
const keys = new GatewayCardKeys(FLEET);
const U1 = '04AA11BB22CC33';
const U2 = '04DD44EE55FF66'; // never seen by any gateway: its card is registered by c1_ only
const S1 = 'r-list-1'; // the sealed reader that is pushed lists
const S2 = 'r-list-2'; // a sealed reader whose tap teaches the gateway U1

const clock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms === 60_000 ? 300 : ms) as unknown as TimerHandle,
  clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
};

const statusOnline = (readerId: string) =>
  encode('status', {
    schemaVersion: 1,
    readerId,
    state: 'online',
    firmware: 'test',
    bootId: 'boot-l',
    at: { wallMs: Date.now(), monoMs: 1 },
    queueDepth: 0,
    oldestUnackedSeq: null,
    oldestUnackedAgeMs: null,
    lastAckedSeq: 0,
    journalCapacity: 1000,
    clock: { synced: true, source: 'ntp' },
    readerAttached: true,
    freeStorageBytes: 1_000_000,
    configVersion: 0,
    configError: null,
    faults: [],
    cardScheme: 'sealed-v1',
  });

describe('sealed readers card lists on PostgreSQL', () => {
  let pgc: PgCluster;
  const tmp = tempDir('vt-lists-pg-');
  const gws: PgGateway[] = [];
  const clients: MqttClient[] = [];
  let pool: PgPool | undefined;
  beforeAll(async () => {
    pgc = await startPgCluster({ prefix: 'vt-lists-pg-' });
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    for (const g of gws) await g.stop().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await pgc?.destroy();
    tmp.cleanup();
  }, 120_000);

  it('one shared vault, lists pushed by the timer on one instance, c1_-only cards counted with the fix', async () => {
    const url = await pgc.createDatabase();
    pool = openPgPool({ url, max: 2 });
    const cfg = (name: string) =>
      testConfig(join(tmp.dir, name), { store: { engine: 'postgres', url, poolMax: 4 } });
    for (const name of ['a', 'b']) {
      const g = createPgGateway({ config: cfg(name), logger: silent, clock });
      await g.start();
      gws.push(g);
    }
    const [a, b] = gws as [PgGateway, PgGateway];
    for (const id of [S1, S2])
      await a.registry.addReader({ readerId: id, clientRef: `home-${id}`, password: PASSWORD });
    await a.registry.addCard({ cardRef: keys.fleetRef(U1), staffRef: 'staff-1' });
    await a.registry.addCard({ cardRef: keys.fleetRef(U2), staffRef: 'staff-2' });
    await a.syncReaders();
    await b.syncReaders();

    // S1 on both instances' brokers (whichever holds the lease pushes through its own), saying it is sealed
    const configs: Array<{ version: number; allowList: string[] | null }> = [];
    for (const g of gws) {
      const c = await connectReader(g.mqttPort ?? 0, S1);
      clients.push(c);
      c.on('message', (topic, payload) => {
        if (topic !== topics.config(S1)) return;
        const d = decode('config', S1, payload);
        if (d.ok) configs.push({ version: d.value.version, allowList: d.value.allowList });
      });
      await c.subscribeAsync(topics.config(S1), { qos: 1 });
      await c.publishAsync(topics.status(S1), statusOnline(S1), { qos: 1, retain: true });
    }
    await a.syncReaders(); // the reader pages' copy of statuses
    await b.syncReaders();
    // the operator turns the allow-list on once: no UID is known yet, so the sealed reader's list is empty
    const first = await fetch(`${a.adminUrl}/api/readers/${S1}/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ useAllowList: true }),
    });
    expect(first.status).toBe(202);
    expect(await first.json()).toMatchObject({ version: 1, allowListSize: 0, cardsWithoutUid: 2 });

    // a sealed tap of U1 at S2, on instance B: B opens it and keeps U1 sealed in the shared vault
    const c2 = await connectReader(b.mqttPort ?? 0, S2);
    clients.push(c2);
    const acks = await AckCollector.attach(c2, S2);
    const time = { wallMs: Date.now(), bootId: 'boot-l2', monoMs: 10, synced: true };
    await acks.publish(S2, {
      schemaVersion: 1,
      readerId: S2,
      sentAt: time,
      events: [
        {
          readerId: S2,
          seq: 1,
          eventId: 'e-l-1',
          card: keys.readerRef(S2, U1),
          sealedCard: sealCardUid(U1, keys.publicKey, S2),
          decision: 'start',
          visitId: 'v-l-1',
          time,
        },
      ],
    });
    await acks.waitFor((x) => x.upTo === 1, 30_000);

    // no admin call: the timer of the lease holder pushes S1 a list naming U1 in S1's own reference
    const want = [keys.readerRef(S1, U1)];
    await waitUntil(
      () => configs.some((c) => c.version >= 2 && JSON.stringify(c.allowList) === JSON.stringify(want)),
      30_000,
    );
    const holders = gws.filter((g) => g.cardLists.leasedTicks > 0);
    expect(holders).toHaveLength(1); // once across instances
    const holder = holders[0]!;
    expect(holder.cardLists.withoutUid).toBe(1); // U2's card: c1_ only
    const metrics = await (
      await fetch(`${holder.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).text();
    expect(metrics).toMatch(/^visittag_cards_without_uid 1$/m);

    // the vault: one row per card, sealed, shared; no UID file per instance, no UID in any PostgreSQL text
    const rows = await pool.query<{ card_ref: string; sealed: string }>(
      'SELECT card_ref, sealed FROM card_uid_vault',
    );
    expect(rows.rows.map((r) => r.card_ref)).toEqual([keys.fleetRef(U1)]);
    for (const name of ['a', 'b']) expect(existsSync(join(tmp.dir, name, 'card-uids.jsonl'))).toBe(false);
    for (const u of [U1, U1.toLowerCase(), U2]) {
      const r = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM card_uid_vault WHERE strpos(sealed, $1) > 0 OR strpos(card_ref, $1) > 0`,
        [u],
      );
      expect(r.rows[0]!.n).toBe(0);
    }

    // the CLI counts the c1_-only card and says how to fix it
    const cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(cfgFile, JSON.stringify(cfg('a')));
    const out: string[] = [];
    const code = await cardsCommand(
      ['uids', '--config', cfgFile],
      (l) => out.push(l),
      (l) => out.push(l),
      () => Promise.reject(new Error('not used')),
    );
    expect(code).toBe(0);
    expect(out.join('\n')).toContain('1 active card(s) are known only by their c1_ reference');
    expect(out.join('\n')).toContain('visittag-gateway cards import FILE');
  }, 180_000);
});
