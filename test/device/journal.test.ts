import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal, JournalFullError } from '../../device/src/core/journal.js';
import type { TapEvent } from '../../protocol/index.js';
import { silentLogger, tempDir } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function open(capacity = 100) {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'journal.db');
  const make = () => {
    const j = new Journal({ path, logger: silentLogger, capacity });
    cleanups.push(() => j.close());
    return j;
  };
  return { make };
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

describe('journal', () => {
  it('never reuses a sequence number, even after every event was acked and deleted', () => {
    const { make } = open();
    const j1 = make();
    appendN(j1, 3);
    expect(j1.ack(3)).toBe(3);
    expect(j1.depth).toBe(0);
    j1.close();
    const j2 = make();
    expect(j2.nextSeq).toBe(4);
    expect(j2.stats().lastAckedSeq).toBe(3);
  });

  it('an ack deletes ≤ upTo and the rejected seqs above it; stale acks change nothing', () => {
    const { make } = open();
    const j = make();
    appendN(j, 6);
    expect(j.ack(2, [4, 6])).toBe(4);
    expect(j.readAfter(0, 10).map((e) => e.seq)).toEqual([3, 5]);
    expect(j.ack(1)).toBe(0);
    expect(j.stats()).toMatchObject({ depth: 2, lastSeq: 6, lastAckedSeq: 2, oldestUnacked: { seq: 3 } });
  });

  it('refuses appends beyond capacity (nothing written, nothing overwritten)', () => {
    const { make } = open(10);
    const j = make();
    appendN(j, 10);
    expect(() => j.append([ev(11)], null)).toThrow(JournalFullError);
    expect(j.nextSeq).toBe(11);
    expect(j.readAfter(0, 100)).toHaveLength(10);
    j.ack(1);
    j.append([ev(11)], null);
    expect(j.depth).toBe(10);
  });

  it('refuses a non-consecutive seq (gap-free by construction)', () => {
    const { make } = open();
    const j = make();
    appendN(j, 2);
    expect(() => j.append([ev(4)], null)).toThrow(/not the next/);
    expect(j.nextSeq).toBe(3);
  });

  it('rebase: an ack above the last seq renumbers unacked events after it, keeping ids and order', () => {
    const { make } = open();
    const j = make();
    appendN(j, 3);
    expect(j.ack(50)).toBe(0);
    expect(j.readAfter(0, 10).map((e) => [e.seq, e.eventId])).toEqual([
      [51, 'e1'],
      [52, 'e2'],
      [53, 'e3'],
    ]);
    expect(j.nextSeq).toBe(54);
    j.close();
    expect(make().stats()).toMatchObject({ lastSeq: 53, lastAckedSeq: 50, depth: 3 });
  });
});
