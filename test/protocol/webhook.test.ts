import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classifyWebhookStatus,
  signWebhook,
  verifyWebhook,
  WEBHOOK_EXAMPLE,
  WebhookBatch,
  webhookBatchId,
} from '../../protocol/index.js';

const SECRET = 'backend-shared-secret';

describe('webhook contract', () => {
  it('the example batch validates and round trips through JSON', () => {
    const text = JSON.stringify(WEBHOOK_EXAMPLE);
    expect(WebhookBatch.parse(JSON.parse(text))).toEqual(WEBHOOK_EXAMPLE);
  });

  it('refuses extra fields, bad times and unknown event types', () => {
    const bad = [
      { ...WEBHOOK_EXAMPLE, extra: 1 },
      { ...WEBHOOK_EXAMPLE, sentAt: 'yesterday' },
      { ...WEBHOOK_EXAMPLE, events: [{ ...WEBHOOK_EXAMPLE.events[0], type: 'visit.paused' }] },
      { ...WEBHOOK_EXAMPLE, events: [] },
    ];
    for (const b of bad) expect(WebhookBatch.safeParse(b).success).toBe(false);
  });

  it('signature verifies, and fails on any change, wrong secret, or stale timestamp', () => {
    const body = JSON.stringify(WEBHOOK_EXAMPLE);
    const t = 1_795_420_801_000;
    const signature = signWebhook(SECRET, t, body);
    const base = { secret: SECRET, signature, timestamp: String(t), rawBody: body, nowMs: t + 1000 };
    expect(verifyWebhook(base)).toEqual({ ok: true });
    expect(verifyWebhook({ ...base, rawBody: body.replace('staff-88', 'staff-89') }).ok).toBe(false);
    expect(verifyWebhook({ ...base, secret: 'other' }).ok).toBe(false);
    expect(verifyWebhook({ ...base, nowMs: t + 3_600_000 })).toMatchObject({ reason: /replay window/ });
    expect(verifyWebhook({ ...base, signature: undefined })).toMatchObject({ reason: /missing/ });
    expect(verifyWebhook({ ...base, timestamp: 'abc' })).toMatchObject({ reason: /integer/ });
  });

  it('property: a signature never verifies for a different body', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        fc.pre(a !== b);
        const sig = signWebhook(SECRET, 1, a);
        expect(
          verifyWebhook({ secret: SECRET, signature: sig, timestamp: '1', rawBody: b, nowMs: 1 }).ok,
        ).toBe(false);
      }),
    );
  });

  it('batch id is stable for the same keys and differs otherwise', () => {
    expect(webhookBatchId(['a', 'b'])).toBe(webhookBatchId(['a', 'b']));
    expect(webhookBatchId(['a', 'b'])).not.toBe(webhookBatchId(['b', 'a']));
  });

  it.each([
    [200, 'delivered'],
    [204, 'delivered'],
    [400, 'dead-letter'],
    [401, 'dead-letter'],
    [409, 'dead-letter'],
    [422, 'dead-letter'],
    [408, 'retry'],
    [429, 'retry'],
    [500, 'retry'],
    [503, 'retry'],
  ])('HTTP %i → %s', (status, kind) => {
    expect(classifyWebhookStatus(status)).toBe(kind);
  });
});
