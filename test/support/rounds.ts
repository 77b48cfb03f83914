/**
 * How many rounds a randomised crash or chaos test runs: its own count times VISITTAG_TEST_ROUNDS_SCALE
 * (default 1), never fewer than `min`. scripts/test.sh runs the suite once on the machine's Node with every
 * round, and on the other Node majors with a third of the SIGKILL and chaos rounds (the same code paths and
 * the same invariants, checked fewer times), so three majors fit CI's time (CONTRIBUTING.md, "How the suite
 * runs"). A value that is not a number in (0, 1] stops the run with the fix rather than quietly testing less.
 */
export function rounds(full: number, min: number): number {
  const raw = process.env.VISITTAG_TEST_ROUNDS_SCALE;
  if (raw === undefined || raw === '') return full;
  const scale = Number(raw);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1) {
    throw new Error(
      `VISITTAG_TEST_ROUNDS_SCALE=${raw} is not a number in (0, 1]. Fix: unset it (every round) or set e.g. 0.34.`,
    );
  }
  return Math.max(min, Math.round(full * scale));
}
