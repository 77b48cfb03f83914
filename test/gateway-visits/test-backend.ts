/** A small planning-backend stand-in for forwarder tests: real node:http on 127.0.0.1, port 0, scripted faults. */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WEBHOOK_HEADERS, WebhookBatch, verifyWebhook } from '../../protocol/index.js';
import type { VisitEvent } from '../../protocol/index.js';

export type Fault =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'hang' }
  | { kind: 'slow'; ms: number }
  | { kind: 'reset' }
  | { kind: 'accept-then-reset' };

export interface TestBackend {
  url: string;
  /** Requests seen (any outcome). */
  requests: number;
  /** First delivery of each key, in arrival order. */
  received: VisitEvent[];
  duplicates: number;
  badRequests: number;
  /** Batches that contain one of these keys are refused with 422. */
  rejectKeys: Set<string>;
  decide: (n: number, batch: WebhookBatch) => Fault;
  close(): Promise<void>;
}

export async function startTestBackend(opts: {
  secret: string;
  now: () => number;
  decide?: (n: number, batch: WebhookBatch) => Fault;
}): Promise<TestBackend> {
  const sockets = new Set<Socket>();
  const seen = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  const b: TestBackend = {
    url: '',
    requests: 0,
    received: [],
    duplicates: 0,
    badRequests: 0,
    rejectKeys: new Set(),
    decide: opts.decide ?? (() => ({ kind: 'ok' })),
    close: async () => {
      timers.forEach((t) => clearTimeout(t));
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const record = (batch: WebhookBatch): void => {
    for (const e of batch.events) {
      if (seen.has(e.idempotencyKey)) b.duplicates++;
      else {
        seen.add(e.idempotencyKey);
        b.received.push(e);
      }
    }
  };
  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const n = b.requests++;
    const sig = verifyWebhook({
      secret: opts.secret,
      signature: req.headers[WEBHOOK_HEADERS.signature] as string | undefined,
      timestamp: req.headers[WEBHOOK_HEADERS.timestamp] as string | undefined,
      rawBody: raw,
      nowMs: opts.now(),
    });
    let json: unknown = null;
    try {
      json = JSON.parse(raw);
    } catch {
      /* counted below */
    }
    const parsed = WebhookBatch.safeParse(json);
    if (!sig.ok || !parsed.success || req.headers[WEBHOOK_HEADERS.idempotencyKey] !== parsed.data.batchId) {
      b.badRequests++;
      res.writeHead(400).end('bad request');
      return;
    }
    const batch = parsed.data;
    if (batch.events.some((e) => b.rejectKeys.has(e.idempotencyKey))) {
      res.writeHead(422).end('unprocessable event');
      return;
    }
    const f = b.decide(n, batch);
    switch (f.kind) {
      case 'ok':
        record(batch);
        res.writeHead(200).end('{}');
        return;
      case 'status':
        res.writeHead(f.status, f.retryAfter ? { 'retry-after': f.retryAfter } : {}).end('fault');
        return;
      case 'hang':
        return; // never answered: the client must time out
      case 'slow': {
        const t = setTimeout(() => {
          timers.delete(t);
          record(batch);
          res.writeHead(200).end('{}');
        }, f.ms);
        timers.add(t);
        return;
      }
      case 'reset':
        req.socket.destroy();
        return;
      case 'accept-then-reset':
        record(batch);
        req.socket.destroy();
        return;
    }
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  b.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
  return b;
}

/** Deterministic PRNG (mulberry32) for fault scripts. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
