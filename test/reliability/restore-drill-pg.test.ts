/**
 * Backup and restore drill on PostgreSQL (issue 16; docs/backup.md "PostgreSQL"), with real parts: a
 * PostgreSQL cluster this test starts, the gateway on `store.engine: "postgres"` (gateway/pg-instance.ts) with
 * its embedded broker on loopback, two real devices with simulated card readers, and PostgreSQL's own
 * `pg_dump --format=custom` / `pg_restore --clean` as docs/backup.md tells an operator to use them.
 *
 *   phase 1: taps, delivered and acknowledged → pg_dump while the gateway runs (online, consistent snapshot)
 *   phase 2: more taps, delivered, acknowledged and DELETED by the devices (lost by the restore)
 *   the gateway stops; phase 3: taps while it is down (held in the devices' journals)
 *   pg_restore --clean into the same database, the gateway starts again
 *
 * Shown, as for SQLite (restore-drill.test.ts): every reader recovers (upTo reaches its last seq, no gap, journal
 * empty); every phase-1 and phase-3 tap is stored exactly once; the phase-2 taps, which nobody holds any more, are
 * declared by the readers (tombstone acked-deleted) and kept as rejected seqs: the loss has its exact extent.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { createPgGateway, type PgGateway } from '../../gateway/pg-instance.js';
import { openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { PASSWORD, silent, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { findPgBinDir, startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { startTestReader, tapRounds, type TestReader } from './test-readers.js';

const READERS = ['rdr-pgdrill-1', 'rdr-pgdrill-2'];

/** Runs a PostgreSQL client program (pg_dump, pg_restore) from the cluster's bin dir; throws with its stderr. */
function pgTool(cmd: string, args: string[]): void {
  const bin = findPgBinDir();
  if (!bin) throw new Error('PostgreSQL binaries not found. Fix: sudo bash scripts/setup-system.sh');
  const r = spawnSync(join(bin, cmd), args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
}

describe('restore drill on PostgreSQL: pg_dump, keep tapping, pg_restore; every reader recovers', () => {
  const tmp = tempDir('vt-pgdrill-');
  const gwDir = join(tmp.dir, 'gw');
  let pgc: PgCluster | undefined;
  let pool: PgPool | undefined;
  const stops: (() => Promise<void>)[] = [];
  let stopGateway: () => Promise<void> = () => Promise.resolve();
  afterAll(async () => {
    for (const s of stops) await s().catch(() => undefined);
    await stopGateway().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await pgc?.destroy();
    tmp.cleanup();
  }, 120_000);

  it('0 readers stalled, every tap the readers still hold delivered once, the lost ones reported with their extent', async () => {
    pgc = await startPgCluster({ prefix: 'vt-pgdrill-pg-' });
    const url = await pgc.createDatabase();
    pool = openPgPool({ url, max: 2 });
    const db = pool;
    const config = (port: number) =>
      testConfig(gwDir, {
        store: { engine: 'postgres', url, poolMax: 4 },
        mqtt: { mode: 'embedded', host: '127.0.0.1', port },
      });
    // the reader registry is still the instance's SQLite file (docs/scale-out.md): add the readers there
    const offline = createGateway({ config: config(0), logger: silent });
    for (const id of READERS)
      await offline.registry.addReader({ readerId: id, clientRef: `home-${id}`, password: PASSWORD });
    await offline.stop();
    let gw: PgGateway = createPgGateway({ config: config(0), logger: silent });
    await gw.start();
    const first = gw;
    stopGateway = () => first.stop();
    const mqttPort = gw.mqttPort ?? 0;

    const devices: TestReader[] = [];
    for (const id of READERS) devices.push(await startTestReader({ id, dir: tmp.dir, mqttPort, stops }));
    const tapAll = (n: number) => tapRounds(devices, n, '04E1');
    const allAcked = () => Promise.all(devices.map((d) => d.acked(60_000)));
    const lastSeq = (d: TestReader) => d.lastSeq();

    // phase 1, then the nightly copy while the gateway runs
    await waitUntil(() => devices.every((d) => d.device.status().connected), 15_000);
    await tapAll(6);
    await allAcked();
    const dump = join(tmp.dir, 'nightly.dump');
    pgTool('pg_dump', ['--format=custom', `--file=${dump}`, `--dbname=${url}`]);
    const atBackup = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    // phase 2: delivered, acked, deleted by the devices; the dump does not have these
    await tapAll(5);
    await allAcked();
    const beforeStop = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    await gw.stop();
    // phase 3: taps while the gateway is down (journalled, unsent)
    await tapAll(4);
    const last = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    // the restore, as docs/backup.md has it: the same database, its objects dropped and recreated from the dump
    pgTool('pg_restore', ['--clean', '--if-exists', '--single-transaction', `--dbname=${url}`, dump]);
    const afterRestore = (await db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]?.n;
    expect(Number(afterRestore)).toBe([...atBackup.values()].reduce((a, b) => a + b, 0));

    gw = createPgGateway({ config: config(mqttPort), logger: silent });
    await gw.start();
    const restored = gw;
    stopGateway = () => restored.stop();

    // every reader recovers: the gateway holds everything up to the reader's last seq, no gap
    for (const d of devices) {
      await waitUntil(async () => {
        gw.flush();
        const row = (
          await db.query<{ up: number; max: number }>(
            'SELECT contiguous_upto AS up, max_seen AS max FROM reader_seq WHERE reader_id = $1',
            [d.id],
          )
        ).rows[0];
        return row !== undefined && Number(row.up) === last.get(d.id) && Number(row.max) === Number(row.up);
      }, 60_000);
    }
    await allAcked();

    for (const d of devices) {
      const seqs = (
        await db.query<{ seq: string }>('SELECT seq FROM events WHERE reader_id = $1 ORDER BY seq', [d.id])
      ).rows.map((r) => Number(r.seq));
      const b0 = atBackup.get(d.id) ?? 0;
      const s0 = beforeStop.get(d.id) ?? 0;
      const l0 = last.get(d.id) ?? 0;
      const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
      // phase 1 (from the dump) and phase 3 (resent by the device), each once
      expect(seqs).toEqual([...range(1, b0), ...range(s0 + 1, l0)]);
      // phase 2: lost, declared by the reader, reported with its exact extent
      const lost = (
        await db.query<{ lo: string; hi: string; n: string }>(
          "SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM rejected_events WHERE reader_id = $1 AND detail LIKE '%acked-deleted%'",
          [d.id],
        )
      ).rows[0];
      expect({ lo: Number(lost?.lo), hi: Number(lost?.hi), n: Number(lost?.n) }).toEqual({
        lo: b0 + 1,
        hi: s0,
        n: s0 - b0,
      });
    }
    // pairing continues past the lost range: the visits engine reaches every reader's last seq
    for (const d of devices) {
      await waitUntil(async () => {
        const c = (
          await db.query<{ up: string }>(
            'SELECT processed_upto AS up FROM visit_cursor WHERE reader_id = $1',
            [d.id],
          )
        ).rows[0];
        return c !== undefined && Number(c.up) === last.get(d.id);
      }, 30_000);
    }
  }, 240_000);
});
