/**
 * A fake planning backend (the webhook receiver the gateway forwards visits to). It implements the
 * contract of protocol/src/webhook.ts: verifies `X-Visittag-Signature`, validates the `WebhookBatch`,
 * dedupes by event idempotency key and answers 2xx for duplicates. Faults (5xx, latency, hung
 * requests, 4xx, connection resets, "accepted but the answer was lost") are seeded, so a run replays.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  WEBHOOK_HEADERS,
  WebhookBatch,
  summarizeIssues,
  systemClock,
  verifyWebhook,
} from '../protocol/index.js';
import type { Clock, VisitEvent } from '../protocol/index.js';
import { createRng } from './prng.js';

export interface BackendFaults {
  /** Every request gets 503 (an outage). */
  down?: boolean;
  /** Probability a request gets a 5xx (500/502/503 in turn). */
  errorRate?: number;
  /** Added latency per request (real milliseconds): a fixed value or a uniform range. */
  latencyMs?: number | { min: number; max: number };
  /** Probability a request is never answered (the client must time out). */
  timeoutRate?: number;
  /** Probability the connection is reset before any answer. */
  resetRate?: number;
  /** Probability a batch is refused with 422 (the gateway dead-letters it). */
  rejectRate?: number;
  /** Batches containing one of these idempotency keys are refused with 422. */
  rejectKeys?: readonly string[];
  /** Probability the batch is recorded but the connection is reset instead of answering (answer lost). */
  acceptThenResetRate?: number;
}

export type BackendFaultKind = 'down' | 'error' | 'timeout' | 'reset' | 'reject' | 'accept-then-reset';

export interface FakeBackendOptions {
  /** Shared webhook secret (HMAC key). */
  secret: string;
  faults?: BackendFaults;
  /** Clock for the signature replay window; pass the simulation's clock when the gateway uses one. */
  clock?: Clock;
  /** Seed of the fault dice. */
  seed?: number;
  /** Largest accepted body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /** Signature timestamp tolerance (default 300 000 ms, the protocol default). */
  toleranceMs?: number;
  /**
   * For a virtual `clock` that runs ahead of real I/O: a request also passes the replay window when
   * its timestamp is within tolerance of what the clock read up to this many *real* ms before the
   * request arrived. The simulator steps minutes of virtual time while one HTTP round trip is on the
   * wire; without this, a loaded machine turns fresh signatures into "replays". Default 0 (off).
   */
  transitGraceRealMs?: number;
}

export interface FakeBackend {
  url: string;
  port: number;
  /** First delivery of every idempotency key, in arrival order. */
  received(): VisitEvent[];
  /** Deliveries of a key already received (each counts once). */
  readonly duplicates: number;
  /** Duplicates whose content differed from the first delivery (an idempotency bug). */
  readonly conflicts: number;
  readonly rejectedSignatures: number;
  /** Requests whose body was not a valid WebhookBatch. */
  readonly invalidBatches: number;
  /** All HTTP requests seen. */
  readonly requests: number;
  /** Why the last (≤ 20) signature checks failed. */
  rejectionReasons(): string[];
  /** Keys refused with 4xx (by a fault), each once. */
  rejectedKeys(): string[];
  /** How many times each fault fired. */
  faultCounts(): Record<BackendFaultKind, number>;
  setFaults(f: BackendFaults): void;
  close(): Promise<void>;
}

const MAX_BODY_DEFAULT = 8 * 1024 * 1024;

export async function startFakeBackend(opts: FakeBackendOptions): Promise<FakeBackend> {
  const clock = opts.clock ?? systemClock;
  const rng = createRng(opts.seed ?? 1);
  const maxBody = opts.maxBodyBytes ?? MAX_BODY_DEFAULT;
  let faults: BackendFaults = { ...(opts.faults ?? {}) };
  const firstByKey = new Map<string, { event: VisitEvent; json: string }>();
  const order: VisitEvent[] = [];
  const rejected = new Set<string>();
  const counts: Record<BackendFaultKind, number> = {
    down: 0,
    error: 0,
    timeout: 0,
    reset: 0,
    reject: 0,
    'accept-then-reset': 0,
  };
  const stats = { duplicates: 0, conflicts: 0, rejectedSignatures: 0, invalidBatches: 0, requests: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let errorTurn = 0;
  const lastRejections: string[] = [];
  const history = clockHistory(clock, opts.transitGraceRealMs ?? 0);

  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const reset = (req: IncomingMessage): void => {
    req.socket.destroy();
  };

  const record = (batch: WebhookBatch): { accepted: number; duplicates: number } => {
    let accepted = 0;
    let dups = 0;
    for (const e of batch.events) {
      const json = JSON.stringify(e);
      const prior = firstByKey.get(e.idempotencyKey);
      if (prior) {
        dups++;
        stats.duplicates++;
        if (prior.json !== json) stats.conflicts++;
        continue;
      }
      firstByKey.set(e.idempotencyKey, { event: e, json });
      order.push(e);
      accepted++;
    }
    return { accepted, duplicates: dups };
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string, arrivedMs: number): void => {
    const f = faults;
    if (f.down) {
      counts.down++;
      return reply(res, 503, { error: 'backend is down (simulated outage)' });
    }
    if (f.resetRate && rng.chance(f.resetRate)) {
      counts.reset++;
      return reset(req);
    }
    if (f.timeoutRate && rng.chance(f.timeoutRate)) {
      counts.timeout++;
      return; // never answered; the socket stays open until the client gives up or close()
    }
    if (f.errorRate && rng.chance(f.errorRate)) {
      counts.error++;
      const status = [500, 502, 503][errorTurn++ % 3] ?? 503;
      return reply(res, status, { error: 'simulated server error' });
    }
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const verify = (nowMs: number) =>
      verifyWebhook({
        secret: opts.secret,
        signature: header(WEBHOOK_HEADERS.signature),
        timestamp: header(WEBHOOK_HEADERS.timestamp),
        rawBody: raw,
        nowMs,
        ...(opts.toleranceMs !== undefined ? { toleranceMs: opts.toleranceMs } : {}),
      });
    let verified = verify(arrivedMs);
    const earliest = history.earliest();
    if (!verified.ok && earliest !== null && earliest < arrivedMs) {
      const again = verify(earliest);
      if (again.ok) verified = again;
    }
    if (!verified.ok) {
      stats.rejectedSignatures++;
      lastRejections.push(verified.reason);
      if (lastRejections.length > 20) lastRejections.shift();
      return reply(res, 401, { error: verified.reason });
    }
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      stats.invalidBatches++;
      return reply(res, 400, { error: 'body is not JSON' });
    }
    const parsed = WebhookBatch.safeParse(json);
    if (!parsed.success) {
      stats.invalidBatches++;
      return reply(res, 400, { error: summarizeIssues(parsed.error.issues) });
    }
    const batch = parsed.data;
    const keys = batch.events.map((e) => e.idempotencyKey);
    const refusedKey = f.rejectKeys?.find((k) => keys.includes(k));
    if (refusedKey !== undefined || (f.rejectRate && rng.chance(f.rejectRate))) {
      counts.reject++;
      for (const k of keys) if (!firstByKey.has(k)) rejected.add(k);
      return reply(res, 422, { error: 'simulated refusal of the batch' });
    }
    const result = record(batch);
    if (f.acceptThenResetRate && rng.chance(f.acceptThenResetRate)) {
      counts['accept-then-reset']++;
      return reset(req);
    }
    reply(res, 200, { batchId: batch.batchId, ...result });
  };

  const server = createServer((req, res) => {
    const arrivedMs = clock.now();
    stats.requests++;
    if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.byteLength;
      if (size > maxBody) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (tooBig) return reply(res, 413, { error: `body larger than ${maxBody} bytes` });
      const raw = Buffer.concat(chunks).toString('utf8');
      const lat = faults.latencyMs;
      const delay = lat === undefined ? 0 : typeof lat === 'number' ? lat : rng.int(lat.min, lat.max);
      if (delay <= 0) return handle(req, res, raw, arrivedMs);
      const t = setTimeout(() => {
        timers.delete(t);
        handle(req, res, raw, arrivedMs);
      }, delay);
      timers.add(t);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/webhook`,
    port,
    received: () => [...order],
    get duplicates() {
      return stats.duplicates;
    },
    get conflicts() {
      return stats.conflicts;
    },
    get rejectedSignatures() {
      return stats.rejectedSignatures;
    },
    get invalidBatches() {
      return stats.invalidBatches;
    },
    get requests() {
      return stats.requests;
    },
    rejectionReasons: () => [...lastRejections],
    rejectedKeys: () => [...rejected].filter((k) => !firstByKey.has(k)),
    faultCounts: () => ({ ...counts }),
    setFaults: (f) => {
      faults = { ...f };
    },
    close: async () => {
      history.stop();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Samples `clock` every 25 real ms and answers the earliest reading taken within the last
 * `graceRealMs` real ms (null when off or not sampled yet). Bounded: at most graceRealMs / 25 samples.
 */
function clockHistory(clock: Clock, graceRealMs: number): { earliest(): number | null; stop(): void } {
  if (graceRealMs <= 0) return { earliest: () => null, stop: () => undefined };
  const everyMs = 25;
  const samples: { realMs: number; clockMs: number }[] = [];
  const sample = (): void => {
    const realMs = performance.now();
    samples.push({ realMs, clockMs: clock.now() });
    while (samples.length > 0 && (samples[0] as { realMs: number }).realMs < realMs - graceRealMs) {
      samples.shift();
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    earliest: () => samples[0]?.clockMs ?? null,
    stop: () => clearInterval(timer),
  };
}
