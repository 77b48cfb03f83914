/**
 * The visits engine in its worker thread (issue 15; visits/engine-thread.ts, GatewayOptions.visitsThread):
 * a real gateway, MQTT over a socket, readers publishing starts and stops while cards are assigned through
 * the main thread's connection. What the thread writes (visits, outbox rows) is the same as what the engine
 * writes in the gateway's own thread for the same taps, nothing twice; a stop finishes what was committed.
 */
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteVisitStore } from '../../gateway/src/store/sqlite/visits.js';
import { VisitRepo, type VisitRow } from '../../gateway/src/visits/repo.js';
import { FakeClock } from './helpers.js';
import type { TapEvent } from '../../protocol/index.js';
import {
  AckCollector,
  PASSWORD,
  card,
  connectReader,
  dbOf,
  silent,
  tapEvent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

const READERS = 6;
const ROUNDS = 5;
const T0 = Date.UTC(2026, 10, 23, 8);

/** Reader i's taps of round k: a start and a stop of its own visit (a card per reader, one card unknown). */
function roundOf(readerId: string, i: number, k: number): TapEvent[] {
  const c = card(i + 1);
  const at = (seq: number) => ({
    wallMs: T0 + seq * 60_000,
    bootId: 'boot-1',
    monoMs: seq * 60_000,
    synced: true,
  });
  const s1 = 2 * k + 1;
  return [
    tapEvent(readerId, s1, { card: c, decision: 'start', visitId: `${readerId}-v${k}`, time: at(s1) }),
    tapEvent(readerId, s1 + 1, { card: c, decision: 'stop', visitId: `${readerId}-v${k}`, time: at(s1 + 1) }),
  ];
}

async function run(visitsThread: boolean) {
  const t = tempDir('vt-engine-thread-');
  const gw: Gateway = createGateway({ config: testConfig(t.dir), logger: silent, visitsThread });
  trackDataDir(gw, t.dir);
  const clients: MqttClient[] = [];
  cleanups.push(async () => {
    for (const c of clients) await c.endAsync(true);
    await gw.stop().catch(() => undefined);
    t.cleanup();
  });
  await gw.start();
  const db = dbOf(gw);
  const behind = (): number =>
    (
      db
        .prepare(
          `SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) AS n FROM reader_seq s
             LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id`,
        )
        .get() as { n: number }
    ).n;
  const ids = Array.from({ length: READERS }, (_, i) => `home-${i + 1}`);
  for (const id of ids)
    await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: `client-${id}` });
  gw.registry.addCard({ cardRef: card(1), staffRef: 'staff-1' });
  const acks: AckCollector[] = [];
  for (const id of ids) {
    const c = await connectReader(gw.mqttPort ?? 0, id);
    clients.push(c);
    acks.push(await AckCollector.attach(c, id));
  }
  for (let k = 0; k < ROUNDS; k++) {
    await Promise.all(
      ids.map((id, i) =>
        acks[i]!.publish(id, {
          schemaVersion: 1,
          readerId: id,
          sentAt: { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true },
          events: roundOf(id, i, k),
        }),
      ),
    );
    await Promise.all(ids.map((_, i) => acks[i]!.waitFor((a) => a.upTo === 2 * k + 2)));
    // the main thread writes to the tables the engine writes (a card assignment attributes earlier visits),
    // after round 2 is processed, so both runs attribute the same visits
    if (k === 2) {
      await waitUntil(() => behind() === 0, 20_000);
      gw.registry.addCard({ cardRef: card(2), staffRef: 'staff-2' });
    }
  }
  await waitUntil(() => behind() === 0, 20_000);
  const threaded = gw.pipeline.threaded;
  const outbox = (
    db.prepare('SELECT idempotency_key AS k, type, event_json AS j FROM outbox ORDER BY id').all() as {
      k: string;
      type: string;
      j: string;
    }[]
  ).map((r) => {
    const e = JSON.parse(r.j) as Record<string, unknown>;
    return { key: r.k, type: r.type, staffRef: e.staffRef ?? null, anomalies: e.anomalies ?? null };
  });
  const visits = db
    .prepare(
      'SELECT reader_id, visit_id, state, staff_ref, start_seq, end_seq FROM visits ORDER BY reader_id, visit_id',
    )
    .all();
  return { gw, threaded, outbox, visits };
}

describe('visits engine thread', () => {
  it('writes the same visits and outbox rows as the engine in the main thread, each once', async () => {
    const inThread = await run(true);
    expect(inThread.threaded).toBe(true);
    const inMain = await run(false);
    expect(inMain.threaded).toBe(false);
    const keys = inThread.outbox.map((r) => r.key);
    expect(new Set(keys).size).toBe(keys.length); // nothing twice
    const sortByKey = <T extends { key: string }>(xs: T[]) =>
      [...xs].sort((a, b) => a.key.localeCompare(b.key));
    expect(sortByKey(inThread.outbox)).toEqual(sortByKey(inMain.outbox));
    expect(inThread.visits).toEqual(inMain.visits);
    expect(inThread.visits).toHaveLength(READERS * ROUNDS);
    expect(inThread.visits.every((v) => (v as { state: string }).state === 'closed')).toBe(true);
  }, 60_000);

  it("the engine's visit index reloads after the other thread's visit writes, not after every commit", () => {
    const t = tempDir('vt-engine-index-');
    cleanups.push(() => t.cleanup());
    const clock = new FakeClock();
    const path = `${t.dir}/gateway.db`;
    const main = openDatabase(path, sqliteMigrations);
    const second = openDatabase(path, []);
    cleanups.push(() => {
      second.close();
      main.close();
    });
    const gen = new Int32Array(new SharedArrayBuffer(4));
    const writer = new VisitRepo({
      store: new SqliteVisitStore(main),
      clock,
      sharedWrites: { gen, role: 'writer' },
    });
    const engine = new VisitRepo({
      store: new SqliteVisitStore(second),
      clock,
      sharedWrites: { gen, role: 'engine' },
    });
    const now = clock.now();
    const visit = (visitId: string, staffRef: string): VisitRow => ({
      readerId: 'r2',
      visitId,
      clientRef: null,
      cardRef: card(1),
      staffRef,
      groupId: null,
      state: 'open',
      startedAtMs: now - 3_600_000,
      startSeq: null,
      endedAtMs: null,
      endSeq: null,
      endReason: null,
      timeQuality: 'synced',
      anomalies: [],
      lateEndSeq: null,
      updatedAtMs: now,
    });
    const at = () => engine.index.overlappingElsewhere({ by: 'staff', key: 's1', readerId: 'r1', atMs: now });
    expect(at()).toBeNull(); // loads s1
    const resets = engine.index.stats.resets;
    // the other connection commits something that is not a visit (an ingest commit): the index stays
    main.prepare(`INSERT INTO visit_meta (key, value) VALUES ('x', 1)`).run();
    expect(at()).toBeNull();
    expect(engine.index.stats.resets).toBe(resets);
    // a visit written through the other thread's repo: the engine's index reloads and sees it
    writer.upsert(visit('v1', 's1'));
    expect(at()).toEqual({ readerId: 'r2', visitId: 'v1' });
    expect(engine.index.stats.resets).toBe(resets + 1);
    // plain SQL and invalidate() there (the card re-attribution): reloads again
    main.prepare(`UPDATE visits SET staff_ref = 's2' WHERE visit_id = 'v1'`).run();
    writer.index.invalidate();
    expect(at()).toBeNull();
  });

  it('a writer thread killed mid-stream: nothing acked is lost, its work comes back here, nothing twice', async () => {
    const t = tempDir('vt-engine-thread-kill-');
    cleanups.push(() => t.cleanup());
    // the config key, as an operator sets it
    const cfg = testConfig(t.dir, { store: { engine: 'sqlite', writerThread: true } });
    const gw = createGateway({ config: cfg, logger: silent });
    trackDataDir(gw, t.dir);
    cleanups.push(() => gw.stop().catch(() => undefined));
    await gw.start();
    expect(gw.pipeline.threaded).toBe(true);
    await gw.registry.addReader({ readerId: 'home-1', password: PASSWORD, clientRef: 'client-1' });
    gw.registry.addCard({ cardRef: card(1), staffRef: 'staff-1' });
    const c = await connectReader(gw.mqttPort ?? 0, 'home-1');
    cleanups.push(() => c.endAsync(true));
    const acks = await AckCollector.attach(c, 'home-1');
    const ROUNDS_K = 60;
    const all = Array.from({ length: ROUNDS_K }, (_, k) => roundOf('home-1', 0, k)).flat();
    const sentAt = { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true };
    const send = (events: TapEvent[]) =>
      acks.publish('home-1', { schemaVersion: 1, readerId: 'home-1', sentAt, events });
    // a device sending as it taps, without waiting for acks; the thread dies a third of the way in, holding
    // a commit it has not answered
    const killed = (async () => {
      await acks.waitFor((a) => a.upTo >= 40, 20_000);
      await gw.pipeline.killThread({ duringCommit: true });
    })();
    for (let k = 0; k < ROUNDS_K; k++) {
      await send(all.slice(2 * k, 2 * k + 2));
      await new Promise((r) => setTimeout(r, 3));
    }
    await killed;
    expect(gw.pipeline.threaded).toBe(false);
    // what was not acked (a commit the dead thread never answered) is resent, as the device does
    for (let i = 0; i < 20 && (acks.last?.upTo ?? 0) < all.length; i++) {
      const upTo = acks.last?.upTo ?? 0;
      await send(all.filter((e) => e.seq > upTo).slice(0, 100));
      await acks.waitFor((a) => a.upTo > upTo, 5_000).catch(() => undefined);
    }
    expect(acks.last?.upTo).toBe(all.length);
    const db = dbOf(gw);
    await waitUntil(
      () =>
        (
          db.prepare(`SELECT processed_upto AS n FROM visit_cursor WHERE reader_id = 'home-1'`).get() as
            { n: number } | undefined
        )?.n === all.length,
      20_000,
    );
    expect(gw.pipeline.processNow()).toBe(0);
    const seqs = db.prepare(`SELECT seq FROM events WHERE reader_id = 'home-1' ORDER BY seq`).pluck().all();
    expect(seqs).toEqual(all.map((e) => e.seq));
    const rows = db.prepare('SELECT idempotency_key AS k, type FROM outbox').all() as {
      k: string;
      type: string;
    }[];
    expect(new Set(rows.map((r) => r.k)).size).toBe(rows.length);
    expect(rows.filter((r) => r.type === 'visit.started')).toHaveLength(ROUNDS_K);
    expect(rows.filter((r) => r.type === 'visit.ended')).toHaveLength(ROUNDS_K);
    const text = gw.metrics.render();
    expect(text).toMatch(/^visittag_writer_thread 0$/m);
  }, 60_000);

  it('a stop finishes what was committed, and a restart without the thread finds nothing left', async () => {
    const t = tempDir('vt-engine-thread-stop-');
    cleanups.push(() => t.cleanup());
    const gw = createGateway({ config: testConfig(t.dir), logger: silent, visitsThread: true });
    trackDataDir(gw, t.dir);
    await gw.start();
    expect(gw.pipeline.threaded).toBe(true);
    await gw.registry.addReader({ readerId: 'home-1', password: PASSWORD, clientRef: 'client-1' });
    const c = await connectReader(gw.mqttPort ?? 0, 'home-1');
    const acks = await AckCollector.attach(c, 'home-1');
    const events = Array.from({ length: 40 }, (_, k) => roundOf('home-1', 0, k)).flat();
    await acks.publish('home-1', {
      schemaVersion: 1,
      readerId: 'home-1',
      sentAt: { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true },
      events,
    });
    await acks.waitFor((a) => a.upTo === 80);
    await c.endAsync(true);
    await gw.stop(); // straight after the ack: the thread finishes its marked readers before it closes
    expect(gw.pipeline.threaded).toBe(false);
    const again = createGateway({ config: testConfig(t.dir), logger: silent });
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(`${t.dir}/gateway.db`, { readonly: true });
    try {
      const cur = db
        .prepare(`SELECT processed_upto AS n FROM visit_cursor WHERE reader_id = 'home-1'`)
        .get() as { n: number } | undefined;
      expect(cur?.n).toBe(80);
      expect(
        (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
      ).toBeGreaterThanOrEqual(80);
    } finally {
      db.close();
    }
    await again.start();
    expect(again.pipeline.processNow()).toBe(0);
    await again.stop();
  }, 60_000);
});
