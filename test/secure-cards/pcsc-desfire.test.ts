/**
 * DESFire EV2/EV3 over the real PC/SC stack (issue 18): a real `pcscd --foreground` with vpcd, the
 * project's virtual card acting as a DESFire (virtual-desfire.ts: SelectApplication,
 * AuthenticateEV2First, GetCardUID in CommMode.Full), and the device's nfc-pcsc driver provisioned
 * with the fleet's DESFire read key. Shown here: the right key gives a proof the gateway verifies
 * (assurance secure); a wrong key gives a clear refusal at the reader; a UID clone of a known
 * secure DESFire card is refused or flagged per policy; cards without the application stay UID
 * only; the card-reader contract holds over the virtual DESFire; and end to end (device from its
 * config and key file, MQTT, a real gateway): secure tap accepted, wrong key refused at once with
 * rejected feedback and a `card-auth-failed` anomaly, clone refused, assurance recorded per tap.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedFeedback, type TapReport } from '../../device/index.js';
import { DesfireReaderKey } from '../../device/src/drivers/desfire-auth.js';
import { createNfcPcscReader, type NfcPcscCardReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import type { Gateway } from '../../gateway/index.js';
import { SecureCardKeys } from '../../gateway/src/secure-cards/keys.js';
import { SecureCardPolicy } from '../../gateway/src/secure-cards/policy.js';
import { createSqliteSecureCardStore } from '../../gateway/src/store/sqlite/secure-cards.js';
import { SecureCardVerifier } from '../../gateway/src/secure-cards/verifier.js';
import { systemClock } from '../../protocol/index.js';
import { cardReaderContract } from '../contracts/card-reader-contract.js';
import { ReaderRecorder } from '../contracts/recorder.js';
import { settings, silentLogger } from '../device/helpers.js';
import { dbOf, PASSWORD, startGateway, tempDir, waitUntil } from '../gateway/helpers.js';
import { PcscdFixture, VPCD_READER_NAME } from '../pcsc/pcscd-fixture.js';
import { pcscContractHarness } from '../pcsc/contract-harness.js';
import { ATR_ISO14443_3, ATR_ISO14443_4, VirtualCard } from '../pcsc/virtual-card.js';
import type { VirtualDesfire } from '../pcsc/virtual-desfire.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';
import {
  DESFIRE_AID,
  DESFIRE_MASTER,
  desfireCard,
  FLEET_KEY,
  MASTER,
  personalisedCard,
  tapEvent,
} from './helpers.js';

const logger = pino({ level: 'silent' });
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const SETTLE_MS = 1_200;
const EVENT_TIMEOUT_MS = 10_000;
const UID = '04D1D2D3D4D5D6';
const uidBytes = (hex: string) => Buffer.from(hex, 'hex');

const pcscd = new PcscdFixture();
const inField: VirtualCard[] = [];

/** Puts a card in the field: the DESFire applet behind an ISO 14443-4 ATR, or a plain UID card. */
async function present(uid: string, applet?: VirtualDesfire | VirtualNtag424): Promise<VirtualCard> {
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

function makeReader(
  key: DesfireReaderKey | undefined = new DesfireReaderKey(DESFIRE_AID, 1, DESFIRE_MASTER),
) {
  return createNfcPcscReader({
    logger,
    clock: systemClock,
    readerName: VPCD_READER_NAME,
    pollMs: 100,
    debounceMs: 300,
    rescanMs: 1_000,
    ...(key ? { desfire: key } : {}),
  });
}

beforeAll(async () => {
  await pcscd.setup();
}, 150_000);

afterAll(async () => {
  await removeAll();
  await pcscd.teardown();
});

describe('DESFire EV2 over real pcscd + vpcd: the driver authenticates, the gateway verifies', () => {
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
    dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-desfire-pcsc-'));
    db = new Database(path.join(dir, 'gateway.db'));
    policy = SecureCardPolicy.parse({});
    verifier = new SecureCardVerifier({
      keys: new SecureCardKeys(MASTER, { key: DESFIRE_MASTER, keyNo: 1 }),
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
  async function tap(uid: string, applet: VirtualDesfire | VirtualNtag424 | undefined, n: number) {
    await present(uid, applet);
    const ev = await rec.waitFor('card', n, EVENT_TIMEOUT_MS);
    await removeAll();
    return { ev, verdict: verifier.assess('rdr-0001', 'client-a', tapEvent(uid, ev.proof), n) };
  }

  it('the right key: the tap carries a DESFire proof the gateway accepts as secure; each tap is fresh, a replay is refused', async () => {
    const chip = desfireCard(uidBytes(UID));
    const t1 = await tap(UID, chip, 1);
    expect(t1.ev.uid).toBe(UID);
    expect(t1.ev.authFailed).toBeUndefined();
    expect(t1.ev.proof).toMatchObject({ kind: 'desfire-ev2', keyNo: 1 });
    // on the wire: ISO SELECT of the NDEF application (not there), then the DESFire authentication
    expect(chip.log.map((a) => a.subarray(0, 2).toString('hex'))).toEqual([
      '00a4',
      '905a',
      '9071',
      '90af',
      '9051',
    ]);
    expect(t1.verdict).toMatchObject({ assurance: 'secure', verdict: 'accepted', code: 'secure' });
    const t2 = await tap(UID, chip, 2);
    expect(t2.ev.proof).not.toEqual(t1.ev.proof);
    expect(t2.verdict).toMatchObject({ assurance: 'secure', verdict: 'accepted' });
    const replay = verifier.assess('rdr-0001', 'client-a', tapEvent(UID, t1.ev.proof), 3);
    expect(replay).toMatchObject({ verdict: 'refused', code: 'replayed' });
    expect(rec.of('error')).toEqual([]);
  });

  it('a wrong key: the card refuses the authentication and the reader reports why; no proof', async () => {
    const other = desfireCard(uidBytes(UID), Buffer.alloc(16, 0x5a)); // a card of another fleet's key
    await present(UID, other);
    const ev = await rec.waitFor('card', 1, EVENT_TIMEOUT_MS);
    expect(ev.proof).toBeUndefined();
    expect(ev.authFailed?.code).toBe('card-auth-failed');
    expect(ev.authFailed?.reason).toMatch(/refused the reader's key \(91AE\): wrong key/);
    expect(ev.authFailed?.reason).not.toContain(UID);
  });

  it('a UID clone of a known secure DESFire card: refused by default, flagged where the client allows it; cards without the application stay UID only', async () => {
    const chip = desfireCard(uidBytes(UID));
    expect((await tap(UID, chip, 1)).verdict).toMatchObject({ assurance: 'secure', verdict: 'accepted' });
    const clone = await tap(UID, undefined, 2); // a plain card reporting the same UID
    expect(clone.ev.proof).toBeUndefined();
    expect(clone.ev.authFailed).toBeUndefined();
    expect(clone.verdict).toMatchObject({ assurance: 'uid-only', verdict: 'refused', code: 'clone-suspect' });
    policy = SecureCardPolicy.parse({ clients: { 'client-a': { clone: 'flag' } } });
    expect((await tap(UID, undefined, 3)).verdict).toMatchObject({
      verdict: 'flagged',
      code: 'clone-suspect',
    });
    // a DESFire without the fleet's application (e.g. a transport card) and a plain card: UID only, accepted
    const foreign = desfireCard(uidBytes('04E0E0E0E0E0E0'));
    foreign.apps.clear();
    const f = await tap('04E0E0E0E0E0E0', foreign, 4);
    expect(f.ev.authFailed).toBeUndefined();
    expect(f.verdict).toMatchObject({ assurance: 'uid-only', verdict: 'accepted', code: 'uid-only' });
    expect((await tap('A1B2C3D4', undefined, 5)).verdict).toMatchObject({ verdict: 'accepted' });
    // the same reader still reads NTAG 424 DNA SUN messages (they come first); a blank NTAG 424 DNA is UID only
    const ntag = await personalisedCard('04A9A8A7A6A5A4');
    const sun = await tap('04A9A8A7A6A5A4', ntag, 6);
    expect(sun.ev.proof?.kind).toBe('ntag424-sun');
    expect(sun.verdict).toMatchObject({ assurance: 'secure', verdict: 'accepted' });
    const blank = new VirtualNtag424(uidBytes('04A0A0A0A0A0A0'));
    const b = await tap('04A0A0A0A0A0A0', blank, 7);
    expect(b.ev.authFailed).toBeUndefined();
    expect(b.verdict).toMatchObject({ assurance: 'uid-only', verdict: 'accepted' });
  });
});

// The CardReader contract over the virtual DESFire with a provisioned key: every card authenticates.
cardReaderContract('nfc-pcsc with the virtual DESFire EV2 (real pcscd + vpcd, key provisioned)', async () => {
  if (!pcscd.running) await pcscd.start();
  const reader = makeReader();
  const chips = new Map<string, VirtualDesfire>();
  const chipFor = (uid: string) => {
    let c = chips.get(uid);
    if (!c) chips.set(uid, (c = desfireCard(uidBytes(uid))));
    return c;
  };
  return pcscContractHarness({
    reader,
    pcscd,
    insert: (uid) => present(uid, chipFor(uid)),
    removeAll,
    settleMs: SETTLE_MS,
    eventTimeoutMs: EVENT_TIMEOUT_MS,
  });
});

describe('DESFire end to end: device from its config and key file, MQTT, a real gateway', () => {
  const R = 'rdr-desfire-e2e';
  let tmp: ReturnType<typeof tempDir>;
  let gw: Gateway;

  beforeAll(async () => {
    if (!pcscd.running) await pcscd.start();
    tmp = tempDir('vt-desfire-e2e-');
    const gwKey = join(tmp.dir, 'secure-cards.key');
    writeFileSync(
      gwKey,
      JSON.stringify({
        version: 1,
        masterKey: MASTER.toString('hex'),
        desfireKey: DESFIRE_MASTER.toString('hex'),
        desfireKeyNo: 1,
      }),
      { mode: 0o600 },
    );
    gw = await startGateway(join(tmp.dir, 'gw'), {
      fleetKey: FLEET_KEY,
      secureCards: { keyFile: gwKey, policy: { uidOnly: 'accept', clone: 'refuse' } },
    });
    await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-1', label: 'Flat 2' });
  }, 150_000);

  afterAll(async () => {
    await gw?.stop();
    tmp?.cleanup();
  });

  const config = (keyFile: string) =>
    settings(join(tmp.dir, 'device'), {
      readerId: R,
      mqtt: { url: `mqtt://127.0.0.1:${gw.mqttPort ?? 0}`, username: R, password: PASSWORD },
      visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
      reader: {
        driver: 'nfc-pcsc',
        readerName: VPCD_READER_NAME,
        desfire: { keyFile, aid: DESFIRE_AID.toString('hex'), keyNo: 1 },
      },
    });

  it('a reader key file others can read stops the start with the fix', async () => {
    const loose = join(tmp.dir, 'loose.key');
    writeFileSync(loose, JSON.stringify({ version: 1, desfireKey: DESFIRE_MASTER.toString('hex') }));
    chmodSync(loose, 0o644);
    const device = createDevice({
      config: config(loose),
      logger: silentLogger,
      feedback: new SimulatedFeedback({ maxRecords: 10 }),
      clockSynced: () => true,
    });
    const err = await device.start().then(
      () => null,
      (e: unknown) => e as Error,
    );
    await device.stop();
    expect(err?.message).toMatch(/mode 644: group or others can read it\. Fix: chmod 600/);
    expect(err?.message).not.toContain(DESFIRE_MASTER.toString('hex'));
  });

  it('right key accepted as secure; wrong key refused at once (rejected feedback, card-auth-failed); clone refused; assurance per tap', async () => {
    const keyFile = join(tmp.dir, 'reader-desfire.key');
    writeFileSync(keyFile, JSON.stringify({ version: 1, desfireKey: DESFIRE_MASTER.toString('hex') }), {
      mode: 0o600,
    });
    const feedback = new SimulatedFeedback({ maxRecords: 100 });
    const device = createDevice({
      config: config(keyFile),
      logger: silentLogger,
      feedback,
      clockSynced: () => true,
    });
    const taps: TapReport[] = [];
    device.on('tap', (t) => taps.push(t));
    await device.start();
    try {
      await waitUntil(() => device.status().readerAttached === true, 15_000);
      const tapOnce = async (uid: string, applet: VirtualDesfire | undefined, n: number) => {
        await present(uid, applet);
        await waitUntil(() => taps.length >= n, 15_000);
        await removeAll();
      };
      const chip = desfireCard(uidBytes(UID));
      await tapOnce(UID, chip, 1);
      expect(feedback.signals.at(-1)?.pattern).toBe('visit-started');
      // a DESFire with the fleet's application but another key (a copy with a guessed key, another fleet)
      await tapOnce('04F1F2F3F4F5F6', desfireCard(uidBytes('04F1F2F3F4F5F6'), Buffer.alloc(16, 0x33)), 2);
      expect(taps[1]).toMatchObject({ decision: 'rejected', rejectReason: 'card-auth-failed' });
      expect(feedback.signals.at(-1)?.pattern).toBe('rejected');
      await tapOnce(UID, chip, 3);
      await tapOnce(UID, undefined, 4); // a plain card with the secure card's UID
      expect(taps.map((t) => t.decision)).toEqual(['start', 'rejected', 'stop', 'start']);

      const rows = () =>
        dbOf(gw)
          .prepare(
            'SELECT seq, assurance, verdict, code, proof_kind FROM secure_taps WHERE reader_id = ? ORDER BY seq',
          )
          .all(R);
      await waitUntil(() => rows().length === 4 && device.status().queueDepth === 0, 20_000);
      expect(rows()).toEqual([
        { seq: 1, assurance: 'secure', verdict: 'accepted', code: 'secure', proof_kind: 'desfire-ev2' },
        { seq: 2, assurance: 'uid-only', verdict: 'refused', code: 'card-auth-failed', proof_kind: null },
        { seq: 3, assurance: 'secure', verdict: 'accepted', code: 'secure', proof_kind: 'desfire-ev2' },
        { seq: 4, assurance: 'uid-only', verdict: 'refused', code: 'clone-suspect', proof_kind: null },
      ]);
      // the refused clone never reaches the visits; the reader's own refusal is kept and raises an anomaly
      const stored = dbOf(gw)
        .prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq')
        .pluck()
        .all(R);
      expect(stored).toEqual([1, 2, 3]);
      const kinds = () =>
        dbOf(gw).prepare('SELECT kind FROM anomalies WHERE reader_id = ?').pluck().all(R) as string[];
      await waitUntil(() => kinds().includes('card-auth-failed'), 10_000);
    } finally {
      await device.stop();
      await removeAll();
    }
  });
});
