import { z } from 'zod';
import { SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { Transport } from '../broker/transport.js';
import type { ReaderLiveView } from '../ingest/reader-view.js';
import type { ReaderRegistry } from '../registry.js';
import type { IngestStore, ReaderRecord } from '../store/ingest-store.js';
import type { AdminRequest, AdminResponse, AdminRoute } from './types.js';

export interface ReaderRoutesDeps {
  store: IngestStore;
  registry: ReaderRegistry;
  live: ReaderLiveView;
  transport: () => Transport | null;
  /** Reader replacement links (gateway/src/fleet/replace.ts). */
  links?: (readerId: string) => { replacedBy: string | null; replaces: string | null };
}

const AddReaderBody = z
  .object({
    readerId: SafeId,
    password: z.string().min(20).max(256).optional(),
    clientRef: SafeId.nullable(),
    label: z.string().max(200).optional(),
  })
  .strict();
const MoveBody = z.object({ clientRef: SafeId.nullable() }).strict();

const bad = (detail: string): AdminResponse => ({ status: 400, body: { error: detail } });
const notFound: AdminResponse = { status: 404, body: { error: 'unknown reader' } };

/** The reader status view: registry row + durable sequence state + what this process saw live. */
/**
 * A technician maintains readers, not care: they see whether a reader is placed in a home, never whose home
 * (no client reference), so the reader pages cannot tell them who is visited.
 */
const withoutCare = (req: AdminRequest): boolean => req.principal?.role === 'technician';

export function readerView(d: ReaderRoutesDeps, r: ReaderRecord, detail: boolean, hideClient = false) {
  const seq = d.store.seqState(r.readerId);
  const live = d.live.get(r.readerId);
  const stored = live?.status ? undefined : d.store.lastStatus(r.readerId);
  const status = (live?.status ?? stored?.status ?? null) as { state?: string; [k: string]: unknown } | null;
  const online = status && status.state === 'online' ? status : null;
  const links = d.links?.(r.readerId);
  const base = {
    readerId: r.readerId,
    label: r.label,
    clientRef: hideClient ? null : r.clientRef,
    placed: r.clientRef !== null,
    revoked: r.revokedAt !== null,
    revokedAtMs: r.revokedAt,
    replacedBy: links?.replacedBy ?? null,
    replaces: links?.replaces ?? null,
    connected: d.transport()?.isOnline(r.readerId) ?? false,
    reportedState: status?.state ?? 'unknown',
    lastSeenMs: live?.lastSeenMs ?? stored?.receivedAtMs ?? null,
    firmware: online?.firmware ?? null,
    queueDepth: online?.queueDepth ?? null,
    clockOffsetMs: live?.clockOffsetMs ?? null,
    clockSynced: live?.clockSynced ?? null,
    contiguousUpto: seq.contiguousUpto,
    maxSeen: seq.maxSeen,
    hasGaps: seq.maxSeen > seq.contiguousUpto,
  };
  if (!detail) return base;
  return {
    ...base,
    gaps: d.store.gaps(r.readerId, 50),
    rejects: d.store.rejectSummary(r.readerId),
    rejectsThisRun: live?.rejects ?? {},
    lastReject: live?.lastReject ?? null,
    status,
    statusReceivedAtMs: live?.statusReceivedAtMs ?? stored?.receivedAtMs ?? null,
    lastBatchAtMs: live?.lastBatchAtMs ?? null,
    lastCommandResult: live?.lastCommandResult ?? null,
    events: d.store.countEvents(r.readerId),
  };
}

/** `GET /api/readers` paging and filters (all optional; none: the whole list). */
const ReaderListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  q: z.string().trim().min(1).max(100).optional(),
  state: z.enum(['online', 'offline', 'revoked']).optional(),
});

export function readerRoutes(d: ReaderRoutesDeps): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/readers',
      handler: (req) => {
        const q = ReaderListQuery.safeParse(Object.fromEntries(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        const hide = withoutCare(req);
        const all = d.registry.listReaders();
        // no paging asked for: every reader, as before (scripts and the CLI read the whole list)
        if (q.data.limit === undefined && q.data.q === undefined && q.data.state === undefined)
          return { status: 200, body: { readers: all.map((r) => readerView(d, r, false, hide)) } };
        // filters first on what is cheap (id, label, connection), then the view of one page only
        const needle = q.data.q?.toLowerCase();
        const online = (id: string) => d.transport()?.isOnline(id) ?? false;
        const hit = all.filter(
          (r) =>
            (needle === undefined ||
              r.readerId.toLowerCase().includes(needle) ||
              (r.label ?? '').toLowerCase().includes(needle) ||
              (!hide && (r.clientRef ?? '').toLowerCase().includes(needle))) &&
            (q.data.state === undefined ||
              (q.data.state === 'revoked'
                ? r.revokedAt !== null
                : r.revokedAt === null && online(r.readerId) === (q.data.state === 'online'))),
        );
        const limit = q.data.limit ?? 100;
        const page = hit.slice(q.data.offset, q.data.offset + limit);
        return {
          status: 200,
          body: {
            readers: page.map((r) => readerView(d, r, false, hide)),
            total: hit.length,
            offset: q.data.offset,
            limit,
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/readers/:readerId',
      handler: (req) => {
        const r = d.registry.getReader(req.params.readerId ?? '');
        return r ? { status: 200, body: readerView(d, r, true, withoutCare(req)) } : notFound;
      },
    },
    {
      method: 'POST',
      path: '/api/readers',
      handler: async (req) => {
        const p = AddReaderBody.safeParse(req.body);
        if (!p.success) return bad(summarizeIssues(p.error.issues));
        try {
          const out = await d.registry.addReader(p.data);
          return { status: 201, body: out };
        } catch (err) {
          return bad((err as Error).message);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/readers/:readerId/revoke',
      handler: async (req) => {
        const id = req.params.readerId ?? '';
        if (!d.registry.getReader(id)) return notFound;
        const wasConnected = d.transport()?.isOnline(id) ?? false;
        d.registry.revokeReader(id); // drops the live connection
        await d.registry.written(); // stored (on PostgreSQL: every instance's registry), or the error
        return { status: 200, body: { readerId: id, revoked: true, wasConnected } };
      },
    },
    {
      method: 'POST',
      path: '/api/readers/:readerId/move',
      handler: async (req) => {
        const id = req.params.readerId ?? '';
        if (!d.registry.getReader(id)) return notFound;
        const p = MoveBody.safeParse(req.body);
        if (!p.success) return bad(summarizeIssues(p.error.issues));
        d.registry.moveReader(id, p.data.clientRef);
        await d.registry.written();
        return { status: 200, body: { readerId: id, clientRef: p.data.clientRef } };
      },
    },
    {
      method: 'GET',
      path: '/api/gaps',
      handler: () => ({
        status: 200,
        body: {
          readers: d.store.readersWithGaps().map((g) => ({ ...g, gaps: d.store.gaps(g.readerId, 50) })),
        },
      }),
    },
  ];
}
