import { CardRef, SafeId } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { AuditRecord } from '../audit/log.js';
import type { CardLifecycleStore } from '../store/card-lifecycle.js';
import type { CardAssignResult, CardInfo } from '../store/ports.js';
import type { PushSummary } from './push.js';

/** What a lifecycle change did: whether the registry changed, and which readers were told at once. */
export interface LifecycleResult {
  cardRef: string;
  changed: boolean;
  /** Readers whose config was re-pushed with the new card lists (null: no live gateway to push). */
  pushed: PushSummary | null;
}

export interface CardLifecycleDeps {
  /** The card registry (store port: SQLite answers at once, PostgreSQL with a Promise). */
  store: Pick<
    CardLifecycleStore,
    'get' | 'revoke' | 'reinstate' | 'setValidity' | 'withdrawMissing' | 'replace'
  >;
  clock: Clock;
  /** Re-pushes every reader's config with the current card lists; absent in one-off CLI runs. */
  pushAll?: () => Promise<PushSummary>;
  /** Appends to the audit log (every change here is recorded with its actor and reason). */
  audit: (r: AuditRecord) => Promise<unknown>;
}

/** Thrown for a refused change; the message names the problem and the fix. */
export class CardLifecycleError extends Error {
  constructor(
    message: string,
    readonly code: 'not-found' | 'conflict' | 'invalid',
  ) {
    super(message);
  }
}

/**
 * Card lifecycle (issue 16): revoke, reinstate, validity dates, withdrawal of cards missing from a
 * full list, lost-card replacement. Each change is audited and, in a running gateway, pushed to every
 * reader at once (the reader rejects a revoked card on its next tap, without waiting for the gateway).
 */
export class CardLifecycle {
  constructor(private readonly d: CardLifecycleDeps) {}

  private async card(cardRef: string): Promise<CardInfo> {
    if (!CardRef.safeParse(cardRef).success) {
      throw new CardLifecycleError('the card reference must be c1_ + 32 hex digits', 'invalid');
    }
    const c = await this.d.store.get(cardRef);
    if (!c) {
      throw new CardLifecycleError(
        `card ${cardRef} is not registered (see \`cards unknown\`, or register it with \`cards assign\`)`,
        'not-found',
      );
    }
    return c;
  }

  private async after(cardRef: string, changed: boolean): Promise<LifecycleResult> {
    const pushed = changed && this.d.pushAll ? await this.d.pushAll() : null;
    return { cardRef, changed, pushed };
  }

  async revoke(cardRef: string, actor: string, reason: string | null = null): Promise<LifecycleResult> {
    const before = await this.card(cardRef);
    const changed = await this.d.store.revoke(cardRef, this.d.clock.now());
    if (changed) {
      await this.d.audit({
        actor,
        action: 'card.revoke',
        target: cardRef,
        before,
        after: await this.d.store.get(cardRef),
        reason,
      });
    }
    return this.after(cardRef, changed);
  }

  async reinstate(cardRef: string, actor: string, reason: string | null = null): Promise<LifecycleResult> {
    const before = await this.card(cardRef);
    if (before.replacedBy) {
      throw new CardLifecycleError(
        `card ${cardRef} was replaced by ${before.replacedBy}; revoke that card first if the old one is found again`,
        'conflict',
      );
    }
    const changed = await this.d.store.reinstate(cardRef);
    if (changed) {
      await this.d.audit({
        actor,
        action: 'card.reinstate',
        target: cardRef,
        before,
        after: await this.d.store.get(cardRef),
        reason,
      });
    }
    return this.after(cardRef, changed);
  }

  /** Sets the validity window (either end null: open). A tap outside it counts as a revoked card. */
  async setValidity(
    cardRef: string,
    fromMs: number | null,
    toMs: number | null,
    actor: string,
    reason: string | null = null,
  ): Promise<LifecycleResult> {
    if (fromMs !== null && toMs !== null && toMs <= fromMs) {
      throw new CardLifecycleError('the validity end must be after its start', 'invalid');
    }
    const before = await this.card(cardRef);
    const changed =
      (before.validFromMs ?? null) !== fromMs || (before.validToMs ?? null) !== toMs
        ? await this.d.store.setValidity(cardRef, fromMs, toMs)
        : false;
    if (changed) {
      await this.d.audit({
        actor,
        action: 'card.validity',
        target: cardRef,
        before,
        after: await this.d.store.get(cardRef),
        reason,
      });
    }
    return this.after(cardRef, changed);
  }

  /** Full-list import: revokes every active card not in `keep`; returns those withdrawn. */
  async withdrawMissing(
    keep: readonly string[],
    actor: string,
  ): Promise<{ withdrawn: string[]; pushed: PushSummary | null }> {
    const bad = keep.filter((r) => !CardRef.safeParse(r).success);
    if (bad.length)
      throw new CardLifecycleError(`${bad.length} card reference(s) are not c1_ + 32 hex digits`, 'invalid');
    if (keep.length === 0) {
      throw new CardLifecycleError(
        'a full list with no card would withdraw every card; refused (revoke cards one by one if that is meant)',
        'invalid',
      );
    }
    const withdrawn = await this.d.store.withdrawMissing(new Set(keep), this.d.clock.now());
    if (withdrawn.length) {
      await this.d.audit({
        actor,
        action: 'card.withdraw-missing',
        target: `${withdrawn.length} card(s)`,
        after: { withdrawn, listSize: keep.length },
        reason: 'missing from a full card list',
      });
    }
    const pushed = withdrawn.length && this.d.pushAll ? await this.d.pushAll() : null;
    return { withdrawn, pushed };
  }

  /**
   * Lost card: the old card is revoked and the new one is registered to the same staff member (same
   * validity). The staff member's visits stay theirs: history follows the staff reference.
   */
  async replace(
    oldRef: string,
    newRef: string,
    actor: string,
    reason: string | null = null,
  ): Promise<CardAssignResult & { pushed: PushSummary | null }> {
    const old = await this.card(oldRef);
    if (!CardRef.safeParse(newRef).success) {
      throw new CardLifecycleError('the new card reference must be c1_ + 32 hex digits', 'invalid');
    }
    if (oldRef === newRef) throw new CardLifecycleError('the new card is the old card', 'invalid');
    const current = await this.d.store.get(newRef);
    if (current && current.staffRef !== old.staffRef) {
      throw new CardLifecycleError(
        `card ${newRef} is registered to ${current.staffRef}; revoke it or pick another card`,
        'conflict',
      );
    }
    SafeId.parse(old.staffRef);
    const r = await this.d.store.replace({ oldRef, newRef, actor, nowMs: this.d.clock.now() });
    await this.d.audit({
      actor,
      action: 'card.replace',
      target: oldRef,
      before: old,
      after: { replacedBy: newRef, staffRef: old.staffRef },
      reason,
    });
    const pushed = this.d.pushAll ? await this.d.pushAll() : null;
    return { ...r, pushed };
  }
}
