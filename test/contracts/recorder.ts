import type { CardReader, CardReaderEvent, CardReaderEvents } from '../../device/src/ports/card-reader.js';

export type Recorded = {
  [E in CardReaderEvent]: { event: E; data: CardReaderEvents[E][0] };
}[CardReaderEvent];

const EVENTS: CardReaderEvent[] = ['card', 'card-removed', 'attached', 'detached', 'error'];

/** Records every event a CardReader emits, in order, and waits for the ones a test expects. */
export class ReaderRecorder {
  readonly events: Recorded[] = [];
  private waiters: (() => void)[] = [];
  private readonly detachFns: (() => void)[] = [];

  constructor(reader: CardReader) {
    for (const event of EVENTS) this.listen(reader, event);
  }

  private listen<E extends CardReaderEvent>(reader: CardReader, event: E): void {
    const fn = (...args: CardReaderEvents[E]) => {
      this.events.push({ event, data: args[0] } as Recorded);
      for (const w of this.waiters.splice(0)) w();
    };
    reader.on(event, fn);
    this.detachFns.push(() => reader.off(event, fn));
  }

  of<E extends CardReaderEvent>(event: E): CardReaderEvents[E][0][] {
    return this.events.filter((e) => e.event === event).map((e) => e.data as CardReaderEvents[E][0]);
  }

  /** Resolves when `event` has been seen `count` times in total; fails after timeoutMs. */
  async waitFor<E extends CardReaderEvent>(
    event: E,
    count = 1,
    timeoutMs = 10_000,
  ): Promise<CardReaderEvents[E][0]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.of(event);
      const hit = seen[count - 1];
      if (hit !== undefined) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${count}× "${event}"; saw ${JSON.stringify(this.events)}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  dispose(): void {
    for (const f of this.detachFns) f();
  }
}
