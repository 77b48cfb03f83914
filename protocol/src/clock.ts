/**
 * Time as every component sees it (CONTRIBUTING.md, "Injected clock, timers, ids and logger"). Domain code never calls Date.now() or
 * setTimeout directly: it gets a Clock, so tests use fake time and the simulator runs a day in seconds.
 */
export interface TimerHandle {
  readonly __timer: unique symbol;
}

export interface Clock {
  /** Wall-clock ms since the Unix epoch. On a Pi without RTC this may be wrong until synced. */
  now(): number;
  /** Monotonic ms; never goes backwards; its origin is arbitrary (process or boot start). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * Resolves after `ms` on the given clock, or as soon as one of the signals aborts. Several signals are
 * listened to directly, not combined with `AbortSignal.any`: a long-lived signal given to `AbortSignal.any`
 * over and over keeps a WeakRef per call (the gateway's forwarder did so on every idle wait: 20,000 WeakRefs,
 * about 2 MB of heap per 100,000 taps in the soak row). Every listener is removed when it resolves.
 */
export function sleep(
  clock: Clock,
  ms: number,
  signal?: AbortSignal | readonly AbortSignal[],
): Promise<void> {
  const signals: readonly AbortSignal[] =
    signal === undefined ? [] : signal instanceof AbortSignal ? [signal] : signal;
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve();
    const done = (): void => {
      clock.clearTimeout(h);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const h = clock.setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}

/** Capped exponential backoff with full jitter: uniform in [base, min(cap, base·2^attempt)]. */
export function backoffDelay(
  attempt: number,
  opts: { baseMs: number; capMs: number; random: () => number },
): number {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(opts.baseMs + opts.random() * Math.max(0, ceiling - opts.baseMs));
}

/** The real clock: Date.now(), performance.now() and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return t as unknown as TimerHandle;
  },
  clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
};
