/**
 * Synthetic municipalities for the report bench rows: registries, a plan, matches and executed visits,
 * the visits written into a real gateway SQLite file (the gateway's own schema). Deterministic (seeded).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Match, PlannedVisit } from '../../gateway/src/care/model.js';
import type { Registries, ReportVisit } from '../../gateway/src/reports/source.js';
import { addDays, datesBetween, ReportClock } from '../../gateway/src/reports/time.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { writeCare, writeVisits } from '../../test/reports/sqlite-fixture.js';

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Municipality {
  registries: Registries;
  planned: PlannedVisit[];
  matches: Match[];
  visits: ReportVisit[];
}

const SLOTS = [
  { time: '08:00', minutes: 30 },
  { time: '12:00', minutes: 20 },
  { time: '17:00', minutes: 25 },
  { time: '21:00', minutes: 15 },
];

/**
 * `clients` clients in `areas` areas (a team each), `staffPerArea` care staff per area, four planned visits a
 * day per client (every 10th client's morning visit double-staffed), each made with some jitter, 1 in 50
 * missed, 1 in 200 auto-closed, plus a nurse visit every 7th day for every 5th client (unplanned).
 */
export function municipality(opts: {
  clients: number;
  areas: number;
  staffPerArea: number;
  fromDate: string;
  days: number;
  withPlan: boolean;
  seed?: number;
}): Municipality {
  const rand = rng(opts.seed ?? 42);
  const clock = new ReportClock();
  const areaIds = Array.from({ length: opts.areas }, (_, i) => `area-${i}`);
  const registries: Registries = {
    providers: [{ providerId: 'P', name: 'Kommunen', kind: 'municipal' }],
    areas: areaIds.map((areaId) => ({
      areaId,
      name: areaId,
      lateAfterMinutes: null,
      missedAfterMinutes: null,
    })),
    teams: areaIds.map((areaId) => ({ teamId: `team-${areaId}`, areaId, name: areaId })),
    serviceCodes: [
      { code: 'PC', label: 'Omvårdnad', kind: 'personal-care', standardMinutes: 20 },
      { code: 'SV', label: 'Service', kind: 'service', standardMinutes: 10 },
    ],
    clients: Array.from({ length: opts.clients }, (_, i) => ({
      clientRef: `c${i}`,
      areaId: areaIds[i % opts.areas]!,
      teamId: `team-${areaIds[i % opts.areas]!}`,
      providerId: 'P',
      birthYear: 1925 + (i % 45),
      kkikEligible: null,
      decisionTypes: ['personal-care'],
      careContactStaffRef: `s${i % opts.areas}-${i % opts.staffPerArea}`,
      palliative: i % 40 === 0,
      activeFrom: '2020-01-01',
      activeTo: null,
      absences: [],
    })),
    staff: [
      ...areaIds.flatMap((areaId, a) =>
        Array.from({ length: opts.staffPerArea }, (_, j) => ({
          staffRef: `s${a}-${j}`,
          teamId: `team-${areaId}`,
          areaId,
          category: 'care' as const,
          activeFrom: '2020-01-01',
          activeTo: null,
        })),
      ),
      {
        staffRef: 'nurse',
        teamId: null,
        areaId: null,
        category: 'licensed-health',
        activeFrom: '2020-01-01',
        activeTo: null,
      },
    ],
  };
  const codes: PlannedVisit['serviceCodes'] = [
    { code: 'PC', standardMinutes: 20, grantedMinutes: 20 },
    { code: 'SV', standardMinutes: 10, grantedMinutes: null },
  ];
  const planned: PlannedVisit[] = [];
  const matches: Match[] = [];
  const visits: ReportVisit[] = [];
  const dates = datesBetween(opts.fromDate, addDays(opts.fromDate, opts.days - 1));
  let n = 0;
  for (const [d, date] of dates.entries()) {
    const midnight = clock.startOfDay(date);
    for (let i = 0; i < opts.clients; i++) {
      const area = i % opts.areas;
      const pick = () => `s${area}-${Math.floor(rand() * opts.staffPerArea)}`;
      const reader = `rd-${i}`;
      for (const [k, slot] of SLOTS.entries()) {
        const [hh, mm] = slot.time.split(':').map(Number) as [number, number];
        const startMs = midnight + (hh * 60 + mm) * 60_000;
        const plannedVisitId = `p${i}-${date}-${k}`;
        const double = k === 0 && i % 10 === 0;
        if (opts.withPlan)
          planned.push({
            plannedVisitId,
            clientRef: `c${i}`,
            localDate: date,
            localStart: slot.time,
            startMs,
            plannedMinutes: slot.minutes,
            serviceCodes: codes,
            staffCount: double ? 2 : 1,
            plannedStaffRefs: [],
            planVersionId: 1,
          });
        if (rand() < 0.02) {
          if (opts.withPlan)
            matches.push({
              plannedVisitId,
              clientRef: `c${i}`,
              status: 'missed',
              executedKeys: [],
              lateMinutes: null,
              reasonCode: 'client-cancelled',
              localDate: date,
            });
          continue;
        }
        const start = startMs + Math.floor(rand() * 20 - 5) * 60_000;
        const len = Math.max(1, Math.round(slot.minutes + (rand() * 16 - 6))) * 60_000;
        const autoClose = rand() < 0.005;
        const keys: string[] = [];
        const staffHere = double ? [pick(), pick()] : [pick()];
        if (staffHere[1] === staffHere[0])
          staffHere[1] = `s${area}-${(Number(staffHere[0]!.split('-')[1]) + 1) % opts.staffPerArea}`;
        const groupId = double ? `v${n}` : null;
        for (const s of staffHere) {
          const visitId = `v${n++}`;
          visits.push({
            readerId: reader,
            visitId,
            clientRef: `c${i}`,
            staffRef: s,
            cardRef: `card-${s}`,
            groupId,
            state: 'closed',
            startedAtMs: start,
            endedAtMs: autoClose ? start + 12 * 3_600_000 : start + len,
            endReason: autoClose ? 'auto-close' : 'tap',
            timeQuality: 'synced',
            anomalies: autoClose ? ['missing-stop'] : [],
            corrected: false,
            updatedAtMs: start + len,
            receivedAtMs: start + len + 1000,
          });
          keys.push(`${reader}/${visitId}`);
        }
        if (opts.withPlan)
          matches.push({
            plannedVisitId,
            clientRef: `c${i}`,
            status: 'matched',
            executedKeys: keys,
            lateMinutes: 0,
            reasonCode: null,
            localDate: date,
          });
      }
      if (d % 7 === 3 && i % 5 === 0) {
        const start = midnight + 13 * 3_600_000;
        visits.push({
          readerId: reader,
          visitId: `v${n++}`,
          clientRef: `c${i}`,
          staffRef: 'nurse',
          cardRef: 'card-nurse',
          groupId: null,
          state: 'closed',
          startedAtMs: start,
          endedAtMs: start + 15 * 60_000,
          endReason: 'tap',
          timeQuality: 'synced',
          anomalies: [],
          corrected: false,
          updatedAtMs: start,
          receivedAtMs: start + 15 * 60_000,
        });
      }
    }
  }
  return { registries, planned, matches, visits };
}

/**
 * Writes the municipality into a fresh gateway database in `dir` (the gateway's schema with the care plan's
 * tables: visits and their taps, registries, plan, matches); returns its path and size after a checkpoint.
 */
/** The gateway's migrations as its composition root applies them (gateway/index.ts). */
export const GATEWAY_MIGRATIONS = [
  ...sqliteMigrations,
  ...careMigrations,
  ...correctionMigrations,
  ...reportMigrations,
];

export function writeDatabase(dir: string, m: Municipality): { path: string; bytes: number } {
  const path = join(dir, 'gateway.db');
  const db = openDatabase(path, GATEWAY_MIGRATIONS);
  db.pragma('synchronous = OFF'); // bench data load only
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, new ReportClock());
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { path, bytes: statSync(path).size };
}
