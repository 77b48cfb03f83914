import { Firmata } from 'mock-firmata';
import type { ManualClock } from './manual-clock.js';

/** A mock Firmata board whose pin writes are recorded with the (fake) time they happened. */
export function mockBoard(clock: ManualClock): { io: Firmata; out: string[]; setBroken(b: boolean): void } {
  const io = new Firmata();
  const out: string[] = [];
  let broken = false;
  const wrap = (name: 'digitalWrite' | 'analogWrite' | 'pinMode') => {
    const orig = io[name].bind(io);
    io[name] = (pin: number, value: number) => {
      if (broken && name !== 'pinMode') throw new Error('GPIO write failed');
      out.push(`${clock.monotonic()}:${name}(${pin},${value})`);
      orig(pin, value);
    };
  };
  wrap('digitalWrite');
  wrap('analogWrite');
  wrap('pinMode');
  // Like a real IO plugin: once johnny-five's Board listens, the plugin connects and becomes ready.
  const once = io.once.bind(io);
  io.once = (event: string | symbol, fn: (...a: unknown[]) => void) => {
    once(event, fn);
    if (event === 'ready') {
      setImmediate(() => {
        io.emit('connect');
        io.emit('ready');
      });
    }
    return io;
  };
  return { io, out, setBroken: (b) => void (broken = b) };
}
