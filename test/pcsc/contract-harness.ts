/**
 * The CardReader contract harness over the real pcscd + vpcd stack, shared by every virtual card kind (plain
 * UID card, NTAG 424 DNA, DESFire): `insert` puts the card kind's chip for a UID in the field; the rest
 * (bounce, unplugging the reader by restarting pcscd without it, clean-up) is the same for all of them.
 */
import type { CardReader } from '../../device/src/ports/card-reader.js';
import type { CardReaderHarness } from '../contracts/card-reader-contract.js';
import type { PcscdFixture } from './pcscd-fixture.js';
import type { VirtualCard } from './virtual-card.js';

export function pcscContractHarness(o: {
  reader: CardReader;
  pcscd: PcscdFixture;
  /** Puts the chip for `uid` in the field and returns the inserted card. */
  insert: (uid: string) => Promise<VirtualCard>;
  /** Takes every virtual card out of the field (the test file's own clean-up). */
  removeAll: () => Promise<void>;
  settleMs: number;
  eventTimeoutMs: number;
}): CardReaderHarness {
  let current: VirtualCard | null = null;
  let readerless = false;
  const present = async (uid: string) => {
    current = await o.insert(uid);
  };
  const remove = async () => {
    await current?.remove();
    current = null;
  };
  return {
    reader: o.reader,
    present,
    remove,
    bounce: async (uid: string) => {
      await present(uid);
      await remove();
      await present(uid);
    },
    detach: async () => {
      readerless = true;
      await o.pcscd.restart({ withReader: false });
    },
    attach: async () => {
      await o.pcscd.restart({ withReader: true });
      readerless = false;
    },
    settle: () => new Promise((r) => setTimeout(r, o.settleMs)),
    eventTimeoutMs: o.eventTimeoutMs,
    dispose: async () => {
      await o.removeAll();
      if (readerless) await o.pcscd.restart({ withReader: true });
    },
  };
}
