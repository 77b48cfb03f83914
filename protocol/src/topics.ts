import { isSafeId } from './ids.js';

/** Versioned topic root. A breaking protocol change gets a new root (`visittag/v2`). */
export const TOPIC_ROOT = 'visittag/v1/readers';

/** Per-reader leaves. Direction, QoS and retain flags are documented in protocol/README.md. */
export const TOPIC_LEAVES = ['events', 'acks', 'status', 'config', 'commands', 'command-results'] as const;
export type TopicLeaf = (typeof TOPIC_LEAVES)[number];

/** Leaves a device may publish to (its own subtree only). */
export const DEVICE_PUBLISH_LEAVES: readonly TopicLeaf[] = ['events', 'status', 'command-results'];
/** Leaves a device may subscribe to (its own subtree only). */
export const DEVICE_SUBSCRIBE_LEAVES: readonly TopicLeaf[] = ['acks', 'config', 'commands'];

const ROOT_PARTS = TOPIC_ROOT.split('/');
/** Every visittag topic has exactly this many levels. */
export const TOPIC_DEPTH = ROOT_PARTS.length + 2;

export function readerTopic(readerId: string, leaf: TopicLeaf): string {
  if (!isSafeId(readerId)) throw new Error(`invalid reader id for a topic: ${JSON.stringify(readerId)}`);
  return `${TOPIC_ROOT}/${readerId}/${leaf}`;
}

export const topics = {
  events: (readerId: string) => readerTopic(readerId, 'events'),
  acks: (readerId: string) => readerTopic(readerId, 'acks'),
  status: (readerId: string) => readerTopic(readerId, 'status'),
  config: (readerId: string) => readerTopic(readerId, 'config'),
  commands: (readerId: string) => readerTopic(readerId, 'commands'),
  commandResults: (readerId: string) => readerTopic(readerId, 'command-results'),
  /** Gateway-side subscription filter for one leaf across all readers. */
  allReaders: (leaf: TopicLeaf) => `${TOPIC_ROOT}/+/${leaf}`,
} as const;

export type ParsedTopic = { ok: true; readerId: string; leaf: TopicLeaf } | { ok: false; reason: string };

/**
 * Parses a concrete topic. Refuses wildcards, wrong roots or versions, wrong depth, unsafe ids
 * and unknown leaves, naming which. Never throws.
 */
export function parseTopic(topic: string): ParsedTopic {
  if (typeof topic !== 'string') return { ok: false, reason: 'topic is not a string' };
  if (topic.length > 256) return { ok: false, reason: 'topic too long' };
  if (topic.includes('+') || topic.includes('#')) return { ok: false, reason: 'wildcards are not allowed' };
  const parts = topic.split('/');
  if (parts.length !== TOPIC_DEPTH) {
    return { ok: false, reason: `topic must have exactly ${TOPIC_DEPTH} levels, got ${parts.length}` };
  }
  for (let i = 0; i < ROOT_PARTS.length; i++) {
    if (parts[i] !== ROOT_PARTS[i]) {
      return { ok: false, reason: `topic must start with ${TOPIC_ROOT}/ (level ${i + 1} is wrong)` };
    }
  }
  const readerId = parts[ROOT_PARTS.length] as string;
  const leaf = parts[ROOT_PARTS.length + 1] as string;
  if (!isSafeId(readerId))
    return { ok: false, reason: 'reader id in topic uses characters outside the safe alphabet' };
  if (!(TOPIC_LEAVES as readonly string[]).includes(leaf))
    return { ok: false, reason: `unknown topic leaf "${leaf}"` };
  return { ok: true, readerId, leaf: leaf as TopicLeaf };
}
