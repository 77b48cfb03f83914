import { createHash, createHmac, type X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { MIN_FLEET_KEY_BYTES } from './uid.js';
import { CardScheme, ReaderCardKeys } from './card-seal.js';
import { EpochMs, ReaderId, SafeId } from './ids.js';
import { SCHEMA_VERSION } from './limits.js';

/**
 * Provisioning (HTTPS, device → gateway admin server, no bearer token): a technician's one-time
 * enrollment code is exchanged for the reader's identity, its own MQTT credentials and the CA its
 * broker connection trusts. A gateway on HTTPS adds a pin to each code (its last group): a keyed
 * check of the gateway's certificate key, so the reader talks only to that gateway (docs/security.md).
 */
export const PROVISION_PATH = '/provision/v1/exchange';

const Version = z.literal(SCHEMA_VERSION).describe('Schema version; unknown versions are rejected.');

/** Code alphabet: no 0/O, 1/I/L confusion. Codes are shown grouped, e.g. `ABCD-EFGH-JK`. */
export const ENROLLMENT_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const ENROLLMENT_CODE_LENGTH = 10;

/** Symbols of the gateway pin a code ends with when the gateway serves HTTPS (`ABCD-EFGH-JKMN-PQ`). */
export const ENROLLMENT_PIN_LENGTH = 4;

/** Normalises what a technician typed: upper case, without spaces and dashes. */
export function normalizeEnrollmentCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '');
}

/**
 * A normalised code's secret (what the gateway looks up) and its gateway pin (null: a code of a
 * gateway without HTTPS). Only the secret is ever sent; the pin stays on the reader.
 */
export function splitEnrollmentCode(normalised: string): { secret: string; pin: string | null } {
  if (normalised.length === ENROLLMENT_CODE_LENGTH + ENROLLMENT_PIN_LENGTH) {
    return {
      secret: normalised.slice(0, ENROLLMENT_CODE_LENGTH),
      pin: normalised.slice(ENROLLMENT_CODE_LENGTH),
    };
  }
  return { secret: normalised, pin: null };
}

/** SHA-256 of a certificate's public key (SubjectPublicKeyInfo, DER): what a pin is made of. */
export function publicKeySha256(cert: X509Certificate): Buffer {
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

/**
 * The pin for one code's secret and the gateway's certificate key: HMAC-SHA256 keyed by the secret,
 * 4 symbols (≈ 19.8 bits). Someone posing as the gateway does not know the secret (the reader sends
 * it only after the pin matched), so each attempt with another key passes with odds of 1 in 923,521;
 * a renewed certificate with the same key keeps its codes valid.
 */
export function gatewayPin(secret: string, keySha256: Buffer): string {
  const mac = createHmac('sha256', `visittag/gateway-pin/v1:${secret}`).update(keySha256).digest();
  let n = mac.readBigUInt64BE(0);
  const base = BigInt(ENROLLMENT_CODE_ALPHABET.length);
  let pin = '';
  for (let i = 0; i < ENROLLMENT_PIN_LENGTH; i++) {
    pin += ENROLLMENT_CODE_ALPHABET[Number(n % base)];
    n /= base;
  }
  return pin;
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
    cardSchemes: z
      .array(CardScheme)
      .max(4)
      .optional()
      .describe(
        'Card schemes the device speaks (absent: fleet-key only). A device offering sealed-v1 gets cardKeys and no fleet key. Added within version 1.',
      ),
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
        ca: z
          .string()
          .min(1)
          .max(65_536)
          .optional()
          .describe('PEM CA certificate(s) the reader trusts for mqtts:// (absent: the system CAs).'),
      })
      .strict()
      .optional(),
    fleetKey: z
      .string()
      .min(MIN_FLEET_KEY_BYTES)
      .optional()
      .describe('Fleet key for card pseudonyms (fleet-key devices only; never sent with cardKeys).'),
    cardKeys: ReaderCardKeys.optional().describe(
      "The reader's own card key and the gateway seal key (sealed-v1; only to a device that offered it). Added within version 1.",
    ),
    mqttUrl: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Preview: the broker URL the reader will get (so it can refuse plain MQTT before the code is used).',
      ),
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
