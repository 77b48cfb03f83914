import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postBatch } from '../../gateway/src/outbox/post.js';
import { Histogram } from '../../gateway/src/metrics.js';
import {
  signStandardWebhook,
  standardWebhookHeaders,
  standardWebhooksSecret,
  systemClock,
  verifyWebhook,
  WEBHOOK_EXAMPLE,
  WEBHOOK_HEADERS,
} from '../../protocol/index.js';

// The planning-backend webhook is signed twice: the project's own X-Visittag-Signature (kept for existing
// receivers) and the Standard Webhooks headers, which an integrator verifies with an off-the-shelf library. Here
// the verifier is the `standardwebhooks` npm package, over a real HTTP POST made by the gateway's outbox.
const secret = 'a-backend-secret-of-thirty-two-chars!';

describe('Standard Webhooks signing (protocol)', () => {
  const body = JSON.stringify(WEBHOOK_EXAMPLE);

  it('verifies with the standardwebhooks package, given the whsec_ form of the secret', () => {
    const headers = standardWebhookHeaders(secret, WEBHOOK_EXAMPLE.batchId, Date.now(), body);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    const wh = new Webhook(standardWebhooksSecret(secret));
    expect(wh.verify(body, headers)).toEqual(WEBHOOK_EXAMPLE);
    // The package's own signer agrees byte for byte.
    const ts = Number(headers['webhook-timestamp']);
    expect(wh.sign(WEBHOOK_EXAMPLE.batchId, new Date(ts * 1000), body)).toBe(headers['webhook-signature']);
    // A whsec_ secret given to our signer means the same key.
    expect(signStandardWebhook(standardWebhooksSecret(secret), WEBHOOK_EXAMPLE.batchId, ts, body)).toBe(
      headers['webhook-signature'],
    );
  });

  it('is refused when the body, id, timestamp or secret differ', () => {
    const now = Date.now();
    const headers = standardWebhookHeaders(secret, WEBHOOK_EXAMPLE.batchId, now, body);
    const wh = new Webhook(standardWebhooksSecret(secret));
    expect(() => wh.verify(body.replace('"visit.', '"visiT.'), headers)).toThrow();
    expect(() => wh.verify(body, { ...headers, 'webhook-id': 'b1_other' })).toThrow();
    expect(() =>
      wh.verify(body, { ...headers, 'webhook-timestamp': String(Math.floor(now / 1000) + 1) }),
    ).toThrow();
    expect(() => new Webhook(standardWebhooksSecret(`${secret}x`)).verify(body, headers)).toThrow();
    // Outside the package's replay window (5 minutes).
    const old = standardWebhookHeaders(secret, WEBHOOK_EXAMPLE.batchId, now - 10 * 60_000, body);
    expect(() => wh.verify(body, old)).toThrow(/timestamp/i);
  });
});

describe("the outbox's POST carries both signatures", () => {
  let url = '';
  const seen: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end('ok');
    });
  });

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('a receiver verifies the same request with standardwebhooks and with the X-Visittag scheme', async () => {
    const rows = WEBHOOK_EXAMPLE.events.map((e, i) => ({
      id: i + 1,
      idempotencyKey: e.idempotencyKey,
      visitId: null,
      type: e.type,
      eventJson: JSON.stringify(e),
      attempts: 0,
      createdAtMs: 0,
    }));
    const outcome = await postBatch({
      rows,
      backend: { url, secret, timeoutMs: 10_000, batchMax: 100, backoff: { baseMs: 100, capMs: 1_000 } },
      clock: systemClock,
      fetch,
      stop: new AbortController().signal,
      latency: new Histogram('t_seconds', 'test', [1]),
      logger: pino({ level: 'silent' }),
    });
    expect(outcome.kind).toBe('delivered');
    expect(seen).toHaveLength(1);
    const { headers, body } = seen[0]!;
    const h = (name: string) => String(headers[name] ?? '');

    const verified = new Webhook(standardWebhooksSecret(secret)).verify(body, {
      'webhook-id': h('webhook-id'),
      'webhook-timestamp': h('webhook-timestamp'),
      'webhook-signature': h('webhook-signature'),
    }) as { batchId: string; events: unknown[] };
    expect(verified.events).toHaveLength(rows.length);
    // webhook-id is the batch id, the same as the Idempotency-Key (stable across retries).
    expect(h('webhook-id')).toBe(verified.batchId);
    expect(h(WEBHOOK_HEADERS.idempotencyKey)).toBe(verified.batchId);

    expect(
      verifyWebhook({
        secret,
        signature: h(WEBHOOK_HEADERS.signature),
        timestamp: h(WEBHOOK_HEADERS.timestamp),
        rawBody: body,
        nowMs: Date.now(),
      }),
    ).toEqual({ ok: true });
  });
});
