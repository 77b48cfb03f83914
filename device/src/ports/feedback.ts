/**
 * Feedback port (CONTRIBUTING.md, "Ports and drivers"): what the care worker sees and hears. Drivers: johnny-five GPIO,
 * the reader's own LED/buzzer (ACR122U-class escape commands), simulated/console.
 * Patterns are documented in device/README.md.
 */
export const FEEDBACK_PATTERNS = [
  'visit-started',
  'visit-ended',
  'repeat',
  'rejected',
  'fault-reader',
  'fault-storage',
  'identify',
] as const;
export type FeedbackPattern = (typeof FEEDBACK_PATTERNS)[number];

/** How a pattern is shown. `sound: false`: lights only, the buzzer stays off (feedback modes). */
export interface SignalOptions {
  sound?: boolean;
}

export interface Feedback {
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Shows a pattern. Resolves when the pattern has been started (not when it ends): a tap's
   * feedback must never wait on a previous pattern. Never throws; failures are reported via
   * `lastError` and the device's status. `opts.sound: false` shows the same pattern with the
   * buzzer off (default: with sound).
   */
  signal(pattern: FeedbackPattern, opts?: SignalOptions): Promise<void>;
  readonly lastError: string | null;
}
