/** Size limits enforced on every wire message. Both sides use the same numbers. */
export const LIMITS = {
  /** Largest MQTT payload any visittag message may have, in bytes. */
  maxPayloadBytes: 256 * 1024,
  /** Most tap events in one device → gateway batch. */
  maxBatchEvents: 200,
  /** Longest identifier (reader, event, visit, command, client, staff ids). */
  maxIdLength: 64,
  /** Longest free-text field (reasons, labels, details). */
  maxTextLength: 200,
  /** Most card references in a pushed allow-list. */
  maxAllowList: 20_000,
  /** Most tombstone ranges (seqs a device will never deliver) in one batch. */
  maxBatchTombstones: 50,
  /** Most rejected sequences listed in one ack. */
  maxAckRejects: 200,
  /** Most visit events in one planning-backend webhook batch. */
  maxWebhookEvents: 500,
} as const;

/** The only schema version this build speaks. Anything else is rejected with a reason. */
export const SCHEMA_VERSION = 1 as const;
