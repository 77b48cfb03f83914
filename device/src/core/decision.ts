import type { EventTime, TapDecision } from '../../../protocol/index.js';
import type { FeedbackPattern } from '../ports/feedback.js';

/**
 * The tap decision (docs/design.md, "Visit semantics"), pure: state in, decisions out. Per card:
 * no open visit → start; open visit → stop; same card again within the repeat window → repeat
 * (no state change); open longer than maxOpenMs → auto-close (missing stop), then this tap starts
 * a new visit. State is per card, so two cards at one reader are two overlapping visits.
 */

/** What the device remembers about one card (persisted with each tap, in the same commit). */
export interface CardState {
  /** The open visit, if any. */
  open: { visitId: string; startSeq: number; startedAt: EventTime } | null;
  /** The last tap of this card, whatever it decided (the repeat window slides with it). */
  lastTap: { at: EventTime; visitId: string | null } | null;
  /** sealed-v1 readers: the card's UID sealed to the gateway, for an auto-close made without the card. */
  sealed?: string;
}

export interface VisitRules {
  repeatWindowMs: number;
  maxOpenMs: number;
  /** Card references accepted; null accepts every card. */
  allowList: ReadonlySet<string> | null;
  revoked: ReadonlySet<string>;
  /** Refuse cards that give only their UID (pushed `uidOnlyCards: refuse`; secure cards, issue 18). */
  refuseUidOnly?: boolean;
}

export interface DecidedEvent {
  decision: TapDecision;
  visitId: string | null;
  rejectReason?: 'unknown-card' | 'revoked-card' | 'uid-only-card' | 'card-auth-failed';
}

export interface TapOutcome {
  /** Events to journal, in order (an auto-close may precede the start it makes room for). */
  events: DecidedEvent[];
  /** The card's state after the commit (null: nothing to remember). */
  next: CardState | null;
  /** What the worker sees. */
  feedback: FeedbackPattern;
}

/**
 * Time elapsed from `from` to `to`, in ms. Same boot: monotonic difference (exact, immune to clock
 * steps). Different boots, both synced: wall difference. Otherwise (a reboot without a synced
 * clock) a lower bound: the larger of the wall difference and the uptime of this boot.
 */
export function elapsedMs(from: EventTime, to: EventTime): number {
  if (from.bootId === to.bootId) return Math.max(0, to.monoMs - from.monoMs);
  const wall = to.wallMs - from.wallMs;
  if (from.synced && to.synced) return Math.max(0, wall);
  return Math.max(0, wall, to.monoMs);
}

/** Whether an open visit has outlived the maximum at `now`. */
export function isExpired(state: CardState, now: EventTime, rules: Pick<VisitRules, 'maxOpenMs'>): boolean {
  return state.open !== null && elapsedMs(state.open.startedAt, now) >= rules.maxOpenMs;
}

export function decideTap(input: {
  card: string;
  state: CardState | null;
  time: EventTime;
  seq: number;
  rules: VisitRules;
  newVisitId: () => string;
  /** The card proved nothing beyond its UID (no SUN message). */
  uidOnly?: boolean;
  /** The card failed the reader's authentication (DESFire with the wrong key, or a copy): refused always. */
  authFailed?: boolean;
}): TapOutcome {
  const { card, time, rules } = input;
  const state: CardState = input.state ?? { open: null, lastTap: null };

  if (input.authFailed) {
    return {
      events: [{ decision: 'rejected', visitId: null, rejectReason: 'card-auth-failed' }],
      next: input.state,
      feedback: 'rejected',
    };
  }

  if (rules.refuseUidOnly && input.uidOnly) {
    return {
      events: [{ decision: 'rejected', visitId: null, rejectReason: 'uid-only-card' }],
      next: input.state,
      feedback: 'rejected',
    };
  }

  const revoked = rules.revoked.has(card);
  if (revoked || (rules.allowList !== null && !rules.allowList.has(card))) {
    return {
      events: [
        { decision: 'rejected', visitId: null, rejectReason: revoked ? 'revoked-card' : 'unknown-card' },
      ],
      next: input.state,
      feedback: 'rejected',
    };
  }

  const events: DecidedEvent[] = [];
  let open = state.open;
  if (open !== null && elapsedMs(open.startedAt, time) >= rules.maxOpenMs) {
    events.push({ decision: 'auto-close', visitId: open.visitId });
    open = null;
  }

  if (
    events.length === 0 &&
    state.lastTap !== null &&
    state.lastTap.visitId !== null &&
    state.lastTap.at.bootId === time.bootId &&
    elapsedMs(state.lastTap.at, time) < rules.repeatWindowMs
  ) {
    return {
      events: [{ decision: 'repeat', visitId: state.lastTap.visitId }],
      next: { open, lastTap: { at: time, visitId: state.lastTap.visitId } },
      feedback: 'repeat',
    };
  }

  if (open === null) {
    const visitId = input.newVisitId();
    events.push({ decision: 'start', visitId });
    return {
      events,
      next: {
        open: { visitId, startSeq: input.seq + events.length - 1, startedAt: time },
        lastTap: { at: time, visitId },
      },
      feedback: 'visit-started',
    };
  }
  events.push({ decision: 'stop', visitId: open.visitId });
  return {
    events,
    next: { open: null, lastTap: { at: time, visitId: open.visitId } },
    feedback: 'visit-ended',
  };
}

/** Auto-close by timer: the decision for an expired open visit, or null when it is not expired. */
export function decideExpiry(input: {
  state: CardState;
  time: EventTime;
  rules: Pick<VisitRules, 'maxOpenMs'>;
}): { event: DecidedEvent; next: CardState } | null {
  const { state } = input;
  if (state.open === null || !isExpired(state, input.time, input.rules)) return null;
  return {
    event: { decision: 'auto-close', visitId: state.open.visitId },
    next: { open: null, lastTap: state.lastTap },
  };
}

/** Ms until the open visit expires (0 when already expired), or null when nothing is open. */
export function msUntilExpiry(
  state: CardState,
  now: EventTime,
  rules: Pick<VisitRules, 'maxOpenMs'>,
): number | null {
  if (state.open === null) return null;
  return Math.max(0, rules.maxOpenMs - elapsedMs(state.open.startedAt, now));
}
