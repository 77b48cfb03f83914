/**
 * The checker catches a deliberately broken build.
 * Device: same seed, same fault (a reader loses power right after giving feedback for a tap), two
 * builds: the real journal (durable commit before feedback) passes; a journal whose last commit does
 * not survive the crash (feedback without a durable commit) is caught as a lost tap.
 * Gateway: for half an hour the gateway path acknowledges event batches before committing them and
 * loses them (played on the wire by the fault proxies, since createGateway has no such switch): the
 * device deletes what it was told is stored; the checker sees lost taps and sequence gaps.
 */
import { describe, expect, it } from 'vitest';
import { processSupport, runSimulation } from '../../simulator/run.js';

const RUN = {
  seed: 11,
  readers: 6,
  staff: 3,
  hours: 3,
  faults: ['device-kill' as const],
  deviceKill: 'after-feedback' as const,
  stepMs: 2000,
  keep: 'never' as const,
};

describe('broken build caught by the checker', () => {
  it(
    'the real device journal keeps every tap that got feedback through a crash',
    { timeout: 120_000 },
    async () => {
      const r = await runSimulation({ ...RUN, processes: await processSupport() });
      expect(r.faults['device-kill']).toBe(1);
      const failed = r.results.filter((c) => !c.ok && c.severity === 'invariant').map((c) => c.name);
      expect(failed).toEqual([]);
    },
  );

  it(
    'a journal that loses its last commit on a crash is caught: a tap with feedback never arrives',
    { timeout: 120_000 },
    async () => {
      const r = await runSimulation({
        ...RUN,
        brokenJournal: 'non-durable-journal',
        processes: await processSupport(),
      });
      expect(r.ok).toBe(false);
      const lost = r.results.find((c) => c.name === 'positive-feedback-taps-delivered');
      expect(lost?.ok).toBe(false);
      expect(lost?.failures.join('\n')).toMatch(/shown @.* but no matching backend event/);
    },
  );

  it(
    'a gateway that acknowledges before committing (and loses the batch) is caught',
    { timeout: 120_000 },
    async () => {
      const base = {
        seed: 12,
        readers: 6,
        staff: 3,
        hours: 3,
        faults: [],
        stepMs: 2000,
        keep: 'never' as const,
      };
      const good = await runSimulation(base);
      expect(good.results.filter((c) => !c.ok && c.severity === 'invariant').map((c) => c.name)).toEqual([]);
      const bad = await runSimulation({ ...base, brokenGatewayMs: 30 * 60_000 });
      expect(bad.faults['broken-gateway:acks-before-commit']).toBeGreaterThan(0);
      const failed = bad.results.filter((c) => !c.ok).map((c) => c.name);
      expect(failed).toContain('positive-feedback-taps-delivered');
      expect(failed).toContain('no-sequence-gaps');
    },
  );
});
