import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { TapReport } from '../../device/index.js';
import { Journal } from '../../device/src/core/journal.js';
import { RemoteControl } from '../../device/src/remote.js';
import {
  encode,
  GatewayCardKeys,
  pseudonymiseCard,
  systemClock,
  TapEvent,
  type ReaderCardKeys,
} from '../../protocol/index.js';
import { FakeClock, settings, silentLogger, tempDir, waitFor } from '../device/helpers.js';

/** The device half of the sealed scheme (issue 16, docs/security.md "Key exposure"), in process. */
const FLEET = 'test-fleet-key-0123456789abcdef';
const gw = new GatewayCardKeys(FLEET);
const UID = '04A1B2C3D4E5F6';
const OTHER = '04112233445566';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sealedSettings(dir: string, cardKeys: ReaderCardKeys) {
  const s = { ...settings(dir), cardKeys };
  delete s.fleetKey; // a reader on the sealed scheme holds no fleet key
  return s;
}

function boot(dir: string, clock: FakeClock, bootId: string) {
  const reader = new SimulatedCardReader({ clock });
  const device = createDevice({
    config: sealedSettings(dir, gw.readerCardKeys('reader-1')),
    logger: silentLogger,
    cardReader: reader,
    feedback: new SimulatedFeedback(),
    bootId,
    clockSynced: () => true,
    clock,
  });
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  const tap = async (uid: string) => {
    const n = taps.length;
    reader.tap(uid);
    await waitFor(() => taps.length > n, 5_000, 'tap');
    return taps[taps.length - 1] as TapReport;
  };
  return { device, tap };
}

function journalRows(dir: string): TapEvent[] {
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return (db.prepare('SELECT event_json FROM events ORDER BY seq').pluck().all() as string[]).map((j) =>
      TapEvent.parse(JSON.parse(j)),
    );
  } finally {
    db.close();
  }
}

/** The device's pushed-config handling over a real journal, as a sealed-v1 (or fleet-key) reader. */
function remoteFor(journal: Journal, sealed: boolean, changed: () => void = () => undefined): RemoteControl {
  return new RemoteControl({
    device: {
      config: sealed
        ? { readerId: 'reader-1', cardKeys: gw.readerCardKeys('reader-1') }
        : { readerId: 'reader-1' },
      now: () => ({ wallMs: Date.now(), bootId: 'b', monoMs: 1, synced: true }),
      armExpiry: () => undefined,
      applyLogLevel: () => undefined,
      resyncClock: () => Promise.reject(new Error('unused')),
      signal: () => Promise.resolve(),
      emit: () => true,
    },
    journal,
    logger: silentLogger,
    clock: systemClock,
    feedback: () => null,
    publishResult: () => undefined,
    changed,
  });
}
const configOf = (version: number, allowList: string[]) =>
  encode('config', {
    schemaVersion: 1,
    readerId: 'reader-1',
    version,
    visit: { repeatWindowMs: 10_000, maxOpenMs: 3_600_000 },
    allowList,
    revoked: [],
  });

describe('device on the sealed scheme', () => {
  it('journals its own reference and the sealed UID; an auto-close after a restart carries the sealed card too', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const d1 = boot(dir, clock, 'boot-1');
    await d1.device.start();
    const t = await d1.tap(UID);
    expect(t.card).toBe(gw.readerRef('reader-1', UID));
    await d1.device.stop();
    // a reboot: the open visit's state (with its sealed card) comes back from the journal
    const d2 = boot(dir, clock, 'boot-2');
    cleanups.push(() => d2.device.stop());
    await d2.device.start();
    clock.advance(12 * 3_600_000 + 10);
    await waitFor(() => journalRows(dir).length === 2, 5_000, 'auto-close');
    const rows = journalRows(dir);
    expect(rows.map((e) => e.decision)).toEqual(['start', 'auto-close']);
    for (const e of rows) {
      expect(e.card).toBe(gw.readerRef('reader-1', UID));
      const opened = gw.unseal(e.sealedCard ?? '', 'reader-1');
      expect(opened).toEqual({ ok: true, uid: UID });
      expect(gw.fleetRef(UID)).toBe(pseudonymiseCard(UID, FLEET));
    }
    expect(d2.device.status().cardScheme).toBe('sealed-v1');
  });

  it('takes card lists in its own references only: a list of fleet pseudonyms is refused, the last good one kept', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const journal = new Journal({
      path: join(dir, 'journal.db'),
      logger: silentLogger,
      capacity: 100,
      readerId: 'reader-1',
    });
    cleanups.push(() => journal.close());
    let changes = 0;
    const remote = remoteFor(journal, true, () => void changes++);
    const push = (version: number, allowList: string[]) =>
      remote.onConfig(
        encode('config', {
          schemaVersion: 1,
          readerId: 'reader-1',
          version,
          visit: { repeatWindowMs: 10_000, maxOpenMs: 3_600_000 },
          allowList,
          revoked: [],
        }),
      );
    push(1, [gw.readerRef('reader-1', UID)]);
    expect(remote.configVersion).toBe(1);
    expect(remote.configError).toBeNull();
    push(2, [gw.fleetRef(UID), gw.fleetRef(OTHER)]);
    expect(remote.configVersion).toBe(1);
    expect(remote.configError).toMatch(/wrong form for this reader \(sealed-v1\): 2 reference/);
    expect([...(remote.allowList ?? [])]).toEqual([gw.readerRef('reader-1', UID)]);
    expect(changes).toBe(2);
  });

  it('a reader provisioned again onto the sealed scheme sets its saved fleet-key lists aside (they would refuse every card)', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const journal = new Journal({
      path: join(dir, 'journal.db'),
      logger: silentLogger,
      capacity: 100,
      readerId: 'reader-1',
    });
    cleanups.push(() => journal.close());
    const before = remoteFor(journal, false); // the reader while it held the fleet key
    before.onConfig(configOf(3, [gw.fleetRef(UID)]));
    expect(before.configVersion).toBe(3);
    const after = remoteFor(journal, true); // same journal, now with cardKeys
    expect(after.config).toBeNull();
    expect(after.allowList).toBeNull(); // every card accepted until the gateway pushes its own list
    expect(after.configError).toMatch(/^saved config not used: card lists in the wrong form/);
    after.onConfig(configOf(4, [gw.readerRef('reader-1', UID)]));
    expect(after.configVersion).toBe(4);
    expect(after.configError).toBeNull();
    expect(remoteFor(journal, true).configVersion).toBe(4); // and it is kept across a restart
  });
});
