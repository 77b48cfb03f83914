/**
 * The soak row's growth figure (bench/rows/soak.ts): MB per 100,000 taps fitted over the samples after the
 * first third, so a warm-up that levels off reads as no growth and a steady leak reads as its rate.
 */
import { describe, expect, it } from 'vitest';
import { fitLine, growth, slope, type Sample } from '../../bench/rows/soak.js';

const MB = 1024 * 1024;
const run = (mb: (taps: number) => number): Sample[] =>
  Array.from({ length: 31 }, (_, i) => {
    const taps = i * 10_000;
    return { atMs: i * 1_000, taps, rss: mb(taps) * MB, heapUsed: (mb(taps) / 2) * MB };
  });

describe('soak growth', () => {
  it('a least-squares slope', () => {
    expect(
      slope([
        [0, 1],
        [1, 3],
        [2, 5],
      ]),
    ).toBeCloseTo(2);
    expect(slope([[0, 1]])).toBeNaN();
  });

  it('warm-up that levels off is no growth; a leak is its rate per 100,000 taps', () => {
    // 200 -> 320 MB over the first 80,000 taps, flat afterwards
    const warm = growth(run((t) => 200 + Math.min(t, 80_000) * 0.0015));
    expect(Math.abs(warm.rss)).toBeLessThan(0.01);
    expect(warm.used).toBe(21);
    // 1.5 MB per 10,000 taps, all the way
    const leak = growth(run((t) => 200 + t * 0.00015));
    expect(leak.rss).toBeCloseTo(15);
    expect(leak.heap).toBeCloseTo(7.5);
  });

  it("the slope's standard error: 0 on a straight line, the scatter's share on a noisy one", () => {
    const line = fitLine([
      [0, 1],
      [1, 3],
      [2, 5],
      [3, 7],
    ]);
    expect(line.slope).toBeCloseTo(2);
    expect(line.se).toBeCloseTo(0);
    // flat with ±1 alternating around 10 (11, 9, 11, …, x = 0…9): worked by hand, slope -2/33 and
    // SE = sqrt(SSres / (n - 2) / Sxx) = 4/33; a slope well inside two SEs of 0, as it should be
    const noisy = fitLine(Array.from({ length: 10 }, (_, i): [number, number] => [i, i % 2 === 0 ? 11 : 9]));
    expect(noisy.slope).toBeCloseTo(-2 / 33, 10);
    expect(noisy.se).toBeCloseTo(4 / 33, 10);
    expect(fitLine([[0, 1]]).se).toBeNaN();
    expect(
      fitLine([
        [0, 1],
        [1, 2],
      ]).se,
    ).toBeNaN();
    const g = growth(run((t) => 200 + t * 0.00015));
    expect(g.rssSe).toBeCloseTo(0, 6);
  });
});
