import { createHmac, randomInt } from 'node:crypto';
import { ENROLLMENT_CODE_ALPHABET, ENROLLMENT_CODE_LENGTH } from '../../../protocol/index.js';

/** A uniformly random integer in [0, max): crypto-grade by default (codes are secrets). */
export type CodeRandom = (max: number) => number;

export const cryptoRandom: CodeRandom = (max) => randomInt(max);

/** A new code, e.g. `K7QM-3XWP-9A` (10 symbols of a 31-letter alphabet ≈ 49.5 bits). */
export function generateCode(rnd: CodeRandom = cryptoRandom): string {
  let raw = '';
  for (let i = 0; i < ENROLLMENT_CODE_LENGTH; i++) {
    raw += ENROLLMENT_CODE_ALPHABET[rnd(ENROLLMENT_CODE_ALPHABET.length)];
  }
  return formatCode(raw);
}

/** `ABCDEFGHJK` → `ABCD-EFGH-JK`. */
export function formatCode(raw: string): string {
  return raw.match(/.{1,4}/g)?.join('-') ?? raw;
}

/** Whether a normalised code can be a code at all (length and alphabet). */
export function isWellFormed(normalised: string): boolean {
  if (normalised.length !== ENROLLMENT_CODE_LENGTH) return false;
  for (const ch of normalised) if (!ENROLLMENT_CODE_ALPHABET.includes(ch)) return false;
  return true;
}

/** Keyed hash of a normalised code: a stolen database does not reveal live codes. */
export function hashCode(key: Buffer, normalised: string): string {
  return createHmac('sha256', key).update(`enroll-v1:${normalised}`).digest('hex');
}
