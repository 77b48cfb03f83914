/**
 * Child-process entry of a virtual reader (node --import tsx): the real device code with the
 * simulated drivers, on a virtual clock the parent drives over IPC. The parent SIGKILLs it for
 * crash and power-loss faults; with "arm-mid-write" it kills itself inside the next journal
 * transaction, before COMMIT (a real SIGKILL mid-write).
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { DeviceSettings, SimulatedCardReader, SimulatedFeedback, createDevice } from '../../device/index.js';
import { DeviceClock, VirtualClock } from '../clock.js';
import type { ChildMessage, ParentMessage } from '../ipc.js';
import { createRng } from '../prng.js';
import { deviceSettingsInput, type DeviceParams } from './types.js';

interface ChildArgs {
  params: DeviceParams;
  nowMs: number;
  synced: boolean;
  lastWallMs: number | null;
  boot: number;
}

const args = JSON.parse(process.env.VISITTAG_SIM_CHILD ?? '{}') as ChildArgs;
const toParent = (m: ChildMessage) => process.send?.(m);
const master = new VirtualClock({ startMs: args.nowMs });
const clock = new DeviceClock(master, { skewMs: args.params.skewMs });
if (!args.synced)
  clock.reboot({ synced: false, ...(args.lastWallMs ? { lastWallMs: args.lastWallMs } : {}) });
const rng = createRng(args.params.seed + args.boot * 7919);
let armed = false;
let killAfterFeedback = false;
// The deliberately broken journal (checker self-test): snapshot before each commit, restore on boot.
const snapDir = join(args.params.dataDir, 'non-durable-snapshot');
const JOURNAL_FILES = ['journal.db', 'journal.db-wal'];
if (args.params.broken === 'non-durable-journal' && args.boot > 1 && existsSync(snapDir)) {
  rmSync(join(args.params.dataDir, 'journal.db-shm'), { force: true });
  for (const f of JOURNAL_FILES) {
    if (existsSync(join(snapDir, f))) copyFileSync(join(snapDir, f), join(args.params.dataDir, f));
    else rmSync(join(args.params.dataDir, f), { force: true });
  }
}
const snapshot = (): void => {
  mkdirSync(snapDir, { recursive: true });
  for (const f of JOURNAL_FILES) {
    const src = join(args.params.dataDir, f);
    if (existsSync(src)) copyFileSync(src, join(snapDir, f));
    else rmSync(join(snapDir, f), { force: true });
  }
};
const reader = new SimulatedCardReader({ clock });
const feedback = new SimulatedFeedback({
  clock,
  maxRecords: 100,
  onSignal: (s) => toParent({ type: 'signal', pattern: s.pattern }),
});
const device = createDevice({
  config: DeviceSettings.parse(deviceSettingsInput(args.params)),
  clock,
  clockSynced: clock.clockSynced,
  bootId: `${args.params.readerId}-b${args.boot}-${rng.hex(4).toLowerCase()}`,
  random: () => rng.next(),
  logger: pino({ level: 'silent' }),
  cardReader: reader,
  feedback,
  journalHooks: {
    beforeCommit: () => {
      if (armed) process.kill(process.pid, 'SIGKILL');
      if (args.params.broken === 'non-durable-journal') snapshot();
    },
  },
});

// IPC delivers several messages in one turn: queue them all, so a tap never overtakes the ticks
// that were sent before it.
let queue: Promise<void> = Promise.resolve();
process.on('message', (m: ParentMessage) => {
  queue = queue.then(() => handle(m));
});

async function handle(m: ParentMessage): Promise<void> {
  switch (m.type) {
    case 'tick':
      await master.advanceTo(m.now);
      break;
    case 'act':
      if (m.kind === 'tap') reader.tap(m.uid);
      else if (m.kind === 'present') reader.present(m.uid);
      else if (m.kind === 'bounce') reader.bounce(m.uid);
      else reader.remove();
      break;
    case 'arm-mid-write':
      armed = true;
      break;
    case 'arm-after-feedback':
      killAfterFeedback = true;
      break;
    case 'sync':
      clock.sync();
      break;
    case 'call':
      if (m.op === 'tick') {
        await master.advanceTo(m.args as number);
        toParent({ type: 'result', id: m.id, ok: true, value: null });
      } else if (m.op === 'act') {
        const a = m.args as { kind: string; uid: string };
        if (a.kind === 'tap') reader.tap(a.uid);
        else if (a.kind === 'present') reader.present(a.uid);
        else if (a.kind === 'bounce') reader.bounce(a.uid);
        else reader.remove();
        // the journal commit is synchronous and the feedback follows in microtasks: once the event
        // loop has turned, the signal has been sent (IPC keeps order), so the parent sees it first
        await new Promise((r) => setImmediate(r));
        if (killAfterFeedback && a.kind !== 'remove') {
          // the worker saw the feedback; now the power goes (the reply never comes)
          await new Promise((r) => setImmediate(r));
          process.kill(process.pid, 'SIGKILL');
        }
        toParent({ type: 'result', id: m.id, ok: true, value: null });
      } else if (m.op === 'state') {
        const s = device.isRunning ? device.status() : null;
        toParent({
          type: 'result',
          id: m.id,
          ok: true,
          value: s ? { lastSeq: s.lastSeq, queueDepth: s.queueDepth } : null,
        });
      } else toParent({ type: 'result', id: m.id, ok: false, error: `unknown op ${m.op}` });
      break;
    case 'stop':
      void device.stop(0).finally(() => {
        toParent({ type: 'result', id: m.id, ok: true });
        process.disconnect?.();
        process.exit(0);
      });
      break;
  }
}
process.on('disconnect', () => process.exit(0));

await device.start();
toParent({ type: 'ready' });
