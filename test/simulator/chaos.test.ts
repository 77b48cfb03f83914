/**
 * CI chaos: 20 seeded schedules on the real device and gateway code (small fleets, short days),
 * together covering every fault kind. A breach fails the test naming the seed and the replay command.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rounds } from '../support/rounds.js';
import { FAULT_KINDS, PROCESS_FAULTS, type FaultKind } from '../../simulator/faults/plan.js';
import { createRng } from '../../simulator/prng.js';
import { processSupport, runSimulation, type RunReport } from '../../simulator/run.js';

// 20; on the other Node majors fewer, never fewer than one per fault kind (test/support/rounds.ts)
const SCHEDULES = rounds(20, FAULT_KINDS.length);
const BASE_SEED = 1000;
const FLEET = { readers: 6, staff: 3, hours: 2 };

/** Schedule i: one kind in turn (so 20 schedules cover all 11), plus two cheap extras drawn by seed. */
function kindsFor(i: number): FaultKind[] {
  const primary = FAULT_KINDS[i % FAULT_KINDS.length] as FaultKind;
  const rng = createRng(BASE_SEED + i);
  const cheap = FAULT_KINDS.filter((k) => !PROCESS_FAULTS.includes(k) && k !== primary);
  const out = new Set<FaultKind>([primary]);
  for (let g = 0; out.size < 3 && g < 50; g++) out.add(rng.pick(cheap));
  return [...out];
}

describe('seeded chaos schedules (invariants hold under faults)', () => {
  const injected = new Set<string>();
  const reports: RunReport[] = [];
  afterAll(() => {
    const lines = reports.map(
      (r) => `seed ${r.seed}: ${r.ok ? 'ok' : 'BREACH'} taps=${r.counts.taps} wall=${r.wallMs}ms`,
    );
    process.stderr.write(`chaos schedules:\n  ${lines.join('\n  ')}\n`);
  });

  for (let i = 0; i < SCHEDULES; i++) {
    const seed = BASE_SEED + i;
    const kinds = kindsFor(i);
    it(`seed ${seed}: ${kinds.join(', ')}`, { timeout: 120_000 }, async () => {
      const r = await runSimulation({
        seed,
        ...FLEET,
        faults: kinds,
        stepMs: 2000,
        processes: await processSupport(),
        keep: 'on-failure',
      });
      reports.push(r);
      for (const k of Object.keys(r.faults)) injected.add(k);
      const replay = `npm run sim -- --readers ${FLEET.readers} --staff ${FLEET.staff} --hours ${FLEET.hours} --seed ${seed} --faults ${kinds.join(',')} --step-ms 2000`;
      const breaches = r.results
        .filter((c) => !c.ok && c.severity === 'invariant')
        .map((c) => `${c.name}: ${c.failures.slice(0, 3).join(' | ')}`);
      expect(
        breaches,
        `seed ${seed} breached invariants (replay: ${replay}; artifacts ${r.artifacts})`,
      ).toEqual([]);
      expect(r.skippedFaults, `seed ${seed}`).toEqual([]);
      expect(r.counts.taps, `seed ${seed}: the day had taps`).toBeGreaterThan(0);
    });
  }

  it('covered every fault kind, and the faults bit', () => {
    const missing = FAULT_KINDS.filter((k) => !injected.has(k));
    expect(missing, `fault kinds never injected: ${missing.join(', ')}`).toEqual([]);
    // the faults had effects the system had to survive, not just switches flipped
    const total = (key: string) => reports.reduce((n, r) => n + (r.faults[key] ?? 0), 0);
    expect(total('backend:down'), 'webhook requests refused by outages').toBeGreaterThan(0);
    expect(total('backend:error'), 'webhook requests answered 5xx').toBeGreaterThan(0);
    expect(total('proxy:duplicated-publishes'), 'duplicated MQTT publishes').toBeGreaterThan(0);
    expect(total('proxy:connection-resets'), 'connections cut').toBeGreaterThan(0);
    expect(
      reports.reduce((n, r) => n + r.counts.redeliveries, 0),
      'redeliveries deduped by key',
    ).toBeGreaterThan(0);
    expect(
      reports.reduce((n, r) => n + r.counts.retriedTaps, 0),
      'taps that met a reader killed mid-write and were tapped again',
    ).toBeGreaterThan(0);
  });
});
