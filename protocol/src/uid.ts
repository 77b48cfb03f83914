import { createHmac } from 'node:crypto';

/** Byte lengths ISO 14443-3 allows for a card UID: single, double and triple size. */
export const UID_LENGTHS = [4, 7, 10] as const;

export type UidResult = { ok: true; uid: string } | { ok: false; reason: string };

/**
 * Normalises a card UID to full-length uppercase hex, MSB first (the order the reader reports).
 * Accepts bytes, or hex with optional `:`, `-` or space separators. Rejects anything that is not
 * exactly 4, 7 or 10 bytes, and the all-zero / all-FF values readers report for a failed read.
 */
export function normalizeUid(input: string | Uint8Array): UidResult {
  let hex: string;
  if (typeof input === 'string') {
    if (input.length > 64) return { ok: false, reason: 'UID text is too long (max 10 bytes)' };
    const stripped = input.trim().replace(/[:\- ]/g, '');
    if (!/^[0-9a-fA-F]*$/.test(stripped)) {
      return {
        ok: false,
        reason: 'UID must be hexadecimal (0-9, A-F), optionally separated by ":", "-" or " "',
      };
    }
    if (stripped.length % 2 !== 0) return { ok: false, reason: 'UID hex has an odd number of digits' };
    hex = stripped.toUpperCase();
  } else {
    hex = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('hex').toUpperCase();
  }
  const bytes = hex.length / 2;
  if (!(UID_LENGTHS as readonly number[]).includes(bytes)) {
    return { ok: false, reason: `UID must be 4, 7 or 10 bytes, got ${bytes}` };
  }
  if (/^0+$/.test(hex) || /^F+$/.test(hex)) {
    return { ok: false, reason: 'UID is all zeros or all FF (a failed read)' };
  }
  return { ok: true, uid: hex };
}

/** Minimum fleet key length in bytes (HMAC-SHA256 key). */
export const MIN_FLEET_KEY_BYTES = 16;

/**
 * Keyed pseudonym of a normalised UID: `c1_` + the first 128 bits of HMAC-SHA256(fleetKey, uid).
 * Same card + same fleet key → same reference on every reader and the gateway; without the key
 * the reference cannot be linked back to a UID.
 */
export function pseudonymiseCard(uid: string, fleetKey: Uint8Array | string): string {
  const norm = normalizeUid(uid);
  if (!norm.ok) throw new Error(`cannot pseudonymise an invalid UID: ${norm.reason}`);
  const key = typeof fleetKey === 'string' ? Buffer.from(fleetKey, 'utf8') : fleetKey;
  if (key.byteLength < MIN_FLEET_KEY_BYTES) {
    throw new Error(`fleet key must be at least ${MIN_FLEET_KEY_BYTES} bytes`);
  }
  const mac = createHmac('sha256', key).update('visittag/card/v1:').update(norm.uid).digest('hex');
  return `c1_${mac.slice(0, 32)}`;
}
