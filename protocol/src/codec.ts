import type { z } from 'zod';
import { LIMITS, SCHEMA_VERSION } from './limits.js';
import { Ack, Command, CommandResult, DeviceConfig, EventBatch, Status } from './messages.js';
import type { TopicLeaf } from './topics.js';

/** The one topic → payload map (CONTRIBUTING.md, "One topic map, zod as the single source of truth"). */
export const PAYLOADS = {
  events: EventBatch,
  acks: Ack,
  status: Status,
  config: DeviceConfig,
  commands: Command,
  'command-results': CommandResult,
} as const satisfies Record<TopicLeaf, z.ZodType>;

export type PayloadOf<L extends TopicLeaf> = z.output<(typeof PAYLOADS)[L]>;
export type PayloadInputOf<L extends TopicLeaf> = z.input<(typeof PAYLOADS)[L]>;

/** Reasons a payload is refused. Stable strings: used as metric labels. */
export type DecodeRejectReason =
  | 'oversized'
  | 'invalid-utf8'
  | 'invalid-json'
  | 'unsupported-schema-version'
  | 'invalid-payload'
  | 'reader-mismatch';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: DecodeRejectReason; detail: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Serialises a message after validating it, so nothing invalid ever leaves a process. */
export function encode<L extends TopicLeaf>(leaf: L, value: PayloadInputOf<L>): Buffer {
  const parsed = PAYLOADS[leaf].safeParse(value);
  if (!parsed.success) {
    throw new Error(`refusing to encode an invalid ${leaf} payload: ${summarizeIssues(parsed.error.issues)}`);
  }
  return Buffer.from(JSON.stringify(parsed.data), 'utf8');
}

/**
 * Decodes and validates a payload received on `leaf` for the reader named in the topic.
 * Never throws: returns a reason (a metric label) and a detail that names the offending field.
 */
export function decode<L extends TopicLeaf>(
  leaf: L,
  topicReaderId: string,
  payload: Uint8Array | string,
): Decoded<PayloadOf<L>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > LIMITS.maxPayloadBytes) {
    return {
      ok: false,
      reason: 'oversized',
      detail: `payload is ${size} bytes, max ${LIMITS.maxPayloadBytes}`,
    };
  }
  let text: string;
  if (typeof payload === 'string') text = payload;
  else {
    try {
      text = utf8.decode(payload);
    } catch {
      return { ok: false, reason: 'invalid-utf8', detail: 'payload is not valid UTF-8' };
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid-json', detail: 'payload is not JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: 'invalid-payload', detail: 'payload must be a JSON object' };
  }
  const version = (json as { schemaVersion?: unknown }).schemaVersion;
  if (version !== SCHEMA_VERSION) {
    return {
      ok: false,
      reason: 'unsupported-schema-version',
      detail:
        version === undefined
          ? `schemaVersion is missing (this build speaks ${SCHEMA_VERSION})`
          : `schemaVersion ${JSON.stringify(version).slice(0, 20)} is not supported (this build speaks ${SCHEMA_VERSION})`,
    };
  }
  const parsed = PAYLOADS[leaf].safeParse(json);
  if (!parsed.success) {
    return { ok: false, reason: 'invalid-payload', detail: summarizeIssues(parsed.error.issues) };
  }
  const value = parsed.data as PayloadOf<L>;
  if (value.readerId !== topicReaderId) {
    return {
      ok: false,
      reason: 'reader-mismatch',
      detail: 'payload readerId differs from the topic reader id',
    };
  }
  return { ok: true, value };
}

/** A short, bounded, value-free summary of zod issues (paths and messages only: no card ids leak). */
export function summarizeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const parts = issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  if (issues.length > 5) parts.push(`… ${issues.length - 5} more`);
  return parts.join('; ').slice(0, 500);
}
