/**
 * Generates a seeded care plan: areas of about 20 clients, clients with 1-4 visits a day at the usual
 * times (morning, lunch, afternoon, evening), some double-staffed (lifts), registered hospital stays,
 * staff on day and evening shifts five days of seven, substitutes, and the planned staff a planning
 * system would put on each visit (greedy along the route; a visit nobody fits gets no planned staff).
 */
import { addDays } from '../../gateway/src/care/time.js';
import { createRng } from '../prng.js';
import type { PlanHome, PlanParams, PlanVisitRow, Shift, SimPlan } from './types.js';

export const DEFAULT_PLAN_FROM = '2026-11-23';
const TZ = 'Europe/Stockholm';

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
const hhmm = (min: number): string => `${pad(Math.floor(min / 60))}:${pad(min % 60)}`;

/**
 * Visit slots by visits a day: [centre, spread] in minutes after local midnight; a visit starts at the
 * centre ± spread (15-min steps), then the planner may move it up to 30 min later. Starts of one client
 * stay at least 2 h 15 min apart, so a visit up to 60 min late is always nearer its own plan than the next.
 */
const SLOTS: Record<number, Array<[number, number]>> = {
  1: [[10 * 60 + 30, 120]],
  2: [
    [8 * 60 + 30, 90],
    [18 * 60, 75],
  ],
  3: [
    [8 * 60 + 15, 75],
    [12 * 60 + 45, 45],
    [18 * 60 + 30, 60],
  ],
  4: [
    [7 * 60 + 45, 45],
    [11 * 60 + 45, 30],
    [15 * 60 + 45, 30],
    [20 * 60, 45],
  ],
};
const SHIFT_MIN: Record<Exclude<Shift, 'off'>, [number, number]> = {
  day: [7 * 60, 15 * 60 + 30],
  evening: [14 * 60, 22 * 60 + 30],
};

/** Travel minutes between two homes (25 km/h plus 3 min parking). */
export const travelMinutes = (a: PlanHome, b: PlanHome): number =>
  a === b ? 0 : Math.round((Math.hypot(a.x - b.x, a.y - b.y) / 25) * 60) + 3;

export function generatePlan(p: PlanParams): SimPlan {
  const rng = createRng(`plan-${p.seed}`);
  const fromDate = p.fromDate ?? DEFAULT_PLAN_FROM;
  const areaCount = Math.max(1, Math.round(p.clients / 20));
  const areas = Array.from({ length: areaCount }, (_, i) => ({
    areaId: `area-${i + 1}`,
    name: `Område ${i + 1}`,
    lateAfterMinutes: null,
    missedAfterMinutes: null,
  }));
  const teams = areas.map((a, i) => ({ teamId: `team-${i + 1}`, areaId: a.areaId, name: `Grupp ${i + 1}` }));
  const providers = [{ providerId: 'kommunen', name: 'Hemtjänsten', kind: 'municipal' as const }];
  const serviceCodes = [
    { code: 'HYG', label: 'Personlig hygien', kind: 'personal-care' as const, standardMinutes: 20 },
    { code: 'MAT', label: 'Måltid', kind: 'service' as const, standardMinutes: 15 },
    { code: 'TIL', label: 'Tillsyn', kind: 'personal-care' as const, standardMinutes: 10 },
  ];

  // Staff: per area, the rest substitutes (every fifth) shared by all areas.
  const staff: SimPlan['registry']['staff'] = [];
  const shifts: Record<string, Shift[]> = {};
  const staffRng = rng.fork('staff');
  const nth = new Map<string, number>(); // per area (or the pool): the how-many-th member this is
  for (let i = 0; i < p.staff; i++) {
    const ref = `staff-${pad(i + 1, 3)}`;
    const substitute = i % 5 === 4;
    const area = areas[(i - Math.floor(i / 5)) % areaCount]!; // care staff round-robin over the areas
    const group = substitute ? 'pool' : area.areaId;
    const j = nth.get(group) ?? 0;
    nth.set(group, j + 1);
    staff.push({
      staffRef: ref,
      teamId: substitute ? null : `team-${areas.indexOf(area) + 1}`,
      areaId: substitute ? null : area.areaId,
      category: substitute ? 'substitute' : 'care',
      activeFrom: '2026-01-01',
      activeTo: null,
    });
    // Within each area (and the pool): seven of ten on days (mornings are busiest), three on evenings;
    // five days of seven, the days off spread over the week.
    const kind: Exclude<Shift, 'off'> = j % 10 === 1 || j % 10 === 4 || j % 10 === 7 ? 'evening' : 'day';
    const off = (j * 3 + staffRng.int(0, 1)) % 7;
    shifts[ref] = Array.from({ length: p.days }, (_, d) =>
      (d - off + 7) % 7 === 5 || (d - off + 7) % 7 === 6 ? 'off' : kind,
    );
  }

  // Clients and homes: clustered by area, some double-staffed, some with a hospital stay this period.
  const homes: PlanHome[] = [];
  const clients: SimPlan['registry']['clients'] = [];
  const perDay = new Map<string, number>();
  const double = new Set<string>();
  const cRng = rng.fork('clients');
  for (let i = 0; i < p.clients; i++) {
    const ref = `client-${pad(i + 1, 4)}`;
    const a = Math.floor((i * areaCount) / p.clients);
    homes.push({
      clientRef: ref,
      readerId: `r-${pad(i + 1, 4)}`,
      x: (a % 5) * 4 + cRng.next() * 3,
      y: Math.floor(a / 5) * 4 + cRng.next() * 3,
    });
    perDay.set(ref, cRng.pick([1, 1, 1, 2, 2, 2, 3, 4]));
    if (cRng.chance(0.08)) double.add(ref);
    const absences: SimPlan['registry']['clients'][number]['absences'] = [];
    if (p.days >= 2 && cRng.chance(0.05)) {
      const from = cRng.int(0, p.days - 2);
      absences.push({
        from: addDays(fromDate, from),
        to: addDays(fromDate, Math.min(p.days - 1, from + cRng.int(1, 2))),
        kind: 'hospital',
      });
    }
    clients.push({
      clientRef: ref,
      areaId: areas[a]!.areaId,
      teamId: teams[a]!.teamId,
      providerId: 'kommunen',
      birthYear: cRng.int(1925, 1965),
      kkikEligible: null,
      decisionTypes: cRng.chance(0.9) ? ['personal-care', 'service'] : ['safety-alarm'],
      careContactStaffRef: null,
      palliative: false,
      activeFrom: '2026-01-01',
      activeTo: null,
      absences,
    });
  }

  // Planned visits, then planned staff per day and area along a greedy route.
  const visits: PlanVisitRow[] = [];
  const vRng = rng.fork('visits');
  const homeOf = new Map(homes.map((h) => [h.clientRef, h]));
  for (let d = 0; d < p.days; d++) {
    const date = addDays(fromDate, d);
    const today: Array<PlanVisitRow & { startMin: number }> = [];
    for (const c of clients) {
      const slots = SLOTS[perDay.get(c.clientRef)!]!;
      slots.forEach(([centre, spread], k) => {
        const startMin = centre + vRng.int(-spread / 15, spread / 15) * 15;
        const codes = k === 0 ? ['HYG'] : vRng.chance(0.5) ? ['MAT'] : ['TIL'];
        const std = codes.reduce(
          (s, code) => s + (serviceCodes.find((x) => x.code === code)?.standardMinutes ?? 0),
          0,
        );
        today.push({
          plannedVisitId: `pv-${date.replaceAll('-', '')}-${c.clientRef.slice(7)}-${k + 1}`,
          clientRef: c.clientRef,
          areaId: c.areaId,
          date,
          start: hhmm(startMin),
          startMin,
          plannedMinutes: std + vRng.int(0, 2) * 5,
          staffCount: double.has(c.clientRef) ? 2 : 1,
          staffRefs: [],
          serviceCodes: codes.map((code) => ({
            code,
            standardMinutes: serviceCodes.find((x) => x.code === code)?.standardMinutes ?? null,
            grantedMinutes: null,
          })),
        });
      });
    }
    today.sort((a, b) => a.startMin - b.startMin || a.plannedVisitId.localeCompare(b.plannedVisitId));
    const freeAt = new Map<string, { min: number; at: PlanHome | null }>();
    for (const v of today) {
      const home = homeOf.get(v.clientRef)!;
      const onShift = staff.filter((s) => {
        // The area's own staff, and the substitutes (pool) for what they cannot take.
        if (s.category !== 'substitute' && s.areaId !== v.areaId) return false;
        const sh = shifts[s.staffRef]![d]!;
        if (sh === 'off') return false;
        const [from, to] = SHIFT_MIN[sh];
        return v.startMin >= from && v.startMin + v.plannedMinutes <= to;
      });
      const fits = onShift.filter((s) => {
        const f = freeAt.get(s.staffRef);
        return !f || f.min + (f.at ? travelMinutes(f.at, home) : 0) + 5 <= v.startMin; // 5 min slack
      });
      // The least busy first (by the time they are free), then by ref: the route spreads the work.
      fits.sort(
        (a, b) =>
          Number(a.category === 'substitute') - Number(b.category === 'substitute') ||
          (freeAt.get(a.staffRef)?.min ?? 0) - (freeAt.get(b.staffRef)?.min ?? 0) ||
          a.staffRef.localeCompare(b.staffRef),
      );
      // Nobody free in time: the route is overbooked; the one free soonest takes it (and comes late).
      const soonest = onShift
        .filter((s) => !fits.includes(s))
        .sort(
          (a, b) =>
            (freeAt.get(a.staffRef)?.min ?? 0) - (freeAt.get(b.staffRef)?.min ?? 0) ||
            a.staffRef.localeCompare(b.staffRef),
        );
      const chosen = [...fits, ...soonest].slice(0, v.staffCount);
      if (chosen.length < v.staffCount) continue; // nobody on shift: left for the coordinator
      v.staffRefs = chosen.map((s) => s.staffRef);
      // The planner moves the visit up to 30 min later to when the crew can be there.
      const ready = Math.max(
        ...chosen.map((s) => {
          const f = freeAt.get(s.staffRef);
          return f ? f.min + (f.at ? travelMinutes(f.at, home) : 0) + 5 : 0;
        }),
      );
      if (ready > v.startMin) {
        v.startMin = Math.min(v.startMin + 30, Math.ceil(ready / 5) * 5);
        v.start = hhmm(v.startMin);
      }
      for (const s of chosen) {
        const f = freeAt.get(s.staffRef);
        const begin = Math.max(v.startMin, f ? f.min + (f.at ? travelMinutes(f.at, home) : 0) + 5 : 0);
        freeAt.set(s.staffRef, { min: begin + v.plannedMinutes, at: home });
      }
    }
    for (const v of today) {
      const { startMin, ...row } = v;
      void startMin;
      visits.push(row);
    }
  }
  return {
    seed: p.seed,
    timeZone: p.timeZone ?? TZ,
    fromDate,
    days: p.days,
    registry: { providers, areas, teams, clients, staff, serviceCodes },
    homes,
    shifts,
    visits,
  };
}

export { SHIFT_MIN };
