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

/** Resolves after `ms` on the given clock. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const h = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(h);
      resolve();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
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
