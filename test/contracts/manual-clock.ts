import type { Clock, TimerHandle } from '../../protocol/index.js';

/** A clock that moves only when told: timers fire in `advance()`, in time order. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return 1_800_000_000_000 + this.t;
  }

  monotonic(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as unknown as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers one by one (bounded). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, tm] of this.timers) {
        if (tm.at <= end && tm.at < nextAt) {
          nextAt = tm.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const tm = this.timers.get(nextId);
      this.timers.delete(nextId);
      this.t = Math.max(this.t, nextAt);
      tm?.fn();
    }
    this.t = end;
  }
}
