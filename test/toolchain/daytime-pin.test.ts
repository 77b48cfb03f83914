import { afterEach, describe, expect, it } from 'vitest';
import { daytimeOffsetMs, pinDaytime, unpinDaytime } from '../support/daytime.js';

/** The wall clock that no replaced `Date` can move. */
const realNow = (): number => performance.timeOrigin + performance.now();

describe('the daytime pin is undone (files share worker processes)', () => {
  const saved = { now: process.env.VISITTAG_TEST_NOW, day: process.env.VISITTAG_TEST_DAYTIME };
  afterEach(() => {
    unpinDaytime();
    for (const [k, v] of [
      ['VISITTAG_TEST_NOW', saved.now],
      ['VISITTAG_TEST_DAYTIME', saved.day],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('a pin at night moves Date, the unpin gives the real clock back', () => {
    unpinDaytime(); // whatever this file's setup did
    process.env.VISITTAG_TEST_NOW = '2026-12-07T02:30:00+01:00'; // 02:30 in Stockholm: night
    delete process.env.VISITTAG_TEST_DAYTIME;
    const offset = pinDaytime();
    expect(offset).toBeGreaterThan(3_600_000);
    expect(daytimeOffsetMs()).toBe(offset);
    expect(Math.abs(Date.now() - realNow() - offset)).toBeLessThan(5_000);
    unpinDaytime();
    expect(daytimeOffsetMs()).toBe(0);
    expect(Math.abs(Date.now() - realNow())).toBeLessThan(5_000);
    expect(Math.abs(new Date().getTime() - realNow())).toBeLessThan(5_000);
  });

  it('this file (not a web file) runs on the real clock, whatever ran before it in the worker', () => {
    expect(Math.abs(Date.now() - realNow())).toBeLessThan(5_000);
  });
});
