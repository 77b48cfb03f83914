import type pino from 'pino';
import { z } from 'zod';
import { summarizeIssues, type Clock } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { Enrollment, IssuedCode } from '../enrollment/index.js';
import type { ReaderRegistry } from '../registry.js';
import type { Awaitable, FleetStore, ReplacementLinks } from '../store/ports.js';

/** Who replaced whom (shown by GET /api/readers as replacedBy / replaces). */
export type { ReplacementLinks } from '../store/ports.js';

export interface ReplacementDeps {
  /** reader_replacements (store port; SQLite or PostgreSQL). */
  fleet: Pick<FleetStore, 'links' | 'recordReplacement'>;
  clock: Clock;
  logger: pino.Logger;
  registry: Pick<ReaderRegistry, 'getReader' | 'revokeReader'>;
  enrollment: Pick<Enrollment, 'issue'>;
  /**
   * The visits pipeline: catch up on what the old reader delivered, then close what stays open (the SQLite
   * engine answers at once; on PostgreSQL a turn under the reader's lock).
   */
  visits: {
    processNow(readerIds?: string[]): Awaitable<unknown>;
    /** The visits held open at a reader, oldest first. */
    openVisitIds(readerId: string): Awaitable<string[]>;
    closeVisit(req: {
      visitId: string;
      actor: string;
      reason: string;
    }): Awaitable<{ ok: true } | { ok: false; status: number; error: string }>;
  };
}

export const REPLACE_ACTOR = 'reader-replace';

/**
 * Replacing a reader (a technician swaps a broken Pi): `issue` gives an enrollment code for a NEW reader
 * id at the old reader's client; when that code is exchanged (`retire`, called by the enrollment), the
 * old reader is revoked (credentials refused, live connection dropped), the visits still open at it are
 * closed with the anomaly `manual-close` (actor `reader-replace`: no stop can come from a retired
 * reader), and the link is recorded. The old device's unsent taps stay on it, undecided (docs/fleet.md).
 */
export class ReaderReplacements {
  private readonly log: pino.Logger;

  constructor(private readonly d: ReplacementDeps) {
    this.log = d.logger.child({ module: 'replace' });
  }

  async issue(
    oldReaderId: string,
    opts: { label?: string; ttlMs?: number } = {},
  ): Promise<IssuedCode & { openVisits: number }> {
    const old = this.d.registry.getReader(oldReaderId);
    if (!old) throw new Error(`unknown reader ${oldReaderId}`);
    const done = (await this.links(oldReaderId)).replacedBy;
    if (done) {
      throw new Error(
        `reader ${oldReaderId} was already replaced by ${done} (to provision ${done} again: ` +
          `visittag-gateway readers enroll --client ${old.clientRef ?? 'CLIENT_REF'} --reader ${done})`,
      );
    }
    const label = opts.label ?? old.label ?? undefined;
    const issued = await this.d.enrollment.issue({
      clientRef: old.clientRef,
      replaces: oldReaderId,
      ...(label !== undefined ? { label } : {}),
      ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}),
    });
    return { ...issued, openVisits: (await this.d.visits.openVisitIds(oldReaderId)).length };
  }

  /** Retires `oldReaderId` now that `newReaderId` holds credentials. Idempotent per pair. */
  async retire(oldReaderId: string, newReaderId: string): Promise<{ closedVisits: string[] }> {
    const existing = await this.links(oldReaderId);
    if (existing.replacedBy === newReaderId) return { closedVisits: [] };
    if (existing.replacedBy)
      throw new Error(`reader ${oldReaderId} was already replaced by ${existing.replacedBy}`);
    const old = this.d.registry.getReader(oldReaderId);
    if (!old) throw new Error(`unknown reader ${oldReaderId}`);
    if (old.revokedAt === null) this.d.registry.revokeReader(oldReaderId); // drops the live connection
    const closed = await this.closeOpen(oldReaderId, newReaderId);
    await this.d.fleet.recordReplacement({
      oldReaderId,
      newReaderId,
      clientRef: old.clientRef,
      replacedAtMs: this.d.clock.now(),
      closedVisits: closed.length,
    });
    this.log.info(
      { readerId: oldReaderId, replacedBy: newReaderId, closedVisits: closed.length },
      'reader replaced: old one revoked',
    );
    return { closedVisits: closed };
  }

  /**
   * A retired reader revoked again (after it was re-enrolled to deliver what its Pi still held): the
   * visits those late taps opened can never get a stop from it either, so they are closed like at the
   * retirement. No-op for a reader that was never replaced.
   */
  async closeRetired(readerId: string): Promise<{ closedVisits: string[] }> {
    const { replacedBy } = await this.links(readerId);
    if (replacedBy === null) return { closedVisits: [] };
    const closed = await this.closeOpen(readerId, replacedBy);
    if (closed.length > 0)
      this.log.info({ readerId, replacedBy, closedVisits: closed.length }, 'retired reader revoked again');
    return { closedVisits: closed };
  }

  /** Applies what the old reader delivered (a stop, say), then closes what is still open at it. */
  private async closeOpen(oldReaderId: string, newReaderId: string): Promise<string[]> {
    await this.d.visits.processNow([oldReaderId]);
    const closed: string[] = [];
    for (const visitId of await this.d.visits.openVisitIds(oldReaderId)) {
      const r = await this.d.visits.closeVisit({
        visitId,
        actor: REPLACE_ACTOR,
        reason: `reader ${oldReaderId} replaced by ${newReaderId}; no stop tap reached the gateway`,
      });
      if (r.ok) closed.push(visitId);
      else this.log.warn({ readerId: oldReaderId, visitId, error: r.error }, 'open visit not closed');
    }
    return closed;
  }

  async links(readerId: string): Promise<ReplacementLinks> {
    return this.d.fleet.links(readerId);
  }
}

const ReplaceBody = z
  .object({
    label: z.string().max(200).optional(),
    ttlMinutes: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 60)
      .optional(),
  })
  .strict();

/** `POST /api/readers/:readerId/replace` `{ label?, ttlMinutes? }` → 201 the enrollment code for the new reader. */
export function replaceRoutes(r: ReaderReplacements): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/readers/:readerId/replace',
      handler: async (req): Promise<AdminResponse> => {
        const p = ReplaceBody.safeParse(req.body ?? {});
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        const id = req.params.readerId ?? '';
        try {
          const issued = await r.issue(id, {
            ...(p.data.label !== undefined ? { label: p.data.label } : {}),
            ...(p.data.ttlMinutes !== undefined ? { ttlMs: p.data.ttlMinutes * 60_000 } : {}),
          });
          return { status: 201, body: issued };
        } catch (err) {
          const msg = (err as Error).message;
          return { status: msg.startsWith('unknown reader') ? 404 : 409, body: { error: msg } };
        }
      },
    },
  ];
}
