import type pino from 'pino';
import { TapEvent } from '../../../protocol/index.js';
import type { AnomalyKind, Clock } from '../../../protocol/index.js';
import type { CardRegistry } from '../cards/registry.js';
import type { Db } from '../store/db.js';
import { keys } from './emit.js';
import type { VisitEmitter } from './emit.js';
import { worstQuality } from './repo.js';
import type { VisitRepo, VisitRow } from './repo.js';
import { parseJson } from './time.js';
import type { ResolvedTime, TimeAnchors } from './time.js';

export type SkipReason = 'invalid-event' | 'handler-error';

export interface VisitEngineOptions {
  db: Db;
  clock: Clock;
  logger: pino.Logger;
  repo: VisitRepo;
  emitter: VisitEmitter;
  cards: CardRegistry;
  anchors: TimeAnchors;
  /** Events per transaction (default 500). */
  chunk?: number;
  onAnomalies?: (kinds: AnomalyKind[]) => void;
  onSkipped?: (reason: SkipReason) => void;
}

/**
 * Turns each reader's contiguous event prefix into visits, anomalies and outbox rows. Per reader it
 * reads events with seq in (cursor, contiguous_upto] in seq order and writes everything together with
 * the new cursor in ONE transaction, so a crash re-processes at most a whole chunk, idempotently.
 * The device's start/stop decisions are accepted as they are; the engine adds what only the gateway
 * can see (registry, other homes, clock correction).
 */
export class VisitEngine {
  private readonly o: VisitEngineOptions;
  private readonly log: pino.Logger;
  constructor(opts: VisitEngineOptions) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'visit-engine' });
  }

  /** Processes every reader that is behind. Returns the number of events processed. */
  processAll(): number {
    this.o.anchors.scan();
    let n = 0;
    for (const r of this.o.repo.readersBehind()) n += this.processReaderInner(r);
    return n;
  }

  processReader(readerId: string): number {
    this.o.anchors.scan();
    return this.processReaderInner(readerId);
  }

  private processReaderInner(readerId: string): number {
    const { repo, db } = this.o;
    const chunk = this.o.chunk ?? 500;
    let total = 0;
    for (let round = 0; round < 100_000; round++) {
      const cursor = repo.cursor(readerId);
      const upto = repo.contiguousUpto(readerId);
      if (upto <= cursor) break;
      const rows = repo.events(readerId, cursor, upto, chunk);
      const mark = this.o.emitter.recordedCount;
      const skipped: SkipReason[] = [];
      // Fast path: the whole chunk in one transaction. If a rule throws, the chunk is rolled back and
      // redone with one savepoint per event, so only the faulty event is skipped.
      const run = (safe: boolean): void =>
        db.transaction(() => {
          skipped.length = 0;
          for (const row of rows) this.handleRow(readerId, row, safe, skipped);
          // Sequences held but without a row (none today) are skipped; the cursor never passes upto.
          const last = rows.length < chunk ? upto : (rows[rows.length - 1]?.seq ?? upto);
          repo.setCursor(readerId, last);
        })();
      try {
        try {
          run(false);
        } catch {
          this.o.emitter.discardRecorded(mark);
          run(true);
        }
      } catch (err) {
        this.o.emitter.discardRecorded(mark);
        this.log.error({ err, readerId }, 'visit processing transaction failed; will retry');
        break;
      }
      skipped.forEach((r) => this.o.onSkipped?.(r));
      const kinds = this.o.emitter.drainRecorded();
      if (kinds.length) this.o.onAnomalies?.(kinds);
      total += rows.length;
      if (rows.length < chunk) break;
    }
    return total;
  }

  /** One event; in safe mode inside a savepoint, so a poison event is logged and skipped. */
  private handleRow(
    readerId: string,
    row: { seq: number; event_json: string | null; received_at_ms: number },
    safe: boolean,
    skipped: SkipReason[],
  ): void {
    const ev = parseJson(row.event_json, TapEvent);
    if (!ev || ev.readerId !== readerId || ev.seq !== row.seq) {
      this.log.warn({ readerId, seq: row.seq }, 'stored event does not validate; skipped');
      skipped.push('invalid-event');
      return;
    }
    if (!safe) return this.handle(ev);
    const mark = this.o.emitter.recordedCount;
    try {
      this.o.db.transaction(() => this.handle(ev))();
    } catch (err) {
      this.o.emitter.discardRecorded(mark);
      this.log.error({ err, readerId, seq: row.seq }, 'visit rule failed for an event; skipped');
      skipped.push('handler-error');
    }
  }

  private handle(ev: TapEvent): void {
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

    const clash = repo.overlappingElsewhere({
      readerId: ev.readerId,
      staffRef,
      cardRef: ev.card,
      atMs: t.ms,
    });
    if (clash) {
      kinds.push('concurrent-visit');
      details['concurrent-visit'] =
        `same ${staffRef ? 'staff member' : 'card'} has visit ${clash.visitId} open at reader ${clash.readerId}`;
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
    for (const k of fresh) this.flag(k, closed, ev.seq, t.ms, undefined, now);
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

const DEFAULT_DETAIL: Record<AnomalyKind, string> = {
  'unknown-card': 'card is not in the registry',
  'revoked-card': 'card was revoked before this tap',
  'missing-stop': 'no stop tap: the visit was closed automatically',
  'stop-without-start': 'stop tap for a visit whose start the gateway never saw',
  'concurrent-visit': 'the same staff member has a visit open at another home',
  'uncorrected-time': 'device clock unsynced and no reference in the same boot: time not corrected',
  'manual-close': 'closed manually by an operator',
};
