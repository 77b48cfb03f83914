/**
 * Plays a care plan with seeded staff: who is ill today, who covers (a substitute first, then a free
 * colleague of the area), when each one gets there (the route: the previous visit's end plus travel, a
 * few minutes' jitter, now and then a long delay), who forgets a visit, the second staff member of a
 * double-staffed visit who comes late or not at all, clients in hospital (nobody goes), and a few
 * unplanned visits. The result is a simulator `Scenario` (taps on readers) plus the ground truth per
 * planned visit that the plan checks compare the gateway's matches and alerts with.
 */
import { pseudonymiseCard } from '../../protocol/index.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { createRng, type Rng } from '../prng.js';
import { scenarioParams } from '../scenario/generate.js';
import type { Action, CardSpec, Home, Scenario, Staff, TruthVisit } from '../scenario/types.js';
import { SHIFT_MIN, travelMinutes } from './generate.js';
import type { PlanHome, PlannedOutcome, SimPlan, UnplannedOutcome } from './types.js';

const MIN = 60_000;

export interface BehaviourRates {
  /** A staff member is ill on a working day. */
  ill: number;
  /** Nobody comes to a visit (forgotten on the route). */
  forgotten: number;
  /** A long delay (20-60 min) on the way to a visit. */
  delayed: number;
  /** The second staff member of a double-staffed visit does not come / comes 25-45 min late. */
  secondMissing: number;
  secondLate: number;
  /** Unplanned visits per client and day. */
  unplanned: number;
}

export const DEFAULT_BEHAVIOUR: BehaviourRates = {
  ill: 0.05,
  forgotten: 0.015,
  delayed: 0.04,
  secondMissing: 0.12,
  secondLate: 0.12,
  unplanned: 0.02,
};

/** Latest arrival a staff member still makes (after it the visit is left: `overrun`), minutes. */
const MAX_LATE_MIN = 60;

export interface PlayedPlan {
  scenario: Scenario;
  outcomes: PlannedOutcome[];
  unplanned: UnplannedOutcome[];
  /** staffRef@date of every sick day. */
  ill: string[];
  /** Last instant of the simulated period (local 23:00 of the last day). */
  endMs: number;
}

function card(rng: Rng, fleetKey: string): CardSpec {
  for (;;) {
    const uid = rng.hex(rng.chance(0.5) ? 4 : 7);
    if (/^0+$/.test(uid) || /^F+$/.test(uid)) continue;
    return { uid, cardRef: pseudonymiseCard(uid, fleetKey) };
  }
}

export function playPlan(plan: SimPlan, seed: number, rates: BehaviourRates = DEFAULT_BEHAVIOUR): PlayedPlan {
  const rng = createRng(`play-${seed}`);
  const tz = plan.timeZone;
  const fleetKey = `sim-fleet-key-${seed}-0123456789`;
  const startMs = localToUtcMs(plan.fromDate, '06:00', tz);
  const lastDate = addDaysLocal(plan.fromDate, plan.days - 1);
  const endMs = localToUtcMs(lastDate, '23:00', tz);

  const homeOf = new Map(plan.homes.map((h) => [h.clientRef, h]));
  const clientOf = new Map(plan.registry.clients.map((c) => [c.clientRef, c]));
  const cardRng = rng.fork('cards');
  const cards = new Map(plan.registry.staff.map((s) => [s.staffRef, card(cardRng, fleetKey)]));

  const outcomes: PlannedOutcome[] = [];
  const unplanned: UnplannedOutcome[] = [];
  const truth: TruthVisit[] = [];
  const actions: Action[] = [];
  const ill: string[] = [];
  const illRng = rng.fork('ill');
  const goRng = rng.fork('go');

  const addVisit = (o: {
    staffRef: string;
    home: PlanHome;
    startMs: number;
    endMs: number;
    key: string;
    group: string | null;
  }): void => {
    const c = cards.get(o.staffRef)!;
    truth.push({
      key: o.key,
      readerId: o.home.readerId,
      clientRef: o.home.clientRef,
      staffRef: o.staffRef,
      cardRef: c.cardRef,
      startMs: o.startMs,
      endMs: o.endMs,
      kind: o.group ? 'double' : 'normal',
      errors: [],
      groupKey: o.group,
    });
    const base = {
      readerId: o.home.readerId,
      uid: c.uid,
      cardRef: c.cardRef,
      staffRef: o.staffRef,
      visitKey: o.key,
    };
    actions.push({ ...base, atMs: o.startMs, kind: 'tap', intent: 'start' });
    actions.push({ ...base, atMs: o.endMs, kind: 'tap', intent: 'stop' });
  };

  for (let d = 0; d < plan.days; d++) {
    const date = addDaysLocal(plan.fromDate, d);
    const shiftOf = (ref: string) => plan.shifts[ref]?.[d] ?? 'off';
    const sick = new Set<string>();
    for (const s of plan.registry.staff) {
      if (shiftOf(s.staffRef) !== 'off' && illRng.chance(rates.ill)) {
        sick.add(s.staffRef);
        ill.push(`${s.staffRef}@${date}`);
      }
    }
    const free = new Map<string, { ms: number; at: PlanHome | null }>();
    const onShiftAt = (ref: string, ms: number, lenMs: number): boolean => {
      const sh = shiftOf(ref);
      if (sh === 'off' || sick.has(ref)) return false;
      const [from, to] = SHIFT_MIN[sh];
      return (
        ms >= localToUtcMs(date, hhmm(from), tz) && ms + lenMs <= localToUtcMs(date, hhmm(to), tz) + 30 * MIN
      );
    };
    const readyAt = (ref: string, home: PlanHome): number => {
      const f = free.get(ref);
      return f ? f.ms + (f.at ? travelMinutes(f.at, home) : 0) * MIN : 0;
    };

    // Unplanned visits (a safety-alarm call, an extra visit): at least 2 h 15 min after any planned start
    // of the client and 1 h 45 min before the next, so no plan window can take them.
    const todays = plan.visits.filter((v) => v.date === date);
    type Job =
      | { kind: 'plan'; v: (typeof todays)[number]; at: number }
      | { kind: 'extra'; clientRef: string; at: number };
    const jobs: Job[] = todays.map((v) => ({
      kind: 'plan' as const,
      v,
      at: localToUtcMs(v.date, v.start, tz),
    }));
    for (const c of plan.registry.clients) {
      if (!goRng.chance(rates.unplanned)) continue;
      const starts = todays
        .filter((v) => v.clientRef === c.clientRef)
        .map((v) => localToUtcMs(v.date, v.start, tz));
      const t = localToUtcMs(date, hhmm(goRng.int(8 * 60, 21 * 60)), tz);
      if (starts.some((s) => t > s - 105 * MIN && t < s + 135 * MIN)) continue;
      if (absentOn(clientOf.get(c.clientRef), date)) continue;
      jobs.push({ kind: 'extra', clientRef: c.clientRef, at: t });
    }
    jobs.sort((a, b) => a.at - b.at || keyOf(a).localeCompare(keyOf(b)));

    for (const job of jobs) {
      if (job.kind === 'extra') {
        const home = homeOf.get(job.clientRef)!;
        const who = plan.registry.staff
          .map((s) => s.staffRef)
          .filter((ref) => onShiftAt(ref, job.at, 25 * MIN) && readyAt(ref, home) <= job.at);
        if (!who.length) continue;
        const ref = goRng.pick(who);
        const end = job.at + goRng.int(10, 25) * MIN;
        addVisit({
          staffRef: ref,
          home,
          startMs: job.at,
          endMs: end,
          key: `u-${ref}-${job.at}`,
          group: null,
        });
        free.set(ref, { ms: end + MIN, at: home });
        unplanned.push({
          clientRef: home.clientRef,
          readerId: home.readerId,
          staffRef: ref,
          startMs: job.at,
        });
        continue;
      }
      const v = job.v;
      const home = homeOf.get(v.clientRef)!;
      const out: PlannedOutcome = {
        plannedVisitId: v.plannedVisitId,
        clientRef: v.clientRef,
        areaId: v.areaId,
        startMs: job.at,
        staffCount: v.staffCount,
        outcome: 'made',
        arrivalsMs: [],
        staffRefs: [],
        covered: false,
      };
      outcomes.push(out);
      if (absentOn(clientOf.get(v.clientRef), date)) {
        out.outcome = 'client-absent';
        continue;
      }
      const lenMs = v.plannedMinutes * MIN;
      // Who goes: the planned staff who are not ill; cover for the rest (substitutes first).
      const crew = v.staffRefs.filter((r) => !sick.has(r));
      const canTake = (ref: string) =>
        !crew.includes(ref) && onShiftAt(ref, job.at, lenMs) && readyAt(ref, home) <= job.at + 20 * MIN;
      if (crew.length < v.staffCount) {
        const cover = plan.registry.staff
          .filter((s) => s.category === 'substitute' || s.areaId === v.areaId)
          .sort((a, b) =>
            a.category === b.category
              ? a.staffRef.localeCompare(b.staffRef)
              : a.category === 'substitute'
                ? -1
                : 1,
          )
          .map((s) => s.staffRef)
          .filter(canTake);
        while (crew.length < v.staffCount && cover.length) {
          crew.push(cover.shift()!);
          out.covered = true;
        }
      }
      if (crew.length === 0) {
        out.outcome = 'uncovered';
        continue;
      }
      if (goRng.chance(rates.forgotten)) {
        out.outcome = 'forgotten';
        continue;
      }
      const [lead, second] = crew as [string, string | undefined];
      let jitter = Math.max(-10, Math.min(10, Math.round(goRng.normal(0, 4))));
      if (goRng.chance(rates.delayed)) jitter += goRng.int(20, 60);
      const arrive = Math.max(job.at + jitter * MIN, readyAt(lead, home));
      if (arrive > job.at + MAX_LATE_MIN * MIN) {
        out.outcome = 'overrun';
        continue;
      }
      const len = Math.max(5, Math.min(75, Math.round(v.plannedMinutes * (0.85 + goRng.next() * 0.3)))) * MIN;
      const group = v.staffCount === 2 ? `g-${v.plannedVisitId}` : null;
      addVisit({
        staffRef: lead,
        home,
        startMs: arrive,
        endMs: arrive + len,
        key: `${v.plannedVisitId}#1`,
        group,
      });
      free.set(lead, { ms: arrive + len + MIN, at: home });
      out.arrivalsMs.push(arrive);
      out.staffRefs.push(lead);
      if (second !== undefined && !goRng.chance(rates.secondMissing)) {
        const lag = goRng.chance(rates.secondLate) ? goRng.int(25, 45) * MIN : goRng.int(0, 3) * MIN + 20_000;
        const a2 = Math.max(arrive + lag, readyAt(second, home));
        const e2 = Math.max(arrive + len, a2 + 5 * MIN) + 30_000;
        if (a2 <= job.at + MAX_LATE_MIN * MIN) {
          addVisit({ staffRef: second, home, startMs: a2, endMs: e2, key: `${v.plannedVisitId}#2`, group });
          free.set(second, { ms: e2 + MIN, at: home });
          out.arrivalsMs.push(a2);
          out.staffRefs.push(second);
        }
      }
    }
  }

  actions.sort((a, b) => a.atMs - b.atMs || a.visitKey.localeCompare(b.visitKey));
  truth.sort((a, b) => a.startMs - b.startMs || a.key.localeCompare(b.key));
  const homes: Home[] = plan.homes.map((h, i, all) => ({
    readerId: h.readerId,
    clientRef: h.clientRef,
    x: h.x,
    y: h.y,
    neighbour: (all[i % 2 === 0 ? i + 1 : i - 1] ?? h).readerId,
  }));
  const staff: Staff[] = plan.registry.staff.map((s) => ({
    staffRef: s.staffRef,
    card: cards.get(s.staffRef)!,
    shiftStartMs: startMs,
    shiftEndMs: endMs,
    teamId: s.teamId ?? 'substitutes',
  }));
  const scenario: Scenario = {
    params: scenarioParams({
      seed,
      readers: homes.length,
      staff: staff.length,
      hours: Math.ceil((endMs - startMs) / 3_600_000),
      startMs,
      errorRates: {
        'forgotten-stop': 0,
        'double-tap': 0,
        'wrong-reader': 0,
        'unknown-card': 0,
        'card-left-on-reader': 0,
        bounce: 0,
      },
      pairShare: 0,
    }),
    fleetKey,
    endMs,
    homes,
    staff,
    unknownCards: [],
    actions,
    truth,
  };
  return { scenario, outcomes, unplanned, ill, endMs };
}

const keyOf = (j: { kind: 'plan'; v: { plannedVisitId: string } } | { kind: 'extra'; clientRef: string }) =>
  j.kind === 'plan' ? j.v.plannedVisitId : `~${j.clientRef}`;

function absentOn(c: SimPlan['registry']['clients'][number] | undefined, date: string): boolean {
  return Boolean(c?.absences.some((a) => a.from <= date && a.to >= date));
}

function hhmm(min: number): string {
  return `${String(Math.floor(min / 60)).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`;
}

function addDaysLocal(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}
