/**
 * DESFire EV2/EV3 AES authentication against the virtual DESFire applet (direct APDUs, no PC/SC), and
 * the gateway's check of the transcript the reader forwards (a real SQLite file): the right key
 * yields the card's real UID and a proof the gateway accepts once; a wrong key, a missing
 * application, an altered transcript, another card's transcript and a replay are refused with a
 * clear reason. The same over the real pcscd stack: pcsc-desfire.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authenticateDesfire, DesfireReaderKey } from '../../device/src/drivers/desfire-auth.js';
import { SecureCardKeys } from '../../gateway/src/secure-cards/keys.js';
import { SecureCardPolicy } from '../../gateway/src/secure-cards/policy.js';
import { createSqliteSecureCardStore } from '../../gateway/src/store/sqlite/secure-cards.js';
import { SecureCardVerifier } from '../../gateway/src/secure-cards/verifier.js';
import { CardProof, desfireCardKey, type TapEvent } from '../../protocol/index.js';
import { VirtualDesfire } from '../pcsc/virtual-desfire.js';
import { DESFIRE_AID, DESFIRE_MASTER, desfireCard, MASTER, tapEvent } from './helpers.js';

const UID = Buffer.from('04112233445566', 'hex');
const UID_HEX = UID.toString('hex').toUpperCase();
const readerKey = (master = DESFIRE_MASTER, keyNo = 1) => new DesfireReaderKey(DESFIRE_AID, keyNo, master);
const logger = pino({ level: 'silent' });

async function auth(chip: VirtualDesfire, key = readerKey(), uid = chip.uid) {
  chip.powerOn();
  return authenticateDesfire((a) => Promise.resolve(chip.respond(a)), { key, uid });
}

describe('DESFire EV2 AES authentication (virtual card, direct APDUs)', () => {
  it('the right key: mutual authentication, the real UID under the session keys, a schema-valid proof', async () => {
    const chip = desfireCard(UID);
    const r = await auth(chip);
    expect(r.ok && r.uid).toEqual(UID);
    expect(chip.log.map((a) => a.subarray(0, 2).toString('hex'))).toEqual(['905a', '9071', '90af', '9051']);
    if (!r.ok) throw new Error(r.reason);
    expect(CardProof.parse(r.proof)).toEqual(r.proof);
    expect(JSON.stringify(r.proof)).not.toContain(UID_HEX); // the UID only travels sealed
    expect(inspect(readerKey())).not.toMatch(/[0-9a-f]{32}/i);
    expect(JSON.stringify({ k: readerKey() })).toBe('{"k":"[redacted]"}');
  });

  it('a wrong key is refused by the card (91AE), a missing application is named', async () => {
    const chip = desfireCard(UID);
    const wrong = await auth(chip, readerKey(Buffer.alloc(16, 3)));
    expect(wrong).toMatchObject({ ok: false, code: 'auth-failed' });
    expect(!wrong.ok && wrong.reason).toMatch(/91AE.*wrong key/);
    const none = await auth(chip, new DesfireReaderKey(Buffer.from('000001', 'hex'), 1, DESFIRE_MASTER));
    expect(none).toMatchObject({ ok: false, code: 'no-application' });
    // the card's key number 0 (application master) is not what the reader holds
    expect(await auth(chip, readerKey(DESFIRE_MASTER, 0))).toMatchObject({ ok: false, code: 'auth-failed' });
  });
});

describe('the gateway checks a DESFire transcript', () => {
  let dir: string;
  let db: Database.Database;
  let v: SecureCardVerifier;
  let n = 0;

  const verifier = (keys: SecureCardKeys) =>
    new SecureCardVerifier({
      keys,
      store: createSqliteSecureCardStore(db),
      policy: () => SecureCardPolicy.parse({}),
      fleetKey: 'test-fleet-key-0123456789abcdef',
      logger,
    });

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-desfire-'));
    db = new Database(path.join(dir, 'gateway.db'));
    v = verifier(new SecureCardKeys(MASTER, { key: DESFIRE_MASTER, keyNo: 1 }));
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function proofOf(chip: VirtualDesfire, key = readerKey()) {
    const r = await auth(chip, key);
    if (!r.ok) throw new Error(r.reason);
    return r.proof;
  }
  const assess = (e: TapEvent) => v.assess('rdr-0001', null, e, ++n);

  it('accepts a verified authentication as secure (once), refuses its replay, records proof kind and nonce', async () => {
    const chip = desfireCard(UID);
    const p1 = await proofOf(chip);
    const e1 = tapEvent(UID_HEX, p1);
    expect(assess(e1)).toMatchObject({ assurance: 'secure', verdict: 'accepted', code: 'secure' });
    expect(assess(e1)).toMatchObject({ verdict: 'accepted' }); // a resend of the same event: same answer
    expect(assess(tapEvent(UID_HEX, p1))).toMatchObject({ verdict: 'refused', code: 'replayed' });
    expect(assess(tapEvent(UID_HEX, await proofOf(chip)))).toMatchObject({ verdict: 'accepted' });
    const rows = db
      .prepare('SELECT assurance, verdict, proof_kind, nonce FROM secure_taps ORDER BY seq')
      .all() as Array<{ assurance: string; verdict: string; proof_kind: string; nonce: string }>;
    expect(rows.map((r) => [r.assurance, r.verdict, r.proof_kind])).toEqual([
      ['secure', 'accepted', 'desfire-ev2'],
      ['secure', 'refused', 'desfire-ev2'],
      ['secure', 'accepted', 'desfire-ev2'],
    ]);
    expect(rows[0]?.nonce).toMatch(/^[0-9A-F]{40}$/);
    // the card is known secure now: a UID-only tap of it is a clone suspect (refused by default)
    expect(assess(tapEvent(UID_HEX))).toMatchObject({
      assurance: 'uid-only',
      verdict: 'refused',
      code: 'clone-suspect',
    });
  });

  it('refuses an altered transcript, another card’s transcript, a reader with another key and the wrong key number', async () => {
    const chip = desfireCard(UID);
    const p = await proofOf(chip);
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    expect(assess(tapEvent(UID_HEX, { ...p, cardUid: flip(p.cardUid) }))).toMatchObject({
      verdict: 'refused',
      code: 'desfire-bad-mac',
    });
    expect(assess(tapEvent(UID_HEX, { ...p, auth: flip(p.auth) }))).toMatchObject({
      verdict: 'refused',
      code: 'desfire-bad-auth',
    });
    // a genuine transcript of this card, carried with another card's UID (a copied card)
    expect(assess(tapEvent('04AABBCCDDEEFF', p))).toMatchObject({ verdict: 'refused', code: 'uid-mismatch' });
    // a reader and card personalised with another fleet's key: the sealed UID does not open here
    const foreignMaster = Buffer.alloc(16, 0x77);
    const foreign = new VirtualDesfire(
      UID,
      new Map([['F56A01', [Buffer.alloc(16), desfireCardKey(foreignMaster, UID, 1)]]]),
    );
    const r = assess(tapEvent(UID_HEX, await proofOf(foreign, readerKey(foreignMaster))));
    expect(r).toMatchObject({ verdict: 'refused' });
    expect(r?.code).toMatch(/^desfire-bad-/);
    expect(assess(tapEvent(UID_HEX, { ...p, keyNo: 2 }))).toMatchObject({
      verdict: 'refused',
      code: 'desfire-wrong-key-number',
    });
    // not one of these refusals made the card "known secure"; the untouched transcript is still accepted
    expect(assess(tapEvent(UID_HEX, p))).toMatchObject({ verdict: 'accepted' });
  });

  it('a gateway without a DESFire key counts such a tap as UID only and says how to fix it', async () => {
    const plain = verifier(new SecureCardKeys(MASTER));
    const t = plain.assess('rdr-0001', null, tapEvent(UID_HEX, await proofOf(desfireCard(UID))), 1);
    expect(t).toMatchObject({ assurance: 'uid-only', verdict: 'accepted' });
    expect(t?.detail).toMatch(/add desfireKey to the secure-card key file/);
  });
});
