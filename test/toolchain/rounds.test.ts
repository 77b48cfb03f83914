import { afterEach, describe, expect, it } from 'vitest';
import { rounds } from '../support/rounds.js';

describe('rounds(): the crash and chaos tests on the other Node majors', () => {
  const saved = process.env.VISITTAG_TEST_ROUNDS_SCALE;
  afterEach(() => {
    if (saved === undefined) delete process.env.VISITTAG_TEST_ROUNDS_SCALE;
    else process.env.VISITTAG_TEST_ROUNDS_SCALE = saved;
  });

  it('is the full count when no scale is set', () => {
    delete process.env.VISITTAG_TEST_ROUNDS_SCALE;
    expect(rounds(30, 10)).toBe(30);
  });

  it('scales, and never goes below the floor', () => {
    process.env.VISITTAG_TEST_ROUNDS_SCALE = '0.34';
    expect(rounds(30, 10)).toBe(10);
    expect(rounds(20, 11)).toBe(11);
    expect(rounds(100, 10)).toBe(34);
    process.env.VISITTAG_TEST_ROUNDS_SCALE = '1';
    expect(rounds(25, 8)).toBe(25);
  });

  it('stops on a value that would quietly test less or more, naming the fix', () => {
    for (const bad of ['0', '-1', '2', 'abc']) {
      process.env.VISITTAG_TEST_ROUNDS_SCALE = bad;
      expect(() => rounds(30, 10)).toThrow(/VISITTAG_TEST_ROUNDS_SCALE=.*Fix: unset it/);
    }
  });
});
