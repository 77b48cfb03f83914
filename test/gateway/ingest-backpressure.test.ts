/**
 * Back-pressure from the visits engine (issue 15): while the engine's backlog is at its limit, a timed
 * group commit waits (so no acks go out and the readers hold their taps), then takes from the queue only
 * what fits; a stuck engine slows ingest down but never stops it; stop commits everything at once.
 * Real SQLite ingest store, fake clock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createIngest } from '../../gateway/src/ingest/ingest.js';
import { ReaderLiveView } from '../../gateway/src/ingest/reader-view.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { createSqliteEpochLog } from '../../gateway/src/store/sqlite/epochs.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { decode, type Ack } from '../../protocol/index.js';
import { FakeClock } from '../gateway-visits/helpers.js';
import { batchOf, silent } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function setup(backlog: { n: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'vt-bp-'));
  const db: Db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  cleanup.push(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = new FakeClock();
  const acks: Ack[] = [];
  const committed: number[] = [];
  const ingest = createIngest({
    store: createSqliteIngestStore(db),
    epochs: createSqliteEpochLog(db),
    clock,
    logger: silent,
    metrics: new MetricsRegistry(),
    live: new ReaderLiveView(),
    groupCommitMs: 10,
    groupCommitMax: 200,
    admission: () => 'active',
    publish: (_topic, payload) => {
      const { readerId } = JSON.parse(payload.toString('utf8')) as { readerId: string };
      const d = decode('acks', readerId, payload);
      if (d.ok) acks.push(d.value);
      return Promise.resolve();
    },
    onCommitted: (_ids, c) => {
      const n = (c ?? []).reduce((a, x) => a + x.events.length, 0);
      committed.push(n);
      backlog.n += n;
    },
    backlog: () => backlog.n,
    maxBacklog: 100,
    maxBacklogWaitMs: 1_000,
  });
  const send = (readerId: string, seqs: number[]) =>
    ingest.handle({
      readerId,
      leaf: 'events',
      payload: Buffer.from(JSON.stringify(batchOf(readerId, seqs))),
      clientId: readerId,
    });
  const stored = () => db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
  return { ingest, clock, acks, committed, send, stored };
}

const seqs = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('ingest back-pressure from the visits engine', () => {
  it('no back-pressure below the limit: a commit after the group-commit window, every event handed over', () => {
    const backlog = { n: 0 };
    const { clock, acks, committed, send } = setup(backlog);
    send('r1', seqs(1, 30));
    send('r2', seqs(1, 30));
    clock.advance(10);
    expect(committed).toEqual([60]);
    expect(acks.map((a) => [a.readerId, a.upTo])).toEqual([
      ['r1', 30],
      ['r2', 30],
    ]);
  });

  it('at the limit the commit waits; then only what fits is committed, in order; the backlog stays bounded', () => {
    const backlog = { n: 100 };
    const { clock, acks, committed, send, stored } = setup(backlog);
    send('r1', seqs(1, 60));
    send('r2', seqs(1, 60));
    send('r3', seqs(1, 60));
    clock.advance(500);
    expect(stored()).toBe(0); // held: nothing committed, nothing acked
    expect(acks).toEqual([]);
    backlog.n = 50; // the engine caught up below the limit
    clock.advance(10);
    // room up to twice the limit (150 events): two messages of 60, in queue order (a third would go over)
    expect(committed).toEqual([120]);
    expect(acks.map((a) => a.readerId)).toEqual(['r1', 'r2']);
    expect(backlog.n).toBe(170);
    clock.advance(100);
    expect(committed).toEqual([120]); // over the limit again: r3 waits
    backlog.n = 0;
    clock.advance(10);
    expect(committed).toEqual([120, 60]);
    expect(acks.map((a) => [a.readerId, a.upTo])).toEqual([
      ['r1', 60],
      ['r2', 60],
      ['r3', 60],
    ]);
  });

  it('a stuck engine slows ingest but never stops it; stop commits everything at once', async () => {
    const backlog = { n: 1_000_000 };
    const { ingest, clock, acks, send, stored } = setup(backlog);
    send('r1', seqs(1, 10));
    clock.advance(999);
    expect(stored()).toBe(0);
    clock.advance(20);
    expect(stored()).toBe(10); // waited maxBacklogWaitMs, then committed anyway
    expect(acks.map((a) => a.upTo)).toEqual([10]);
    send('r1', seqs(11, 10));
    clock.advance(20);
    expect(stored()).toBe(10);
    await ingest.stop();
    expect(stored()).toBe(20);
  });

  it('after the wait a stuck engine gets one limit of events at a time, not the whole queue', () => {
    const backlog = { n: 1_000_000 };
    const { clock, committed, send } = setup(backlog);
    send('r1', seqs(1, 60));
    send('r2', seqs(1, 60));
    send('r3', seqs(1, 60));
    clock.advance(1_020);
    expect(committed).toEqual([60]); // maxBacklog (100) events at most: r1's message, r2 would go over
    clock.advance(1_020);
    expect(committed).toEqual([60, 60]);
    clock.advance(1_020);
    expect(committed).toEqual([60, 60, 60]);
  });
});
