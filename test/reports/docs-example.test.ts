/** The worked example in docs/reports.md, read from the file: its facts give exactly its figures. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Match, PlannedVisit } from '../../gateway/src/care/model.js';
import { MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import { runContinuity, runExecuted } from '../../gateway/src/reports/run.js';
import type { Registries, ReportVisit } from '../../gateway/src/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';

interface DocFacts {
  monday: string;
  clients: Array<{ clientRef: string; birthYear: number; careContact: string | null; palliative: boolean }>;
  staff: Array<{ staffRef: string; category: Registries['staff'][number]['category'] }>;
  everyDay: Array<{
    client: string;
    plan: string | null;
    minutes: number;
    staff: string[];
    made: [string, string];
  }>;
  changes: Array<{ date: string; client: string; plan: string; staff: string[] }>;
  extra: Array<{ date: string; client: string; staff: string; made: [string, string] }>;
}

const doc = readFileSync(new URL('../../docs/reports.md', import.meta.url), 'utf8');
const block = (tag: string): unknown => {
  const m = new RegExp('```json ' + tag + '\\n([\\s\\S]*?)```').exec(doc);
  if (!m) throw new Error(`docs/reports.md has no \`\`\`json ${tag} block`);
  return JSON.parse(m[1]!);
};

const DAY = 86_400_000;
/** September 2026 is summer time: UTC+2 on every date of the example. */
const at = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+02:00`);
const addDays = (date: string, n: number) =>
  new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY).toISOString().slice(0, 10);

function factsOf(d: DocFacts) {
  const registries: Registries = {
    providers: [{ providerId: 'P', name: 'Kommunen', kind: 'municipal' }],
    areas: [{ areaId: 'N', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null }],
    teams: [],
    serviceCodes: [{ code: 'PC', label: 'Omvårdnad', kind: 'personal-care', standardMinutes: null }],
    clients: d.clients.map((c) => ({
      clientRef: c.clientRef,
      areaId: 'N',
      teamId: null,
      providerId: 'P',
      birthYear: c.birthYear,
      kkikEligible: null,
      decisionTypes: ['personal-care'],
      careContactStaffRef: c.careContact,
      palliative: c.palliative,
      activeFrom: '2026-01-01',
      activeTo: null,
      absences: [],
    })),
    staff: d.staff.map((s) => ({
      ...s,
      teamId: null,
      areaId: 'N',
      activeFrom: '2026-01-01',
      activeTo: null,
    })),
  };
  const planned: PlannedVisit[] = [];
  const matches: Match[] = [];
  const visits: ReportVisit[] = [];
  const made = (
    client: string,
    staff: string,
    date: string,
    [from, to]: [string, string],
    groupId: string | null,
  ) => {
    const startedAtMs = at(date, from);
    const endedAtMs = at(to < from ? addDays(date, 1) : date, to);
    const v: ReportVisit = {
      readerId: `rd-${client}`,
      visitId: `${date}T${from}-${staff}`,
      clientRef: client,
      staffRef: staff,
      cardRef: `card-${staff}`,
      groupId,
      state: 'closed',
      startedAtMs,
      endedAtMs,
      endReason: 'tap',
      timeQuality: 'synced',
      anomalies: [],
      corrected: false,
      updatedAtMs: endedAtMs,
      receivedAtMs: endedAtMs,
    };
    visits.push(v);
    return `${v.readerId}/${v.visitId}`;
  };
  for (let i = 0; i < 14; i++) {
    const date = addDays(d.monday, i);
    for (const e of d.everyDay) {
      const change = d.changes.find((c) => c.date === date && c.client === e.client && c.plan === e.plan);
      const staff = change?.staff ?? e.staff;
      const group = staff.length > 1 ? `${date}T${e.made[0]}-${staff[0]}` : null;
      const keys = staff.map((s) => made(e.client, s, date, e.made, group));
      if (e.plan === null) {
        matches.push({
          plannedVisitId: null,
          clientRef: e.client,
          status: 'unplanned',
          executedKeys: keys,
          lateMinutes: null,
          reasonCode: null,
          localDate: date,
        });
        continue;
      }
      const plannedVisitId = `${e.client}-${date}-${e.plan}`;
      planned.push({
        plannedVisitId,
        clientRef: e.client,
        localDate: date,
        localStart: e.plan,
        startMs: at(date, e.plan),
        plannedMinutes: e.minutes,
        serviceCodes: [{ code: 'PC', standardMinutes: null, grantedMinutes: null }],
        staffCount: staff.length === 2 ? 2 : 1,
        plannedStaffRefs: staff,
        planVersionId: 1,
      });
      matches.push({
        plannedVisitId,
        clientRef: e.client,
        status: 'matched',
        executedKeys: keys,
        lateMinutes: 0,
        reasonCode: null,
        localDate: date,
      });
    }
  }
  for (const x of d.extra) made(x.client, x.staff, x.date, x.made, null);
  return { registries, planned, matches, visits };
}

describe('docs/reports.md worked example', () => {
  const facts = block('example-facts') as DocFacts;
  const expected = block('example-expected') as {
    executedDay: { date: string; byClient: Record<string, Record<string, number>> };
    continuity: Record<string, unknown> & { excluded: Array<{ clientRef: string; reason: string }> };
  };
  const source = new MemoryReportSource(factsOf(facts));
  const clock = new ReportClock();

  it('executed vs planned on the first day, per client', async () => {
    const { date } = expected.executedDay;
    const r = await runExecuted(
      source,
      { fromDate: date, toDate: date, period: 'day', groupBy: ['client'] },
      clock,
    );
    const got = Object.fromEntries(
      r.rows.map((x): [string, Record<string, number | null>] => [
        x.clientRef ?? '',
        {
          plannedMinutes: x.plannedMinutes,
          executedMinutes: x.executedMinutes,
          executedStaffMinutes: x.executedStaffMinutes,
          unplanned: x.unplanned,
          ratio: x.ratio,
        },
      ]),
    );
    expect(got).toEqual(expected.executedDay.byClient);
  });

  it('continuity over the 14 days', async () => {
    const r = await runContinuity(source, { fromDate: facts.monday }, clock);
    expect({
      clients: r.clients,
      mean: r.mean,
      median: r.median,
      excluded: r.excluded.map((e) => ({ clientRef: e.clientRef, reason: e.reason })),
      meanWithoutDoubleStaffing: r.breakdown.meanWithoutDoubleStaffing,
      doubleStaffingRaise: r.breakdown.doubleStaffingRaise,
      meanWithoutPalliative: r.breakdown.meanWithoutPalliative,
      palliativeRaise: r.breakdown.palliativeRaise,
      careContactShare: r.careContact.share,
    }).toEqual(expected.continuity);
  });
});
