import type { Logger } from 'pino';
import type {
  CardProof,
  Clock,
  EventTime,
  TapDecision,
  TapEvent,
  TimerHandle,
} from '../../protocol/index.js';
import { decideExpiry, decideTap, msUntilExpiry } from './core/decision.js';
import type { CardState, DecidedEvent, VisitRules } from './core/decision.js';
import type { Journal } from './core/journal.js';
import type { CardIdentity } from './card-keys.js';
import type { FeedbackPattern } from './ports/feedback.js';

export interface TapReport {
  seq: number;
  eventId: string;
  decision: TapDecision;
  visitId: string | null;
  card: string;
  feedback: FeedbackPattern;
  time: EventTime;
  /** Why a rejected tap was refused (e.g. 'card-auth-failed'). */
  rejectReason?: TapEvent['rejectReason'];
}

export interface TapPipelineOptions {
  readerId: string;
  /** UID → card reference (and sealed UID on the sealed scheme): card-keys.ts. Never logs the UID. */
  identify: (uid: string) => CardIdentity;
  journal: Journal;
  clock: Clock;
  logger: Logger;
  random: () => number;
  warnAtFraction: number;
  now: () => EventTime;
  rules: () => VisitRules;
  /** Shows a pattern; never throws. */
  signal: (p: FeedbackPattern) => Promise<void>;
  onTap: (t: TapReport) => void;
  onAutoClose: (a: { seq: number; visitId: string; card: string }) => void;
  onRefused: (r: { card: string; reason: 'journal-full' | 'storage-error' }) => void;
  /** Something worth a status update happened (journal pressure). */
  onPressure: () => void;
  /** New events are in the journal (wake the uplink). */
  onJournalled: () => void;
}

/**
 * The tap path: card → pseudonym → decision → ONE durable journal commit → feedback → report.
 * Feedback comes only after the commit (invariant 1). Also owns the auto-close timer.
 */
export class TapPipeline {
  private readonly o: TapPipelineOptions;
  private readonly log: Logger;
  private readonly cards: Map<string, CardState>;
  private expiryTimer: TimerHandle | null = null;
  private running = true;
  private fullWarned = false;

  constructor(opts: TapPipelineOptions, bootId: string) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'taps' });
    this.cards = opts.journal.loadCardStates();
    opts.journal.pruneCardStates(bootId, this.cards);
    this.armExpiry();
  }

  stop(): void {
    this.running = false;
    if (this.expiryTimer) this.o.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  openVisits(): { card: string; visitId: string; startSeq: number }[] {
    const out: { card: string; visitId: string; startSeq: number }[] = [];
    for (const [card, s] of this.cards) {
      if (s.open) out.push({ card, visitId: s.open.visitId, startSeq: s.open.startSeq });
    }
    return out;
  }

  /**
   * `proof`: what a secure card proved (SUN message or DESFire authentication), carried on the tap's
   * events (the gateway checks it). `authFailed`: the card failed the reader's DESFire authentication:
   * refused at once (rejected feedback, `card-auth-failed`).
   */
  async handleCard(uid: string, proof?: CardProof, authFailed = false): Promise<void> {
    const { journal } = this.o;
    if (!this.running) return;
    let card: string;
    let sealed: string | undefined;
    try {
      ({ card, sealedCard: sealed } = this.o.identify(uid));
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'unreadable card ignored');
      return;
    }
    const time = this.o.now();
    const outcome = decideTap({
      card,
      state: this.cards.get(card) ?? null,
      time,
      seq: journal.nextSeq,
      rules: this.o.rules(),
      newVisitId: () => this.newId('v'),
      uidOnly: proof === undefined,
      authFailed,
    });
    if (!journal.hasRoom(outcome.events.length)) {
      this.log.error({ depth: journal.depth, capacity: journal.capacity }, 'journal full: tap refused');
      await this.o.signal('fault-storage');
      this.o.onRefused({ card, reason: 'journal-full' });
      this.o.onPressure();
      return;
    }
    const events = outcome.events.map((d, i) => {
      // one r1_ reference is one UID: an auto-close made room by this tap carries this tap's sealed card too
      const e = this.buildEvent(journal.nextSeq + i, card, d, time, sealed);
      return proof && d.decision !== 'auto-close' ? { ...e, cardProof: proof } : e;
    });
    // sealed-v1: the card's state keeps a sealed UID, so a later auto-close (no card present) can carry one
    const next = outcome.next && sealed ? { ...outcome.next, sealed } : outcome.next;
    try {
      journal.append(events, { card, state: next });
    } catch (err) {
      this.log.error({ err }, 'tap not journalled: storage error');
      await this.o.signal('fault-storage');
      this.o.onRefused({ card, reason: 'storage-error' });
      return;
    }
    if (next) this.cards.set(card, next);
    else this.cards.delete(card);
    const last = events[events.length - 1] as TapEvent;
    this.log.info(
      {
        seq: last.seq,
        decision: last.decision,
        card,
        visitId: last.visitId,
        rejectReason: last.rejectReason,
      },
      'tap',
    );
    await this.o.signal(outcome.feedback);
    this.o.onTap({
      seq: last.seq,
      eventId: last.eventId,
      decision: last.decision,
      visitId: last.visitId,
      card,
      feedback: outcome.feedback,
      time,
      ...(last.rejectReason ? { rejectReason: last.rejectReason } : {}),
    });
    this.o.onJournalled();
    this.armExpiry();
    this.checkPressure();
  }

  /** Re-arms the auto-close timer for the nearest expiry (after each change and config push). */
  armExpiry(): void {
    if (this.expiryTimer) this.o.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (!this.running) return;
    const now = this.o.now();
    const rules = this.o.rules();
    let next: number | null = null;
    for (const s of this.cards.values()) {
      const ms = msUntilExpiry(s, now, rules);
      if (ms !== null && (next === null || ms < next)) next = ms;
    }
    if (next === null) return;
    this.expiryTimer = this.o.clock.setTimeout(() => this.expireDue(), Math.min(next + 1, 2 ** 31 - 1));
  }

  private expireDue(): void {
    this.expiryTimer = null;
    const { journal } = this.o;
    if (!this.running) return;
    const rules = this.o.rules();
    for (const [card, state] of this.cards) {
      const time = this.o.now();
      const d = decideExpiry({ state, time, rules });
      if (!d || !d.event.visitId) continue;
      if (!journal.hasRoom(1)) {
        this.log.error('journal full: auto-close postponed');
        break;
      }
      const event = this.buildEvent(journal.nextSeq, card, d.event, time, state.sealed);
      const next = state.sealed ? { ...d.next, sealed: state.sealed } : d.next;
      try {
        journal.append([event], { card, state: next });
      } catch (err) {
        this.log.error({ err }, 'auto-close not journalled');
        break;
      }
      this.cards.set(card, next);
      this.log.info({ visitId: d.event.visitId, seq: event.seq }, 'visit auto-closed (missing stop)');
      this.o.onAutoClose({ seq: event.seq, visitId: d.event.visitId, card });
    }
    this.o.onJournalled();
    this.armExpiry();
  }

  private buildEvent(
    seq: number,
    card: string,
    d: DecidedEvent,
    time: EventTime,
    sealedCard: string | undefined,
  ): TapEvent {
    return {
      readerId: this.o.readerId,
      seq,
      eventId: this.newId('e'),
      card,
      ...(sealedCard && card.startsWith('r1_') ? { sealedCard } : {}),
      decision: d.decision,
      visitId: d.visitId,
      ...(d.rejectReason ? { rejectReason: d.rejectReason } : {}),
      time,
    };
  }

  private newId(prefix: string): string {
    let s = prefix;
    for (let i = 0; i < 20; i++) s += Math.floor(this.o.random() * 36).toString(36);
    return s;
  }

  private checkPressure(): void {
    const { journal } = this.o;
    const high = journal.depth >= journal.capacity * this.o.warnAtFraction;
    if (high && !this.fullWarned) {
      this.log.warn(
        { depth: journal.depth, capacity: journal.capacity },
        'journal filling up: check the uplink',
      );
      this.o.onPressure();
    }
    this.fullWarned = high;
  }
}
