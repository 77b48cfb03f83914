/**
 * A MIFARE DESFire EV2/EV3 tap's proof (issue 18; docs/secure-cards.md "DESFire"). The reader runs
 * AuthenticateEV2First with the card's application read key (diversified per card, AN10922), then
 * GetCardUID in CommMode.Full. It forwards the whole transcript: its challenge RndA, the card's
 * E(K, RndB), the card's final answer E(K, TI || RndA' || caps), and the GetCardUID answer (UID
 * encrypted under the session key + response MAC). The gateway, holding the same master key,
 * re-derives the card key and checks every step: only a holder of the card's key (the card, or a
 * reader that holds the fleet's DESFire read key) can produce it. The card's UID travels sealed
 * under a fleet-wide envelope key (CBC, IV = RndA), never in clear: the gateway needs it to
 * derive the card key. A transcript is unique per authentication (TI and RndB are the card's
 * random numbers): a replayed one is refused by its nonce. Pure: no I/O.
 */
import { aesCbcDecrypt, aesCbcEncrypt, macEquals, padM2, rotl, unpadM2 } from './aes.js';
import { cardKey, sharedCardKey } from './diversify.js';
import { ev2SessionKeys, Ev2Session } from './ev2.js';

/** The diversification slot of the UID envelope key (not a DESFire key number: those are 0..13). */
export const DESFIRE_ENVELOPE_SLOT = 0xe0;

/** What the reader forwards, as bytes (the wire form is uppercase hex, protocol CardProof). */
export interface DesfireTranscript {
  keyNo: number;
  /** The reader's challenge (16 bytes, random). */
  rndA: Buffer;
  /** The card's first answer E(K, RndB) (16 bytes). */
  encRndB: Buffer;
  /** The card's final answer E(K, TI || RndA' || PDcap2 || PCDcap2) (32 bytes). */
  auth: Buffer;
  /** GetCardUID answer: encrypted UID (16 bytes) + response MAC (8 bytes). */
  cardUid: Buffer;
  /** The UID sealed under the envelope key, IV = RndA (16 bytes). */
  env: Buffer;
}

/** The keys a DESFire read-key master gives: the envelope key and each card's read key. */
export function desfireEnvelopeKey(master: Uint8Array): Buffer {
  return sharedCardKey(master, DESFIRE_ENVELOPE_SLOT);
}

export function desfireCardKey(master: Uint8Array, uid: Uint8Array, keyNo: number): Buffer {
  return cardKey(master, uid, keyNo);
}

/** Seals the UID for the gateway (reader side). */
export function sealDesfireUid(envelopeKey: Uint8Array, uid: Uint8Array, rndA: Uint8Array): Buffer {
  if (uid.length < 4 || uid.length > 10) throw new Error(`a UID is 4..10 bytes, got ${uid.length}`);
  return aesCbcEncrypt(envelopeKey, rndA, padM2(uid));
}

export type DesfireVerifyResult =
  | { ok: true; uid: Buffer; nonce: string }
  | {
      ok: false;
      code: 'bad-envelope' | 'bad-auth' | 'bad-mac' | 'uid-mismatch';
      reason: string;
    };

/**
 * Checks a transcript with the DESFire read-key master: unseals the UID, derives the card key,
 * recovers RndB, checks the card returned our challenge, derives the session keys, checks the
 * GetCardUID MAC and that the UID inside is the sealed one. `nonce` (TI || RndB, hex) is unique per
 * authentication.
 */
export function verifyDesfireTranscript(t: DesfireTranscript, master: Uint8Array): DesfireVerifyResult {
  if (t.rndA.length !== 16 || t.encRndB.length !== 16 || t.auth.length !== 32 || t.cardUid.length !== 24)
    return { ok: false, code: 'bad-auth', reason: 'transcript fields have the wrong length' };
  if (t.env.length !== 16) return { ok: false, code: 'bad-envelope', reason: 'UID envelope is not 16 bytes' };
  const uid = unpadM2(aesCbcDecrypt(desfireEnvelopeKey(master), t.rndA, t.env));
  if (!uid || uid.length < 4 || uid.length > 10)
    return { ok: false, code: 'bad-envelope', reason: 'UID envelope does not open with this key' };
  const key = desfireCardKey(master, uid, t.keyNo);
  const rndB = aesCbcDecrypt(key, Buffer.alloc(16), t.encRndB);
  const fin = aesCbcDecrypt(key, Buffer.alloc(16), t.auth);
  if (!macEquals(fin.subarray(4, 20), rotl(t.rndA)))
    return {
      ok: false,
      code: 'bad-auth',
      reason: "the card's answer does not return the reader's challenge under this card's key",
    };
  const ti = Buffer.from(fin.subarray(0, 4));
  const session = new Ev2Session(ev2SessionKeys(key, t.rndA, rndB), ti, 0, t.keyNo);
  const r = session.checkResponse(Buffer.concat([t.cardUid, Buffer.from([0x91, 0x00])]), true);
  if (!r.ok) return { ok: false, code: 'bad-mac', reason: `GetCardUID answer: ${r.reason}` };
  if (!r.data.equals(uid))
    return { ok: false, code: 'uid-mismatch', reason: 'the authenticated UID is not the sealed one' };
  return { ok: true, uid, nonce: Buffer.concat([ti, rndB]).toString('hex').toUpperCase() };
}
