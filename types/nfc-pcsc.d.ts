/**
 * Hand-written declarations for nfc-pcsc 0.8 (the package ships none and there is no @types
 * package). Only the surface visittag uses; see node_modules/nfc-pcsc/src for the rest.
 */
declare module 'nfc-pcsc' {
  import { EventEmitter } from 'node:events';

  export const TAG_ISO_14443_3: 'TAG_ISO_14443_3';
  export const TAG_ISO_14443_4: 'TAG_ISO_14443_4';
  export const CONNECT_MODE_DIRECT: 'CONNECT_MODE_DIRECT';
  export const CONNECT_MODE_CARD: 'CONNECT_MODE_CARD';
  export type ConnectMode = typeof CONNECT_MODE_DIRECT | typeof CONNECT_MODE_CARD;

  /** What nfc-pcsc reports on card arrival (with autoProcessing off: ATR and standard only). */
  export interface CardInfo {
    atr?: Buffer;
    standard?: typeof TAG_ISO_14443_3 | typeof TAG_ISO_14443_4;
    type?: string;
    uid?: string;
  }

  /** The @pokusew/pcsclite reader under an nfc-pcsc Reader. */
  export interface PcscReader extends EventEmitter {
    readonly name: string;
    readonly connected: boolean;
    readonly SCARD_SHARE_DIRECT: number;
    readonly SCARD_SHARE_SHARED: number;
    readonly SCARD_LEAVE_CARD: number;
    readonly IOCTL_CCID_ESCAPE: number;
    close(): void;
  }

  export interface ReaderLogger {
    log(...args: unknown[]): void;
    debug(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  }

  export class Reader extends EventEmitter {
    readonly reader: PcscReader;
    readonly name: string;
    autoProcessing: boolean;
    connection: { type: number; protocol: number } | null;
    card: CardInfo | null;
    connect(mode?: ConnectMode): Promise<{ type: number; protocol: number }>;
    disconnect(): Promise<boolean>;
    transmit(data: Buffer, responseMaxLength: number): Promise<Buffer>;
    control(data: Buffer, responseMaxLength: number): Promise<Buffer>;
    close(): void;
    on(event: 'card', listener: (card: CardInfo) => void): this;
    on(event: 'card.off', listener: (card: CardInfo) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'end', listener: () => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export class ACR122Reader extends Reader {}

  export class NFC extends EventEmitter {
    constructor(logger?: ReaderLogger);
    readonly readers: Record<string, PcscReader>;
    close(): void;
    on(event: 'reader', listener: (reader: Reader) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
}
