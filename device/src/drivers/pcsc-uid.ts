import { normalizeUid } from '../../../protocol/index.js';

/**
 * PC/SC part 3 GET DATA (UID): `FF CA 00 00 00`. Every PC/SC contactless reader (ACR122U, ACR1252U,
 * and the suite's virtual card) answers it for ISO 14443-3 and -4 cards alike, so the driver sends
 * it itself instead of letting nfc-pcsc pick by ATR (which fails on -4 cards without an AID).
 */
export const GET_DATA_UID = Buffer.from([0xff, 0xca, 0x00, 0x00, 0x00]);
/** Longest answer: a 10-byte UID plus the 2-byte status word. */
export const GET_DATA_MAX_RESPONSE = 12;

export type UidReadResult =
  { ok: true; uid: string } | { ok: false; code: 'bad-uid' | 'read-failed'; reason: string };

/** Parses a GET DATA response: UID bytes + `90 00`. Anything else is a failed or malformed read. */
export function parseGetDataResponse(res: Buffer): UidReadResult {
  if (res.length < 2)
    return { ok: false, code: 'read-failed', reason: `short response (${res.length} bytes)` };
  const sw = res.readUInt16BE(res.length - 2);
  if (sw !== 0x9000) {
    return {
      ok: false,
      code: 'read-failed',
      reason: `GET DATA failed with status ${sw.toString(16).toUpperCase()}`,
    };
  }
  const norm = normalizeUid(res.subarray(0, res.length - 2));
  if (!norm.ok) return { ok: false, code: 'bad-uid', reason: `unreadable card: ${norm.reason}` };
  return { ok: true, uid: norm.uid };
}
