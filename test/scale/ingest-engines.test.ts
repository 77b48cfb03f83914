import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createIngest, type Ingest } from '../../gateway/src/ingest/ingest.js';
import { ReaderLiveView } from '../../gateway/src/ingest/reader-view.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import type { IngestLog } from '../../gateway/src/store/ingest-store.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { createPgIngestStore } from '../../gateway/src/store/postgres/ingest-store.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
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
  close: () => Promise<void>;
}

const engines: Record<'sqlite' | 'postgres', () => Promise<Engine>> = {
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'vt-ingest-'));
    const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
    return Promise.resolve({
      store: createSqliteIngestStore(db),
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
    return { store: createPgIngestStore(pool), close: () => pool.end() };
  },
};

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(ok()).toBe(true);
}

function ingestOver(store: IngestLog) {
  const acks: Ack[] = [];
  const metrics = new MetricsRegistry();
  const committed: string[][] = [];
  const ingest: Ingest = createIngest({
    store,
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
  const send = (readerId: string, seqs: number[]) =>
    ingest.handle({
      readerId,
      leaf: 'events',
      payload: Buffer.from(JSON.stringify(batchOf(readerId, seqs))),
      clientId: readerId,
    });
  return { ingest, acks, metrics, committed, send };
}

describe.each(['sqlite', 'postgres'] as const)('ingest group commit on %s', (engine) => {
  it('stores, dedupes and acks with gaps; acks of one reader never go backwards', async () => {
    const e = await engines[engine]();
    try {
      const { ingest, acks, metrics, committed, send } = ingestOver(e.store);
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
      const first = ingestOver(e.store);
      first.send('r1', [1, 2, 5]);
      await first.ingest.stop();
      const second = ingestOver(e.store);
      await new Promise((r) => setTimeout(r, 200)); // the gauges load (PostgreSQL: one round trip)
      expect(second.metrics.render()).toMatch(/visittag_ingest_gap_events 2/);
      second.send('r1', [3, 4]);
      await second.ingest.stop();
      expect(second.acks.at(-1)).toMatchObject({ readerId: 'r1', upTo: 5 });
      expect(second.metrics.render()).toMatch(/visittag_ingest_gap_events 0/);
    } finally {
      await e.close();
    }
  }, 60_000);
});
