/**
 * Journal epochs at the gateway (issue 16; protocol/README.md "Journal epochs and tombstones";
 * gateway/src/ingest/epochs.ts). A wiped or replaced journal under the same reader id starts again at seq 1
 * in a new epoch: the gateway places the epoch after everything the earlier journal left, so its seqs are
 * neither duplicates nor duplicate-conflicts, every ack names the epoch it speaks of, what the earlier
 * journal still owed is held as lost (pairing continues), and a batch of a replaced journal is refused.
 *
 * Real parts: the gateway with its embedded broker and SQLite file, readers over MQTT on loopback, and in
 * the last test a real device whose journal folder is deleted between two runs.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import {
  offsetForNew,
  placeEpoch,
  shiftIn,
  shiftOut,
  type EpochRow,
} from '../../gateway/src/ingest/epochs.js';
import type { Ack, EventBatch } from '../../protocol/index.js';
import {
  AckCollector,
  adminGet,
  batchOf,
  connectReader,
  dbOf,
  PASSWORD,
  startGateway,
  tapEvent,
  tempDir,
  waitUntil,
} from '../gateway/helpers.js';
import { startTestReader } from './test-readers.js';

const row = (epoch: string, offset: number, openedAtMs = offset): EpochRow => ({ epoch, offset, openedAtMs });

describe('epoch placement (pure)', () => {
  it('places batches: legacy at 0, the latest epoch current, earlier ones closed, unknown ones new', () => {
    expect(placeEpoch([], null)).toEqual({ kind: 'current', epoch: null, offset: 0 });
    expect(placeEpoch([], 'jA')).toEqual({ kind: 'new', epoch: 'jA' });
    const rows = [row('jA', 0, 10), row('jB', 40, 20)];
    expect(placeEpoch(rows, 'jB')).toEqual({ kind: 'current', epoch: 'jB', offset: 40 });
    expect(placeEpoch(rows, 'jA')).toEqual({ kind: 'closed', epoch: 'jA', closedBy: 'jB', closedAtMs: 20 });
    expect(placeEpoch(rows, null)).toEqual({ kind: 'closed', epoch: null, closedBy: 'jA', closedAtMs: 10 });
    expect(placeEpoch(rows, 'jC')).toEqual({ kind: 'new', epoch: 'jC' });
  });

  it('offsets a new epoch after maxSeen, or adopts it at 0 when the stored seqs are its own', () => {
    const ev = (seqs: number[]): Pick<EventBatch, 'events'> => ({
      events: seqs.map((s) => tapEvent('r', s)),
    });
    const no = () => false;
    const yes = () => true;
    // a reader with nothing stored
    expect(offsetForNew([], { contiguousUpto: 0, maxSeen: 0 }, ev([1]), no)).toBe(0);
    // an epoch already recorded: any new one goes after everything held (holes included)
    expect(offsetForNew([row('jA', 0)], { contiguousUpto: 7, maxSeen: 9 }, ev([1]), yes)).toBe(9);
    expect(offsetForNew([row('jA', 0)], { contiguousUpto: 7, maxSeen: 9 }, ev([5]), yes)).toBe(9);
    // none recorded yet (a gateway upgraded from before epochs): seq 1 acknowledged → the same journal
    expect(offsetForNew([], { contiguousUpto: 9, maxSeen: 9 }, ev([10, 11]), no)).toBe(0);
    // seq 1 again: the same journal only when its content is the stored seq 1's
    expect(offsetForNew([], { contiguousUpto: 9, maxSeen: 9 }, ev([1, 2]), yes)).toBe(0);
    expect(offsetForNew([], { contiguousUpto: 9, maxSeen: 9 }, ev([1, 2]), no)).toBe(9);
    // a new journal whose seq 1 was quarantined starts with a tombstone for it
    expect(
      offsetForNew(
        [],
        { contiguousUpto: 9, maxSeen: 9 },
        { events: [tapEvent('r', 2)], tombstones: [{ from: 1, to: 1, reason: 'quarantined' }] },
        yes,
      ),
    ).toBe(9);
  });

  it('moves seqs in by the offset and acks out of it, never below 1, naming the epoch', () => {
    const inn = shiftIn(
      {
        events: [tapEvent('r', 1), tapEvent('r', 3)],
        tombstones: [{ from: 2, to: 2, reason: 'quarantined' }],
      },
      40,
    );
    expect(inn.events.map((e) => e.seq)).toEqual([41, 43]);
    expect(inn.tombstones).toEqual([{ from: 42, to: 42, reason: 'quarantined' }]);
    const ack: Ack = {
      schemaVersion: 1,
      readerId: 'r',
      upTo: 43,
      rejected: [
        { seq: 39, reason: 'invalid-event' },
        { seq: 42, reason: 'invalid-event' },
      ],
      gaps: [
        { from: 30, to: 38 },
        { from: 39, to: 45 },
        { from: 47, to: 48 },
      ],
    };
    expect(shiftOut(ack, { epoch: 'jB', offset: 40 })).toEqual({
      schemaVersion: 1,
      readerId: 'r',
      upTo: 3,
      rejected: [{ seq: 2, reason: 'invalid-event' }],
      gaps: [
        { from: 1, to: 5 },
        { from: 7, to: 8 },
      ],
      epoch: 'jB',
    });
    expect(shiftOut({ ...ack, upTo: 12 }, { epoch: 'jB', offset: 40 }).upTo).toBe(0);
    expect(shiftOut(ack, { epoch: null, offset: 0 })).toEqual(ack);
  });
});

describe('journal epochs over MQTT', () => {
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  const clients: MqttClient[] = [];
  const reader = async (id: string) => {
    await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: `home-${id}`, label: id });
    const c = await connectReader(gw.mqttPort ?? 0, id);
    clients.push(c);
    return AckCollector.attach(c, id);
  };
  /** A batch of `epoch` with events whose content differs per epoch (a different journal's taps). */
  const batch = (id: string, epoch: string | undefined, seqs: number[]) => {
    const b = batchOf(id, seqs);
    return {
      ...b,
      ...(epoch ? { epoch } : {}),
      events: b.events.map((e) => ({ ...e, eventId: `${id}-${epoch ?? 'legacy'}-e${e.seq}` })),
    };
  };
  const seqState = (id: string) =>
    dbOf(gw)
      .prepare('SELECT contiguous_upto AS upTo, max_seen AS max FROM reader_seq WHERE reader_id = ?')
      .get(id) as { upTo: number; max: number };
  const conflicts = (id: string) =>
    dbOf(gw)
      .prepare('SELECT count(*) FROM duplicate_conflicts WHERE reader_id = ?')
      .pluck()
      .get(id) as number;
  const eventIds = (id: string) =>
    (
      dbOf(gw)
        .prepare('SELECT event_json FROM events WHERE reader_id = ? ORDER BY seq')
        .pluck()
        .all(id) as string[]
    ).map((j) => (JSON.parse(j) as { seq: number; eventId: string }).eventId);

  beforeAll(async () => {
    tmp = tempDir('vt-epochs-');
    gw = await startGateway(tmp.dir);
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true);
    await gw.stop();
    tmp.cleanup();
  });

  it('a replaced journal starts at seq 1 again: no duplicate-conflict, the old seqs kept, acks name the epoch', async () => {
    const R = 'rdr-epoch-1';
    const acks = await reader(R);
    // the first journal, from before epochs (legacy): seqs 1-3
    await acks.publish(R, batch(R, undefined, [1, 2, 3]));
    const legacy = await acks.waitFor((a) => a.upTo === 3);
    expect(legacy.epoch).toBeUndefined();

    // the journal is wiped: epoch jB numbers from 1 again
    await acks.publish(R, batch(R, 'jB', [1, 2]));
    const b1 = await acks.waitFor((a) => a.epoch === 'jB' && a.upTo === 2);
    expect(b1.rejected).toEqual([]);
    expect(conflicts(R)).toBe(0);
    expect(seqState(R)).toEqual({ upTo: 5, max: 5 });
    expect(eventIds(R)).toEqual([
      `${R}-legacy-e1`,
      `${R}-legacy-e2`,
      `${R}-legacy-e3`,
      `${R}-jB-e1`,
      `${R}-jB-e2`,
    ]);

    // a resend of the new journal's seq 2 is a duplicate, not stored again
    await acks.publish(R, batch(R, 'jB', [2, 3]));
    await acks.waitFor((a) => a.epoch === 'jB' && a.upTo === 3);
    expect(seqState(R)).toEqual({ upTo: 6, max: 6 });
    expect(conflicts(R)).toBe(0);

    // the replaced (legacy) journal speaks again: refused, nothing stored, no ack of its seqs
    const before = acks.acks.length;
    await acks.publish(R, batch(R, undefined, [4]));
    await waitUntil(async () =>
      /visittag_ingest_rejects_total\{reason="epoch-closed"\} 1/.test((await adminGet(gw, '/metrics')).text),
    );
    expect(seqState(R)).toEqual({ upTo: 6, max: 6 });
    expect(acks.acks.slice(before).every((a) => a.epoch === 'jB')).toBe(true);
  });

  it('what the replaced journal still owed is held as lost with its extent, and pairing goes on', async () => {
    const R = 'rdr-epoch-2';
    const acks = await reader(R);
    // epoch jA: 1, 2 and 5 arrive; 3 and 4 never will (the card is wiped before they are sent)
    await acks.publish(R, batch(R, 'jA', [1, 2]));
    await acks.waitFor((a) => a.epoch === 'jA' && a.upTo === 2);
    await acks.publish(R, batch(R, 'jA', [5]));
    const gapAck = await acks.waitFor((a) => a.epoch === 'jA' && (a.gaps ?? []).length === 1);
    expect(gapAck.gaps).toEqual([{ from: 3, to: 4 }]);

    // the new journal jC starts after gateway seq 5: 3 and 4 are held as lost, so upTo passes them
    await acks.publish(R, batch(R, 'jC', [1]));
    const c1 = await acks.waitFor((a) => a.epoch === 'jC' && a.upTo === 1);
    expect(c1.gaps).toBeUndefined();
    expect(seqState(R)).toEqual({ upTo: 6, max: 6 });
    const lost = dbOf(gw)
      .prepare(
        "SELECT seq FROM rejected_events WHERE reader_id = ? AND detail LIKE 'journal epoch closed%' ORDER BY seq",
      )
      .pluck()
      .all(R);
    expect(lost).toEqual([3, 4]);
    expect((await adminGet(gw, '/metrics')).text).toMatch(/visittag_ingest_epoch_lost_seqs_total 2/);
    // the visits engine went past the lost seqs to the new journal's first tap
    gw.pipeline.processNow([R]);
    const cursor = dbOf(gw)
      .prepare('SELECT processed_upto FROM visit_cursor WHERE reader_id = ?')
      .pluck()
      .get(R) as number;
    expect(cursor).toBe(6);
  });

  it('an epoch first seen after an upgrade is adopted for the seqs it already delivered', async () => {
    // seqs 1-2 stored by a gateway that did not record epochs; the journal (epoch jD) goes on at 3
    const R = 'rdr-epoch-3';
    const acks = await reader(R);
    await acks.publish(R, batch(R, undefined, [1, 2]));
    await acks.waitFor((a) => a.upTo === 2);
    await acks.publish(R, { ...batch(R, 'jD', [3, 4]) });
    const d = await acks.waitFor((a) => a.epoch === 'jD');
    expect(d.upTo).toBe(4);
    expect(seqState(R)).toEqual({ upTo: 4, max: 4 });

    // seq 1 resent with the same content (its ack was lost across the upgrade): adopted, a duplicate
    const R2 = 'rdr-epoch-4';
    const acks2 = await reader(R2);
    await acks2.publish(R2, batch(R2, undefined, [1]));
    await acks2.waitFor((a) => a.upTo === 1);
    const same = batch(R2, undefined, [1, 2]);
    await acks2.publish(R2, { ...same, epoch: 'jE' });
    const e = await acks2.waitFor((a) => a.epoch === 'jE');
    expect(e.upTo).toBe(2);
    expect(seqState(R2)).toEqual({ upTo: 2, max: 2 });
    expect(conflicts(R2)).toBe(0);
  });

  it('the epoch survives a gateway restart (recorded durably)', async () => {
    const R = 'rdr-epoch-1';
    await gw.stop();
    for (const c of clients.splice(0)) await c.endAsync(true);
    gw = await startGateway(tmp.dir);
    const c = await connectReader(gw.mqttPort ?? 0, R);
    clients.push(c);
    const acks = await AckCollector.attach(c, R);
    await acks.publish(R, batch(R, 'jB', [4]));
    const a = await acks.waitFor((x) => x.epoch === 'jB' && x.upTo === 4);
    expect(a.rejected).toEqual([]);
    expect(seqState(R)).toEqual({ upTo: 7, max: 7 });
  });
});

describe('a real reader whose journal is wiped', () => {
  const tmp = tempDir('vt-epochs-dev-');
  let gw: Gateway;
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await gw.stop().catch(() => undefined);
    tmp.cleanup();
  }, 60_000);

  it('taps before and after the wipe are all stored once, none is lost, pairing runs across it', async () => {
    gw = await startGateway(join(tmp.dir, 'gw'));
    const R = 'rdr-wiped';
    await gw.registry.addReader({ readerId: R, clientRef: 'home-wiped', password: PASSWORD });
    const start = () => startTestReader({ id: R, dir: tmp.dir, mqttPort: gw.mqttPort ?? 0, stops });
    const dataDir = join(tmp.dir, R);

    // first journal: card A starts a visit, card B makes a whole visit
    const first = await start();
    await first.tap('04A100000000A1');
    await first.tap('04B200000000B2');
    await first.tap('04B200000000B2');
    await first.acked();
    await first.device.stop();
    stops.pop();

    // the storage is wiped (a new SD card under the same credentials): a new journal, seq 1 again
    rmSync(dataDir, { recursive: true, force: true });
    const second = await start();
    await second.tap('04A100000000A1'); // card A leaves: closes the visit started before the wipe
    await second.tap('04C300000000C3');
    await second.tap('04C300000000C3');
    await second.acked();
    expect(second.taps.map((t) => t.seq)).toEqual([1, 2, 3]); // the device numbered from 1 again

    gw.flush();
    const db = dbOf(gw);
    expect(db.prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq').pluck().all(R)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    const ids = (
      db.prepare('SELECT event_json FROM events WHERE reader_id = ? ORDER BY seq').pluck().all(R) as string[]
    ).map((j) => (JSON.parse(j) as { eventId: string }).eventId);
    expect(ids).toEqual([...first.taps, ...second.taps].map((t) => t.eventId));
    expect(db.prepare('SELECT count(*) FROM duplicate_conflicts WHERE reader_id = ?').pluck().get(R)).toBe(0);
    expect(db.prepare('SELECT count(*) FROM rejected_events WHERE reader_id = ?').pluck().get(R)).toBe(0);

    // pairing runs across the wipe in gateway seqs: B (2-3) and C (5-6) whole; A's visit from the first
    // journal ends at A's tap in the second (4). The new journal did not know A's visit was open, so that tap
    // was a start on the device: the gateway also keeps a visit open from it, which A's next tap closes.
    gw.pipeline.processNow([R]);
    const visits = db
      .prepare(
        'SELECT start_seq AS s, end_seq AS e, state FROM visits WHERE reader_id = ? ORDER BY start_seq',
      )
      .all(R);
    expect(visits).toEqual([
      { s: 1, e: 4, state: 'closed' },
      { s: 2, e: 3, state: 'closed' },
      { s: 4, e: null, state: 'open' },
      { s: 5, e: 6, state: 'closed' },
    ]);
  }, 90_000);
});
