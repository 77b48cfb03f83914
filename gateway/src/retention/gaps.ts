import type pino from 'pino';
import { z } from 'zod';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { AdminRoute } from '../admin/types.js';
import type { MetricsRegistry } from '../metrics.js';
import type { IngestLog, SeqRange } from '../store/ingest-store.js';
import { settle } from '../store/awaitable.js';

/**
 * Gap timeout and accept (issue 16). The visits engine pairs each reader's contiguous prefix, so a seq that
 * never arrives stalls that reader. A gap whose lower end has been missing for `timeoutMs` is declared lost
 * (held as rejected seqs through the ingest's group commit, so pairing continues), counted in
 * `visittag_seq_gap_lost_total{cause}` and written to the audit log; an operator can accept a gap at once
 * (POST /api/readers/:readerId/gaps/accept, audited with the actor). Tombstones sent by the device itself
 * (protocol "Journal epochs and tombstones") need neither.
 */
export interface GapWatchOptions {
  store: Pick<IngestLog, 'readersWithGaps' | 'gaps'>;
  ingest: { declareLost(readerId: string, ranges: readonly SeqRange[], detail: string): void };
  clock: Clock;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  /** 0: never declared lost by time (only by an operator). */
  timeoutMs: number;
  audit: (e: {
    actor: string;
    action: string;
    target: string;
    after: unknown;
    reason: string | null;
  }) => unknown;
  /** How often gaps are looked at (default 60 s). */
  checkEveryMs?: number;
}

export class GapWatch {
  /** `${reader}\n${from}` → when the gap starting there was first seen (in memory: a restart waits anew). */
  private readonly since = new Map<string, number>();
  private timer: TimerHandle | null = null;
  private running = false;
  private readonly lost;
  private readonly log: pino.Logger;
  constructor(private readonly o: GapWatchOptions) {
    this.log = o.logger.child({ module: 'gap-watch' });
    this.lost = o.metrics.counter(
      'visittag_seq_gap_lost_total',
      'Sequence numbers declared lost (gap timeout or an operator accept), by cause.',
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      void Promise.resolve(this.check())
        .catch((err: unknown) => this.log.error({ err }, 'gap check failed'))
        .finally(() => this.schedule());
    }, this.o.checkEveryMs ?? 60_000);
  }

  /** One look at every reader with a gap: starts the timer of new gaps, declares the timed-out ones lost. */
  check(): void | Promise<void> {
    const now = this.o.clock.now();
    return settle(this.o.store.readersWithGaps(), async (readers) => {
      const seen = new Set<string>();
      for (const r of readers) {
        const first = (await this.o.store.gaps(r.readerId, 1))[0];
        if (!first) continue;
        const key = `${r.readerId}\n${first.from}`;
        seen.add(key);
        const t = this.since.get(key);
        if (t === undefined) this.since.set(key, now);
        else if (this.o.timeoutMs > 0 && now - t >= this.o.timeoutMs) {
          this.declare(
            r.readerId,
            first,
            'timeout',
            'system:gap-timeout',
            `missing for ${Math.round((now - t) / 60_000)} min`,
          );
          this.since.delete(key);
        }
      }
      for (const k of this.since.keys()) if (!seen.has(k)) this.since.delete(k);
    });
  }

  private declare(
    readerId: string,
    g: SeqRange,
    cause: 'timeout' | 'accepted',
    actor: string,
    reason: string,
  ): void {
    const n = g.to - g.from + 1;
    this.o.ingest.declareLost(readerId, [g], `lost: gap ${cause} (${reason})`);
    this.lost.inc({ cause }, n);
    this.log.warn(
      { readerId, from: g.from, to: g.to, cause },
      'sequence gap declared lost; pairing continues',
    );
    this.o.audit({
      actor,
      action: `gap.${cause}`,
      target: `reader:${readerId}`,
      after: { from: g.from, to: g.to, seqs: n },
      reason,
    });
  }

  /** An operator's accept of the reader's first gap (or of `range` inside a gap). */
  async accept(
    readerId: string,
    actor: string,
    reason: string,
    range?: SeqRange,
  ): Promise<{ ok: true; range: SeqRange } | { ok: false; error: string }> {
    const gaps = await this.o.store.gaps(readerId, 50);
    const g = range ? gaps.find((x) => x.from <= range.from && range.to <= x.to) && range : gaps[0];
    if (!g) {
      return {
        ok: false,
        error: range
          ? `seqs ${range.from}-${range.to} are not missing at ${readerId} (gaps: ${gaps.map((x) => `${x.from}-${x.to}`).join(', ') || 'none'})`
          : `${readerId} has no sequence gap`,
      };
    }
    this.declare(readerId, g, 'accepted', actor, reason);
    return { ok: true, range: g };
  }

  routes(): AdminRoute[] {
    const Body = z
      .object({
        reason: z.string().min(1).max(500),
        from: z.number().int().min(1).optional(),
        to: z.number().int().min(1).optional(),
      })
      .strict()
      .refine((b) => (b.from === undefined) === (b.to === undefined) && (b.from ?? 0) <= (b.to ?? 0), {
        message: 'give both from and to (from <= to), or neither for the first gap',
      });
    return [
      {
        method: 'GET',
        path: '/api/readers/:readerId/gaps',
        handler: async (req) => ({
          status: 200,
          body: { gaps: await this.o.store.gaps(req.params.readerId ?? '', 50) },
        }),
      },
      {
        method: 'POST',
        path: '/api/readers/:readerId/gaps/accept',
        schema: {
          summary: "Accept a reader's sequence gap as lost (audited); pairing continues",
          tags: ['readers'],
        },
        handler: async (req) => {
          const p = Body.safeParse(req.body);
          if (!p.success)
            return { status: 400, body: { error: p.error.issues.map((i) => i.message).join('; ') } };
          const { reason, from, to } = p.data;
          const r = await this.accept(
            req.params.readerId ?? '',
            req.actor,
            reason,
            from !== undefined && to !== undefined ? { from, to } : undefined,
          );
          return r.ok
            ? { status: 200, body: { accepted: r.range } }
            : { status: 409, body: { error: r.error } };
        },
      },
    ];
  }
}
