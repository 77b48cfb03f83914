import type { Logger } from 'pino';
import type { DeviceConfig } from '../../../protocol/index.js';

/** What one re-push did. */
export interface PushSummary {
  /** Readers given a new config version. */
  pushed: string[];
  /** Readers whose push failed (with why); their retained config is pushed again on the next change or tick. */
  failed: { readerId: string; error: string }[];
}

/** The options of a config push (the body of `POST /api/readers/:id/config`). */
export interface PushInput {
  visit?: DeviceConfig['visit'];
  useAllowList?: boolean;
  feedbackMode?: DeviceConfig['feedbackMode'];
  logLevel?: DeviceConfig['logLevel'];
}

export interface CardListPusherDeps {
  /** The active (not revoked) readers. */
  readers: () => string[];
  /** The reader's last pushed config, or null when none was ever pushed. */
  lastConfig: (readerId: string) => Promise<DeviceConfig | null>;
  /** Builds, publishes (retained) and records the reader's next config version. */
  push: (readerId: string, input: PushInput) => Promise<{ status: number; body: unknown }>;
  /** The card lists a config would carry now (valid / known but not valid); PostgreSQL answers later. */
  lists: () => { valid: string[]; invalid: string[] } | Promise<{ valid: string[]; invalid: string[] }>;
  /** The lists in the reader's own form (sealed-v1 readers; cards/uid-vault.ts), as the config route builds them. */
  cardListsFor?: (readerId: string, cardRefs: readonly string[]) => { refs: string[] };
  logger: Logger;
}

const same = (a: readonly string[] | null, b: readonly string[] | null): boolean =>
  a === null || b === null ? a === b : a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Pushes the card lists to readers: at once after a lifecycle change (`pushAll`), and on a timer
 * (`tick`) for the lists that change by themselves when a validity date passes. A reader keeps the
 * options of its last pushed config (visit windows, allow-list or not, feedback, log level); a reader
 * never given a config gets the protocol defaults with the revoked list (it accepts every other card).
 */
export class CardListPusher {
  constructor(private readonly d: CardListPusherDeps) {}

  /** Re-pushes every active reader whose lists differ from now's (all of them when `force`). */
  async pushAll(force = true): Promise<PushSummary> {
    const lists = await this.d.lists();
    const summary: PushSummary = { pushed: [], failed: [] };
    for (const readerId of this.d.readers()) {
      const last = await this.d.lastConfig(readerId);
      const input: PushInput = last
        ? {
            visit: last.visit,
            useAllowList: last.allowList !== null,
            feedbackMode: last.feedbackMode,
            logLevel: last.logLevel,
          }
        : { useAllowList: false };
      if (!force) {
        const own = (refs: string[]) => this.d.cardListsFor?.(readerId, refs).refs ?? refs;
        const wantAllow = input.useAllowList ? own(lists.valid) : null;
        const lastRevoked = last?.revoked ?? [];
        if (same(last?.allowList ?? null, wantAllow) && same(lastRevoked, own(lists.invalid))) continue;
      }
      if (!last && lists.invalid.length === 0) continue; // nothing to tell a reader that accepts every card
      try {
        const r = await this.d.push(readerId, input);
        if (r.status >= 300) {
          const error = (r.body as { error?: string } | null)?.error ?? `status ${r.status}`;
          summary.failed.push({ readerId, error });
        } else summary.pushed.push(readerId);
      } catch (e) {
        summary.failed.push({ readerId, error: (e as Error).message });
      }
    }
    if (summary.failed.length) {
      this.d.logger.warn(
        { failed: summary.failed.length, pushed: summary.pushed.length, first: summary.failed[0] },
        'card lists not pushed to every reader; retried on the next tick',
      );
    }
    return summary;
  }

  /** The timer's work: pushes only where the lists changed (a validity date passed, a failed push). */
  tick(): Promise<PushSummary> {
    return this.pushAll(false);
  }
}
