import { z } from 'zod';
import {
  EventTime,
  JournalEpoch,
  LIMITS,
  ReaderId,
  SCHEMA_VERSION,
  summarizeIssues,
  TapEvent,
  Tombstone,
  type EventTime as EventTimeT,
  type TapEvent as TapEventT,
  type Tombstone as TombstoneT,
} from '../../../protocol/index.js';

/** The batch envelope, with the events left unchecked (each is checked on its own below). */
const Envelope = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    readerId: ReaderId,
    sentAt: EventTime,
    epoch: JournalEpoch.optional(),
    events: z.array(z.unknown()).min(1).max(LIMITS.maxBatchEvents),
    tombstones: z.array(Tombstone).max(LIMITS.maxBatchTombstones).optional(),
  })
  .strict();

const SeqOnly = z.object({ seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });

export interface Salvaged {
  sentAt: EventTimeT;
  /** The batch's journal epoch (null: the legacy epoch). */
  epoch: string | null;
  tombstones?: TombstoneT[];
  valid: TapEventT[];
  /** Events that can never become valid, but whose sequence number is readable: recorded and acked as rejected. */
  invalid: Array<{ seq: number; detail: string }>;
}

/**
 * A batch that failed validation only because of some of its events: keep the valid ones and record
 * the invalid ones by sequence number (Ack `rejected` reason `invalid-event`), so one poison event
 * cannot block a reader's journal forever. Returns null when the envelope itself is bad, an event has
 * no readable sequence number, or sequence numbers repeat: then the whole batch is rejected as before.
 */
export function salvageBatch(json: unknown, topicReaderId: string): Salvaged | null {
  const env = Envelope.safeParse(json);
  if (!env.success || env.data.readerId !== topicReaderId) return null;
  const seen = new Set<number>();
  const out: Salvaged = {
    sentAt: env.data.sentAt,
    epoch: env.data.epoch ?? null,
    ...(env.data.tombstones ? { tombstones: env.data.tombstones } : {}),
    valid: [],
    invalid: [],
  };
  for (const raw of env.data.events) {
    const seq = SeqOnly.safeParse(raw);
    if (!seq.success || seen.has(seq.data.seq)) return null;
    seen.add(seq.data.seq);
    const e = TapEvent.safeParse(raw);
    if (!e.success) {
      out.invalid.push({ seq: seq.data.seq, detail: summarizeIssues(e.error.issues).slice(0, 200) });
    } else if (e.data.readerId !== topicReaderId) {
      out.invalid.push({ seq: seq.data.seq, detail: 'event readerId differs from the topic reader id' });
    } else {
      out.valid.push(e.data);
    }
  }
  if (out.invalid.length === 0) return null; // the batch failed for another reason (e.g. ordering)
  out.valid.sort((a, b) => a.seq - b.seq);
  return out;
}
