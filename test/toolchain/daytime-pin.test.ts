import { afterEach, describe, expect, it } from 'vitest';
import { daytimeOffsetMs, daytimeShiftMs, pinDaytime, unpinDaytime } from '../support/daytime.js';

/** The wall clock that no replaced `Date` can move. */
const realNow = (): number => performance.timeOrigin + performance.now();

/**
 * 02:30 in Stockholm (night) two days after the real clock, as an ISO time. A fixed date here made the
 * pin's offset (pretended night moved to 09:00, minus the real clock) negative once that morning had
 * passed, and the test failed from then on.
 */
function nightAfterRealNow(): string {
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Stockholm' }).format(
    new Date(realNow() + 2 * 86_400_000),
  );
  return `${day}T02:30:00+01:00`; // 02:30 CET, or 03:30 in summer time: night either way
}

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
    const night = nightAfterRealNow();
    process.env.VISITTAG_TEST_NOW = night;
    delete process.env.VISITTAG_TEST_DAYTIME;
    const shift = daytimeShiftMs(Date.parse(night));
    expect(shift).toBeGreaterThanOrEqual(5.5 * 3_600_000); // to 09:00 local
    const before = realNow();
    const offset = pinDaytime();
    expect(offset).toBeGreaterThan(3_600_000);
    expect(Math.abs(offset - (Date.parse(night) + shift - before))).toBeLessThan(5_000);
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
