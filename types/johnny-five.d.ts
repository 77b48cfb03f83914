/**
 * Hand-written declarations for the part of johnny-five 2.x visittag uses (Board with an IO
 * plugin, Led). There is no maintained @types package for 2.x.
 */
declare module 'johnny-five' {
  import { EventEmitter } from 'node:events';

  export interface BoardOptions {
    /** An IO plugin instance (raspi-io, pigpio-io, mock-firmata…). */
    io?: unknown;
    repl?: boolean;
    debug?: boolean;
    /** Whether the board installs its own SIGINT handler (the device's main.ts handles signals). */
    sigint?: boolean;
    /** ms to wait for "ready" after "connect" (serial boards only). */
    timeout?: number;
    id?: string;
  }

  export class Board extends EventEmitter {
    constructor(options?: BoardOptions);
    readonly isReady: boolean;
    readonly io: unknown;
    on(event: 'ready', listener: () => void): this;
    on(event: 'error', listener: (err: unknown) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export interface LedOptions {
    pin: string | number;
    board?: Board;
    isAnode?: boolean;
  }

  export class Led {
    constructor(options: LedOptions | string | number);
    readonly isOn: boolean;
    on(): this;
    off(): this;
    stop(): this;
  }
}
