import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { Device, TapReport } from '../../device/index.js';
import { pseudonymiseCard, TapEvent } from '../../protocol/index.js';
import { FakeClock, FLEET_KEY, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const UID_A = '04A1B2C3D4E5F6';
const UID_B = 'DEADBEEF';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function boot(
  dir: string,
  opts: { clock?: FakeClock; synced?: boolean; bootId?: string; capacity?: number } = {},
) {
  const reader = new SimulatedCardReader({ ...(opts.clock ? { clock: opts.clock } : {}) });
  const feedback = new SimulatedFeedback();
  const device = createDevice({
    config: settings(dir, { journal: { capacity: opts.capacity ?? 1000, warnAtFraction: 0.8 } }),
    logger: silentLogger,
    cardReader: reader,
    feedback,
    bootId: opts.bootId ?? 'boot-1',
    clockSynced: () => opts.synced ?? true,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  return { reader, feedback, device, taps };
}

async function tapAndWait(
  d: { reader: SimulatedCardReader; taps: TapReport[]; device: Device },
  uid: string,
) {
  const n = d.taps.length;
  d.reader.tap(uid);
  await waitFor(() => d.taps.length > n || d.device.listenerCount('tap') === 0, 5_000, 'tap');
  return d.taps[d.taps.length - 1] as TapReport;
}

function journalRows(dir: string): TapEvent[] {
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return db
      .prepare<[], { event_json: string }>('SELECT event_json FROM events ORDER BY seq')
      .all()
      .map((r) => TapEvent.parse(JSON.parse(r.event_json)));
  } finally {
    db.close();
  }
}

describe('device (in-process, no broker)', () => {
  it('feedback comes after the durable commit: the journalled event is there when the worker sees it', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const d = boot(dir);
    cleanups.push(() => d.device.stop());
    let seenInJournal: number | null = null;
    d.feedback.onSignal = () => {
      seenInJournal = journalRows(dir).length;
    };
    await d.device.start();
    const tap = await tapAndWait(d, UID_A);
    expect(tap.decision).toBe('start');
    expect(tap.feedback).toBe('visit-started');
    expect(seenInJournal).toBe(1);
    expect(d.feedback.signals.map((s) => s.pattern)).toEqual(['visit-started']);
    expect(tap.card).toBe(pseudonymiseCard(UID_A, FLEET_KEY));
    expect(JSON.stringify(journalRows(dir))).not.toContain(UID_A);
  });

  it('restart keeps the sequence gap-free and restores open visits (double staffing)', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const d1 = boot(dir, { clock });
    await d1.device.start();
    await tapAndWait(d1, UID_A); // start A
    clock.advance(1_000);
    await tapAndWait(d1, UID_B); // start B
    clock.advance(60_000);
    await tapAndWait(d1, UID_B); // stop B
    clock.advance(60_000);
    await tapAndWait(d1, UID_B); // start B again
    const open1 = d1.device.openVisits().sort((a, b) => a.card.localeCompare(b.card));
    await d1.device.stop();

    const d2 = boot(dir, { clock, bootId: 'boot-2' });
    cleanups.push(() => d2.device.stop());
    await d2.device.start();
    expect(d2.device.openVisits().sort((a, b) => a.card.localeCompare(b.card))).toEqual(open1);
    expect(open1).toHaveLength(2);
    clock.advance(60_000);
    const t = await tapAndWait(d2, UID_A);
    expect(t.decision).toBe('stop');
    expect(t.seq).toBe(5);
    expect(journalRows(dir).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('an unsynced clock: events carry boot id, monotonic time and synced=false (pre-2000 wall clamped)', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock(Date.UTC(1970, 0, 1, 0, 0, 42), 42_123);
    const d = boot(dir, { clock, synced: false, bootId: 'boot-unsynced' });
    cleanups.push(() => d.device.stop());
    await d.device.start();
    await tapAndWait(d, UID_A);
    const [e] = journalRows(dir);
    expect(e?.time).toEqual({
      wallMs: 946_684_800_000,
      bootId: 'boot-unsynced',
      monoMs: 42_123,
      synced: false,
    });
    expect(d.device.status().faults).toContain('clock-unsynced');
    expect(d.device.status().clock).toEqual({ synced: false, source: 'none' });
  });

  it('a visit left open is auto-closed by the timer (missing stop); the next tap starts anew', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const d = boot(dir, { clock });
    cleanups.push(() => d.device.stop());
    const closed: string[] = [];
    d.device.on('auto-close', (a) => closed.push(a.visitId));
    await d.device.start();
    const first = await tapAndWait(d, UID_A);
    clock.advance(12 * 3_600_000 + 10);
    expect(closed).toEqual([first.visitId]);
    expect(d.device.openVisits()).toEqual([]);
    const next = await tapAndWait(d, UID_A);
    expect(next.decision).toBe('start');
    expect(journalRows(dir).map((e) => e.decision)).toEqual(['start', 'auto-close', 'start']);
  });

  it('journal full: the tap is refused with fault feedback, nothing is overwritten', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const d = boot(dir, { clock, capacity: 10 });
    cleanups.push(() => d.device.stop());
    const refused: string[] = [];
    d.device.on('refused', (r) => refused.push(r.reason));
    await d.device.start();
    for (let i = 0; i < 10; i++) {
      clock.advance(20_000);
      await tapAndWait(d, UID_A);
    }
    clock.advance(20_000);
    d.reader.tap(UID_A);
    await waitFor(() => refused.length === 1, 5_000, 'refusal');
    expect(refused).toEqual(['journal-full']);
    expect(d.feedback.signals.at(-1)?.pattern).toBe('fault-storage');
    expect(journalRows(dir).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(d.device.status().faults).toEqual(expect.arrayContaining(['journal-full', 'storage-low']));
  });

  it('unreadable journal rows are quarantined at start instead of crashing', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const d1 = boot(dir);
    await d1.device.start();
    await tapAndWait(d1, UID_A);
    await tapAndWait(d1, UID_B);
    await d1.device.stop();
    const db = new Database(join(dir, 'journal.db'));
    db.prepare("UPDATE events SET event_json = '{garbage' WHERE seq = 1").run();
    db.close();
    const d2 = boot(dir);
    cleanups.push(() => d2.device.stop());
    await d2.device.start();
    const s = d2.device.status();
    expect(s.quarantinedRows).toBe(1);
    expect(s.queueDepth).toBe(1);
    expect(s.oldestUnackedSeq).toBe(2);
    const t = await tapAndWait(d2, '11223344');
    expect(t.seq).toBe(3);
  });

  it('a card left on the reader or flickering at the edge is one tap; reader unplug shows a fault', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const d = boot(dir, { clock });
    cleanups.push(() => d.device.stop());
    await d.device.start();
    d.reader.present(UID_A);
    d.reader.present(UID_A); // still in the field: no second read
    d.reader.bounce(UID_A);
    await waitFor(() => d.taps.length === 1, 5_000, 'one tap');
    d.reader.remove();
    clock.advance(30_000);
    d.reader.bounce(UID_B); // flickers in: one tap
    await waitFor(() => d.taps.length === 2, 5_000, 'second tap');
    expect(d.taps.map((t) => t.decision)).toEqual(['start', 'start']);
    expect(journalRows(dir)).toHaveLength(2);

    expect(d.device.status().readerAttached).toBe(true);
    d.reader.detach('unplugged');
    await waitFor(
      () => d.feedback.signals.some((x) => x.pattern === 'fault-reader'),
      5_000,
      'fault feedback',
    );
    expect(d.device.status().readerAttached).toBe(false);
    expect(d.device.status().faults).toContain('reader-detached');
    d.reader.attach();
    expect(d.device.status().faults).not.toContain('reader-detached');
  });

  it('a failed commit gives fault feedback, no positive feedback, and consumes no sequence number', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    let failNext = false;
    const reader = new SimulatedCardReader();
    const feedback = new SimulatedFeedback();
    const device = createDevice({
      config: settings(dir),
      logger: silentLogger,
      cardReader: reader,
      feedback,
      clockSynced: () => true,
      journalHooks: {
        beforeCommit: () => {
          if (failNext) throw new Error('SQLITE_IOERR: disk I/O error (simulated)');
        },
      },
    });
    cleanups.push(() => device.stop());
    const taps: TapReport[] = [];
    const refused: string[] = [];
    device.on('tap', (t) => taps.push(t));
    device.on('refused', (r) => refused.push(r.reason));
    await device.start();
    failNext = true;
    reader.tap(UID_A);
    await waitFor(() => refused.length === 1, 5_000, 'refusal');
    expect(refused).toEqual(['storage-error']);
    expect(feedback.signals.map((x) => x.pattern)).toEqual(['fault-storage']);
    expect(device.openVisits()).toEqual([]);
    failNext = false;
    reader.tap(UID_A);
    await waitFor(() => taps.length === 1, 5_000, 'tap');
    expect(taps[0]).toMatchObject({ seq: 1, decision: 'start' });
    expect(journalRows(dir).map((e) => e.seq)).toEqual([1]);
  });

  it('a hung feedback driver does not block the tap path or shutdown', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock = new FakeClock();
    const reader = new SimulatedCardReader({ clock });
    const feedback = new SimulatedFeedback({ signalFn: () => new Promise<void>(() => undefined) }); // never resolves
    const device = createDevice({
      config: settings(dir),
      clock,
      logger: silentLogger,
      cardReader: reader,
      feedback,
      clockSynced: () => true,
    });
    cleanups.push(() => device.stop());
    const taps: TapReport[] = [];
    device.on('tap', (t) => taps.push(t));
    await device.start();
    reader.tap(UID_A);
    await new Promise((r) => setImmediate(r));
    expect(taps).toHaveLength(0);
    expect(journalRows(dir)).toHaveLength(1); // committed before feedback was even attempted
    clock.advance(2_000);
    await waitFor(() => taps.length === 1, 5_000, 'tap reported after the feedback wait');
    reader.tap(UID_B);
    await new Promise((r) => setImmediate(r));
    const stopping = device.stop();
    clock.advance(2_000);
    await stopping;
    expect(journalRows(dir)).toHaveLength(2);
  });
});
