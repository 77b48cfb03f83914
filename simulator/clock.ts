/**
 * Virtual time for the simulator: a protocol `Clock` whose timers fire only when the simulation
 * advances it, so an 8-hour day runs in seconds while real MQTT and SQLite I/O happens between steps.
 * Each virtual reader gets a `DeviceClock` view with its own boot (monotonic origin), skew and
 * synced/unsynced wall clock, as a Raspberry Pi without RTC has.
 */
import type { Clock, TimerHandle } from '../protocol/index.js';

interface Timer {
  id: number;
  dueAt: number;
  fn: () => void;
}

/** Lets real I/O (sockets, child processes) make progress: one turn of the event loop. */
export function drainIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class VirtualClock implements Clock {
  private current: number;
  private readonly origin: number;
  private readonly heap: Timer[] = [];
  private readonly live = new Map<number, Timer>();
  private nextId = 1;
  /** Timers fired since creation (for progress output). */
  fired = 0;

  constructor(opts: { startMs: number }) {
    this.current = opts.startMs;
    this.origin = opts.startMs;
  }

  now(): number {
    return this.current;
  }

  monotonic(): number {
    return this.current - this.origin;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const t: Timer = { id: this.nextId++, dueAt: this.current + delay, fn };
    this.live.set(t.id, t);
    this.push(t);
    return t.id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.live.delete(handle as unknown as number);
  }

  /** Pending timers (not cleared, not fired). */
  get pending(): number {
    return this.live.size;
  }

  /** Due time of the earliest pending timer, or null. */
  nextDueAt(): number | null {
    this.prune();
    return this.heap[0]?.dueAt ?? null;
  }

  /**
   * Advances to `target`, firing due timers in time order (ties in creation order), letting promise
   * continuations run after each. Time never goes backwards.
   */
  async advanceTo(target: number): Promise<void> {
    for (let guard = 0; guard < 1_000_000; guard++) {
      this.prune();
      const t = this.heap[0];
      if (!t || t.dueAt > target) break;
      this.pop();
      this.live.delete(t.id);
      if (t.dueAt > this.current) this.current = t.dueAt;
      this.fired++;
      try {
        t.fn();
      } catch {
        // a throwing timer callback is the component's bug; the clock keeps going
      }
      await Promise.resolve();
    }
    if (target > this.current) this.current = target;
  }

  /**
   * Runs virtual time forward by `ms` in steps of at most `stepMs`, draining real I/O `drainTurns`
   * times between steps. `onStep` runs after each step (progress, scenario actions).
   */
  async run(ms: number, opts: { stepMs: number; drainTurns?: number }): Promise<void> {
    const end = this.current + ms;
    while (this.current < end) {
      await this.advanceTo(Math.min(end, this.current + opts.stepMs));
      for (let i = 0; i < (opts.drainTurns ?? 1); i++) await drainIo();
    }
  }

  private prune(): void {
    while (this.heap.length > 0 && !this.live.has((this.heap[0] as Timer).id)) this.pop();
  }

  private less(a: Timer, b: Timer): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.id < b.id);
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Timer, h[p] as Timer)) break;
      [h[i], h[p]] = [h[p] as Timer, h[i] as Timer];
      i = p;
    }
  }

  private pop(): Timer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l] as Timer, h[m] as Timer)) m = l;
        if (r < h.length && this.less(h[r] as Timer, h[m] as Timer)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Timer, h[i] as Timer];
        i = m;
      }
    }
    return top;
  }
}

export interface DeviceClockOptions {
  /** Wall-clock error of the device while "synced" (ms; positive = ahead). */
  skewMs?: number;
  /** Whether the wall clock starts synced (default true). */
  synced?: boolean;
}

/**
 * One device's view of virtual time. `reboot()` starts a new boot: the monotonic clock restarts at
 * 0, pending timers of the old boot are dropped (the process died), and an unsynced wall clock
 * resumes from the last time the device saw (like fake-hwclock on a Pi) until `sync()`.
 */
export class DeviceClock implements Clock {
  private bootAt: number;
  private skewMs: number;
  private isSynced: boolean;
  /** Unsynced wall time at boot (what the Pi restored); meaningful while !isSynced. */
  private wallAtBoot: number;
  private readonly handles = new Set<TimerHandle>();

  constructor(
    private readonly master: VirtualClock,
    opts: DeviceClockOptions = {},
  ) {
    this.bootAt = master.now();
    this.skewMs = opts.skewMs ?? 0;
    this.isSynced = opts.synced ?? true;
    this.wallAtBoot = master.now() + this.skewMs;
  }

  now(): number {
    const sinceBoot = this.master.now() - this.bootAt;
    return Math.floor(this.isSynced ? this.master.now() + this.skewMs : this.wallAtBoot + sinceBoot);
  }

  monotonic(): number {
    return this.master.now() - this.bootAt;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const h: TimerHandle = this.master.setTimeout(() => {
      this.handles.delete(h);
      fn();
    }, ms);
    this.handles.add(h);
    return h;
  }

  clearTimeout(handle: TimerHandle): void {
    this.handles.delete(handle);
    this.master.clearTimeout(handle);
  }

  get synced(): boolean {
    return this.isSynced;
  }

  /** Whether the wall clock is synced (pass as createDevice's `clockSynced`). */
  readonly clockSynced = (): boolean => this.isSynced;

  /** NTP (or the gateway) set the clock. */
  sync(): void {
    this.isSynced = true;
  }

  setSkew(ms: number): void {
    this.skewMs = ms;
  }

  get skew(): number {
    return this.skewMs;
  }

  /** Drops every pending timer of this boot (the process died). */
  cancelAll(): void {
    for (const h of this.handles) this.master.clearTimeout(h);
    this.handles.clear();
  }

  /**
   * A new boot. With `synced: false` the wall clock resumes from `lastWallMs` (default: the wall
   * time the device showed just now, i.e. the outage is lost) and runs unsynced until `sync()`.
   */
  reboot(opts: { synced: boolean; lastWallMs?: number }): void {
    const lastWall = opts.lastWallMs ?? this.now();
    this.cancelAll();
    this.bootAt = this.master.now();
    this.isSynced = opts.synced;
    this.wallAtBoot = lastWall;
  }
}
