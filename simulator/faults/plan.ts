/**
 * Seeded fault schedules. A schedule is a list of timed faults over the simulated day; "chaos"
 * includes every kind at least once. Faults that kill a device are placed where no worker is at
 * that reader (taps that still meet a dead reader get no feedback and are retried after the boot).
 */
import type { Rng } from '../prng.js';
import type { Scenario } from '../scenario/types.js';

export const FAULT_KINDS = [
  'partition',
  'blackhole',
  'latency',
  'reset',
  'duplicate-publish',
  'backend-outage',
  'backend-errors',
  'clock-skew',
  'gateway-kill',
  'device-kill',
  'power-loss',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that need a child process (a real SIGKILL). */
export const PROCESS_FAULTS: readonly FaultKind[] = ['gateway-kill', 'device-kill', 'power-loss'];

export interface FaultEvent {
  kind: FaultKind;
  atMs: number;
  durationMs: number;
  readerId: string | null;
  /** Kind-specific: skew ms, latency ms, rates. */
  value: number;
}

const MIN = 60_000;

export function parseFaultList(spec: string): FaultKind[] {
  if (spec === 'none' || spec === '') return [];
  if (spec === 'chaos' || spec === 'all') return [...FAULT_KINDS];
  const kinds = spec.split(',').map((s) => s.trim());
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      throw new Error(`unknown fault kind "${k}" (known: ${FAULT_KINDS.join(', ')}, or chaos / none)`);
    }
  }
  return kinds as FaultKind[];
}

/** Readers with no action in [from, to]. */
function quietReaders(s: Scenario, from: number, to: number): string[] {
  const busy = new Set(s.actions.filter((a) => a.atMs >= from && a.atMs <= to).map((a) => a.readerId));
  return s.homes.map((h) => h.readerId).filter((r) => !busy.has(r));
}

export function planFaults(opts: {
  scenario: Scenario;
  rng: Rng;
  kinds: readonly FaultKind[];
  perKind?: number;
}): FaultEvent[] {
  const { scenario: s, rng } = opts;
  const out: FaultEvent[] = [];
  const first = s.params.startMs + 20 * MIN;
  const last = Math.max(first + MIN, s.endMs - 40 * MIN);
  const at = () => rng.int(first, last);
  const anyReader = () => rng.pick(s.homes).readerId;
  const active = new Set(s.actions.map((a) => a.readerId));
  const activeReaders = s.homes.map((h) => h.readerId).filter((r) => active.has(r));
  const killTargets: string[] = [];
  for (const kind of opts.kinds) {
    const n = opts.perKind ?? 1;
    for (let i = 0; i < n; i++) {
      switch (kind) {
        case 'partition':
          out.push({ kind, atMs: at(), durationMs: rng.int(5, 120) * MIN, readerId: anyReader(), value: 0 });
          break;
        case 'blackhole':
          out.push({ kind, atMs: at(), durationMs: rng.int(2, 30) * MIN, readerId: anyReader(), value: 0 });
          break;
        case 'latency':
          out.push({
            kind,
            atMs: at(),
            durationMs: rng.int(10, 60) * MIN,
            readerId: anyReader(),
            value: rng.int(2, 30),
          });
          break;
        case 'reset':
          out.push({ kind, atMs: at(), durationMs: 0, readerId: null, value: 0 });
          break;
        case 'duplicate-publish':
          out.push({ kind, atMs: at(), durationMs: rng.int(30, 120) * MIN, readerId: null, value: 0.5 });
          break;
        case 'backend-outage':
          out.push({ kind, atMs: at(), durationMs: rng.int(10, 90) * MIN, readerId: null, value: 0 });
          break;
        case 'backend-errors':
          out.push({ kind, atMs: at(), durationMs: rng.int(20, 90) * MIN, readerId: null, value: 0.3 });
          break;
        case 'clock-skew': {
          const sign = rng.chance(0.5) ? 1 : -1;
          out.push({
            kind,
            atMs: s.params.startMs,
            durationMs: 0,
            readerId: anyReader(),
            value: sign * rng.int(5, 90) * 1000,
          });
          break;
        }
        case 'gateway-kill':
          out.push({ kind, atMs: at(), durationMs: rng.int(1, 10) * MIN, readerId: null, value: 0 });
          break;
        case 'device-kill': {
          // mid-write: armed now, the reader dies inside the next tap's journal commit.
          const r = activeReaders.length ? rng.pick(activeReaders) : anyReader();
          killTargets.push(r);
          out.push({ kind, atMs: at(), durationMs: rng.int(1, 5) * MIN, readerId: r, value: 1 });
          break;
        }
        case 'power-loss': {
          let placed = false;
          for (let tries = 0; tries < 50 && !placed; tries++) {
            const t = at();
            const d = rng.int(5, 60) * MIN;
            const quiet = quietReaders(s, t - MIN, t + d + 25 * MIN).filter((r) => active.has(r));
            if (quiet.length === 0) continue;
            const r = rng.pick(quiet);
            killTargets.push(r);
            out.push({ kind, atMs: t, durationMs: d, readerId: r, value: rng.int(3, 20) * MIN });
            placed = true;
          }
          break;
        }
      }
    }
  }
  out.sort((a, b) => a.atMs - b.atMs);
  return out;
}

/** Readers that must run as child processes (they get SIGKILLed). */
export function childReaders(faults: readonly FaultEvent[]): Set<string> {
  return new Set(
    faults
      .filter((f) => (f.kind === 'device-kill' || f.kind === 'power-loss') && f.readerId)
      .map((f) => f.readerId as string),
  );
}
