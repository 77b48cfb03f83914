/**
 * Hand-written declarations for mock-firmata 0.2 (johnny-five's own test double for a Firmata
 * board; it ships no types). Enough to build a board and spy on pin writes.
 */
declare module 'mock-firmata' {
  import { EventEmitter } from 'node:events';

  export interface MockPin {
    supportedModes: number[];
    mode?: number;
    value: number;
    report: number;
    analogChannel: number;
  }

  export class Firmata extends EventEmitter {
    constructor(opts?: { pins?: MockPin[]; [key: string]: unknown });
    readonly name: string;
    readonly MODES: Record<string, number>;
    readonly pins: MockPin[];
    isReady: boolean;
    pinMode(pin: number, mode: number): void;
    digitalWrite(pin: number, value: number): void;
    analogWrite(pin: number, value: number): void;
  }

  export const Pins: { UNO: MockPin[]; [board: string]: MockPin[] };
  export const SerialPort: unknown;
}
