import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../device/src/core/journal.js';
import { LIMITS } from '../../protocol/index.js';
import type { TapEvent } from '../../protocol/index.js';
import { silentLogger, tempDir } from './helpers.js';

// Gap recovery, device side (issue 16): quarantined rows become tombstones the uplink sends; every journal has an
// epoch, so a wiped or replaced journal under the same reader id never reuses the old epoch's seqs.

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function place() {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'journal.db');
  let n = 0;
  const make = (over: { newEpoch?: () => string } = {}) => {
    const j = new Journal({
      path,
      logger: silentLogger,
      capacity: 1000,
      readerId: 'r1',
      newEpoch: over.newEpoch ?? (() => `j-test-${++n}`),
    });
    cleanups.push(() => j.close());
    return j;
  };
  const corrupt = (seq: number, raw = '{"not":"an event"') => {
    const db = new Database(path);
    db.prepare('UPDATE events SET event_json = ? WHERE seq = ?').run(raw, seq);
    db.close();
  };
  return { path, make, corrupt };
}

const ev = (seq: number): TapEvent => ({
  readerId: 'r1',
  seq,
  eventId: `e${seq}`,
  card: `c1_${'a'.repeat(32)}`,
  decision: seq % 2 ? 'start' : 'stop',
  visitId: `v${Math.ceil(seq / 2)}`,
  time: { wallMs: 1_767_600_000_000 + seq, bootId: 'b1', monoMs: seq, synced: true },
});

function appendN(j: Journal, n: number) {
  for (let i = 0; i < n; i++) j.append([ev(j.nextSeq)], null);
}

describe('journal tombstones', () => {
  it('a row unreadable at start-up is quarantined and sent as a tombstone among the events', () => {
    const p = place();
    const j1 = p.make();
    appendN(j1, 4);
    j1.close();
    p.corrupt(2);
    const j2 = p.make();
    const b = j2.readBatch(0, 100);
    expect(b.events.map((e) => e.seq)).toEqual([1, 3, 4]);
    expect(b.tombstones).toEqual([{ from: 2, to: 2, reason: 'quarantined' }]);
    expect([b.fromSeq, b.throughSeq]).toEqual([1, 4]);
    expect(j2.stats()).toMatchObject({ depth: 3, quarantined: 1, tombstoned: 1 });
    // The gateway counts the tombstone as held: upTo 4 clears it.
    expect(j2.ack(4)).toBe(3);
    expect(j2.stats()).toMatchObject({ depth: 0, tombstoned: 0 });
    expect(j2.readBatch(0, 100)).toEqual({ events: [], tombstones: [], fromSeq: null, throughSeq: null });
  });

  it('a row that goes bad while running is quarantined when read, and a trailing tombstone goes out alone', () => {
    const p = place();
    const j = p.make();
    appendN(j, 3);
    p.corrupt(3, JSON.stringify({ ...ev(3), seq: 99 })); // valid shape, wrong seq: not this row's event
    const first = j.readBatch(0, 100);
    expect(first.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(first.tombstones).toEqual([{ from: 3, to: 3, reason: 'quarantined' }]);
    j.ack(2);
    // Nothing but the tombstone is left: it is still sent (a batch of no events and one tombstone).
    const rest = j.readBatch(2, 100);
    expect(rest).toEqual({
      events: [],
      tombstones: [{ from: 3, to: 3, reason: 'quarantined' }],
      fromSeq: 3,
      throughSeq: 3,
    });
    j.ack(3);
    expect(j.stats().tombstoned).toBe(0);
  });

  it('adjacent quarantined rows merge into one range; a full batch carries only the tombstones below its last event', () => {
    const p = place();
    const j1 = p.make();
    appendN(j1, 10);
    j1.close();
    for (const s of [3, 4, 5, 9]) p.corrupt(s);
    const j2 = p.make();
    const b = j2.readBatch(0, 3); // events 1, 2, 6
    expect(b.events.map((e) => e.seq)).toEqual([1, 2, 6]);
    expect(b.tombstones).toEqual([{ from: 3, to: 5, reason: 'quarantined' }]);
    const next = j2.readBatch(6, 3); // 7, 8, 10 and the 9 between them
    expect(next.events.map((e) => e.seq)).toEqual([7, 8, 10]);
    expect(next.tombstones).toEqual([{ from: 9, to: 9, reason: 'quarantined' }]);
  });

  it('never more tombstone ranges in one batch than the protocol allows', () => {
    const p = place();
    const j1 = p.make();
    const n = LIMITS.maxBatchTombstones * 2 + 2;
    appendN(j1, n);
    j1.close();
    for (let s = 2; s <= n; s += 2) p.corrupt(s); // every even seq: one range each
    const j2 = p.make();
    const b = j2.readBatch(0, 1000);
    expect(b.tombstones).toHaveLength(LIMITS.maxBatchTombstones);
    expect(b.throughSeq).toBe(LIMITS.maxBatchTombstones * 2);
    expect(b.events.every((e) => e.seq < (b.throughSeq ?? 0))).toBe(true);
  });
});

describe('journal epochs', () => {
  it('a new journal gets an epoch that survives reopening', () => {
    const p = place();
    const j1 = p.make();
    expect(j1.epoch).toBe('j-test-1');
    appendN(j1, 2);
    j1.close();
    const j2 = p.make();
    expect(j2.epoch).toBe('j-test-1');
    expect(j2.stats().epoch).toBe('j-test-1');
  });

  it('after a wipe the journal starts over at seq 1 in a new epoch', () => {
    const p = place();
    const j1 = p.make({ newEpoch: () => 'j-old' });
    appendN(j1, 3);
    j1.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${p.path}${suffix}`, { force: true });
    const j2 = p.make({ newEpoch: () => 'j-new' });
    expect(j2.epoch).toBe('j-new');
    expect(j2.nextSeq).toBe(1);
  });

  it('a journal written before epochs keeps the legacy epoch (null): its seqs keep their meaning', () => {
    const p = place();
    const j1 = p.make();
    appendN(j1, 2);
    j1.close();
    const db = new Database(p.path);
    db.prepare("DELETE FROM meta WHERE key = 'epoch'").run();
    db.close();
    const j2 = p.make();
    expect(j2.epoch).toBeNull();
    expect(j2.stats().epoch).toBeNull();
    j2.close();
    expect(p.make().epoch).toBeNull();
  });
});
