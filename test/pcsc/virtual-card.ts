/**
 * A small virtual contactless card for vsmartcard's vpcd driver (the PC/SC reader pcscd loads).
 * vpcd listens on TCP; a card is a TCP client: connected = card in the field, closed = card removed.
 * Wire format: frames of a 2-byte big-endian length + payload. A 1-byte payload from vpcd is a
 * control code (0 power off, 1 power on, 2 reset, 4 "send your ATR"); longer payloads are command
 * APDUs answered with a response APDU. This card answers GET DATA (FF CA 00 00 00) with its UID
 * plus 90 00; everything else goes to its applet (virtual-ntag424.ts), or gets 6A 81 (function not
 * supported) when it has none.
 */
import net from 'node:net';

/** ATR of a MIFARE Classic 1K as PC/SC part 3 readers report it: nfc-pcsc sees ISO 14443-3. */
export const ATR_ISO14443_3 = Buffer.from('3B8F8001804F0CA000000306030001000000006A', 'hex');
/** ATR of an ISO 14443-4 (T=CL) card without historical bytes: nfc-pcsc sees ISO 14443-4. */
export const ATR_ISO14443_4 = Buffer.from('3B8080018080', 'hex');

/** vpcd control codes: 0 power off, 1 power on, 2 reset, 4 get ATR. */
const CTRL_GET_ATR = 4;
const CTRL_POWER_ON = 1;
const CTRL_RESET = 2;

export interface VirtualCardOptions {
  port: number;
  host?: string;
  /** UID as hex (any length: malformed UIDs are how the driver's rejection is tested). */
  uid: string;
  atr?: Buffer;
  /** Answer GET DATA with this status word instead of 90 00 (e.g. '6300' for a failed read). */
  getDataStatus?: string;
  /** The card's applet (e.g. virtual-ntag424.ts): answers every APDU but GET DATA; undefined → 6A 81. */
  applet?: { respond(apdu: Buffer): Buffer | undefined; powerOn?(): void };
}

export class VirtualCard {
  readonly apdus: Buffer[] = [];
  private socket: net.Socket | null = null;
  private pending = Buffer.alloc(0);
  private closed: Promise<void> = Promise.resolve();

  constructor(private readonly opts: VirtualCardOptions) {}

  /** Puts the card in the field: connects to vpcd. Resolves once connected. */
  async insert(): Promise<void> {
    if (this.socket) return;
    this.opts.applet?.powerOn?.(); // a new presentation: nothing selected, no session
    const socket = net.connect({ port: this.opts.port, host: this.opts.host ?? '127.0.0.1' });
    this.socket = socket;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {
      /* vpcd went away (pcscd stopped): the 'close' that follows is the card leaving */
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
  }

  /** Takes the card out of the field: closes the connection. Resolves once closed. */
  async remove(): Promise<void> {
    const s = this.socket;
    if (!s) return;
    this.socket = null;
    this.pending = Buffer.alloc(0);
    s.destroy();
    await this.closed;
  }

  get inserted(): boolean {
    return this.socket !== null && !this.socket.destroyed;
  }

  private onData(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      if (this.pending.length < 2) return;
      const len = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + len) return;
      const frame = this.pending.subarray(2, 2 + len);
      this.pending = this.pending.subarray(2 + len);
      this.onFrame(Buffer.from(frame));
    }
  }

  private onFrame(frame: Buffer): void {
    if (frame.length === 1) {
      // power on / off / reset need no answer; only "send your ATR" does
      if (frame[0] === CTRL_GET_ATR) this.send(this.opts.atr ?? ATR_ISO14443_3);
      if (frame[0] === CTRL_POWER_ON || frame[0] === CTRL_RESET) this.opts.applet?.powerOn?.();
      return;
    }
    this.apdus.push(frame);
    if (frame.length >= 4 && frame[0] === 0xff && frame[1] === 0xca && frame[2] === 0x00) {
      const status = Buffer.from(this.opts.getDataStatus ?? '9000', 'hex');
      const body = status.equals(Buffer.from('9000', 'hex'))
        ? Buffer.from(this.opts.uid, 'hex')
        : Buffer.alloc(0);
      this.send(Buffer.concat([body, status]));
      return;
    }
    this.send(this.opts.applet?.respond(frame) ?? Buffer.from('6A81', 'hex'));
  }

  private send(payload: Buffer): void {
    const s = this.socket;
    if (!s) return;
    const head = Buffer.alloc(2);
    head.writeUInt16BE(payload.length, 0);
    s.write(Buffer.concat([head, payload]));
  }
}
