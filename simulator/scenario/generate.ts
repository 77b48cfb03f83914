/**
 * Generates a seeded, reproducible day: homes with readers, staff with cards and shifts, routes with
 * travel time, visits with realistic lengths, pair teams (double staffing) and the human errors of
 * docs/domain.md ("What goes wrong in real homes"). The result is the ground truth the checker compares the backend against.
 */
import { pseudonymiseCard } from '../../protocol/index.js';
import { createRng, type Rng } from '../prng.js';
import type {
  Action,
  CardSpec,
  Home,
  HumanError,
  Scenario,
  ScenarioParams,
  Staff,
  TruthVisit,
} from './types.js';

export const DEFAULT_ERROR_RATES: Record<HumanError, number> = {
  'forgotten-stop': 0.03,
  'double-tap': 0.05,
  'wrong-reader': 0.02,
  'unknown-card': 0.02,
  'card-left-on-reader': 0.03,
  bounce: 0.03,
};

/** 2026-11-24 06:00 UTC: a fixed day so seeds replay exactly. */
export const DEFAULT_DAY_START_MS = Date.UTC(2026, 10, 24, 6, 0, 0);

export function scenarioParams(p: Partial<ScenarioParams> & { seed: number }): ScenarioParams {
  return {
    readers: 12,
    staff: 6,
    hours: 8,
    startMs: DEFAULT_DAY_START_MS,
    repeatWindowMs: 10_000,
    maxOpenMs: 2 * 3_600_000,
    errorRates: DEFAULT_ERROR_RATES,
    pairShare: 0.08,
    ...p,
  };
}

const MIN = 60_000;

function card(rng: Rng, fleetKey: string): CardSpec {
  for (;;) {
    const uid = rng.hex(rng.chance(0.5) ? 4 : 7);
    if (/^0+$/.test(uid) || /^F+$/.test(uid)) continue;
    return { uid, cardRef: pseudonymiseCard(uid, fleetKey) };
  }
}

/** Visit length: mostly 15–60 min, some long ones (60–105 min, under the sim's 2 h auto-close). */
function visitLength(rng: Rng): number {
  if (rng.chance(0.12)) return rng.int(60, 105) * MIN;
  return Math.round(Math.min(60, Math.max(15, rng.normal(32, 12))) * MIN);
}

interface TeamVisit {
  home: Home;
  startMs: number;
  endMs: number;
}

export function generateScenario(params: ScenarioParams): Scenario {
  const rng = createRng(params.seed);
  const fleetKey = `sim-fleet-key-${params.seed}-0123456789`;
  const endMs = params.startMs + params.hours * 3_600_000;
  const rates = { ...DEFAULT_ERROR_RATES, ...params.errorRates };

  // Teams: most staff alone, some in pairs (double staffing).
  const teamRng = rng.fork('teams');
  const teams: number[][] = [];
  for (let i = 0; i < params.staff;) {
    if (i + 1 < params.staff && teamRng.chance(params.pairShare)) {
      teams.push([i, i + 1]);
      i += 2;
    } else teams.push([i++]);
  }

  // Homes: one area per team, homes of an area close together.
  const homeRng = rng.fork('homes');
  const homes: Home[] = [];
  const areaOf: number[] = [];
  for (let i = 0; i < params.readers; i++) {
    const area = Math.floor((i * teams.length) / params.readers);
    areaOf.push(area);
    const cx = (area % 10) * 3;
    const cy = Math.floor(area / 10) * 3;
    const n = String(i + 1).padStart(4, '0');
    homes.push({
      readerId: `r-${n}`,
      clientRef: `client-${n}`,
      x: cx + homeRng.next() * 2,
      y: cy + homeRng.next() * 2,
      neighbour: '',
    });
  }
  homes.forEach((h, i) => {
    const j = i % 2 === 0 ? i + 1 : i - 1;
    h.neighbour = (homes[j] ?? homes[i - 1] ?? h).readerId;
  });

  const staffRng = rng.fork('staff');
  const staff: Staff[] = [];
  teams.forEach((members, t) => {
    const shiftStartMs = params.startMs + staffRng.int(0, 20) * MIN;
    for (const m of members) {
      staff.push({
        staffRef: `staff-${String(m + 1).padStart(3, '0')}`,
        card: card(staffRng, fleetKey),
        shiftStartMs,
        shiftEndMs: endMs - staffRng.int(0, 15) * MIN,
        teamId: `team-${t + 1}`,
      });
    }
  });
  staff.sort((a, b) => a.staffRef.localeCompare(b.staffRef));

  // Routes: each team cycles through its area's homes, with travel and parking time.
  const routeRng = rng.fork('routes');
  const truth: TruthVisit[] = [];
  const actions: Action[] = [];
  const errorRng = rng.fork('errors');
  teams.forEach((members, t) => {
    const area = homes.filter((_, i) => areaOf[i] === t);
    if (area.length === 0) return;
    const crew = members.map((m) =>
      staff.find((s) => s.staffRef === `staff-${String(m + 1).padStart(3, '0')}`),
    );
    const lead = crew[0];
    if (!lead) return;
    const route: TeamVisit[] = [];
    let at = lead.shiftStartMs + routeRng.int(5, 20) * MIN;
    let idx = routeRng.int(0, area.length - 1);
    let prev: Home | null = null;
    for (let guard = 0; guard < 200; guard++) {
      const home = area[idx % area.length] as Home;
      idx++;
      const km = prev ? Math.hypot(home.x - prev.x, home.y - prev.y) : 0;
      const travel =
        Math.round((km / 25) * 60 * MIN) + routeRng.int(2, 6) * MIN + (prev === home ? 45 * MIN : 0);
      const startMs = at + (prev ? travel : 0);
      const len = visitLength(routeRng);
      if (startMs + len > Math.min(...crew.map((c) => c?.shiftEndMs ?? 0))) break;
      route.push({ home, startMs, endMs: startMs + len });
      at = startMs + len + routeRng.int(0, 2) * MIN;
      prev = home;
    }
    route.forEach((v, vi) => {
      const group = crew.length > 1 ? `g-${t + 1}-${vi + 1}` : null;
      crew.forEach((s, ci) => {
        if (!s) return;
        const jitter = ci === 0 ? 0 : routeRng.int(5, 40) * 1000;
        truth.push({
          key: `${s.staffRef}#${vi + 1}`,
          readerId: v.home.readerId,
          clientRef: v.home.clientRef,
          staffRef: s.staffRef,
          cardRef: s.card.cardRef,
          startMs: v.startMs + jitter,
          endMs: v.endMs + (ci === 0 ? 0 : routeRng.int(5, 40) * 1000),
          kind: group ? 'double' : 'normal',
          errors: [],
          groupKey: group,
        });
      });
    });
  });

  // Unknown cards: a substitute with an unregistered card does a short visit.
  const unknownCards: CardSpec[] = [];
  const unknownVisits = Math.round(truth.length * (rates['unknown-card'] ?? 0));
  for (let i = 0; i < unknownVisits && homes.length > 0; i++) {
    const c = card(errorRng, fleetKey);
    unknownCards.push(c);
    const home = errorRng.pick(homes);
    const startMs = params.startMs + errorRng.int(30, Math.max(31, params.hours * 60 - 60)) * MIN;
    truth.push({
      key: `unknown-${i + 1}`,
      readerId: home.readerId,
      clientRef: home.clientRef,
      staffRef: null,
      cardRef: c.cardRef,
      startMs,
      endMs: Math.min(startMs + errorRng.int(15, 40) * MIN, endMs - MIN),
      kind: 'unknown-card',
      errors: ['unknown-card'],
      groupKey: null,
    });
  }

  const uidOf = new Map<string, string>();
  for (const s of staff) uidOf.set(s.card.cardRef, s.card.uid);
  for (const c of unknownCards) uidOf.set(c.cardRef, c.uid);
  const clientOf = new Map(homes.map((h) => [h.readerId, h.clientRef]));

  const extra: TruthVisit[] = [];
  /** No visit of this card at this reader overlaps [from, to]. */
  const clear = (cardRef: string, readerId: string, from: number, to: number, self?: TruthVisit): boolean =>
    ![...truth, ...extra].some(
      (o) =>
        o !== self &&
        o.cardRef === cardRef &&
        o.readerId === readerId &&
        (o.endMs ?? o.startMs) >= from &&
        o.startMs <= to,
    );

  for (const v of [...truth]) {
    if (v.kind === 'unknown-card') continue;
    const uid = uidOf.get(v.cardRef) as string;
    const base = { readerId: v.readerId, uid, cardRef: v.cardRef, staffRef: v.staffRef, visitKey: v.key };
    const guardMs = params.maxOpenMs + 30 * MIN;
    // Forgotten stop: only when the card does not come back to this reader before the auto-close.
    if (
      errorRng.chance(rates['forgotten-stop'] ?? 0) &&
      clear(v.cardRef, v.readerId, v.startMs + 1, v.startMs + guardMs, v)
    ) {
      v.endMs = null;
      v.kind = 'forgotten-stop';
      v.errors.push('forgotten-stop');
    }
    if (errorRng.chance(rates['wrong-reader'] ?? 0) && v.readerId !== homeNeighbour(homes, v.readerId)) {
      const n = homeNeighbour(homes, v.readerId);
      const at = v.startMs - errorRng.int(20, 60) * 1000;
      if (clear(v.cardRef, n, at - guardMs, at + guardMs)) {
        v.errors.push('wrong-reader');
        const wrong: TruthVisit = {
          key: `${v.key}~wrong`,
          readerId: n,
          clientRef: clientOf.get(n) ?? '',
          staffRef: v.staffRef,
          cardRef: v.cardRef,
          startMs: at,
          endMs: null,
          kind: 'wrong-reader',
          errors: ['wrong-reader'],
          groupKey: null,
        };
        extra.push(wrong);
        actions.push({
          ...base,
          readerId: n,
          atMs: at,
          kind: 'tap',
          intent: 'wrong-reader',
          visitKey: wrong.key,
        });
      }
    }
    const leftOn = v.endMs !== null && errorRng.chance(rates['card-left-on-reader'] ?? 0);
    const bounce = !leftOn && errorRng.chance(rates.bounce ?? 0);
    if (leftOn) v.errors.push('card-left-on-reader');
    if (bounce) v.errors.push('bounce');
    actions.push({
      ...base,
      atMs: v.startMs,
      kind: leftOn ? 'present' : bounce ? 'bounce' : 'tap',
      intent: 'start',
    });
    if (bounce) actions.push({ ...base, atMs: v.startMs + 3000, kind: 'remove', intent: null });
    if (params.repeatWindowMs > 5000 && errorRng.chance(rates['double-tap'] ?? 0) && !leftOn) {
      v.errors.push('double-tap');
      const d = bounce ? 4000 : errorRng.int(1500, 4000);
      actions.push({ ...base, atMs: v.startMs + d, kind: 'tap', intent: 'repeat' });
    }
    if (v.endMs !== null) {
      if (leftOn)
        actions.push({ ...base, atMs: v.endMs - errorRng.int(5, 30) * 1000, kind: 'remove', intent: null });
      actions.push({ ...base, atMs: v.endMs, kind: 'tap', intent: 'stop' });
    }
  }
  for (const v of truth) {
    if (v.kind !== 'unknown-card') continue;
    const uid = uidOf.get(v.cardRef) as string;
    const base = {
      readerId: v.readerId,
      uid,
      cardRef: v.cardRef,
      staffRef: null,
      visitKey: v.key,
      kind: 'tap' as const,
    };
    actions.push({ ...base, atMs: v.startMs, intent: 'start' });
    if (v.endMs !== null) actions.push({ ...base, atMs: v.endMs, intent: 'stop' });
  }
  truth.push(...extra);
  actions.sort((a, b) => a.atMs - b.atMs);
  truth.sort((a, b) => a.startMs - b.startMs || a.key.localeCompare(b.key));
  return { params, fleetKey, endMs, homes, staff, unknownCards, actions, truth };
}

function homeNeighbour(homes: readonly Home[], readerId: string): string {
  return homes.find((h) => h.readerId === readerId)?.neighbour ?? readerId;
}
