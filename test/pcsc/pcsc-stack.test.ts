/**
 * The nfc-pcsc driver against the real PC/SC stack: a real `pcscd --foreground`, Debian's vpcd
 * reader driver, and the project's own virtual card (virtual-card.ts) speaking vpcd's protocol.
 * Everything that needs pcscd lives in this ONE file (pcscd's socket path is fixed), including the
 * CardReader contract over nfc-pcsc.
 *
 * Reader detach/attach: pcscd only hot-plugs USB readers, and vpcd is a "serial" reader that
 * cannot vanish while pcscd runs (pcscd -H re-reads reader.conf but never removes a serial
 * reader). The way that really removes the reader from PC/SC is to run pcscd without the vpcd
 * driver config (an empty reader.conf.d) and bring it back with the config: the driver sees the
 * reader list empty, reports `detached`, keeps polling, and reports `attached` when it returns.
 * The USB hot-unplug path (nfc-pcsc's per-reader `end` while the context stays up) is covered
 * with a scripted nfc module in nfc-pcsc-reader.unit.test.ts.
 */
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/index.js';
import { createAcr122Feedback } from '../../device/src/drivers/acr122-feedback.js';
import { createCardReader, createFeedback } from '../../device/src/drivers/factory.js';
import { createNfcPcscReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import type { NfcPcscCardReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import { cardReaderContract } from '../contracts/card-reader-contract.js';
import { ReaderRecorder } from '../contracts/recorder.js';
import { PcscdFixture, VPCD_READER_NAME } from './pcscd-fixture.js';
import { pcscContractHarness } from './contract-harness.js';
import { ATR_ISO14443_4, VirtualCard } from './virtual-card.js';
import type { VirtualCardOptions } from './virtual-card.js';

const logger = pino({ level: 'silent' });
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** pcscd polls vpcd for card presence every 400 ms: three polls see any change, with margin for a busy CI box. */
const SETTLE_MS = 1_200;
const EVENT_TIMEOUT_MS = 10_000;

const pcscd = new PcscdFixture();
const cards: VirtualCard[] = [];

function card(uid: string, extra: Partial<VirtualCardOptions> = {}): VirtualCard {
  const c = new VirtualCard({ port: pcscd.port, uid, ...extra });
  cards.push(c);
  return c;
}

/**
 * Takes every card out and waits until pcscd has polled the reader: a card put in before pcscd
 * saw the previous one leave would look to pcscd like the same card left on the reader.
 */
async function removeAllCards(): Promise<void> {
  const any = cards.some((c) => c.inserted);
  for (const c of cards.splice(0)) await c.remove();
  if (any) await pause(SETTLE_MS);
}

async function ensurePcscdWithReader(): Promise<void> {
  if (!pcscd.running) await pcscd.start();
}

function makeReader(): NfcPcscCardReader {
  return createNfcPcscReader({
    logger,
    clock: systemClock,
    readerName: VPCD_READER_NAME,
    pollMs: 100,
    debounceMs: 300,
    rescanMs: 1_000,
  });
}

beforeAll(async () => {
  await pcscd.setup();
}, 150_000);

afterAll(async () => {
  await removeAllCards();
  await pcscd.teardown();
});

describe('nfc-pcsc driver on a real pcscd', () => {
  let reader: NfcPcscCardReader;
  let rec: ReaderRecorder;

  beforeEach(async () => {
    await ensurePcscdWithReader();
    reader = makeReader();
    rec = new ReaderRecorder(reader);
  });

  afterEach(async () => {
    rec.dispose();
    await reader.stop();
    await removeAllCards();
  });

  it('reads an ISO 14443-4 card by sending GET DATA itself (no AID needed)', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    const c = card('04112233445566', { atr: ATR_ISO14443_4 });
    await c.insert();
    expect((await rec.waitFor('card', 1, EVENT_TIMEOUT_MS)).uid).toBe('04112233445566');
    // GET DATA, then the NTAG 424 DNA application select, which this card does not have (6A 81)
    expect(c.apdus.map((a) => a.toString('hex'))).toEqual(['ffca000000', '00a4040c07d276000085010100']);
    expect(rec.of('error')).toEqual([]);
  });

  it('turns a failed GET DATA (status 63 00) into an error event, not a tap', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await card('01020304', { getDataStatus: '6300' }).insert();
    const err = await rec.waitFor('error', 1, EVENT_TIMEOUT_MS);
    expect(err.code).toBe('read-failed');
    expect(err.message).not.toContain('01020304'); // no raw UID in messages
    expect(rec.of('card')).toEqual([]);
  });

  it('watches only the configured reader (a card on slot 00 01 is ignored)', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await card('0A0B0C0D', { port: pcscd.port + 1 }).insert();
    await pause(SETTLE_MS);
    expect(rec.of('card')).toEqual([]);
    await card('0A0B0C0E').insert();
    expect((await rec.waitFor('card', 1, EVENT_TIMEOUT_MS)).uid).toBe('0A0B0C0E');
    expect(rec.of('attached').map((a) => a.name)).toEqual([VPCD_READER_NAME]);
  });

  it('survives a pcscd restart mid-run: detached, re-attached with a new context, taps keep working', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await card('A0A1A2A3').insert();
    await rec.waitFor('card', 1, EVENT_TIMEOUT_MS);
    await pcscd.restart();
    // Which the driver sees first is a race inside pcsclite: the reader's end event ("reader removed")
    // or the context failing ("pcscd lost: …"). Either way it must come back on a new context.
    expect((await rec.waitFor('detached', 1, EVENT_TIMEOUT_MS)).reason).toMatch(
      /^(pcscd lost|reader removed)/,
    );
    await rec.waitFor('attached', 2, EVENT_TIMEOUT_MS);
    expect(reader.attached).toBe(true);
    await removeAllCards(); // pcscd's exit closed vpcd's side already
    await card('B0B1B2B3').insert();
    expect((await rec.waitFor('card', 2, EVENT_TIMEOUT_MS)).uid).toBe('B0B1B2B3');
  });

  it('a card left on the reader across a pcscd restart is not a second tap', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await card('C0C1C2C3').insert();
    await rec.waitFor('card', 1, EVENT_TIMEOUT_MS);
    await pcscd.restart();
    await rec.waitFor('attached', 2, EVENT_TIMEOUT_MS);
    // vpcd dropped the card's connection with the old pcscd; the card itself never moved
    await removeAllCards();
    await card('C0C1C2C3').insert();
    await pause(SETTLE_MS);
    expect(rec.of('card').map((c) => c.uid)).toEqual(['C0C1C2C3']);
    // once it really leaves and comes back, it is a tap again
    await removeAllCards();
    await card('C0C1C2C3').insert();
    expect((await rec.waitFor('card', 2, EVENT_TIMEOUT_MS)).uid).toBe('C0C1C2C3');
  });

  it('starts without pcscd without blocking the event loop, and attaches when pcscd appears', async () => {
    await pcscd.stop();
    await reader.start(); // nfc-pcsc's `new NFC()` would spin forever here without the socket check
    let ticks = 0;
    for (let i = 0; i < 10; i++) {
      await pause(30);
      ticks++;
    }
    expect(ticks).toBe(10);
    expect(reader.attached).toBe(false);
    expect(rec.of('attached')).toEqual([]);
    await pcscd.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await card('D0D1D2D3').insert();
    expect((await rec.waitFor('card', 1, EVENT_TIMEOUT_MS)).uid).toBe('D0D1D2D3');
  });

  it('escape() reports vpcd refusing the LED command; reader-led feedback records it and taps go on', async () => {
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
    await expect(reader.escape(Buffer.from('ff00400004010101' + '00', 'hex'))).rejects.toThrow();
    const feedback = createAcr122Feedback({ logger, clock: systemClock, reader, acceptWaitMs: 2_000 });
    await feedback.start();
    await feedback.signal('visit-started');
    expect(feedback.lastError).toEqual(expect.any(String));
    await feedback.stop();
    await card('E0E1E2E3').insert();
    expect((await rec.waitFor('card', 1, EVENT_TIMEOUT_MS)).uid).toBe('E0E1E2E3');
  });
});

describe('device driver factory with the real stack', () => {
  it('builds the nfc-pcsc reader and reader-led feedback from config, as the device does', async () => {
    await ensurePcscdWithReader();
    const deps = { logger, clock: systemClock };
    const reader = await createCardReader(
      { driver: 'nfc-pcsc', readerName: 'Visittag virtual PCD 00 00' },
      deps,
    );
    const feedback = await createFeedback({ driver: 'reader-led' }, { ...deps, reader });
    const rec = new ReaderRecorder(reader);
    try {
      await reader.start();
      await feedback.start();
      expect((await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS)).name).toBe(VPCD_READER_NAME);
      await card('04A0A1A2A3A4A5').insert();
      expect((await rec.waitFor('card', 1, EVENT_TIMEOUT_MS)).uid).toBe('04A0A1A2A3A4A5');
      await feedback.signal('visit-started'); // vpcd has no LED: reported, never thrown
      // signal() returns after at most 50 ms; the refusal may land in lastError just after
      for (let i = 0; i < 100 && feedback.lastError === null; i++) await pause(50);
      expect(feedback.lastError).toEqual(expect.any(String));
    } finally {
      rec.dispose();
      await feedback.stop();
      await reader.stop();
      await removeAllCards();
    }
  });
});

cardReaderContract('nfc-pcsc (real pcscd + vpcd + virtual card)', async () => {
  await ensurePcscdWithReader();
  const reader = makeReader();
  return pcscContractHarness({
    reader,
    pcscd,
    insert: async (uid) => {
      const c = card(uid);
      await c.insert();
      return c;
    },
    removeAll: removeAllCards,
    settleMs: SETTLE_MS,
    eventTimeoutMs: EVENT_TIMEOUT_MS,
  });
});
