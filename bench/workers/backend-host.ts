/**
 * Hosts the simulator's fake planning backend (simulator/fake-backend.ts) behind a thin timestamping
 * proxy, in its own process. The proxy records, per idempotency key, when the backend first answered
 * 2xx for it (the moment the visit event is "at the planning backend"), with sub-ms wall time.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serve } from '../lib/serve.js';
import { wallNow } from '../lib/stats.js';

interface FakeBackendLike {
  url: string;
  received(): { idempotencyKey: string }[];
  readonly duplicates: number;
  readonly conflicts: number;
  readonly rejectedSignatures: number;
  close(): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '../..');
const ENTRY = join(ROOT, 'simulator/fake-backend.ts');

let backend: FakeBackendLike | null = null;
let proxy: Server | null = null;
const arrivals = new Map<string, number>();
const HOP = new Set(['host', 'content-length', 'connection', 'keep-alive', 'transfer-encoding']);

serve({
  async start(args: { secret: string }) {
    if (!existsSync(ENTRY)) throw new Error('component missing: simulator/fake-backend.ts');
    const mod = (await import(pathToFileURL(ENTRY).href)) as {
      startFakeBackend(o: { secret: string }): Promise<FakeBackendLike>;
    };
    const b = await mod.startFakeBackend({ secret: args.secret });
    backend = b;
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', () => undefined);
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) {
          if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
        }
        fetch(new URL(req.url ?? '/', b.url).href, { method: req.method ?? 'POST', headers, body })
          .then(async (r) => {
            const text = await r.text();
            if (r.status >= 200 && r.status < 300) {
              const at = wallNow();
              try {
                const parsed = JSON.parse(body.toString('utf8')) as {
                  events?: { idempotencyKey?: string }[];
                };
                for (const e of parsed.events ?? []) {
                  if (e.idempotencyKey && !arrivals.has(e.idempotencyKey)) arrivals.set(e.idempotencyKey, at);
                }
              } catch {
                /* not JSON: the backend said 2xx anyway */
              }
            }
            res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
            res.end(text);
          })
          .catch(() => {
            res.writeHead(502);
            res.end();
          });
      });
    });
    await new Promise<void>((r) => proxy?.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as AddressInfo).port;
    return { url: `http://127.0.0.1:${port}${new URL(b.url).pathname}` };
  },

  /** Arrival times (wall ms) of every key seen so far, and the backend's own counters. */
  arrivals() {
    return {
      arrivals: [...arrivals],
      received: backend?.received().length ?? 0,
      duplicates: backend?.duplicates ?? 0,
      conflicts: backend?.conflicts ?? 0,
      rejectedSignatures: backend?.rejectedSignatures ?? 0,
    };
  },

  /** Visit start/end keys seen (one per tap; anomaly keys are not taps). */
  count() {
    let keys = 0;
    for (const k of arrivals.keys()) if (k.endsWith(':started') || k.endsWith(':ended')) keys++;
    return { keys };
  },

  async stop() {
    await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
    await backend?.close();
    return true;
  },
});
