import type pino from 'pino';
import type { Clock, DeviceConfig, TimerHandle } from '../../../protocol/index.js';
import type { AdminResponse } from '../admin/types.js';
import type { MetricsRegistry } from '../metrics.js';
import type { PgPool } from '../store/postgres/db.js';
import { releaseLease, tryLease } from '../store/postgres/leases.js';
import type { CardStore } from '../store/ports.js';
import type { PgCardUidVault } from './pg-uid-vault.js';
import { CardListPusher, type PushSummary } from './push.js';

/** The lease name: one instance at a time pushes card lists on the timer. */
export const CARD_PUSH_LEASE = 'card-push';

/** The line that says what to do about cards the sealed readers' lists leave out (CLI, log). */
export const withoutUidLine = (n: number): string =>
  `${n} active card(s) are known only by their c1_ reference (no UID ever seen): readers on the sealed scheme ` +
  "cannot be given them (they are left out of those readers' allow-lists and revoked lists). Fix: import the " +
  "cards' UIDs: visittag-gateway cards import FILE (CSV with columns staff,uid); a sealed tap of the card also " +
  'teaches its UID.';

export interface PgCardListTimerOptions {
  pool: PgPool;
  vault: PgCardUidVault;
  cards: Pick<CardStore, 'refs'>;
  /** The active readers. */
  readers: () => string[];
  /** The config route as a client would call it (wiring.ts configRoute). */
  configRoute: (method: 'GET' | 'POST', readerId: string, body?: unknown) => Promise<AdminResponse>;
  /** Sealed-v1 readers' lists in their own references (wiring.ts cardListsFor). */
  cardListsFor: (readerId: string, cardRefs: readonly string[]) => { refs: string[]; missing: number };
  /** Whether this instance can publish (its MQTT is up). */
  canPublish: () => boolean;
  holder: string;
  clock: Clock;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  everyMs?: number;
}

/**
 * Card lists on PostgreSQL (issue 16), on the schedule of the embedded gateway (a minute): every instance takes
 * the other instances' sealed UIDs into its vault (`sync`); the instance holding the lease `card-push` pushes
 * the lists that changed to the readers (CardListPusher.tick: a sealed reader's lists in its own references,
 * which change when a UID is learned) and counts the active cards whose UID is unknown
 * (`visittag_cards_without_uid`; a warning with the fix when the count changes).
 */
export class PgCardListTimer {
  private timer: TimerHandle | null = null;
  private running = false;
  private inTick: Promise<unknown> | null = null;
  private readonly pusher: CardListPusher;
  private readonly log: pino.Logger;
  /** Active cards without a known UID at the last tick (the gauge). */
  withoutUid = 0;
  private reported = 0;
  /** Ticks in which this instance held the lease. */
  leasedTicks = 0;

  constructor(private readonly o: PgCardListTimerOptions) {
    this.log = o.logger.child({ module: 'card-lists' });
    this.pusher = new CardListPusher({
      readers: o.readers,
      lastConfig: async (id) => {
        const r = await o.configRoute('GET', id);
        return r.status === 200 ? ((r.body as { config: DeviceConfig }).config ?? null) : null;
      },
      push: (id, input) => o.configRoute('POST', id, input),
      lists: async () => ({ valid: await o.cards.refs('active'), invalid: await o.cards.refs('revoked') }),
      cardListsFor: o.cardListsFor,
      logger: o.logger,
    });
    o.metrics.gauge(
      'visittag_cards_without_uid',
      "Active cards known only by their c1_ reference: left out of sealed readers' lists (import their UIDs).",
      () => this.withoutUid,
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.inTick?.catch(() => undefined);
    await this.o.vault.settled();
    await releaseLease(this.o.pool, CARD_PUSH_LEASE, this.o.holder).catch(() => undefined);
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      this.inTick = this.tick()
        .catch((err: unknown) => this.log.warn({ err }, 'card list tick failed; retried at the next one'))
        .finally(() => {
          this.inTick = null;
          this.schedule();
        });
    }, this.o.everyMs ?? 60_000);
  }

  /**
   * A card lifecycle change made through this instance (issue 14): every active reader's lists pushed now, from
   * here, whoever holds the lease (the change is in PostgreSQL already; the holder's next tick finds nothing
   * left to push). Nothing when this instance's MQTT is down: the holder's tick pushes it within a minute.
   */
  async pushAll(): Promise<PushSummary> {
    if (!this.o.canPublish()) return { pushed: [], failed: [] };
    await this.o.vault.sync();
    return this.pusher.pushAll();
  }

  /** One tick: the vault in step; on the lease holder, the count and the pushes. Null when not the holder. */
  async tick(): Promise<PushSummary | null> {
    await this.o.vault.sync();
    const now = this.o.clock.now();
    const every = this.o.everyMs ?? 60_000;
    if (!this.o.canPublish()) return null;
    if (!(await tryLease(this.o.pool, CARD_PUSH_LEASE, this.o.holder, now, 3 * every))) return null;
    this.leasedTicks++;
    this.withoutUid = this.o.vault.withoutUid(await this.o.cards.refs('active'));
    if (this.withoutUid !== this.reported) {
      this.reported = this.withoutUid;
      if (this.withoutUid > 0)
        this.log.warn({ cardsWithoutUid: this.withoutUid }, withoutUidLine(this.withoutUid));
    }
    return this.pusher.tick();
  }
}
