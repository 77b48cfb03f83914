import type { EventBatch, TapEvent } from '../../../protocol/index.js';

/**
 * Per-reader bounds applied to a batch before it is queued (issue 16):
 * - a seq more than `maxSeqJump` above the reader's contiguous high-water mark is refused with a reason and not
 *   held (held, it would leave a gap the reader can never fill: a jump to 2^53 − 1 used to stall it for good);
 * - tombstones (seqs the device declares it will never deliver, protocol "Journal epochs and tombstones") become
 *   held-as-rejected seqs with the device's reason in the detail, so pairing continues past them.
 */
export const DEFAULT_MAX_SEQ_JUMP = 1_000_000;

export interface BatchAdmission {
  events: TapEvent[];
  /** Seqs to hold as rejected (tombstones), in order. */
  held: Array<{ seq: number; detail: string }>;
  /** What was refused (not held), one line per kind, for the reject log. */
  refused: Array<{ reason: 'seq-jump'; detail: string }>;
}

export function admitBatch(
  batch: Pick<EventBatch, 'events' | 'tombstones'>,
  events: readonly TapEvent[],
  highWater: number,
  maxSeqJump = DEFAULT_MAX_SEQ_JUMP,
): BatchAdmission {
  const limit = highWater + maxSeqJump;
  const keep = events.filter((e) => e.seq <= limit);
  const refused: BatchAdmission['refused'] = [];
  const tooFar = events.length - keep.length + countTombstonedAbove(batch, limit);
  if (tooFar > 0) {
    refused.push({
      reason: 'seq-jump',
      detail: `${tooFar} seq(s) more than ${maxSeqJump} above the reader's high-water mark ${highWater} refused (not held); the reader's journal or firmware is wrong`,
    });
  }
  const held: BatchAdmission['held'] = [];
  for (const t of batch.tombstones ?? []) {
    const to = Math.min(t.to, limit);
    for (let seq = Math.max(t.from, highWater + 1); seq <= to; seq++) {
      held.push({ seq, detail: `tombstone: ${t.reason} on the device${t.detail ? ` (${t.detail})` : ''}` });
    }
  }
  return { events: keep, held, refused };
}

function countTombstonedAbove(batch: Pick<EventBatch, 'tombstones'>, limit: number): number {
  let n = 0;
  for (const t of batch.tombstones ?? []) if (t.to > limit) n += t.to - Math.max(t.from, limit + 1) + 1;
  return n;
}

/**
 * Rate-limited logging of rejected messages: at most `perWindow` lines per (reader, reason) per window, then one
 * line saying how many were not logged. The counters (metrics, reject table) stay exact; only the log is bounded.
 */
export class RejectLogLimiter {
  private readonly windows = new Map<string, { startMs: number; logged: number; suppressed: number }>();
  constructor(private readonly o: { perWindow: number; windowMs: number; maxKeys?: number }) {}

  /** Whether to log this reject now; `suppressedBefore` > 0 when the previous window dropped lines. */
  admit(key: string, nowMs: number): { log: boolean; suppressedBefore: number } {
    let w = this.windows.get(key);
    let suppressedBefore = 0;
    if (!w || nowMs - w.startMs >= this.o.windowMs) {
      suppressedBefore = w?.suppressed ?? 0;
      if (!w && this.windows.size >= (this.o.maxKeys ?? 10_000)) this.windows.clear();
      w = { startMs: nowMs, logged: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (w.logged < this.o.perWindow) {
      w.logged++;
      return { log: true, suppressedBefore };
    }
    w.suppressed++;
    return { log: false, suppressedBefore };
  }
}
