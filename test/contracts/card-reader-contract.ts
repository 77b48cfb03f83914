/**
 * The CardReader port's contract (CONTRIBUTING.md, "Contract suites"): one suite, run over every driver, so the
 * simulated reader cannot drift from the real nfc-pcsc one. A driver joins by providing a harness
 * that can put cards in the field and take the reader away.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CardReader, CardReaderEvent } from '../../device/src/ports/card-reader.js';
import { ReaderRecorder } from './recorder.js';

export interface CardReaderHarness {
  reader: CardReader;
  /** Puts a card whose chip reports `uidHex` in the field (raw hex, any case). */
  present(uidHex: string): Promise<void>;
  /** Takes the card out of the field. */
  remove(): Promise<void>;
  /** A card flickering at the edge of the field: in, out, in again at once. Stays present. */
  bounce(uidHex: string): Promise<void>;
  /** Takes the reader away (unplug or equivalent) and brings it back. */
  detach(): Promise<void>;
  attach(): Promise<void>;
  /** Waits until anything the driver still had to report has been reported (a quiet period). */
  settle(): Promise<void>;
  /** Upper bound for an expected event to arrive. */
  eventTimeoutMs: number;
  dispose(): Promise<void>;
}

export function cardReaderContract(name: string, makeHarness: () => Promise<CardReaderHarness>): void {
  describe(`CardReader contract: ${name}`, () => {
    let h: CardReaderHarness;
    let rec: ReaderRecorder;
    const wait = <E extends CardReaderEvent>(ev: E, n = 1) => rec.waitFor(ev, n, h.eventTimeoutMs);

    beforeEach(async () => {
      h = await makeHarness();
      rec = new ReaderRecorder(h.reader);
      await h.reader.start();
      await wait('attached');
    });

    afterEach(async () => {
      rec.dispose();
      await h.reader.stop();
      await h.dispose();
    });

    it('reports the reader attached after start()', () => {
      expect(h.reader.attached).toBe(true);
      expect(rec.of('attached')[0]?.name).toEqual(expect.any(String));
    });

    it('emits one card event per presentation with the normalised 4-byte UID, then card-removed', async () => {
      await h.present('a1b2c3d4');
      const card = await wait('card');
      expect(card.uid).toBe('A1B2C3D4');
      expect(Number.isFinite(card.atMonoMs)).toBe(true);
      await h.remove();
      const removed = await wait('card-removed');
      expect(removed.uid).toBe('A1B2C3D4');
      expect(rec.of('card')).toHaveLength(1);
    });

    it('reads 7- and 10-byte UIDs', async () => {
      await h.present('04a1b2c3d4e5f6');
      expect((await wait('card')).uid).toBe('04A1B2C3D4E5F6');
      await h.remove();
      await wait('card-removed');
      await h.settle();
      await h.present('0102030405060708090a');
      expect((await wait('card', 2)).uid).toBe('0102030405060708090A');
    });

    it('a card left on the reader is one tap, not a stream', async () => {
      await h.present('11223344');
      await wait('card');
      await h.settle();
      await h.settle();
      expect(rec.of('card')).toHaveLength(1);
      await h.remove();
      await wait('card-removed');
      await h.settle();
      expect(rec.of('card')).toHaveLength(1);
    });

    it('the same card tapped again after leaving is a new tap', async () => {
      await h.present('11223344');
      await wait('card');
      await h.remove();
      await wait('card-removed');
      await h.settle();
      await h.present('11223344');
      expect((await wait('card', 2)).uid).toBe('11223344');
    });

    it('absorbs a flickering card: one card event', async () => {
      await h.bounce('55667788');
      await wait('card');
      await h.settle();
      expect(rec.of('card').map((c) => c.uid)).toEqual(['55667788']);
    });

    it('rejects a malformed UID with an error event, never a card', async () => {
      await h.present('a1b2c3d4e5'); // 5 bytes: no ISO 14443 UID has that length
      const err = await wait('error');
      expect(err.code).toBe('bad-uid');
      await h.settle();
      expect(rec.of('card')).toHaveLength(0);
      await h.remove();
      await h.settle();
      await h.present('a1b2c3d4');
      expect((await wait('card')).uid).toBe('A1B2C3D4');
    });

    it('reports detach and re-attach, and reads cards again afterwards', async () => {
      await h.detach();
      const d = await wait('detached');
      expect(d.reason).toEqual(expect.any(String));
      expect(h.reader.attached).toBe(false);
      await h.attach();
      await wait('attached', 2);
      expect(h.reader.attached).toBe(true);
      await h.present('99887766');
      expect((await wait('card')).uid).toBe('99887766');
    });

    it('stop() is idempotent and silences the reader', async () => {
      await h.reader.stop();
      await h.reader.stop();
      const before = rec.events.length;
      await h.present('a1b2c3d4').catch(() => undefined);
      await h.settle();
      expect(rec.events.length).toBe(before);
      expect(h.reader.attached).toBe(false);
    });
  });
}
