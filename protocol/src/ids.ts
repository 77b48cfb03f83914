import { z } from 'zod';
import { LIMITS } from './limits.js';

/**
 * Identifiers that appear in topics and keys use a safe alphabet: letters, digits, `-`, `_` and `.`,
 * starting with a letter or digit. No `/`, `+`, `#`, spaces or control characters can reach a topic.
 */
export const SAFE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isSafeId(value: string): boolean {
  return value.length >= 1 && value.length <= LIMITS.maxIdLength && SAFE_ID_PATTERN.test(value);
}

export const SafeId = z
  .string()
  .min(1)
  .max(LIMITS.maxIdLength)
  .regex(SAFE_ID_PATTERN, 'must use only letters, digits, ".", "_" and "-", starting with a letter or digit');

export const ReaderId = SafeId.describe('Reader id, also its MQTT client id (safe alphabet, ≤ 64 chars).');
export const BootId = SafeId.describe('Random id chosen at each device boot.');

/** Free text, bounded. */
export const Text = z.string().max(LIMITS.maxTextLength);

/** Pseudonymised card reference: `c1_` + 32 lowercase hex chars (keyed HMAC of the normalised UID). */
export const CARD_REF_PATTERN = /^c1_[0-9a-f]{32}$/;
export const CardRef = z
  .string()
  .regex(CARD_REF_PATTERN, 'must be a pseudonymised card reference ("c1_" + 32 hex chars)')
  .describe('Keyed pseudonym of the card UID; never the raw UID.');

export const SeqNo = z
  .number()
  .int()
  .min(1)
  .max(Number.MAX_SAFE_INTEGER)
  .describe('Per-reader sequence number: gap-free, starts at 1, survives reboot.');

/** Wall-clock milliseconds since the Unix epoch (bounded to years 2000–2200). */
export const EpochMs = z.number().int().min(946_684_800_000).max(7_258_118_400_000);
