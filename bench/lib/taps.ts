/** Builds valid protocol tap events and batches for the load generators. */
import { encode, pseudonymiseCard } from '../../protocol/index.js';
import type { PayloadInputOf } from '../../protocol/index.js';

export type TapEventInput = PayloadInputOf<'events'>['events'][number];

export const BENCH_EPOCH_FLOOR = 946_684_800_000;

/** Deterministic staff card UIDs (7-byte, never all-zero) and their pseudonyms. */
export function benchCards(count: number, fleetKey: string): { uid: string; cardRef: string }[] {
  const out: { uid: string; cardRef: string }[] = [];
  for (let i = 0; i < count; i++) {
    const uid = `04${(0xa00000 + i).toString(16).toUpperCase().padStart(6, '0')}B1C2D3`;
    out.push({ uid, cardRef: pseudonymiseCard(uid, fleetKey) });
  }
  return out;
}

/** Per-reader tap state: gap-free seq, open visits per card, one boot. */
export class TapSource {
  nextSeq = 1;
  private readonly open = new Map<string, string>();
  private readonly bootId: string;
  private readonly bootAt: number;

  constructor(
    readonly readerId: string,
    private readonly cardRefs: readonly string[],
    private readonly pick: () => number,
  ) {
    this.bootId = `b-${readerId}`.slice(0, 64);
    this.bootAt = Date.now();
  }

  time(wallMs: number) {
    return {
      wallMs: Math.max(BENCH_EPOCH_FLOOR, Math.round(wallMs)),
      bootId: this.bootId,
      monoMs: Math.max(0, Math.round(wallMs - this.bootAt)),
      synced: true,
    };
  }

  /** The next tap: a start when the card has no open visit here, else a stop. */
  next(wallMs: number): TapEventInput {
    const card = this.cardRefs[
      Math.floor(this.pick() * this.cardRefs.length) % this.cardRefs.length
    ] as string;
    const seq = this.nextSeq++;
    const openVisit = this.open.get(card);
    let visitId: string;
    let decision: 'start' | 'stop';
    if (openVisit) {
      this.open.delete(card);
      visitId = openVisit;
      decision = 'stop';
    } else {
      visitId = `${this.readerId}.v${seq}`.slice(0, 64);
      this.open.set(card, visitId);
      decision = 'start';
    }
    return {
      readerId: this.readerId,
      seq,
      eventId: `${this.readerId}.${this.bootId}.${seq}`.slice(0, 64),
      card,
      decision,
      visitId,
      time: this.time(wallMs),
    };
  }

  /** A validated, encoded EventBatch (protocol `encode`). */
  batch(events: TapEventInput[], wallMs: number): Buffer {
    return encode('events', { schemaVersion: 1, readerId: this.readerId, sentAt: this.time(wallMs), events });
  }
}

/** Small seeded PRNG (mulberry32) so runs pick the same cards. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
