import type { FeedbackMode } from '../../protocol/index.js';
import type { FeedbackPattern, SignalOptions } from './ports/feedback.js';

/**
 * What a pushed `feedbackMode` does to a pattern (device/README.md "Feedback modes"). Every pattern is
 * always shown: care staff must always see started / ended / not accepted (docs/domain.md), so a mode only
 * takes the sound away, never the light.
 *
 * - normal: light and sound, as in the pattern table.
 * - quiet: light only for started / ended / repeat / identify; "not accepted" and the faults keep their
 *   sound, so they are the only patterns that sound and cannot be missed.
 * - silent: light only for every pattern (e.g. a client disturbed by any sound); the lights alone still
 *   tell started (green, one long), ended (green, two), not accepted (red, long) and faults (red, blinking).
 */
export function signalOptions(mode: FeedbackMode, pattern: FeedbackPattern): Required<SignalOptions> {
  switch (mode) {
    case 'normal':
      return { sound: true };
    case 'quiet':
      return { sound: ALWAYS_AUDIBLE_WHEN_QUIET.has(pattern) };
    case 'silent':
      return { sound: false };
  }
}

const ALWAYS_AUDIBLE_WHEN_QUIET: ReadonlySet<FeedbackPattern> = new Set([
  'rejected',
  'fault-reader',
  'fault-storage',
]);
