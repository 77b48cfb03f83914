import type pino from 'pino';
import {
  SCHEMA_VERSION,
  WEBHOOK_HEADERS,
  classifyWebhookStatus,
  signWebhook,
  standardWebhookHeaders,
  webhookBatchId,
} from '../../../protocol/index.js';
import type { Clock, WebhookBatch } from '../../../protocol/index.js';
import type { Histogram } from '../metrics.js';
import type { OutboxRow } from '../store/ports.js';

/** The planning backend the outbox is delivered to (config `backend`; owned here, where it is used). */
export interface BackendSettings {
  url: string;
  secret: string;
  timeoutMs: number;
  batchMax: number;
  backoff: { baseMs: number; capMs: number };
}

/** What one HTTP attempt came to. */
export type SendOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status: number | null; error: string; retryAfterMs: number | null }
  | { kind: 'dead-letter'; status: number; error: string };

/**
 * One signed POST of outbox rows as a `WebhookBatch`, with a timeout on the injected clock and an
 * abort on shutdown. Never throws: every failure is an outcome.
 */
export async function postBatch(o: {
  rows: OutboxRow[];
  backend: BackendSettings;
  clock: Clock;
  fetch: typeof fetch;
  stop: AbortSignal;
  latency: Histogram;
  logger: pino.Logger;
}): Promise<SendOutcome> {
  const { clock, backend, rows } = o;
  const batch: WebhookBatch = {
    schemaVersion: SCHEMA_VERSION,
    batchId: webhookBatchId(rows.map((r) => r.idempotencyKey)),
    sentAt: new Date(clock.now()).toISOString(),
    events: rows.map((r) => JSON.parse(r.eventJson) as WebhookBatch['events'][number]),
  };
  const body = JSON.stringify(batch);
  const ts = clock.now();
  const ac = new AbortController();
  const timer = clock.setTimeout(() => ac.abort(new Error('timeout')), backend.timeoutMs);
  const onStop = () => ac.abort(new Error('stopping'));
  o.stop.addEventListener('abort', onStop, { once: true });
  const t0 = clock.monotonic();
  try {
    const res = await o.fetch(backend.url, {
      method: 'POST',
      body,
      signal: ac.signal,
      headers: {
        'content-type': 'application/json',
        [WEBHOOK_HEADERS.idempotencyKey]: batch.batchId,
        [WEBHOOK_HEADERS.timestamp]: String(ts),
        [WEBHOOK_HEADERS.signature]: signWebhook(backend.secret, ts, body),
        // The same request signed per Standard Webhooks (webhook-id = the batch id), so receivers can verify
        // it with an off-the-shelf library (protocol/src/standard-webhooks.ts).
        ...standardWebhookHeaders(backend.secret, batch.batchId, ts, body),
      },
    });
    const text = (await res.text()).slice(0, 200);
    o.latency.observe((clock.monotonic() - t0) / 1000);
    const kind = classifyWebhookStatus(res.status);
    if (kind === 'delivered') return { kind, status: res.status };
    const error = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
    // 401/403 refuse the gateway (secret, credentials), not an event: retry, never dead-letter all.
    if (res.status === 401 || res.status === 403) {
      o.logger.error({ status: res.status }, 'planning backend refused the gateway: check backend.secret');
      return { kind: 'retry', status: res.status, error, retryAfterMs: null };
    }
    if (kind === 'dead-letter') return { kind, status: res.status, error };
    return {
      kind,
      status: res.status,
      error,
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), clock.now()),
    };
  } catch (err) {
    const reason = ac.signal.aborted
      ? String((ac.signal.reason as Error | undefined)?.message ?? 'aborted')
      : errText(err);
    return { kind: 'retry', status: null, error: `network: ${reason}`.slice(0, 200), retryAfterMs: null };
  } finally {
    clock.clearTimeout(timer);
    o.stop.removeEventListener('abort', onStop);
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/** Retry-After: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}
