import type { Ack, EventBatch, TapEvent, Tombstone } from '../../../protocol/index.js';
import type { Awaitable } from '../store/awaitable.js';
import type { EpochRow } from '../store/epochs.js';
import type { ReaderSeqState } from '../store/ingest-store.js';

/**
 * Journal epochs at the gateway (protocol/README.md, "Journal epochs and tombstones"; issue 16).
 *
 * A device numbers its taps 1, 2, 3 … within its journal's epoch. A wiped or replaced journal under the same
 * reader id starts a new epoch at seq 1 again. The gateway keeps ONE sequence space per reader (the events
 * table, pairing, the outbox's idempotency keys all use it), so each epoch is placed in it at an **offset**:
 * the gateway seq of device seq `s` in epoch `E` is `offset(E) + s`. The translation happens here, at the
 * ingest boundary, in both directions (batches in, acks out); nothing past ingest sees device seqs.
 *
 * - The legacy epoch (a journal older than epochs: batches without `epoch`) sits at offset 0.
 * - A new epoch is placed after everything the reader's earlier journal left: `offset = maxSeen`. What that
 *   journal still owed (its holes between the contiguous mark and maxSeen) can never come any more: the
 *   gateway holds those seqs as lost with the reason, so pairing continues, and records the loss.
 * - The first epoch the gateway records for a reader that already has seqs but no recorded epoch (a gateway
 *   upgraded from before epochs, while the reader already sent one) is **adopted** at offset 0 when the batch
 *   shows it is the journal those seqs came from: its lowest seq is above 1 (seq 1 was acknowledged, so it is
 *   the same journal), or its seq 1 is byte-identical to the stored seq 1 (the ack of seq 1 was lost).
 * - A batch of an earlier (closed) epoch is refused and not held: that journal was replaced; a zombie copy of
 *   it (an old SD card put back) must not write into the new journal's seqs.
 * - Every ack names the epoch it speaks of (the device ignores an ack of another epoch), so an instance with
 *   a stale view can never make a device delete taps the gateway does not hold.
 */

export type { EpochLog, EpochRow } from '../store/epochs.js';

export type EpochPlace =
  /** Accept: translate the batch's seqs by `offset`. `epoch` null: the legacy epoch. */
  | { kind: 'current'; epoch: string | null; offset: number }
  /** Refuse: a journal replaced by a later epoch. */
  | { kind: 'closed'; epoch: string | null; closedBy: string; closedAtMs: number }
  /** Not recorded yet: open it (offsetForNew) before anything of the batch is queued. */
  | { kind: 'new'; epoch: string };

/** Where a batch of `epoch` (null: legacy) belongs, given the reader's recorded epochs. */
export function placeEpoch(rows: readonly EpochRow[], epoch: string | null): EpochPlace {
  const latest = rows[rows.length - 1];
  if (!latest) return epoch === null ? { kind: 'current', epoch: null, offset: 0 } : { kind: 'new', epoch };
  if (epoch === latest.epoch) return { kind: 'current', epoch, offset: latest.offset };
  if (epoch === null) {
    const first = rows[0] ?? latest;
    return { kind: 'closed', epoch: null, closedBy: first.epoch, closedAtMs: first.openedAtMs };
  }
  const i = rows.findIndex((r) => r.epoch === epoch);
  if (i < 0) return { kind: 'new', epoch };
  const next = rows[i + 1] ?? latest;
  return { kind: 'closed', epoch, closedBy: next.epoch, closedAtMs: next.openedAtMs };
}

/** The lowest device seq a batch speaks of (events and tombstones); Infinity when none. */
export function lowestSeq(batch: Pick<EventBatch, 'events' | 'tombstones'>): number {
  let low = Infinity;
  for (const e of batch.events) low = Math.min(low, e.seq);
  for (const t of batch.tombstones ?? []) low = Math.min(low, t.from);
  return low;
}

/**
 * The offset of a new epoch (see the module comment). `seq1Matches` tells whether the batch's seq 1 is
 * byte-identical to the stored seq 1; it is only consulted for the adoption case.
 */
export function offsetForNew(
  rows: readonly EpochRow[],
  state: ReaderSeqState,
  batch: Pick<EventBatch, 'events' | 'tombstones'>,
  seq1Matches: () => Awaitable<boolean>,
): Awaitable<number> {
  if (state.maxSeen === 0) return 0;
  if (rows.length > 0) return state.maxSeen;
  if (lowestSeq(batch) > 1) return 0; // seq 1 of this journal was acknowledged: the stored seqs are its own
  if (!batch.events.some((e) => e.seq === 1)) return state.maxSeen; // seq 1 tombstoned: a new journal
  const m = seq1Matches();
  const decide = (same: boolean) => (same ? 0 : state.maxSeen);
  return typeof (m as { then?: unknown }).then === 'function'
    ? (m as Promise<boolean>).then(decide)
    : decide(m as boolean);
}

/** The batch's events and tombstones moved into the reader's gateway seq space. */
export function shiftIn(
  batch: Pick<EventBatch, 'events' | 'tombstones'>,
  offset: number,
): { events: TapEvent[]; tombstones?: Tombstone[] } {
  if (offset === 0)
    return { events: batch.events, ...(batch.tombstones ? { tombstones: batch.tombstones } : {}) };
  return {
    events: batch.events.map((e) => ({ ...e, seq: e.seq + offset })),
    ...(batch.tombstones
      ? { tombstones: batch.tombstones.map((t) => ({ ...t, from: t.from + offset, to: t.to + offset })) }
      : {}),
  };
}

/**
 * An ack in gateway seqs moved into the device's seqs of `place` (the reader's current epoch): seqs of earlier
 * epochs are left out, `upTo` never goes below 0, and the epoch is named (absent only for the legacy epoch).
 */
export function shiftOut(ack: Ack, place: { epoch: string | null; offset: number }): Ack {
  const { offset } = place;
  const out: Ack = {
    schemaVersion: ack.schemaVersion,
    readerId: ack.readerId,
    upTo: Math.max(0, ack.upTo - offset),
    rejected: ack.rejected.filter((r) => r.seq > offset).map((r) => ({ ...r, seq: r.seq - offset })),
  };
  const gaps = (ack.gaps ?? [])
    .filter((g) => g.to > offset)
    .map((g) => ({ from: Math.max(1, g.from - offset), to: g.to - offset }));
  if (gaps.length) out.gaps = gaps;
  if (place.epoch !== null) out.epoch = place.epoch;
  return out;
}
