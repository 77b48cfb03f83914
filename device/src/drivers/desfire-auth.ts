/**
 * MIFARE DESFire EV2/EV3 AES authentication at the reader (issue 18): select the application,
 * AuthenticateEV2First with the card's read key (diversified per card, AN10922, from the fleet's
 * DESFire read-key master the reader is provisioned with), then GetCardUID (CommMode.Full), which
 * returns the card's real UID encrypted and MACed under the session keys. A copied UID cannot answer
 * it: success proves the card holds the key. The whole transcript becomes the tap's `cardProof`
 * (kind `desfire-ev2`), which the gateway re-checks with its own copy of the key
 * (docs/secure-cards.md, "DESFire EV2/EV3").
 */
import { randomBytes } from 'node:crypto';
import {
  authFirstCommand,
  authFirstFinish,
  authFirstPart2,
  desfireCardKey,
  desfireEnvelopeKey,
  EV2,
  sealDesfireUid,
  splitResponse,
  wrapNative,
  type CardProof,
} from '../../../protocol/index.js';
import type { Transmit } from './secure-read.js';

export type DesfireAuthResult =
  | { ok: true; uid: Buffer; proof: Extract<CardProof, { kind: 'desfire-ev2' }> }
  | { ok: false; code: 'no-application' | 'auth-failed' | 'bad-response'; reason: string };

const hexSw = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
const hex = (b: Buffer) => b.toString('hex').toUpperCase();

/**
 * The reader's DESFire provisioning: the application, the key number (a read-only key, never 0) and
 * the fleet's read-key master. Prints as "[redacted]".
 */
export class DesfireReaderKey {
  readonly #master: Buffer;

  constructor(
    readonly aid: Buffer,
    readonly keyNo: number,
    master: Buffer,
  ) {
    if (aid.length !== 3) throw new Error('a DESFire application id is 3 bytes');
    if (master.length !== 16) throw new Error('the DESFire read-key master must be 16 bytes');
    this.#master = Buffer.from(master);
  }

  /** The card's key (AN10922, UID || keyNo || "visittag"). */
  cardKey(uid: Uint8Array): Buffer {
    return desfireCardKey(this.#master, uid, this.keyNo);
  }

  envelopeKey(): Buffer {
    return desfireEnvelopeKey(this.#master);
  }

  toJSON(): string {
    return '[redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'DesfireReaderKey [redacted]';
  }
}

/**
 * Authenticates a DESFire card. `uid`: the UID the reader read (GET DATA), used to derive the card's
 * key; a card with a random ID needs its real UID, which is not supported (docs). `no-application`:
 * not one of the fleet's DESFire cards (a plain tap); `auth-failed`: the card has the application
 * but not the key (a wrong key, or a copy); `bad-response`: its answer does not verify.
 */
export async function authenticateDesfire(
  transmit: Transmit,
  o: { key: DesfireReaderKey; uid: Buffer; random?: (n: number) => Buffer },
): Promise<DesfireAuthResult> {
  const sel = splitResponse(await transmit(wrapNative(EV2.SELECT_APPLICATION, o.key.aid), 2));
  if (sel.sw !== 0x9100)
    return { ok: false, code: 'no-application', reason: `application not on the card (${hexSw(sel.sw)})` };
  const key = o.key.cardKey(o.uid);
  const a1 = splitResponse(await transmit(authFirstCommand(o.key.keyNo), 20));
  if (a1.sw !== 0x91af || a1.data.length !== 16)
    return {
      ok: false,
      code: 'auth-failed',
      reason: `the card refused to start the authentication with key ${o.key.keyNo} (${hexSw(a1.sw)})`,
    };
  const rndA = (o.random ?? randomBytes)(16);
  const p2 = authFirstPart2(key, a1.data, rndA);
  const a2 = splitResponse(await transmit(p2.apdu, 36));
  if (a2.sw !== 0x9100)
    return {
      ok: false,
      code: 'auth-failed',
      reason: `the card refused the reader's key (${hexSw(a2.sw)}): wrong key, or not a genuine card of this fleet`,
    };
  const fin = authFirstFinish(key, o.key.keyNo, rndA, p2.rndB, a2.data);
  if (!fin.ok) return { ok: false, code: 'auth-failed', reason: fin.reason };
  const s = fin.session;
  const res = await transmit(s.macCommand(EV2.GET_CARD_UID, Buffer.alloc(0)), 40);
  const r = s.checkResponse(res, true);
  if (!r.ok) return { ok: false, code: 'bad-response', reason: `GetCardUID: ${r.reason}` };
  const uidAnswer = splitResponse(res).data;
  if (uidAnswer.length !== 24)
    return { ok: false, code: 'bad-response', reason: `GetCardUID answer of ${uidAnswer.length} bytes` };
  if (!r.data.equals(o.uid))
    return {
      ok: false,
      code: 'auth-failed',
      reason: 'the authenticated UID is not the UID the card reported: a card with a random ID or a copy',
    };
  return {
    ok: true,
    uid: r.data,
    proof: {
      kind: 'desfire-ev2',
      keyNo: o.key.keyNo,
      rndA: hex(rndA),
      encRndB: hex(a1.data),
      auth: hex(a2.data),
      cardUid: hex(uidAnswer),
      env: hex(sealDesfireUid(o.key.envelopeKey(), r.data, rndA)),
    },
  };
}
