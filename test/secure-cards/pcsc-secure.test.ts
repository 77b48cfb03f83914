/**
 * Secure cards over the real PC/SC stack: a real `pcscd --foreground`, Debian's vpcd reader driver,
 * the project's virtual card acting as an NTAG 424 DNA (virtual-ntag424.ts), and the device's
 * nfc-pcsc driver, which reads the SUN message itself with autoProcessing off. The gateway's verifier
 * checks what the driver read. The pcscd fixture holds a cross-process lock, so this file and
 * test/pcsc/pcsc-stack.test.ts take turns.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createNfcPcscReader, type NfcPcscCardReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import { keysForCard, personaliseNtag424 } from '../../device/src/secure/personalise.js';
import { SecureCardKeys } from '../../gateway/src/secure-cards/keys.js';
import { SecureCardPolicy } from '../../gateway/src/secure-cards/policy.js';
import { createSqliteSecureCardStore } from '../../gateway/src/store/sqlite/secure-cards.js';
import { SecureCardVerifier } from '../../gateway/src/secure-cards/verifier.js';
import { SDM_COUNTER_MAX, systemClock } from '../../protocol/index.js';
import { cardReaderContract } from '../contracts/card-reader-contract.js';
import { ReaderRecorder } from '../contracts/recorder.js';
import { PcscdFixture, VPCD_READER_NAME } from '../pcsc/pcscd-fixture.js';
import { pcscContractHarness } from '../pcsc/contract-harness.js';
import { ATR_ISO14443_3, ATR_ISO14443_4, VirtualCard } from '../pcsc/virtual-card.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';
import { direct, FLEET_KEY, MASTER, tapEvent, URL } from './helpers.js';

const logger = pino({ level: 'silent' });
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const SETTLE_MS = 1_200;
const EVENT_TIMEOUT_MS = 10_000;
const UID = '04C1C2C3C4C5C6';

const pcscd = new PcscdFixture();
const inField: VirtualCard[] = [];

/** Puts a card in the field: the NTAG 424 DNA applet behind an ISO 14443-4 ATR, or a plain UID card. */
async function present(uid: string, applet?: VirtualNtag424): Promise<VirtualCard> {
  const c = new VirtualCard({
    port: pcscd.port,
    uid,
    ...(applet ? { applet, atr: ATR_ISO14443_4 } : { atr: ATR_ISO14443_3 }),
  });
  inField.push(c);
  await c.insert();
  return c;
}

async function removeAll(): Promise<void> {
  const any = inField.some((c) => c.inserted);
  for (const c of inField.splice(0)) await c.remove();
  if (any) await pause(SETTLE_MS);
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
  await removeAll();
  await pcscd.teardown();
});

describe('NTAG 424 DNA over real pcscd + vpcd', () => {
  let reader: NfcPcscCardReader;
  let rec: ReaderRecorder;
  let dir: string;
  let db: Database.Database;
  let policy: SecureCardPolicy;
  let verifier: SecureCardVerifier;

  beforeEach(async () => {
    if (!pcscd.running) await pcscd.start();
    reader = makeReader();
    rec = new ReaderRecorder(reader);
    dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-secure-pcsc-'));
    db = new Database(path.join(dir, 'gateway.db'));
    policy = SecureCardPolicy.parse({});
    verifier = new SecureCardVerifier({
      keys: new SecureCardKeys(MASTER),
      store: createSqliteSecureCardStore(db),
      policy: () => policy,
      fleetKey: FLEET_KEY,
      logger,
    });
    await reader.start();
    await rec.waitFor('attached', 1, EVENT_TIMEOUT_MS);
  });

  afterEach(async () => {
    rec.dispose();
    await reader.stop();
    await removeAll();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Taps the card and hands the tap to the gateway's verifier, as ingest does. */
  async function tap(uid: string, applet: VirtualNtag424 | undefined, n: number) {
    await present(uid, applet);
    const ev = await rec.waitFor('card', n, EVENT_TIMEOUT_MS);
    await removeAll();
    return { ev, verdict: verifier.assess('rdr-0001', 'client-a', tapEvent(uid, ev.proof), n) };
  }

  it('personalise a blank card through the reader, then tap: secure and accepted; a replay is refused; the next tap is accepted', async () => {
    const card = new VirtualNtag424(Buffer.from(UID, 'hex'));
    // a blank card taps as UID-only (its NDEF file has no SUN message)
    const first = await present(UID, card);
    const blank = await rec.waitFor('card', 1, EVENT_TIMEOUT_MS);
    expect(blank.proof).toBeUndefined();
    // personalise it while it is in the field, through the driver's transmit (what the CLI does)
    const res = await personaliseNtag424((apdu, max) => reader.transmit(apdu, max), {
      uid: card.uid,
      keys: keysForCard(MASTER, card.uid),
      url: URL,
    });
    expect(res).toEqual({ ok: true });
    expect(card.sdm).not.toBeNull();
    expect(first.inserted).toBe(true);
    await removeAll();

    const t1 = await tap(UID, card, 2);
    expect(t1.ev.proof).toMatchObject({ kind: 'ntag424-sun' });
    expect(t1.ev.readMs).toEqual(expect.any(Number));
    expect(t1.verdict).toMatchObject({ assurance: 'secure', verdict: 'accepted', counter: 1 });
    // the same SUN message again (recorded from the air and replayed): refused
    const replay = verifier.assess('rdr-0001', 'client-a', tapEvent(UID, t1.ev.proof), 3);
    expect(replay).toMatchObject({ verdict: 'refused', code: 'replayed' });
    const t2 = await tap(UID, card, 3);
    expect(t2.verdict).toMatchObject({ verdict: 'accepted', counter: 2 });
    expect(rec.of('error')).toEqual([]);
  });

  it('a UID clone of a secure card: refused by default, flagged where the client allows it', async () => {
    const card = new VirtualNtag424(Buffer.from(UID, 'hex'));
    card.powerOn();
    expect(
      await personaliseNtag424(direct(card), {
        uid: card.uid,
        keys: keysForCard(MASTER, card.uid),
        url: URL,
      }),
    ).toEqual({ ok: true });
    expect((await tap(UID, card, 1)).verdict).toMatchObject({ verdict: 'accepted' });
    // a blank card (plain ISO 14443-3 ATR) that reports the same UID
    const clone = await tap(UID, undefined, 2);
    expect(clone.ev.uid).toBe(UID);
    expect(clone.ev.proof).toBeUndefined();
    expect(clone.verdict).toMatchObject({ assurance: 'uid-only', verdict: 'refused', code: 'clone-suspect' });
    policy = SecureCardPolicy.parse({ clients: { 'client-a': { clone: 'flag' } } });
    expect((await tap(UID, undefined, 3)).verdict).toMatchObject({
      verdict: 'flagged',
      code: 'clone-suspect',
    });
  });

  it('a card with other keys (wrong key) is refused with a clear reason; a used-up counter is a clear reader error', async () => {
    const other = new VirtualNtag424(Buffer.from(UID, 'hex'));
    other.powerOn();
    const otherMaster = Buffer.alloc(16, 0x5a);
    await personaliseNtag424(direct(other), {
      uid: other.uid,
      keys: keysForCard(otherMaster, other.uid),
      url: URL,
    });
    const wrong = await tap(UID, other, 1);
    expect(wrong.ev.proof).toBeDefined();
    expect(wrong.verdict).toMatchObject({ verdict: 'refused', code: 'bad-picc-data' });
    expect(wrong.verdict?.detail).toMatch(/wrong key file/);

    other.counter = SDM_COUNTER_MAX; // the card refuses another SUN read
    await present(UID, other);
    const err = await rec.waitFor('error', 1, EVENT_TIMEOUT_MS);
    expect(err.code).toBe('secure-read-failed');
    expect(err.message).toMatch(/tap counter may be used up.*re-personalise or replace the card/);
    expect(err.message).not.toContain(UID);
    expect(rec.of('card')).toHaveLength(1);
  });
});

// The CardReader contract over the virtual NTAG 424 DNA (ISO 14443-4, the driver reads the SUN message
// after the UID). 7-byte UIDs are personalised cards; the contract's other UID lengths are blank ones.
cardReaderContract('nfc-pcsc with the virtual NTAG 424 DNA (real pcscd + vpcd)', async () => {
  if (!pcscd.running) await pcscd.start();
  const reader = makeReader();
  const applets = new Map<string, VirtualNtag424>();
  const appletFor = async (uid: string) => {
    let a = applets.get(uid);
    if (!a) {
      a = new VirtualNtag424(Buffer.from(uid, 'hex'));
      if (a.uid.length === 7) {
        a.powerOn();
        await personaliseNtag424(direct(a), { uid: a.uid, keys: keysForCard(MASTER, a.uid), url: URL });
      }
      applets.set(uid, a);
    }
    return a;
  };
  return pcscContractHarness({
    reader,
    pcscd,
    insert: async (uid) => present(uid, await appletFor(uid)),
    removeAll,
    settleMs: SETTLE_MS,
    eventTimeoutMs: EVENT_TIMEOUT_MS,
  });
});
