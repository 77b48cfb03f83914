/**
 * The CardReader contract over the simulated reader. The same contract runs over the real
 * nfc-pcsc driver with a real pcscd in test/pcsc/pcsc-stack.test.ts (one file owns pcscd).
 */
import { SimulatedCardReader } from '../../device/src/drivers/simulated-reader.js';
import { cardReaderContract } from './card-reader-contract.js';

cardReaderContract('simulated', () => {
  const reader = new SimulatedCardReader({ name: 'Simulated Reader 00' });
  return Promise.resolve({
    reader,
    present: (uid: string) => Promise.resolve(reader.present(uid)),
    remove: () => Promise.resolve(reader.remove()),
    bounce: (uid: string) => Promise.resolve(reader.bounce(uid)),
    detach: () => Promise.resolve(reader.detach('unplugged')),
    attach: () => Promise.resolve(reader.attach()),
    settle: () => new Promise<void>((r) => setImmediate(r)),
    eventTimeoutMs: 1_000,
    dispose: () => Promise.resolve(),
  });
});
