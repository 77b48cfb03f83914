/**
 * MIFARE DESFire EV2/EV3 AES authentication at the reader (issue 18): select the application,
 * AuthenticateEV2First with a provisioned key, then GetCardUID (CommMode.Full), which returns the
 * card's real UID encrypted and MACed under the session keys. A copied UID cannot answer it: success
 * proves the card holds the key. Not yet called by the nfc-pcsc driver (the DESFire item at the end of docs/secure-cards.md).
 */
import { randomBytes } from 'node:crypto';
import {
  authFirstCommand,
  authFirstFinish,
  authFirstPart2,
  EV2,
  splitResponse,
  wrapNative,
} from '../../../protocol/index.js';
import type { Transmit } from './secure-read.js';

export type DesfireAuthResult =
  | { ok: true; uid: Buffer }
  | { ok: false; code: 'no-application' | 'auth-failed' | 'bad-response'; reason: string };

const hexSw = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

export async function authenticateDesfire(
  transmit: Transmit,
  o: { aid: Buffer; keyNo: number; key: Buffer; random?: (n: number) => Buffer },
): Promise<DesfireAuthResult> {
  const sel = splitResponse(await transmit(wrapNative(EV2.SELECT_APPLICATION, o.aid), 2));
  if (sel.sw !== 0x9100)
    return { ok: false, code: 'no-application', reason: `application not on the card (${hexSw(sel.sw)})` };
  const a1 = splitResponse(await transmit(authFirstCommand(o.keyNo), 20));
  if (a1.sw !== 0x91af) return { ok: false, code: 'auth-failed', reason: `card answered ${hexSw(a1.sw)}` };
  const rndA = (o.random ?? randomBytes)(16);
  const p2 = authFirstPart2(o.key, a1.data, rndA);
  const a2 = splitResponse(await transmit(p2.apdu, 36));
  if (a2.sw !== 0x9100)
    return { ok: false, code: 'auth-failed', reason: `card refused the key (${hexSw(a2.sw)}): wrong key` };
  const fin = authFirstFinish(o.key, o.keyNo, rndA, p2.rndB, a2.data);
  if (!fin.ok) return { ok: false, code: 'auth-failed', reason: fin.reason };
  const s = fin.session;
  const res = await transmit(s.macCommand(EV2.GET_CARD_UID, Buffer.alloc(0)), 40);
  const r = s.checkResponse(res, true);
  if (!r.ok) return { ok: false, code: 'bad-response', reason: r.reason };
  return { ok: true, uid: r.data };
}
