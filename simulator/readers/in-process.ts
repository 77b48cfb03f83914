/**
 * A virtual reader in this process: the real device code (createDevice) with the simulated card
 * reader and feedback, on its own DeviceClock view of virtual time. Used for scale.
 */
import type { Logger } from 'pino';
import { DeviceSettings, SimulatedCardReader, SimulatedFeedback, createDevice } from '../../device/index.js';
import type { Device } from '../../device/index.js';
import type { DeviceClock } from '../clock.js';
import { createRng } from '../prng.js';
import type { ActionKind } from '../scenario/types.js';
import { deviceSettingsInput, type DeviceParams, type VirtualReader } from './types.js';

export function createInProcessReader(opts: {
  params: DeviceParams;
  clock: DeviceClock;
  logger: Logger;
}): VirtualReader {
  const { params, clock } = opts;
  const rng = createRng(params.seed);
  let device: Device | null = null;
  let reader: SimulatedCardReader | null = null;
  let boot = 0;
  const self: VirtualReader = {
    readerId: params.readerId,
    onSignal: null,
    get alive() {
      return device?.isRunning ?? false;
    },
    async start() {
      boot++;
      reader = new SimulatedCardReader({ clock });
      const feedback = new SimulatedFeedback({
        clock,
        maxRecords: 100,
        onSignal: (s) => self.onSignal?.(s.pattern),
      });
      device = createDevice({
        config: DeviceSettings.parse(deviceSettingsInput(params)),
        clock,
        clockSynced: clock.clockSynced,
        bootId: `${params.readerId}-b${boot}-${rng.hex(4).toLowerCase()}`,
        random: () => rng.next(),
        logger: opts.logger,
        cardReader: reader,
        feedback,
      });
      await device.start();
    },
    act(kind: ActionKind, uid: string) {
      const r = reader;
      if (!r || !device?.isRunning) return;
      switch (kind) {
        case 'tap':
          r.tap(uid);
          break;
        case 'present':
          r.present(uid);
          break;
        case 'remove':
          r.remove();
          break;
        case 'bounce':
          r.bounce(uid);
          break;
      }
    },
    state() {
      if (!device?.isRunning) return Promise.resolve(null);
      const s = device.status();
      return Promise.resolve({ lastSeq: s.lastSeq, queueDepth: s.queueDepth });
    },
    async stop() {
      const d = device;
      device = null;
      await d?.stop(0);
    },
    sync() {
      clock.sync();
    },
  };
  return self;
}
