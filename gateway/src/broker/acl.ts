import {
  DEVICE_PUBLISH_LEAVES,
  DEVICE_SUBSCRIBE_LEAVES,
  parseTopic,
  type TopicLeaf,
} from '../../../protocol/index.js';

/**
 * The per-reader topic ACL (DESIGN invariant 5), pure so the embedded broker and the docs for an
 * external broker say the same thing: a reader publishes only to its own events, status and
 * command-results, and subscribes only to its own acks, config and commands. Wildcards, `$SYS`,
 * other readers' subtrees, other roots and wrong depths are refused.
 */
export type AclDecision = { ok: true; leaf: TopicLeaf } | { ok: false; reason: string };

function check(clientId: string, topic: string, allowed: readonly TopicLeaf[], verb: string): AclDecision {
  if (typeof topic !== 'string' || topic.length === 0) return { ok: false, reason: 'empty topic' };
  if (topic.startsWith('$')) return { ok: false, reason: `${verb} to $-topics is not allowed` };
  const parsed = parseTopic(topic);
  if (!parsed.ok) return { ok: false, reason: parsed.reason };
  if (parsed.readerId !== clientId) return { ok: false, reason: `${verb} to another reader's topic` };
  if (!allowed.includes(parsed.leaf)) {
    return { ok: false, reason: `${verb} to "${parsed.leaf}" is not allowed for a reader` };
  }
  return { ok: true, leaf: parsed.leaf };
}

export function canPublish(clientId: string, topic: string): AclDecision {
  return check(clientId, topic, DEVICE_PUBLISH_LEAVES, 'publish');
}

export function canSubscribe(clientId: string, topicFilter: string): AclDecision {
  return check(clientId, topicFilter, DEVICE_SUBSCRIBE_LEAVES, 'subscribe');
}
