import { z } from 'zod';
import {
  DeviceConfig,
  FeedbackMode,
  LIMITS,
  SCHEMA_VERSION,
  summarizeIssues,
  type Clock,
} from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { CardStore, FleetStore } from '../store/ports.js';

const PushBody = z
  .object({
    visit: z
      .object({
        repeatWindowMs: z.number().int().min(0).max(600_000),
        maxOpenMs: z
          .number()
          .int()
          .min(60_000)
          .max(7 * 24 * 3_600_000),
      })
      .strict()
      .optional(),
    /** true: push the registry's active cards as the reader's allow-list; false/absent: accept every card. */
    useAllowList: z.boolean().optional(),
    feedbackMode: FeedbackMode.optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug']).optional(),
  })
  .strict();

export interface ConfigPushDeps {
  /** reader_config (store port; SQLite or PostgreSQL). */
  fleet: Pick<FleetStore, 'lastConfig' | 'saveConfig'>;
  /** The card registry (allow-list and revoked list). */
  cards: Pick<CardStore, 'refs'>;
  clock: Clock;
  readerExists: (readerId: string) => boolean;
  publish: (readerId: string, cfg: DeviceConfig) => Promise<void>;
  /** Whether the reader refuses UID-only cards (the secure-card policy of its client; absent: accept). */
  uidOnlyCards?: (readerId: string) => 'accept' | 'refuse';
  /**
   * The card lists in the reader's own form (sealed-v1 readers: their own references, cards/uid-vault.ts;
   * `missing`: cards left out for want of a known UID). Absent: the fleet pseudonyms as they are.
   */
  cardListsFor?: (readerId: string, cardRefs: readonly string[]) => { refs: string[]; missing: number };
}

/**
 * Versioned, retained config per reader: `POST /api/readers/:id/config` builds the next version (allow-list
 * and revoked list from the card registry), validates it with the protocol schema, records it and
 * publishes it retained; `GET /api/readers/:id/config` shows the last pushed one. The device reports the
 * version it applied (`status.configVersion`) or why it refused (`status.configError`).
 */
export function configRoutes(d: ConfigPushDeps): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/readers/:readerId/config',
      handler: async (req): Promise<AdminResponse> => {
        const row = await d.fleet.lastConfig(req.params.readerId ?? '');
        if (!row) return { status: 404, body: { error: 'no config pushed to this reader yet' } };
        return {
          status: 200,
          body: { pushedAtMs: row.pushedAtMs, config: JSON.parse(row.configJson) as unknown },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/readers/:readerId/config',
      handler: async (req): Promise<AdminResponse> => {
        const readerId = req.params.readerId ?? '';
        if (!d.readerExists(readerId)) return { status: 404, body: { error: 'unknown reader' } };
        const p = PushBody.safeParse(req.body ?? {});
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        const own = (refs: readonly string[]) =>
          d.cardListsFor?.(readerId, refs) ?? { refs: [...refs], missing: 0 };
        const allowOwn = p.data.useAllowList ? own(await d.cards.refs('active')) : null;
        const revokedOwn = own(await d.cards.refs('revoked'));
        const allow = allowOwn?.refs ?? null;
        const revoked = revokedOwn.refs;
        const withoutUid = (allowOwn?.missing ?? 0) + revokedOwn.missing;
        if ((allow?.length ?? 0) > LIMITS.maxAllowList || revoked.length > LIMITS.maxAllowList) {
          return {
            status: 400,
            body: { error: `more than ${LIMITS.maxAllowList} cards: the allow-list does not fit` },
          };
        }
        const candidate = DeviceConfig.safeParse({
          schemaVersion: SCHEMA_VERSION,
          readerId,
          version: ((await d.fleet.lastConfig(readerId))?.version ?? 0) + 1,
          visit: p.data.visit ?? { repeatWindowMs: 10_000, maxOpenMs: 12 * 3_600_000 },
          allowList: allow,
          revoked,
          ...(p.data.feedbackMode ? { feedbackMode: p.data.feedbackMode } : {}),
          ...(p.data.logLevel ? { logLevel: p.data.logLevel } : {}),
          // only when refusing: a reader older than the field keeps accepting its configs
          ...(d.uidOnlyCards?.(readerId) === 'refuse' ? { uidOnlyCards: 'refuse' as const } : {}),
        });
        if (!candidate.success)
          return { status: 400, body: { error: summarizeIssues(candidate.error.issues) } };
        const cfg = candidate.data;
        try {
          await d.publish(readerId, cfg);
        } catch (err) {
          return { status: 503, body: { error: `config not published: ${(err as Error).message}` } };
        }
        await d.fleet.saveConfig(readerId, {
          version: cfg.version,
          configJson: JSON.stringify(cfg),
          pushedAtMs: d.clock.now(),
        });
        return {
          status: 202,
          body: {
            readerId,
            version: cfg.version,
            allowListSize: allow?.length ?? null,
            // sealed-v1 reader: cards left out of its lists because the gateway has no UID for them yet
            ...(withoutUid ? { cardsWithoutUid: withoutUid } : {}),
          },
        };
      },
    },
  ];
}
