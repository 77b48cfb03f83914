import { EventEmitter } from 'node:events';
import { normalizeUid, systemClock } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { CardReader, CardReaderEvent, CardReaderEvents } from '../ports/card-reader.js';

export interface SimulatedCardReaderOptions {
  clock?: Clock;
  /** Reader name reported in `attached`/`detached`. */
  name?: string;
  /** Whether a reader is attached when started (default true). */
  attachedAtStart?: boolean;
  /** Fault hook: called by start(); throw to simulate a driver that cannot start. */
  startFn?: () => Promise<void> | void;
  /** Fault hook: called by stop(). */
  stopFn?: () => Promise<void> | void;
}

/**
 * A card reader without hardware, for the simulator and tests. Script it with `present()`,
 * `remove()`, `bounce()`, `detach()`, `attach()` and `fail()`. Like the real driver it emits one
 * `card` per presentation: a card left in the field is one tap, not a stream.
 */
export class SimulatedCardReader implements CardReader {
  private readonly emitter = new EventEmitter();
  private readonly clock: Clock;
  private readonly name: string;
  private readonly opts: SimulatedCardReaderOptions;
  private running = false;
  private isAttached: boolean;
  private current: string | null = null;

  constructor(opts: SimulatedCardReaderOptions = {}) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.name = opts.name ?? 'Simulated Reader 00';
    this.isAttached = opts.attachedAtStart ?? true;
  }

  get attached(): boolean {
    return this.running && this.isAttached;
  }

  /** The normalised UID of the card in the field, if any. */
  get cardPresent(): string | null {
    return this.current;
  }

  get started(): boolean {
    return this.running;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.opts.startFn?.();
    this.running = true;
    if (this.isAttached) this.emit('attached', { name: this.name });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    await this.opts.stopFn?.();
    this.running = false;
    this.current = null;
  }

  /**
   * Puts a card in the field. Emits `card` unless the same card is already present (left on the
   * reader). Another card present is removed first. Invalid UIDs emit `error` like a bad read.
   */
  present(uid: string): void {
    if (!this.running || !this.isAttached) return;
    const norm = normalizeUid(uid);
    if (!norm.ok) {
      this.emit('error', { message: `unreadable card: ${norm.reason}`, code: 'bad-uid' });
      return;
    }
    if (this.current === norm.uid) return;
    if (this.current !== null) this.remove();
    this.current = norm.uid;
    this.emit('card', { uid: norm.uid, atMonoMs: Math.floor(this.clock.monotonic()) });
  }

  /** Takes the card out of the field (no-op when none). */
  remove(): void {
    if (this.current === null) return;
    const uid = this.current;
    this.current = null;
    if (this.running) this.emit('card-removed', { uid, atMonoMs: Math.floor(this.clock.monotonic()) });
  }

  /**
   * A card that flickers at the edge of the field: present / remove / present within a few ms.
   * Like the real driver, the flicker is absorbed: one `card` event, the card stays present.
   */
  bounce(uid: string): void {
    const norm = normalizeUid(uid);
    if (!norm.ok || !this.running || !this.isAttached) return this.present(uid);
    if (this.current !== norm.uid) this.present(norm.uid);
  }

  /** A tap: present then remove. */
  tap(uid: string): void {
    this.present(uid);
    this.remove();
  }

  /** Unplugs the reader (card in the field is lost). */
  detach(reason = 'unplugged'): void {
    if (!this.isAttached) return;
    this.current = null;
    this.isAttached = false;
    if (this.running) this.emit('detached', { name: this.name, reason });
  }

  /** Plugs the reader back in. */
  attach(): void {
    if (this.isAttached) return;
    this.isAttached = true;
    if (this.running) this.emit('attached', { name: this.name });
  }

  /** Simulates a read error (never fatal). */
  fail(message = 'transmit failed', code = 'transmit'): void {
    if (this.running) this.emit('error', { message, code });
  }

  on<E extends CardReaderEvent>(event: E, listener: (...args: CardReaderEvents[E]) => void): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<E extends CardReaderEvent>(event: E, listener: (...args: CardReaderEvents[E]) => void): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  private emit<E extends CardReaderEvent>(event: E, ...args: CardReaderEvents[E]): void {
    // 'error' without listeners must not throw out of a scripted call.
    if (event === 'error' && this.emitter.listenerCount('error') === 0) return;
    this.emitter.emit(event, ...args);
  }
}
