/**
 * Ingest with an asynchronous screen (secure cards on PostgreSQL, issue 14): a batch is queued only once
 * its screen has settled, a reader's batches are screened one after the other (the next screen is not
 * even started before the earlier one settled), refused taps are held as rejected with the detail (not
 * lost), a failed screen leaves the batch unstored and unacked (the device resends), and stop waits for
 * the screens in flight. Real SQLite ingest store (the screen is the only asynchronous part), fake clock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createIngest, type ScreenResult } from '../../gateway/src/ingest/ingest.js';
import { ReaderLiveView } from '../../gateway/src/ingest/reader-view.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { createSqliteEpochLog } from '../../gateway/src/store/sqlite/epochs.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { decode, type Ack, type TapEvent } from '../../protocol/index.js';
import { FakeClock } from '../gateway-visits/helpers.js';
import { batchOf, silent } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

interface Call {
  readerId: string;
  seqs: number[];
  settle: (refuse: number[]) => void;
  fail: (err: Error) => void;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'vt-ascreen-'));
  const db: Db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  cleanup.push(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = new FakeClock();
  const acks: Ack[] = [];
  const calls: Call[] = [];
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
    onCommitted: () => undefined,
    // the screen answers when the test says so: refuse the given seqs, or fail
    screen: (readerId: string, events: readonly TapEvent[]) =>
      new Promise<ScreenResult>((resolve, reject) => {
        calls.push({
          readerId,
          seqs: events.map((e) => e.seq),
          settle: (refuse) =>
            resolve({
              keep: events.filter((e) => !refuse.includes(e.seq)),
              refused: refuse.map((seq) => ({ seq, detail: `secure card replayed: seq ${seq}` })),
            }),
          fail: reject,
        });
      }),
  });
  const send = (readerId: string, seqs: number[]) =>
    ingest.handle({
      readerId,
      leaf: 'events',
      payload: Buffer.from(JSON.stringify(batchOf(readerId, seqs))),
      clientId: readerId,
    });
  const stored = (r: string) =>
    db.prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq').pluck().all(r) as number[];
  const held = (r: string) =>
    db.prepare('SELECT seq, detail FROM rejected_events WHERE reader_id = ? ORDER BY seq').all(r) as Array<{
      seq: number;
      detail: string;
    }>;
  /** Lets the screens' promise callbacks run, then the group-commit window pass. */
  const settleThenCommit = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
    clock.advance(10);
  };
  return { ingest, clock, acks, calls, send, stored, held, settleThenCommit };
}

describe('ingest with an asynchronous screen', () => {
  it("a batch is queued only after its screen; a reader's next batch is screened after the earlier one; refused taps are held", async () => {
    const t = setup();
    t.send('r1', [1, 2]);
    t.send('r1', [3, 4]);
    t.send('r2', [1]);
    // r1's second batch waits for the first one's screen; r2 is screened beside it
    expect(t.calls.map((c) => [c.readerId, c.seqs])).toEqual([
      ['r1', [1, 2]],
      ['r2', [1]],
    ]);
    t.clock.advance(50);
    expect(t.stored('r1')).toEqual([]); // nothing queued, nothing stored or acked before the screen
    expect(t.acks).toEqual([]);
    t.calls[0]?.settle([2]);
    await t.settleThenCommit();
    expect(t.calls.map((c) => [c.readerId, c.seqs])).toEqual([
      ['r1', [1, 2]],
      ['r2', [1]],
      ['r1', [3, 4]],
    ]);
    expect(t.stored('r1')).toEqual([1]);
    expect(t.held('r1')).toEqual([{ seq: 2, detail: 'secure card replayed: seq 2' }]);
    expect(t.acks.find((a) => a.readerId === 'r1')).toMatchObject({
      upTo: 2,
      rejected: [{ seq: 2, reason: 'invalid-event', detail: 'secure card replayed: seq 2' }],
    });
    t.calls[2]?.settle([]);
    t.calls[1]?.settle([]);
    await t.settleThenCommit();
    expect(t.stored('r1')).toEqual([1, 3, 4]);
    expect(t.stored('r2')).toEqual([1]);
    expect(t.acks.filter((a) => a.readerId === 'r1').map((a) => a.upTo)).toEqual([2, 4]);
  });

  it('a failed screen stores and acks nothing (the device resends); the resend gets through', async () => {
    const t = setup();
    t.send('r1', [1, 2]);
    t.send('r1', [3]);
    t.calls[0]?.fail(new Error('connection reset'));
    await t.settleThenCommit();
    expect(t.stored('r1')).toEqual([]);
    // the batch behind it is screened and stored; its ack shows the gap the failed batch left
    t.calls[1]?.settle([]);
    await t.settleThenCommit();
    expect(t.stored('r1')).toEqual([3]);
    expect(t.acks.at(-1)).toMatchObject({ upTo: 0, gaps: [{ from: 1, to: 2 }] });
    t.send('r1', [1, 2]); // the resend
    t.calls[2]?.settle([]);
    await t.settleThenCommit();
    expect(t.stored('r1')).toEqual([1, 2, 3]);
    expect(t.acks.at(-1)).toMatchObject({ upTo: 3 });
  });

  it('stop waits for the screens in flight and commits their batches', async () => {
    const t = setup();
    t.send('r1', [1]);
    t.send('r1', [2]);
    const stopped = t.ingest.stop();
    t.calls[0]?.settle([]);
    for (let i = 0; i < 100 && t.calls.length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(t.calls).toHaveLength(2); // the second batch is screened once the first one's screen settled
    t.calls[1]?.settle([]);
    await stopped;
    expect(t.stored('r1')).toEqual([1, 2]);
    expect(t.acks.at(-1)).toMatchObject({ upTo: 2 });
  });
});
