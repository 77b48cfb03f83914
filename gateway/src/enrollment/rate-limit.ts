import type { Clock } from '../../../protocol/index.js';

export interface GuessLimitSettings {
  /** Length of the counting window. */
  windowMs: number;
  /** Failed exchanges allowed per source address per window. */
  perSource: number;
  /** Failed exchanges allowed from all sources together per window. */
  global: number;
}

export const DEFAULT_GUESS_LIMITS: GuessLimitSettings = { windowMs: 15 * 60_000, perSource: 10, global: 100 };

const MAX_SOURCES = 10_000;

/**
 * Counts failed code exchanges in fixed windows, per source and globally. While a source (or the
 * whole gateway) is over its budget every exchange is refused, valid codes too: guessing ~2^49
 * codes at ≤ 100 tries per 15 minutes is hopeless.
 */
export class GuessLimiter {
  private windowStart = -Infinity;
  private global = 0;
  private readonly bySource = new Map<string, number>();

  constructor(private readonly o: { clock: Clock; limits: GuessLimitSettings }) {}

  /** null when allowed, else the seconds until the window ends. */
  blocked(source: string): { retryAfterSec: number; scope: 'source' | 'global' } | null {
    this.roll();
    const retryAfterSec = Math.max(
      1,
      Math.ceil((this.windowStart + this.o.limits.windowMs - this.o.clock.monotonic()) / 1000),
    );
    if (this.global >= this.o.limits.global) return { retryAfterSec, scope: 'global' };
    if ((this.bySource.get(source) ?? 0) >= this.o.limits.perSource)
      return { retryAfterSec, scope: 'source' };
    return null;
  }

  /** Records a failed exchange; returns the source's failures in this window. */
  fail(source: string): number {
    this.roll();
    this.global++;
    if (!this.bySource.has(source) && this.bySource.size >= MAX_SOURCES) return this.global;
    const n = (this.bySource.get(source) ?? 0) + 1;
    this.bySource.set(source, n);
    return n;
  }

  private roll(): void {
    const now = this.o.clock.monotonic();
    if (now - this.windowStart < this.o.limits.windowMs) return;
    this.windowStart = now;
    this.global = 0;
    this.bySource.clear();
  }
}
