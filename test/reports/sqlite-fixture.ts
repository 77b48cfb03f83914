/**
 * Writes report visits into a real gateway SQLite file (the gateway's own schema): one `visits` row per
 * visit, its start and stop taps as `events` rows (the stop received at the visit's `receivedAtMs`), and a
 * `visit_audit` row for every corrected visit. Used by the SQLite source's test and the report bench.
 */
import type Database from 'better-sqlite3';
import type { ReportVisit } from '../../gateway/src/reports/source.js';

export function writeVisits(db: Database.Database, visits: readonly ReportVisit[]): void {
  const seqOf = new Map<string, number>();
  const nextSeq = (reader: string) => {
    const s = (seqOf.get(reader) ?? 0) + 1;
    seqOf.set(reader, s);
    return s;
  };
  const visit = db.prepare(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
       start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
  );
  const event = db.prepare(
    `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, '{}', ?, '{}')`,
  );
  const audit = db.prepare(
    `INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, 'close', 'test', 'fixture', ?)`,
  );
  db.transaction(() => {
    for (const v of visits) {
      const startSeq = v.startedAtMs === null ? null : nextSeq(v.readerId);
      const endSeq = v.endedAtMs === null ? null : nextSeq(v.readerId);
      if (startSeq !== null) event.run(v.readerId, startSeq, v.startedAtMs);
      if (endSeq !== null) event.run(v.readerId, endSeq, v.receivedAtMs ?? v.endedAtMs);
      visit.run(
        v.readerId,
        v.visitId,
        v.clientRef,
        v.cardRef,
        v.staffRef,
        v.groupId,
        v.state,
        v.startedAtMs,
        startSeq,
        v.endedAtMs,
        endSeq,
        v.endReason,
        v.timeQuality,
        JSON.stringify(v.anomalies),
        v.updatedAtMs,
      );
      if (v.corrected) audit.run(v.readerId, v.visitId, v.updatedAtMs);
    }
  })();
}
