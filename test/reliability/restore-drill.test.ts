/**
 * Backup and restore drill (issue 16), on SQLite, with real parts: a gateway (embedded broker on
 * loopback), two real devices with simulated card readers, the `backup` / `restore` CLI commands.
 *
 *   phase 1: taps, delivered and acknowledged → `backup` while the gateway runs (online)
 *   phase 2: more taps, delivered, acknowledged and DELETED by the devices (lost by the restore)
 *   the gateway stops; phase 3: taps while it is down (held in the devices' journals)
 *   `restore` (refused while the gateway runs), the gateway starts again on the restored file
 *
 * Shown: every reader recovers (upTo reaches its last seq, no gap left, journal empty); every phase-1 and
 * phase-3 tap is stored exactly once; the phase-2 taps, which nobody holds any more, are declared by
 * the readers (tombstone acked-deleted) and kept as rejected seqs: the loss is reported with its extent.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { backupCommand } from '../../gateway/src/backup/cli.js';
import {
  ADMIN_TOKEN,
  dbOf,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import { startTestReader, tapRounds, type TestReader } from './test-readers.js';

const READERS = ['rdr-drill-1', 'rdr-drill-2'];

describe('restore drill: backup, keep tapping, restore; every reader recovers', () => {
  const tmp = tempDir('vt-drill-');
  const gwDir = join(tmp.dir, 'gw');
  const stops: (() => Promise<void>)[] = [];
  let stopGateway: () => Promise<void> = () => Promise.resolve();
  afterAll(async () => {
    // devices first (while their broker still answers), then the gateway
    for (const s of stops) await s().catch(() => undefined);
    await stopGateway().catch(() => undefined);
    tmp.cleanup();
  }, 60_000);

  it('0 readers stalled, every tap the readers still hold delivered once, the lost ones reported with their extent', async () => {
    let gw: Gateway = createGateway({ config: testConfig(gwDir), logger: silent });
    trackDataDir(gw, gwDir);
    await gw.start();
    const mqttPort = gw.mqttPort ?? 0;
    const cfgFile = join(tmp.dir, 'gateway.json');
    const writeCfg = (g: Gateway) =>
      writeFileSync(
        cfgFile,
        JSON.stringify({
          ...testConfig(gwDir),
          admin: { host: '127.0.0.1', port: g.adminPort, token: ADMIN_TOKEN },
        }),
      );
    writeCfg(gw);
    const cli = async (args: string[]) => {
      const out: string[] = [];
      const code = await backupCommand(
        args[0] as 'backup' | 'restore',
        args.slice(1),
        (l) => out.push(l),
        (l) => out.push(l),
      );
      return { code, out: out.join('\n') };
    };

    const devices: TestReader[] = [];
    for (const id of READERS) {
      await gw.registry.addReader({ readerId: id, clientRef: `home-${id}`, password: PASSWORD });
      devices.push(await startTestReader({ id, dir: tmp.dir, mqttPort, stops }));
    }
    const tapAll = (n: number) => tapRounds(devices, n, '04D1');
    const allAcked = () => Promise.all(devices.map((d) => d.acked()));
    const lastSeq = (d: TestReader) => d.lastSeq();

    // phase 1
    await waitUntil(() => devices.every((d) => d.device.status().connected), 15_000);
    await tapAll(6);
    await allAcked();
    const backupFile = join(tmp.dir, 'nightly.db');
    const b = await cli(['backup', backupFile, '--config', cfgFile]);
    expect(b.out).toContain('backup written to');
    expect(b.code).toBe(0);
    const atBackup = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    // phase 2: delivered, acked, deleted by the devices; the backup does not have these
    await tapAll(5);
    await allAcked();
    const beforeStop = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    // refused while the gateway runs
    const refused = await cli(['restore', backupFile, '--config', cfgFile]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('the gateway is running');

    await gw.stop();
    // phase 3: taps while the gateway is down (journalled, unsent)
    await tapAll(4);
    const last = new Map(devices.map((d) => [d.id, lastSeq(d)]));

    const r = await cli(['restore', backupFile, '--config', cfgFile]);
    expect(r.out).toContain('restored');
    expect(r.code).toBe(0);

    gw = createGateway({
      config: testConfig(gwDir, { mqtt: { mode: 'embedded', host: '127.0.0.1', port: mqttPort } }),
      logger: silent,
    });
    trackDataDir(gw, gwDir);
    await gw.start();
    const restored = gw;
    stopGateway = () => restored.stop();

    // every reader recovers: the gateway holds everything up to the reader's last seq, no gap
    for (const d of devices) {
      await waitUntil(() => {
        gw.flush();
        const row = dbOf(gw)
          .prepare('SELECT contiguous_upto AS upTo, max_seen AS max FROM reader_seq WHERE reader_id = ?')
          .get(d.id) as { upTo: number; max: number } | undefined;
        return row !== undefined && row.upTo === last.get(d.id) && row.max === row.upTo;
      }, 30_000);
    }
    await allAcked();

    for (const d of devices) {
      const seqs = dbOf(gw)
        .prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq')
        .pluck()
        .all(d.id) as number[];
      const b0 = atBackup.get(d.id) ?? 0;
      const s0 = beforeStop.get(d.id) ?? 0;
      const l0 = last.get(d.id) ?? 0;
      const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
      // phase 1 (from the backup) and phase 3 (resent by the device), each once
      expect(seqs).toEqual([...range(1, b0), ...range(s0 + 1, l0)]);
      // phase 2: lost, declared by the reader, reported with its exact extent
      const lost = dbOf(gw)
        .prepare(
          "SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM rejected_events WHERE reader_id = ? AND detail LIKE '%acked-deleted%'",
        )
        .get(d.id) as { lo: number; hi: number; n: number };
      expect(lost).toEqual({ lo: b0 + 1, hi: s0, n: s0 - b0 });
    }
    // pairing continues past the lost range: the visits engine processed every reader to its end
    gw.pipeline.processNow(READERS);
    for (const d of devices) {
      const cursor = dbOf(gw)
        .prepare('SELECT processed_upto FROM visit_cursor WHERE reader_id = ?')
        .pluck()
        .get(d.id) as number;
      expect(cursor).toBe(last.get(d.id));
    }
  }, 180_000);
});
