// A journal belongs to one reader id. `run` with a config for another id on the same data folder must
// refuse before any tap gets feedback (found as a new user: it started, showed "visit started" for new
// taps, and none of them, old or new, ever reached the gateway).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { TapReport } from '../../device/index.js';
import { loadDeviceSettings } from '../../device/src/config.js';
import { JOURNAL_READER_KEY } from '../../device/src/core/journal.js';
import { FLEET_KEY, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const UID = '04A1B2C3D4E5F6';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function boot(dir: string, readerId: string) {
  const reader = new SimulatedCardReader();
  const feedback = new SimulatedFeedback();
  const device = createDevice({
    config: settings(dir, { readerId }),
    logger: silentLogger,
    cardReader: reader,
    feedback,
    bootId: 'boot-1',
    clockSynced: () => true,
  });
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  return { reader, feedback, device, taps };
}

/** Journals `n` taps as `readerId` (no broker: they stay unsent). */
async function journalTaps(dir: string, readerId: string, n: number): Promise<void> {
  const d = boot(dir, readerId);
  await d.device.start();
  for (let i = 0; i < n; i++) {
    d.reader.tap(i % 2 === 0 ? UID : 'DEADBEEF');
    await waitFor(() => d.taps.length > i, 5_000, 'tap');
  }
  await d.device.stop(500);
}

function rows(dir: string): { seq: number; readerId: string }[] {
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return db
      .prepare<[], { seq: number; event_json: string }>('SELECT seq, event_json FROM events ORDER BY seq')
      .all()
      .map((r) => ({ seq: r.seq, readerId: (JSON.parse(r.event_json) as { readerId: string }).readerId }));
  } finally {
    db.close();
  }
}

describe('journal identity: run refuses another reader id', () => {
  it('refuses a journal holding unsent taps of another id, before any feedback, and changes nothing', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    await journalTaps(dir, 'rdr-M1', 3);
    const before = rows(dir);
    expect(before.map((r) => r.readerId)).toEqual(['rdr-M1', 'rdr-M1', 'rdr-M1']);

    const d = boot(dir, 'rdr-M2');
    await expect(d.device.start()).rejects.toThrow(/3 unsent event\(s\) of reader "rdr-M1".*"rdr-M2"/s);
    const err = (await d.device.start().catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('JournalIdentityError');
    expect(err.message).toMatch(/Fix:/);
    expect(err.message).toMatch(/visittag-device provision/);
    // A card held to the reader now gets no feedback at all (nothing is running), and nothing is journalled.
    d.reader.tap(UID);
    await new Promise((r) => setTimeout(r, 100));
    expect(d.taps).toEqual([]);
    expect(d.feedback.signals).toEqual([]);
    expect(d.feedback.started).toBe(false);
    expect(rows(dir)).toEqual(before);
  });

  it('refuses an emptied journal of another id too (its sequence would leave a gap under the new id)', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    await journalTaps(dir, 'rdr-M1', 2);
    const db = new Database(join(dir, 'journal.db'));
    db.prepare('DELETE FROM events').run(); // as after the gateway acknowledged them
    db.close();
    const d = boot(dir, 'rdr-M2');
    await expect(d.device.start()).rejects.toThrow(/belongs to reader "rdr-M1" \(its sequence is at 2\)/);
  });

  it('a journal of an older version (no stamp) is judged by its unsent events, then stamped', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    await journalTaps(dir, 'rdr-M1', 1);
    const db = new Database(join(dir, 'journal.db'));
    db.prepare('DELETE FROM meta WHERE key = ?').run(JOURNAL_READER_KEY);
    db.close();
    await expect(boot(dir, 'rdr-M2').device.start()).rejects.toThrow(/of reader "rdr-M1"/);

    // Its own id starts, stamps the journal and carries on with the next seq.
    const same = boot(dir, 'rdr-M1');
    await same.device.start();
    cleanups.push(() => same.device.stop(500));
    same.reader.tap(UID);
    await waitFor(() => same.taps.length === 1, 5_000, 'tap');
    expect(rows(dir).map((r) => r.seq)).toEqual([1, 2]);
    const check = new Database(join(dir, 'journal.db'), { readonly: true });
    const stamp = check
      .prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?')
      .get(JOURNAL_READER_KEY);
    check.close();
    expect(stamp?.value).toBe('rdr-M1');
  });

  it('visittag-device run exits 78 with the fix named, and the journal is untouched', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const data = join(dir, 'data');
    await journalTaps(data, 'rdr-M1', 2);
    const before = rows(data);
    const cfgPath = join(dir, 'device.json');
    writeFileSync(
      cfgPath,
      JSON.stringify({
        readerId: 'rdr-M2',
        dataDir: 'data', // relative: resolved beside the config file, not against the cwd
        fleetKey: FLEET_KEY,
        mqtt: { url: 'mqtt://127.0.0.1:1' },
        reader: { driver: 'simulated' },
        feedback: { driver: 'simulated' },
        logLevel: 'silent',
      }),
    );
    const elsewhere = join(dir, 'cwd');
    mkdirSync(elsewhere);
    const r = spawnSync(
      process.execPath,
      [join(process.cwd(), 'bin', 'visittag-device.js'), 'run', '--config', cfgPath],
      { cwd: elsewhere, encoding: 'utf8', timeout: 20_000, env: { ...process.env, RUNTIME_DIRECTORY: dir } },
    );
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/2 unsent event\(s\) of reader "rdr-M1", but the config is for reader "rdr-M2"/);
    expect(r.stderr).toMatch(/Fix:/);
    expect(rows(data)).toEqual(before);
  });
});

describe('device config: a relative dataDir is beside the config file', () => {
  it('resolves against the config file folder, not the current directory', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const cfgPath = join(dir, 'etc', 'device.json');
    mkdirSync(join(dir, 'etc'));
    writeFileSync(
      cfgPath,
      JSON.stringify({
        readerId: 'rdr-1',
        dataDir: '../var',
        fleetKey: FLEET_KEY,
        mqtt: { url: 'mqtt://x:1' },
      }),
    );
    expect(loadDeviceSettings(cfgPath).dataDir).toBe(join(dir, 'var'));
    writeFileSync(
      cfgPath,
      JSON.stringify({
        readerId: 'rdr-1',
        dataDir: '/abs/data',
        fleetKey: FLEET_KEY,
        mqtt: { url: 'mqtt://x:1' },
      }),
    );
    expect(loadDeviceSettings(cfgPath).dataDir).toBe('/abs/data');
  });
});
