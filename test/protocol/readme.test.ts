import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decode, TOPIC_LEAVES, type TopicLeaf, WebhookBatch } from '../../protocol/index.js';

// Every example payload shown in protocol/README.md must be valid under the schema it claims.
const readme = readFileSync(
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol', 'README.md'),
  'utf8',
);
const blocks = [...readme.matchAll(/```json payload=([a-z-]+)\n([\s\S]*?)```/g)].map((m) => ({
  kind: m[1] as string,
  json: m[2] as string,
}));

describe('protocol/README.md examples', () => {
  it('shows one example per message type and the webhook', () => {
    expect(new Set(blocks.map((b) => b.kind))).toEqual(new Set([...TOPIC_LEAVES, 'webhook']));
  });

  it.each(blocks.map((b, i) => [`${i}:${b.kind}`, b] as const))('%s is valid', (_n, b) => {
    if (b.kind === 'webhook') {
      expect(WebhookBatch.safeParse(JSON.parse(b.json)).success).toBe(true);
      return;
    }
    const r = decode(b.kind as TopicLeaf, 'rdr-0042', b.json);
    expect(r.ok ? 'ok' : `${r.reason}: ${r.detail}`).toBe('ok');
  });
});
