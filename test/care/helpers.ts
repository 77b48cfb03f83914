import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { CarePlan, type CarePlanConfig } from '../../gateway/src/care/service.js';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { createSqliteCareStore } from '../../gateway/src/care/sqlite/store.js';
import type { ExecutedVisit } from '../../gateway/src/care/model.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import type { Clock } from '../../protocol/index.js';

/** A clock moved by hand; timers never fire by themselves (tests call tick()). */
export function manualClock(startMs: number): Clock & { set(ms: number): void; advance(ms: number): void } {
  let now = startMs;
  return {
    now: () => now,
    monotonic: () => now,
    setTimeout: () => ({}) as never,
    clearTimeout: () => undefined,
    set: (ms) => {
      now = ms;
    },
    advance: (ms) => {
      now += ms;
    },
  };
}

export interface CareFixture {
  dir: string;
  db: Db;
  clock: ReturnType<typeof manualClock>;
  plan: CarePlan;
  outbox: SqliteOutbox;
  close(): void;
}

/** A real SQLite file with the gateway's schema plus the care tables, and a CarePlan on it. */
export function careFixture(startMs: number, config: Partial<CarePlanConfig> = {}): CareFixture {
  const dir = mkdtempSync(join(tmpdir(), 'vt-care-'));
  const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...careMigrations]);
  const outbox = new SqliteOutbox({ db });
  const clock = manualClock(startMs);
  const store = createSqliteCareStore({ db, enqueue: (e, now) => outbox.enqueue(e, now) });
  const plan = new CarePlan({ store, clock, logger: pino({ level: 'silent' }), config });
  return {
    dir,
    db,
    clock,
    plan,
    outbox,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
/** Writes a row into the gateway's visits table as the visit engine would. */
export function putVisit(
  db: Db,
  v: Partial<ExecutedVisit> & { readerId: string; visitId: string; clientRef: string | null },
  updatedAtMs: number,
): void {
  seq++;
  db.prepare(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
       ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?)
     ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref, staff_ref = excluded.staff_ref,
       state = excluded.state, started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms,
       end_reason = excluded.end_reason, updated_at_ms = excluded.updated_at_ms`,
  ).run(
    v.readerId,
    v.visitId,
    v.clientRef,
    v.cardRef ?? `c1_${'0'.repeat(30)}${String(seq % 100).padStart(2, '0')}`,
    v.staffRef ?? null,
    v.groupId ?? null,
    v.state ?? (v.endedAtMs ? 'closed' : 'open'),
    v.startedAtMs ?? null,
    seq,
    v.endedAtMs ?? null,
    v.endedAtMs ? seq + 1 : null,
    v.endReason ?? (v.endedAtMs ? 'tap' : null),
    v.timeQuality ?? 'synced',
    updatedAtMs,
  );
}
