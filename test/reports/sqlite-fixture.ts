/**
 * Writes report visits into a real gateway SQLite file (the gateway's own schema): one `visits` row per
 * visit, its start and stop taps as `events` rows (the stop received at the visit's `receivedAtMs`), a
 * `visit_audit` row for every corrected visit and a `withdrawn` row in `visit_corrections` for a withdrawn
 * one (the corrections tables must exist then). Used by the SQLite source's test and the report bench.
 */
import type Database from 'better-sqlite3';
import type { Match, PlannedVisit } from '../../gateway/src/care/model.js';
import type { Registries, ReportSource, ReportVisit } from '../../gateway/src/reports/source.js';
import type { ReportClock } from '../../gateway/src/reports/time.js';
import { municipality } from '../../bench/lib/report-data.js';

/** The same source computing in memory: everything but its SQL aggregation (the reports' reference). */
export const inMemory = (s: ReportSource): ReportSource => ({
  registries: () => s.registries(),
  planned: (w) => s.planned(w),
  matches: (w) => s.matches(w),
  executed: (w) => s.executed(w),
  ...(s.tapAssurance ? { tapAssurance: (w) => s.tapAssurance!(w) } : {}),
});

/**
 * A seeded municipality of 40 clients over six weeks across the spring DST change (2026-03-09..04-19) for
 * the continuity measure: safety-alarm responses planned for some visits (their visits are not home care),
 * unknown cards, visits delivered 30 hours late, pairs whose second staff member came first or names
 * another client, and taps withdrawn as mistakes (alone and in pairs).
 */
export function continuityMunicipality(): ReturnType<typeof municipality> {
  const m = municipality({
    clients: 40,
    areas: 3,
    staffPerArea: 8,
    fromDate: '2026-03-09',
    days: 42,
    withPlan: true,
    seed: 11,
  });
  m.registries.serviceCodes.push({
    code: 'LARM',
    label: 'Trygghetslarm',
    kind: 'safety-alarm',
    standardMinutes: null,
  });
  const larm = [{ code: 'LARM', standardMinutes: null, grantedMinutes: null }];
  for (const [i, p] of m.planned.entries()) if (i % 13 === 5) p.serviceCodes = larm;
  for (const v of m.visits) {
    const n = Number(v.visitId.slice(1));
    if (n % 61 === 7) v.staffRef = null;
    if (n % 29 === 4 && v.endedAtMs !== null) v.receivedAtMs = v.endedAtMs + 30 * 3_600_000; // 30 h late
    // The second of a pair sometimes starts first (the first counted staff is by start, then staff ref).
    if (v.groupId !== null && v.groupId !== v.visitId && n % 2 === 0 && v.startedAtMs !== null)
      v.startedAtMs -= 2 * 60_000;
    // Now and then the pair's visits name different clients (the reader moved between them): the occasion
    // belongs to the client of its earliest visit, each visit's quality to its own.
    if (v.groupId !== null && v.groupId !== v.visitId && n % 3 === 0) v.clientRef = 'c1';
    if (n % 47 === 3) {
      v.withdrawn = true;
      v.corrected = true;
    }
  }
  return m;
}

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
  const withdraw = visits.some((v) => v.withdrawn === true)
    ? db.prepare(
        `INSERT INTO visit_corrections (kind, reader_id, visit_id, reason_code, note, actor, request_id, at_ms,
           before_json, after_json) VALUES ('withdrawn', ?, ?, 'tap-by-mistake', NULL, 'test', NULL, ?, ?, ?)`,
      )
    : null;
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
      if (v.withdrawn === true)
        withdraw!.run(
          v.readerId,
          v.visitId,
          v.updatedAtMs,
          JSON.stringify({ startedAtMs: v.startedAtMs, endedAtMs: v.endedAtMs }),
          JSON.stringify({ startedAtMs: null, endedAtMs: null }),
        );
    }
  })();
}

/**
 * Writes registries, a plan and its matches into the care plan's tables (the rows the care module writes:
 * care_* JSON registries, active planned visits, plan matches, per-visit matches, reasons). For fixtures
 * and the bench only: the real import is tested in test/reports/care-import.test.ts.
 */
export function writeCare(
  db: Database.Database,
  f: { registries: Registries; planned: readonly PlannedVisit[]; matches: readonly Match[] },
  visits: readonly ReportVisit[],
  clock: ReportClock,
): void {
  const reg = (table: string, key: string, rows: ReadonlyArray<Record<string, unknown>>, extra?: string) => {
    const st = db.prepare(
      extra
        ? `INSERT OR REPLACE INTO ${table} (${key}, ${extra}, json, updated_at_ms) VALUES (?, ?, ?, 0)`
        : `INSERT OR REPLACE INTO ${table} (${key}, json, updated_at_ms) VALUES (?, ?, 0)`,
    );
    const camel = (s: string) => s.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
    for (const r of rows)
      if (extra) st.run(r[camel(key)], r[camel(extra)] ?? null, JSON.stringify(r));
      else st.run(r[camel(key)], JSON.stringify(r));
  };
  const areaOf = new Map(f.registries.clients.map((c) => [c.clientRef, c.areaId]));
  const pv = db.prepare(
    `INSERT INTO care_planned_visits (plan_version_id, planned_visit_id, area_id, client_ref, local_date, local_start,
       start_ms, planned_minutes, service_codes_json, staff_count, staff_refs_json, active)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
  );
  const pm = db.prepare(
    `INSERT OR REPLACE INTO care_plan_matches (planned_visit_id, area_id, client_ref, start_ms, local_date, staff_count,
       window_end_ms, executed_keys_json, late_minutes, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const reason = db.prepare(
    `INSERT OR REPLACE INTO care_reasons (planned_visit_id, reason_code, note, set_by, set_at_ms) VALUES (?, ?, '', 'test', 0)`,
  );
  const vm = db.prepare(
    `INSERT OR REPLACE INTO care_visit_matches (executed_key, client_ref, time_ms, local_date, planned_visit_id)
     VALUES (?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    reg('care_providers', 'provider_id', f.registries.providers);
    reg('care_areas', 'area_id', f.registries.areas);
    reg('care_teams', 'team_id', f.registries.teams, 'area_id');
    reg('care_clients', 'client_ref', f.registries.clients, 'area_id');
    reg('care_staff', 'staff_ref', f.registries.staff, 'area_id');
    reg('care_service_codes', 'code', f.registries.serviceCodes);
    const plannedById = new Map<string, PlannedVisit>();
    for (const p of f.planned) {
      plannedById.set(p.plannedVisitId, p);
      pv.run(
        p.planVersionId,
        p.plannedVisitId,
        areaOf.get(p.clientRef) ?? '(unknown)',
        p.clientRef,
        p.localDate,
        p.localStart,
        p.startMs,
        p.plannedMinutes,
        JSON.stringify(p.serviceCodes),
        p.staffCount,
        JSON.stringify(p.plannedStaffRefs),
      );
    }
    const plannedOfKey = new Map<string, string>();
    for (const m of f.matches) {
      if (m.plannedVisitId === null) continue;
      const p = plannedById.get(m.plannedVisitId);
      if (!p) continue;
      for (const k of m.executedKeys) plannedOfKey.set(k, m.plannedVisitId);
      pm.run(
        m.plannedVisitId,
        areaOf.get(m.clientRef) ?? '(unknown)',
        m.clientRef,
        p.startMs,
        m.localDate,
        p.staffCount,
        p.startMs + 3_600_000,
        JSON.stringify(m.executedKeys),
        m.lateMinutes,
        m.status,
      );
      if (m.reasonCode !== null) reason.run(m.plannedVisitId, m.reasonCode);
    }
    for (const v of visits) {
      if (v.clientRef === null) continue;
      const t = v.startedAtMs ?? v.endedAtMs;
      if (t === null) continue;
      const k = `${v.readerId}/${v.visitId}`;
      vm.run(k, v.clientRef, t, clock.localDate(t), plannedOfKey.get(k) ?? null);
    }
  })();
}
