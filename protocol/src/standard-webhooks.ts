import { createHmac } from 'node:crypto';

/**
 * Standard Webhooks signing (the open specification many webhook libraries verify out of the box), sent beside
 * the project's own `X-Visittag-Signature` so an integrator can verify with off-the-shelf code:
 *   webhook-id         the batch id (stable across retries of the same batch)
 *   webhook-timestamp  whole seconds since the epoch
 *   webhook-signature  `v1,` + base64 HMAC-SHA256(key, `${id}.${timestamp}.${body}`)
 * The key is the bytes of the gateway's `backend.secret` (UTF-8); receivers configure it in the
 * specification's form, `whsec_` + base64 of those bytes, which `standardWebhooksSecret()` prints.
 */
export const STANDARD_WEBHOOK_HEADERS = {
  id: 'webhook-id',
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
} as const;

/** The secret in the Standard Webhooks form (`whsec_` + base64 key) for a receiver's configuration. */
export function standardWebhooksSecret(secret: string): string {
  return `whsec_${Buffer.from(secret, 'utf8').toString('base64')}`;
}

/** The key bytes of a secret given either as the gateway's plain secret or in `whsec_` form. */
function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** `webhook-signature` value: `v1,` + base64 HMAC-SHA256 over `${id}.${timestampSec}.${rawBody}`. */
export function signStandardWebhook(
  secret: string,
  id: string,
  timestampSec: number,
  rawBody: string,
): string {
  const mac = createHmac('sha256', keyOf(secret)).update(`${id}.${timestampSec}.${rawBody}`).digest('base64');
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers for one request (timestamp from milliseconds, rounded down). */
export function standardWebhookHeaders(
  secret: string,
  id: string,
  timestampMs: number,
  rawBody: string,
): Record<(typeof STANDARD_WEBHOOK_HEADERS)[keyof typeof STANDARD_WEBHOOK_HEADERS], string> {
  const ts = Math.floor(timestampMs / 1000);
  return {
    [STANDARD_WEBHOOK_HEADERS.id]: id,
    [STANDARD_WEBHOOK_HEADERS.timestamp]: String(ts),
    [STANDARD_WEBHOOK_HEADERS.signature]: signStandardWebhook(secret, id, ts, rawBody),
  };
}
