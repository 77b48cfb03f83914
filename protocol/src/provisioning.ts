import { z } from 'zod';
import { MIN_FLEET_KEY_BYTES } from './uid.js';
import { EpochMs, ReaderId, SafeId } from './ids.js';
import { SCHEMA_VERSION } from './limits.js';

/**
 * Provisioning (HTTP, device → gateway admin server, no bearer token): a technician's one-time
 * enrollment code is exchanged for the reader's identity and its own MQTT credentials.
 */
export const PROVISION_PATH = '/provision/v1/exchange';

const Version = z.literal(SCHEMA_VERSION).describe('Schema version; unknown versions are rejected.');

/** Code alphabet: no 0/O, 1/I/L confusion. Codes are shown grouped, e.g. `ABCD-EFGH-JK`. */
export const ENROLLMENT_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const ENROLLMENT_CODE_LENGTH = 10;

/** Normalises what a technician typed: upper case, without spaces and dashes. */
export function normalizeEnrollmentCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '');
}

export const ProvisionRequest = z
  .object({
    schemaVersion: Version,
    code: z.string().min(1).max(64).describe('The one-time enrollment code (dashes and case ignored).'),
    preview: z
      .boolean()
      .optional()
      .describe('true: only say which reader the code is for, without using it up (identity checks).'),
    hostname: z.string().max(200).optional().describe('Device hostname, for the audit log.'),
  })
  .strict();
export type ProvisionRequest = z.infer<typeof ProvisionRequest>;

export const ProvisionResponse = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    clientRef: SafeId.nullable(),
    label: z.string().max(200).nullable(),
    preview: z.boolean().describe('true: nothing was issued (preview request); credentials are absent.'),
    mqtt: z
      .object({
        url: z.string().min(1).describe('Broker URL the reader connects to.'),
        username: ReaderId.describe('MQTT username (= readerId).'),
        password: z.string().min(20).describe('The reader\u2019s own password, shown once.'),
      })
      .strict()
      .optional(),
    fleetKey: z.string().min(MIN_FLEET_KEY_BYTES).optional().describe('Fleet key for card pseudonyms.'),
    issuedAt: EpochMs,
  })
  .strict();
export type ProvisionResponse = z.infer<typeof ProvisionResponse>;

export const ProvisionErrorCode = z.enum([
  'invalid-code',
  'expired-code',
  'used-code',
  'rate-limited',
  'bad-request',
  'unavailable',
]);
export type ProvisionErrorCode = z.infer<typeof ProvisionErrorCode>;

export const ProvisionError = z
  .object({
    schemaVersion: Version,
    error: ProvisionErrorCode,
    message: z.string().max(500).describe('What went wrong, in plain words.'),
    fix: z.string().max(500).describe('What the technician should do.'),
    retryAfterSec: z.number().int().min(0).optional(),
  })
  .strict();
export type ProvisionError = z.infer<typeof ProvisionError>;
