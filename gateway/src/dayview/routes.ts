import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { AdminRequest, AdminResponse, AdminRoute } from '../admin/types.js';
import { scopeOf } from '../auth/scope.js';
import { buildDayView, type DayViewDeps } from './service.js';

export interface DayRouteDeps extends DayViewDeps {
  clock: Clock;
  /** How often a stream re-reads the day (default 2000 ms); an event goes out only when it changed. */
  pollMs?: number;
  /** A comment line after this long without an event, so proxies keep the connection (default 15 s). */
  heartbeatMs?: number;
  /**
   * A stream ends after this long (default 5 min); the browser's EventSource reconnects by itself, and the
   * new request is authenticated again, so a logout or a changed role takes effect within this time.
   */
  maxStreamMs?: number;
  /** Streams open at once; more answer 503 (default 200). */
  maxStreams?: number;
}

const Query = z
  .object({
    date: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'date: YYYY-MM-DD')
      .optional(),
    area: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'area: an area id')
      .optional(),
  })
  .strict();

const queryOf = (req: AdminRequest) => {
  const q = Query.safeParse(Object.fromEntries(req.query.entries()));
  return q.success ? q.data : q.error.issues.map((i) => i.message).join('; ');
};

/**
 * `GET /api/day` (JSON) and `GET /api/day/stream` (Server-Sent Events: `event: day` with the same JSON,
 * at once and on every change) for the live day view. Scoped: a coordinator or unit manager sees only
 * their areas (and provider); an area of someone else answers 404.
 */
export function dayRoutes(d: DayRouteDeps): AdminRoute[] {
  const pollMs = d.pollMs ?? 2000;
  const heartbeatMs = d.heartbeatMs ?? 15_000;
  const maxStreamMs = d.maxStreamMs ?? 5 * 60_000;
  const maxStreams = d.maxStreams ?? 200;
  let open = 0;

  const once = async (req: AdminRequest): Promise<AdminResponse> => {
    const q = queryOf(req);
    if (typeof q === 'string') return { status: 400, body: { error: 'bad-request', detail: q } };
    const r = await buildDayView(d, scopeOf(req.principal), q);
    return r.ok ? { status: 200, body: r.view } : { status: r.status, body: { error: r.error } };
  };

  return [
    {
      method: 'GET',
      path: '/api/day',
      scoped: true,
      schema: {
        summary: "Today's (or a date's) planned visits with live status, visits and open alerts",
        tags: ['day'],
      },
      handler: once,
    },
    {
      method: 'GET',
      path: '/api/day/stream',
      scoped: true,
      schema: {
        summary: 'The day view as Server-Sent Events (event "day"), sent again on every change',
        tags: ['day'],
      },
      handler: async (req) => {
        const first = await once(req);
        if (first.status !== 200) return first;
        if (open >= maxStreams) {
          return {
            status: 503,
            body: { error: `too many day-view streams (${maxStreams}); poll GET /api/day instead` },
          };
        }
        open++;
        let closed = false;
        let timer: TimerHandle | null = null;
        let last = '';
        let quietMs = 0;
        const startedMs = d.clock.now();
        const frame = (body: unknown): string | null => {
          const { generatedAt: _g, ...rest } = body as { generatedAt?: string };
          const key = JSON.stringify(rest);
          if (key === last) return null;
          last = key;
          return `event: day\ndata: ${JSON.stringify(body)}\n\n`;
        };
        const stream = new Readable({
          read() {},
          destroy(err, cb) {
            if (!closed) {
              closed = true;
              open--;
              if (timer !== null) d.clock.clearTimeout(timer);
            }
            cb(err);
          },
        });
        const tick = async (): Promise<void> => {
          timer = null;
          if (closed) return;
          if (d.clock.now() - startedMs >= maxStreamMs) {
            stream.push(null);
            return;
          }
          try {
            const r = await once(req);
            const f = r.status === 200 ? frame(r.body) : null;
            if (f !== null) {
              quietMs = 0;
              stream.push(f);
            } else if ((quietMs += pollMs) >= heartbeatMs) {
              quietMs = 0;
              stream.push(': ping\n\n');
            }
          } catch {
            stream.push('event: error\ndata: {"error":"the day view could not be read; retrying"}\n\n');
          }
          if (!closed) timer = d.clock.setTimeout(() => void tick(), pollMs);
        };
        stream.push(`retry: 5000\n\n${frame(first.body) ?? ''}`);
        timer = d.clock.setTimeout(() => void tick(), pollMs);
        return {
          status: 200,
          contentType: 'text/event-stream; charset=utf-8',
          headers: { 'x-accel-buffering': 'no' },
          body: stream,
        };
      },
    },
  ];
}
