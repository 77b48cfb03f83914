import { describe, expect, it } from 'vitest';
import { daytimeShiftMs } from '../support/daytime.js';

/** The test clock's night-time shift (test/support/daytime.ts): to 09:00 Stockholm time, daylight saving included. */
const local = (ms: number) =>
  new Intl.DateTimeFormat('sv-SE', {
    timeZone: 'Europe/Stockholm',
    dateStyle: 'short',
    timeStyle: 'short',
  }).format(new Date(ms));

describe('daytimeShiftMs', () => {
  it.each([
    ['2026-12-06T00:30:00+01:00', '2026-12-06 09:00'],
    ['2026-12-05T23:10:00+01:00', '2026-12-06 09:00'],
    ['2026-12-05T22:00:00+01:00', '2026-12-06 09:00'],
    ['2026-12-06T05:59:00+01:00', '2026-12-06 09:00'],
    ['2027-03-28T01:30:00+01:00', '2027-03-28 09:00'], // clocks go forward at 02:00
    ['2026-10-25T01:30:00+02:00', '2026-10-25 09:00'], // clocks go back at 03:00
    ['2026-10-25T02:30:00+01:00', '2026-10-25 09:00'], // the repeated hour
  ])('moves %s to %s', (at, want) => {
    const ms = Date.parse(at);
    const shift = daytimeShiftMs(ms);
    expect(shift).toBeGreaterThan(0);
    expect(local(ms + shift)).toBe(want);
  });

  it('leaves daytime alone', () => {
    for (const at of ['2026-12-06T06:00:00+01:00', '2026-12-06T12:00:00+01:00', '2026-07-01T21:59:00+02:00'])
      expect(daytimeShiftMs(Date.parse(at))).toBe(0);
  });
});
