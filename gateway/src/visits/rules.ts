import type pino from 'pino';
import type { AnomalyKind, Clock, TapEvent } from '../../../protocol/index.js';
import type { CardStatus, VisitTx } from '../store/ports.js';
import { keys } from './emit.js';
import type { VisitEmitter } from './emit.js';
import { worstQuality } from './repo.js';
import type { VisitRow } from './repo.js';
import type { EventTime } from '../../../protocol/index.js';
import type { ResolvedTime } from './time.js';

/**
 * What the rules read and write: on SQLite the VisitRepo (with its in-memory visit index), on
 * PostgreSQL the turn's VisitTx itself (visits/tx-turns.ts).
 */
export type RulesRepo = Pick<
  VisitTx,
  | 'visit'
  | 'clientAt'
  | 'openAtReader'
  | 'upsert'
  | 'overlappingElsewhere'
  | 'deliveredSince'
  | 'startedElsewhereDuring'
>;
export interface RulesCards {
  statusAt(cardRef: string, atMs: number): CardStatus;
}
export interface RulesAnchors {
  resolve(readerId: string, t: EventTime): ResolvedTime;
  uncertaintyMs(readerId: string): number;
}

export interface VisitRulesOptions {
  clock: Clock;
  logger: pino.Logger;
  repo: RulesRepo;
  emitter: VisitEmitter;
  cards: RulesCards;
  anchors: RulesAnchors;
}

/**
 * The visit rules for one tap. The device's start/stop decision is accepted as it is (the worker saw
 * that feedback); the gateway adds what only it can see: the card registry, other homes, clock
 * correction, double staffing.
 */
export class VisitRules {
  private readonly o: VisitRulesOptions;
  private readonly log: pino.Logger;
  constructor(opts: VisitRulesOptions) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'visit-rules' });
  }

  /** Applies one validated tap (inside the caller's transaction). */
  handle(ev: TapEvent): void {
    if (ev.selftest) return; // technician self-test: never a visit, never forwarded
    const t = this.o.anchors.resolve(ev.readerId, ev.time);
    switch (ev.decision) {
      case 'repeat':
        return; // "already registered": nothing downstream
      case 'rejected':
        return this.rejected(ev, t);
      case 'start':
        return this.start(ev, t);
      case 'stop':
        return this.end(ev, t, 'tap');
      case 'auto-close':
        return this.end(ev, t, 'auto-close');
    }
  }

  private rejected(ev: TapEvent, t: ResolvedTime): void {
    const kind: AnomalyKind = ev.rejectReason ?? 'unknown-card';
    const card = this.o.cards.statusAt(ev.card, t.ms);
    this.o.emitter.anomaly(
      kind,
      keys.anomaly(ev.readerId, ev.seq, kind),
      {
        readerId: ev.readerId,
        visitId: null,
        cardRef: ev.card,
        staffRef: card.kind === 'unknown' ? null : card.staffRef,
        clientRef: this.o.repo.clientAt(ev.readerId, t.ms),
        atMs: t.ms,
        seq: ev.seq,
        detail: `the reader refused the card (${kind}); no visit`,
      },
      this.o.clock.now(),
    );
  }

  /** Registry and clock anomalies that apply to any tap of a visit. */
  private cardAndTime(ev: TapEvent, t: ResolvedTime): { staffRef: string | null; kinds: AnomalyKind[] } {
    const card = this.o.cards.statusAt(ev.card, t.ms);
    const kinds: AnomalyKind[] = [];
    if (card.kind === 'unknown') kinds.push('unknown-card');
    if (card.kind === 'revoked') kinds.push('revoked-card');
    if (t.quality === 'uncorrected') kinds.push('uncorrected-time');
    return { staffRef: card.kind === 'unknown' ? null : card.staffRef, kinds };
  }

  private start(ev: TapEvent, t: ResolvedTime): void {
    const { repo, emitter } = this.o;
    const now = this.o.clock.now();
    const visitId = ev.visitId ?? '';
    if (repo.visit(ev.readerId, visitId)) {
      this.log.warn(
        { readerId: ev.readerId, seq: ev.seq, visitId },
        'start for a visit id already known; ignored',
      );
      return;
    }
    const clientRef = repo.clientAt(ev.readerId, t.ms);
    const { staffRef, kinds } = this.cardAndTime(ev, t);
    const details: Partial<Record<AnomalyKind, string>> = {};

    let groupId: string | null = null;
    for (const other of repo.openAtReader(ev.readerId)) {
      if (other.cardRef === ev.card) {
        // The device lost its state (e.g. a reset journal): close the stale visit, flagged.
        this.closeStale(other, ev, t, now);
        continue;
      }
      groupId ??= other.groupId ?? other.visitId;
      if (other.groupId === null) repo.upsert({ ...other, groupId, updatedAtMs: now });
    }

    // An uncorrected time cannot be compared with other homes: no concurrency verdict on it.
    const found =
      t.quality === 'uncorrected'
        ? null
        : repo.overlappingElsewhere({ readerId: ev.readerId, staffRef, cardRef: ev.card, atMs: t.ms });
    // A flag accuses a care worker: the overlap must exceed what the two clocks may be off (issue 16).
    const m = found ? this.clockMargin(ev.readerId, found.readerId) : 0;
    const clash =
      found &&
      t.ms - (found.startedAtMs ?? Number.NEGATIVE_INFINITY) > m &&
      (found.endedAtMs === null || found.endedAtMs - t.ms > m)
        ? found
        : null;
    if (found && !clash) this.overlapWithinClockMargin(ev, found, m);
    // The other visit looks open here, but its reader may not have delivered its stop yet (offline, a journal
    // catching up): a flag now could accuse a worker who had left. Flag only when that reader has delivered
    // something from after this moment; otherwise the other visit's end decides (end() looks for visits that
    // started inside it), so a real overlap is still flagged, once (issue 16).
    if (clash && clash.state === 'open' && !repo.deliveredSince(clash.readerId, t.ms + m)) {
      this.log.info(
        { readerId: ev.readerId, seq: ev.seq, otherReaderId: clash.readerId, otherVisitId: clash.visitId },
        'visit open at another reader that has not reported since: concurrent-visit decided at its end',
      );
    } else if (clash) {
      kinds.push('concurrent-visit');
      details['concurrent-visit'] = concurrentDetail(staffRef, clash);
      if (clash.state === 'open' && !clash.anomalies.includes('concurrent-visit')) {
        repo.upsert({ ...clash, anomalies: [...clash.anomalies, 'concurrent-visit'], updatedAtMs: now });
      }
    }

    const v: VisitRow = {
      readerId: ev.readerId,
      visitId,
      clientRef,
      cardRef: ev.card,
      staffRef,
      groupId,
      state: 'open',
      startedAtMs: t.ms,
      startSeq: ev.seq,
      endedAtMs: null,
      endSeq: null,
      endReason: null,
      timeQuality: t.quality,
      anomalies: kinds,
      lateEndSeq: null,
      updatedAtMs: now,
    };
    repo.upsert(v);
    emitter.started(v, now);
    for (const k of kinds) this.flag(k, v, ev.seq, t.ms, details[k], now);
  }

  private closeStale(stale: VisitRow, ev: TapEvent, t: ResolvedTime, now: number): void {
    const anomalies: AnomalyKind[] = stale.anomalies.includes('missing-stop')
      ? stale.anomalies
      : [...stale.anomalies, 'missing-stop'];
    const closed: VisitRow = {
      ...stale,
      state: 'closed',
      endedAtMs: Math.max(t.ms, stale.startedAtMs ?? t.ms),
      endSeq: ev.seq,
      endReason: 'auto-close',
      timeQuality: worstQuality(stale.timeQuality, t.quality),
      anomalies,
      updatedAtMs: now,
    };
    this.o.repo.upsert(closed);
    this.o.emitter.ended(closed, keys.ended(ev.readerId, ev.seq), now);
    this.flag(
      'missing-stop',
      closed,
      ev.seq,
      t.ms,
      'the reader started a new visit for a card with one still open',
      now,
    );
  }

  private end(ev: TapEvent, t: ResolvedTime, reason: 'tap' | 'auto-close'): void {
    const { repo, emitter } = this.o;
    const now = this.o.clock.now();
    const visitId = ev.visitId ?? '';
    const known = repo.visit(ev.readerId, visitId);
    if (known?.state === 'closed' && known.endSeq === ev.seq) return; // re-processing: already done
    if (known?.state === 'closed') {
      // Already closed (manually, or superseded): record the late end, emit nothing a second time.
      repo.upsert({ ...known, lateEndSeq: ev.seq, updatedAtMs: now });
      this.log.info(
        { readerId: ev.readerId, seq: ev.seq, visitId },
        'end for a visit already closed; recorded only',
      );
      return;
    }
    const fresh: AnomalyKind[] = [];
    let base: VisitRow;
    if (known) base = known;
    else {
      const { staffRef, kinds } = this.cardAndTime(ev, t);
      fresh.push('stop-without-start', ...kinds.filter((k) => k !== 'uncorrected-time'));
      base = {
        readerId: ev.readerId,
        visitId,
        clientRef: repo.clientAt(ev.readerId, t.ms),
        cardRef: ev.card,
        staffRef,
        groupId: null,
        state: 'open',
        startedAtMs: null,
        startSeq: null,
        endedAtMs: null,
        endSeq: null,
        endReason: null,
        timeQuality: t.quality,
        anomalies: [],
        lateEndSeq: null,
        updatedAtMs: now,
      };
    }
    if (reason === 'auto-close') fresh.push('missing-stop');
    if (t.quality === 'uncorrected') fresh.push('uncorrected-time');
    let clashDetail: string | undefined;
    if (
      base.startedAtMs !== null &&
      !base.anomalies.includes('concurrent-visit') &&
      base.timeQuality !== 'uncorrected' &&
      t.quality !== 'uncorrected'
    ) {
      // The other home's start may have been processed before this visit's start (this reader was
      // offline): look for a visit elsewhere that began while this one was open.
      const found = repo.startedElsewhereDuring({
        readerId: ev.readerId,
        staffRef: base.staffRef,
        cardRef: base.cardRef,
        fromMs: base.startedAtMs,
        toMs: t.ms,
      });
      const m = found ? this.clockMargin(ev.readerId, found.readerId) : 0;
      const otherStart = found?.startedAtMs ?? null;
      const clash =
        found && otherStart !== null && otherStart - base.startedAtMs > m && t.ms - otherStart > m
          ? found
          : null;
      if (found && !clash) this.overlapWithinClockMargin(ev, found, m);
      if (clash) {
        fresh.push('concurrent-visit');
        clashDetail = concurrentDetail(base.staffRef, clash);
      }
    }
    const anomalies = [...base.anomalies];
    for (const k of fresh) if (!anomalies.includes(k)) anomalies.push(k);
    const closed: VisitRow = {
      ...base,
      state: 'closed',
      endedAtMs: base.startedAtMs === null ? t.ms : Math.max(t.ms, base.startedAtMs),
      endSeq: ev.seq,
      endReason: reason,
      timeQuality: worstQuality(base.timeQuality, t.quality),
      anomalies,
      updatedAtMs: now,
    };
    repo.upsert(closed);
    emitter.ended(closed, keys.ended(ev.readerId, ev.seq), now);
    for (const k of fresh) {
      this.flag(k, closed, ev.seq, t.ms, k === 'concurrent-visit' ? clashDetail : undefined, now);
    }
  }

  /** What the clocks of two readers may be off together (ms): see TimeAnchors.uncertaintyMs. */
  private clockMargin(readerId: string, otherReaderId: string): number {
    return this.o.anchors.uncertaintyMs(readerId) + this.o.anchors.uncertaintyMs(otherReaderId);
  }

  private overlapWithinClockMargin(ev: TapEvent, other: VisitRow, marginMs: number): void {
    this.log.info(
      {
        readerId: ev.readerId,
        seq: ev.seq,
        otherReaderId: other.readerId,
        otherVisitId: other.visitId,
        marginMs,
      },
      "overlap with a visit at another reader within the clocks' uncertainty: not flagged as concurrent",
    );
  }

  private flag(
    kind: AnomalyKind,
    v: VisitRow,
    seq: number,
    atMs: number,
    detail: string | undefined,
    now: number,
  ): void {
    this.o.emitter.anomaly(
      kind,
      keys.anomaly(v.readerId, seq, kind),
      {
        readerId: v.readerId,
        visitId: v.visitId,
        cardRef: v.cardRef,
        staffRef: v.staffRef,
        clientRef: v.clientRef,
        atMs,
        seq,
        detail: detail ?? DEFAULT_DETAIL[kind],
      },
      now,
    );
  }
}

const concurrentDetail = (staffRef: string | null, other: VisitRow): string =>
  `the same ${staffRef ? 'staff member' : 'card'} has visit ${other.visitId} at reader ${other.readerId} at the same time`;

const DEFAULT_DETAIL: Record<AnomalyKind, string> = {
  'unknown-card': 'card is not in the registry',
  'revoked-card': 'card was revoked before this tap',
  'missing-stop': 'no stop tap: the visit was closed automatically',
  'stop-without-start': 'stop tap for a visit whose start the gateway never saw',
  'concurrent-visit': 'the same staff member has a visit open at another home',
  'uncorrected-time': 'device clock unsynced and no reference in the same boot: time not corrected',
  'manual-close': 'closed manually by an operator',
  'uid-only-card': 'the reader refused a card that gave only its UID (secure-card policy)',
  'card-auth-failed':
    'the reader refused a DESFire card that failed its AES authentication (wrong key, or a copy of a secure card)',
};
