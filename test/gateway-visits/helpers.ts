/** Test helpers for the visit engine: a fake clock, a temp gateway DB, and ingest-like event inserts. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { TapEvent } from '../../protocol/index.js';
import type { Clock, EventTime, TimerHandle, VisitEvent } from '../../protocol/index.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { SqliteVisitSide } from '../../gateway/src/store/sqlite/visits.js';
import type { Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { createVisitPipeline } from '../../gateway/src/visits/pipeline.js';
import type { VisitPipeline, VisitPipelineOptions } from '../../gateway/src/visits/pipeline.js';

export const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

/** A manual clock: timers fire only when the test advances time. */
export class FakeClock implements Clock {
  private wall: number;
  private mono = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  constructor(startMs = T0) {
    this.wall = startMs;
  }
  now(): number {
    return this.wall;
  }
  monotonic(): number {
    return this.mono;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.mono + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h as unknown as number);
  }
  get pendingTimers(): number {
    return this.timers.size;
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (let i = 0; i < 100_000; i++) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.wall += next[1].at - this.mono;
      this.mono = next[1].at;
      next[1].fn();
    }
    this.wall += end - this.mono;
    this.mono = end;
  }
}

export const silentLogger = (): pino.Logger => pino({ level: 'silent' });

export const card = (n: number): string => `c1_${n.toString(16).padStart(32, '0')}`;

export interface TestEnv {
  dir: string;
  db: Db;
  clock: FakeClock;
  metrics: MetricsRegistry;
  pipeline: VisitPipeline;
  close(): Promise<void>;
}

/** A temp DB with the real ingest + visit migrations and a pipeline (fake clock unless `clock` is given). */
export function createEnv(over: Partial<VisitPipelineOptions> & { fakeClock?: FakeClock } = {}): TestEnv {
  const dir = mkdtempSync(join(tmpdir(), 'vt-visits-'));
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  const { fakeClock, ...rest } = over;
  const clock = fakeClock ?? new FakeClock();
  const metrics = new MetricsRegistry();
  const pipeline = createVisitPipeline({
    store: new SqliteVisitSide(db, rest.clock ?? clock),
    clock,
    random: () => 0.5,
    logger: silentLogger(),
    metrics,
    // Every engine test also cross-checks the in-memory visit index against SQLite.
    verifyVisitIndex: true,
    ...rest,
  });
  return {
    dir,
    db,
    clock,
    metrics,
    pipeline,
    async close() {
      await pipeline.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Provisions a reader as the ingest does (readers row + client history). */
export function addReader(db: Db, readerId: string, clientRef: string | null, fromMs = 0): void {
  db.prepare(
    `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at)
     VALUES (?, 'test', ?, NULL, NULL, ?)
     ON CONFLICT (reader_id) DO UPDATE SET client_ref = excluded.client_ref`,
  ).run(readerId, clientRef, fromMs);
  db.prepare('INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES (?, ?, ?)').run(
    readerId,
    clientRef,
    fromMs,
  );
}

export type TapInput = Omit<TapEvent, 'readerId' | 'seq' | 'eventId' | 'time'> & {
  time?: Partial<EventTime>;
};

/** Builds an event with sane defaults: synced time at T0 + seq minutes, boot 'boot1'. */
export function tap(readerId: string, seq: number, e: TapInput): TapEvent {
  const wallMs = e.time?.wallMs ?? T0 + seq * 60_000;
  return TapEvent.parse({
    ...e,
    readerId,
    seq,
    eventId: `${readerId}-e${seq}`,
    time: { wallMs, bootId: 'boot1', monoMs: wallMs - T0 + 1000, synced: true, ...e.time },
  });
}

/**
 * Stores a batch the way the ingest does: insert-or-ignore by (reader, seq), then recompute the
 * reader's contiguous prefix. Returns the new contiguous_upto.
 */
export function ingestBatch(
  db: Db,
  b: { readerId: string; events: TapEvent[]; sentAt?: EventTime; receivedAtMs?: number },
): number {
  const sentAt: EventTime = b.sentAt ?? { wallMs: T0, bootId: 'boot1', monoMs: 1000, synced: true };
  return db.transaction(() => {
    const ins = db.prepare(
      'INSERT OR IGNORE INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
    );
    for (const e of b.events) {
      ins.run(b.readerId, e.seq, JSON.stringify(e), b.receivedAtMs ?? T0, JSON.stringify(sentAt));
    }
    const cur = db
      .prepare('SELECT contiguous_upto FROM reader_seq WHERE reader_id = ?')
      .pluck()
      .get(b.readerId) as number | undefined;
    let upto = cur ?? 0;
    const has = db.prepare('SELECT 1 FROM events WHERE reader_id = ? AND seq = ?').pluck();
    for (let i = 0; i < 1_000_000 && has.get(b.readerId, upto + 1) !== undefined; i++) upto++;
    const max = db
      .prepare('SELECT MAX(seq) FROM events WHERE reader_id = ?')
      .pluck()
      .get(b.readerId) as number;
    db.prepare(
      `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES (?, ?, ?)
       ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
    ).run(b.readerId, upto, max);
    return upto;
  })();
}

/** Every outbox event in delivery (id) order. */
export function outboxEvents(db: Db): VisitEvent[] {
  return (db.prepare('SELECT event_json FROM outbox ORDER BY id').pluck().all() as string[]).map(
    (j) => JSON.parse(j) as VisitEvent,
  );
}

export const ofType = <K extends VisitEvent['type']>(events: VisitEvent[], type: K) =>
  events.filter((e): e is Extract<VisitEvent, { type: K }> => e.type === type);
