/** "mixed" schedules: each seed draws a few fault kinds, at most one that needs a child process. */
import { createRng } from '../prng.js';
import { FAULT_KINDS, PROCESS_FAULTS, type FaultKind } from './plan.js';

export function mixedKinds(seed: number, count = 3): FaultKind[] {
  const rng = createRng(seed ^ 0x5eed);
  const cheap = FAULT_KINDS.filter((k) => !PROCESS_FAULTS.includes(k));
  const out = new Set<FaultKind>();
  if (rng.chance(0.35)) out.add(rng.pick(PROCESS_FAULTS));
  for (let guard = 0; out.size < count && guard < 100; guard++) out.add(rng.pick(cheap));
  return [...out];
}
