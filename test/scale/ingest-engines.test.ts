import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EpochLog } from '../../gateway/src/ingest/epochs.js';
import { createIngest, type Ingest } from '../../gateway/src/ingest/ingest.js';
import { ReaderLiveView } from '../../gateway/src/ingest/reader-view.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import type { IngestLog } from '../../gateway/src/store/ingest-store.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { PgEpochLog } from '../../gateway/src/store/postgres/epochs.js';
import { createPgIngestStore } from '../../gateway/src/store/postgres/ingest-store.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { createSqliteEpochLog } from '../../gateway/src/store/sqlite/epochs.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { decode, systemClock, type Ack } from '../../protocol/index.js';
import { batchOf, silent } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * The ingest group commit over both engines through its port (IngestLog): SQLite answers
 * synchronously, so a flush stores and acks before it returns (no promise on the hot path);
 * PostgreSQL answers with a Promise, so the acks follow the commit and the next group commit waits
 * for the one in flight (a reader's acks never go backwards).
 */
let cluster: Promise<PgCluster> | undefined;
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
});

interface Engine {
  store: IngestLog;
  epochs: EpochLog;
  close: () => Promise<void>;
}

const engines: Record<'sqlite' | 'postgres', () => Promise<Engine>> = {
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'vt-ingest-'));
    const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
    return Promise.resolve({
      store: createSqliteIngestStore(db),
      epochs: createSqliteEpochLog(db),
      close: () => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      },
    });
  },
  postgres: async () => {
    cluster ??= startPgCluster();
    const pool = openPgPool({ url: await (await cluster).createDatabase(), max: 4 });
    await migrate(pool, postgresMigrations);
    return { store: createPgIngestStore(pool), epochs: new PgEpochLog(pool), close: () => pool.end() };
  },
};

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(ok()).toBe(true);
}

function ingestOver({ store, epochs }: Pick<Engine, 'store' | 'epochs'>) {
  const acks: Ack[] = [];
  const metrics = new MetricsRegistry();
  const committed: string[][] = [];
  const ingest: Ingest = createIngest({
    store,
    epochs,
    clock: systemClock,
    logger: silent,
    metrics,
    live: new ReaderLiveView(),
    groupCommitMs: 0,
    groupCommitMax: 100,
    admission: () => 'active',
    publish: (_topic, payload) => {
      const { readerId } = JSON.parse(payload.toString('utf8')) as { readerId: string };
      const d = decode('acks', readerId, payload);
      if (d.ok) acks.push(d.value);
      return Promise.resolve();
    },
    onCommitted: (ids) => committed.push(ids),
  });
  const send = (readerId: string, seqs: number[], epoch?: string) => {
    const b = batchOf(readerId, seqs);
    const batch = epoch
      ? { ...b, epoch, events: b.events.map((x) => ({ ...x, eventId: `${readerId}-${epoch}-e${x.seq}` })) }
      : b;
    ingest.handle({
      readerId,
      leaf: 'events',
      payload: Buffer.from(JSON.stringify(batch)),
      clientId: readerId,
    });
  };
  return { ingest, acks, metrics, committed, send };
}

describe.each(['sqlite', 'postgres'] as const)('ingest group commit on %s', (engine) => {
  it('stores, dedupes and acks with gaps; acks of one reader never go backwards', async () => {
    const e = await engines[engine]();
    try {
      const { ingest, acks, metrics, committed, send } = ingestOver(e);
      send('r1', [1, 2, 4]);
      if (engine === 'sqlite') {
        // synchronous store: committed and acked inside handle → flush, before any await
        expect(acks.map((a) => a.upTo)).toEqual([2]);
      }
      await until(() => acks.length > 0);
      expect(acks[0]).toMatchObject({ readerId: 'r1', upTo: 2, gaps: [{ from: 3, to: 3 }] });
      send('r1', [3]);
      send('r1', [2, 3]); // duplicates
      send('r2', [1]);
      for (let s = 5; s <= 40; s++) send('r1', [s]);
      await ingest.stop();
      const r1 = acks.filter((a) => a.readerId === 'r1');
      expect(r1.at(-1)?.upTo).toBe(40);
      for (let i = 1; i < r1.length; i++) expect(r1[i]?.upTo).toBeGreaterThanOrEqual(r1[i - 1]?.upTo ?? 0);
      expect(acks.find((a) => a.readerId === 'r2')?.upTo).toBe(1);
      expect(committed.flat()).toContain('r2');
      expect(await e.store.seqState('r1')).toEqual({ contiguousUpto: 40, maxSeen: 40 });
      expect(await e.store.gaps('r1', 10)).toEqual([]);
      const text = metrics.render();
      expect(text).toMatch(/visittag_ingest_events_total 41/);
      expect(text).toMatch(/visittag_ingest_dedupe_hits_total 2/);
    } finally {
      await e.close();
    }
  }, 60_000);

  it('a restarted ingest reads the high-water mark and the gap gauges from the store', async () => {
    const e = await engines[engine]();
    try {
      const first = ingestOver(e);
      first.send('r1', [1, 2, 5]);
      await first.ingest.stop();
      const second = ingestOver(e);
      // the gauges load (PostgreSQL: one round trip)
      await until(() => /visittag_ingest_gap_events 2/.test(second.metrics.render()));
      second.send('r1', [3, 4]);
      await second.ingest.stop();
      expect(second.acks.at(-1)).toMatchObject({ readerId: 'r1', upTo: 5 });
      expect(second.metrics.render()).toMatch(/visittag_ingest_gap_events 0/);
    } finally {
      await e.close();
    }
  }, 60_000);

  it('a replaced journal (new epoch, seq 1 again) goes after the old one; what it owed is held as lost (issue 16)', async () => {
    const e = await engines[engine]();
    try {
      const { ingest, acks, metrics, send } = ingestOver(e);
      send('r1', [1, 2, 4], 'jA'); // 3 never comes: the journal is wiped
      await until(() => acks.some((a) => a.epoch === 'jA'));
      send('r1', [1, 2], 'jB'); // right behind it: jB waits for jA's commit before it is placed
      send('r1', [3], 'jB');
      send('r1', [5], 'jA'); // the replaced journal again: refused
      await ingest.stop();
      const jb = acks.filter((a) => a.epoch === 'jB');
      expect(jb.at(-1)).toMatchObject({ readerId: 'r1', upTo: 3, rejected: [] });
      expect(acks.every((a) => a.epoch === 'jA' || a.epoch === 'jB')).toBe(true);
      expect(await e.store.seqState('r1')).toEqual({ contiguousUpto: 7, maxSeen: 7 });
      expect(await e.epochs.epochs('r1')).toMatchObject([
        { epoch: 'jA', offset: 0 },
        { epoch: 'jB', offset: 4 },
      ]);
      expect(await e.epochs.storedEvent('r1', 5)).toContain('r1-jB-e1');
      const text = metrics.render();
      expect(text).toMatch(/visittag_ingest_duplicate_conflicts_total 0/);
      expect(text).toMatch(/visittag_ingest_epoch_lost_seqs_total 1/);
      expect(text).toMatch(/visittag_ingest_rejects_total\{reason="epoch-closed"\} 1/);
    } finally {
      await e.close();
    }
  }, 60_000);
});
