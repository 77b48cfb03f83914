/**
 * The nfc-pcsc driver's logic for what vpcd cannot produce: a USB reader unplugged while pcscd
 * keeps running (nfc-pcsc's per-reader `end`), a second reader taking over, a card that leaves
 * while its UID is still being read, a PC/SC context that cannot be opened, and how escape
 * commands are routed. A scripted stand-in for the nfc-pcsc module is injected via `nfcModule`;
 * pcscd's socket is a real UNIX socket in a temp dir (the driver probes it before `new NFC()`).
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/index.js';
import { createNfcPcscReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import type { NfcPcscCardReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import { ReaderRecorder } from '../contracts/recorder.js';

const logger = pino({ level: 'silent' });

/** Scripted nfc-pcsc Reader: cards answer GET DATA from `uid`, calls are logged. */
class ScriptedReader extends EventEmitter {
  autoProcessing = true;
  connection: { type: number; protocol: number } | null = null;
  readonly calls: string[] = [];
  uid = Buffer.from('01020304', 'hex');
  /** Resolves the next transmit only when released (a slow read). */
  hold: Promise<void> | null = null;
  readonly reader = { name: '', close: () => this.calls.push('close') };
  constructor(readonly name: string) {
    super();
    this.reader.name = name;
  }
  connect(mode = 'CONNECT_MODE_CARD'): Promise<{ type: number; protocol: number }> {
    this.calls.push(`connect:${mode}`);
    this.connection = { type: mode === 'CONNECT_MODE_DIRECT' ? 3 : 2, protocol: 2 };
    return Promise.resolve(this.connection);
  }
  disconnect(): Promise<boolean> {
    this.calls.push('disconnect');
    this.connection = null;
    return Promise.resolve(true);
  }
  async transmit(data: Buffer): Promise<Buffer> {
    this.calls.push(`transmit:${data.toString('hex')}`);
    if (this.hold) await this.hold;
    return data[1] === 0xca
      ? Buffer.concat([this.uid, Buffer.from('9000', 'hex')])
      : Buffer.from('9000', 'hex');
  }
  control(data: Buffer): Promise<Buffer> {
    this.calls.push(`control:${data.toString('hex')}`);
    return Promise.resolve(Buffer.from('e100000000', 'hex'));
  }
  /** A card arrives: like nfc-pcsc with autoProcessing off, connect then emit `card`. */
  async cardIn(): Promise<void> {
    await this.connect();
    this.emit('card', { atr: Buffer.from('3b8f8001804f0ca000000306030001000000006a', 'hex') });
  }
  cardOut(): void {
    this.connection = null;
    this.emit('card.off', {});
  }
}

class ScriptedNfc extends EventEmitter {
  static instances: ScriptedNfc[] = [];
  static failNext = 0;
  closed = false;
  constructor() {
    super();
    if (ScriptedNfc.failNext > 0) {
      ScriptedNfc.failNext--;
      throw new Error('SCardEstablishContext error: Internal error.(0x80100001)');
    }
    ScriptedNfc.instances.push(this);
  }
  close(): void {
    this.closed = true;
    this.emit('error', new Error('SCardGetStatusChange error: Command cancelled.(0x80100002)'));
  }
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('nfc-pcsc driver logic (scripted nfc module)', () => {
  let dir: string;
  let server: net.Server;
  let reader: NfcPcscCardReader;
  let rec: ReaderRecorder;

  beforeEach(async () => {
    ScriptedNfc.instances = [];
    ScriptedNfc.failNext = 0;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visittag-nfc-unit-'));
    const socket = path.join(dir, 'pcscd.comm');
    server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(socket, r));
    reader = createNfcPcscReader({
      logger,
      clock: systemClock,
      pcscdSocket: socket,
      readerName: 'acr122',
      pollMs: 10,
      nfcModule: () => Promise.resolve({ NFC: ScriptedNfc }),
    });
    rec = new ReaderRecorder(reader);
  });

  afterEach(async () => {
    rec.dispose();
    await reader.stop();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function session(): Promise<ScriptedNfc> {
    await reader.start();
    for (let i = 0; i < 500 && ScriptedNfc.instances.length === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    const nfc = ScriptedNfc.instances[0];
    if (!nfc) throw new Error('the driver never created an NFC context');
    return nfc;
  }

  it('reports a USB unplug (reader end) as detached and the replugged reader as attached', async () => {
    const nfc = await session();
    const r1 = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r1);
    expect(r1.autoProcessing).toBe(false);
    await rec.waitFor('attached');
    r1.emit('end');
    expect((await rec.waitFor('detached')).reason).toBe('reader removed');
    expect(reader.attached).toBe(false);
    const r2 = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r2);
    await rec.waitFor('attached', 2);
    await r2.cardIn();
    expect((await rec.waitFor('card')).uid).toBe('01020304');
    expect(ScriptedNfc.instances).toHaveLength(1); // same PC/SC context throughout
  });

  it('ignores readers whose name does not match, and a second matching reader takes over', async () => {
    const nfc = await session();
    const other = new ScriptedReader('Generic Smart Card Reader 00 00');
    const a = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    const b = new ScriptedReader('ACS ACR122U PICC Interface 01 00');
    nfc.emit('reader', other);
    nfc.emit('reader', a);
    nfc.emit('reader', b);
    await rec.waitFor('attached');
    await other.cardIn();
    await b.cardIn(); // not the active reader yet
    await flush();
    expect(rec.of('card')).toEqual([]);
    a.emit('end');
    await rec.waitFor('attached', 2);
    expect(reader.readerName).toBe(b.name);
    b.cardOut();
    await b.cardIn();
    expect((await rec.waitFor('card')).uid).toBe('01020304');
  });

  it('keeps card and card-removed in order when the card leaves during the UID read', async () => {
    const nfc = await session();
    const r = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r);
    await rec.waitFor('attached');
    let release = () => {};
    r.hold = new Promise<void>((res) => (release = res));
    await r.cardIn();
    r.cardOut();
    await flush();
    expect(rec.of('card')).toEqual([]);
    release();
    await rec.waitFor('card-removed');
    expect(rec.events.filter((e) => e.event !== 'attached').map((e) => e.event)).toEqual([
      'card',
      'card-removed',
    ]);
  });

  it('reports a PC/SC context that cannot be opened as an error and retries', async () => {
    ScriptedNfc.failNext = 2;
    const nfc = await session();
    expect((await rec.waitFor('error')).code).toBe('pcsc-context');
    nfc.emit('reader', new ScriptedReader('ACS ACR122U PICC Interface 00 00'));
    await rec.waitFor('attached');
    expect(rec.of('error')).toHaveLength(2);
  });

  it('rejects 4/7/10-byte violations and all-zero UIDs as bad-uid errors, never taps', async () => {
    const nfc = await session();
    const r = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r);
    await rec.waitFor('attached');
    for (const [i, bad] of ['0102', '00000000', '0102030405060708'].entries()) {
      r.uid = Buffer.from(bad, 'hex');
      await r.cardIn();
      expect((await rec.waitFor('error', i + 1)).code).toBe('bad-uid');
      r.cardOut();
    }
    expect(rec.of('card')).toEqual([]);
    expect(rec.of('card-removed')).toEqual([]);
  });

  it('routes escape: pseudo-APDU over a card connection, else a direct connection and the escape IOCTL', async () => {
    const nfc = await session();
    const r = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r);
    await rec.waitFor('attached');
    await reader.escape(Buffer.from('ff00400004010101', 'hex'));
    expect(r.calls.splice(0)).toEqual([
      'connect:CONNECT_MODE_DIRECT',
      'control:ff00400004010101',
      'disconnect',
    ]);
    await r.cardIn();
    await rec.waitFor('card');
    r.calls.splice(0);
    await reader.escape(Buffer.from('ff00400004010101', 'hex'));
    await reader.escape(Buffer.from('e000002901', 'hex'));
    expect(r.calls).toEqual(['transmit:ff00400004010101', 'control:e000002901']);
  });

  it('opens a fresh PC/SC context while no reader is attached, and keeps one while a reader is', async () => {
    await reader.stop();
    reader = createNfcPcscReader({
      logger,
      clock: systemClock,
      pcscdSocket: path.join(dir, 'pcscd.comm'),
      pollMs: 10,
      rescanMs: 20,
      nfcModule: () => Promise.resolve({ NFC: ScriptedNfc }),
    });
    rec = new ReaderRecorder(reader);
    await session();
    for (let i = 0; i < 500 && ScriptedNfc.instances.length < 3; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(ScriptedNfc.instances.length).toBeGreaterThanOrEqual(3);
    expect(ScriptedNfc.instances.slice(0, -1).every((n) => n.closed)).toBe(true);
    const nfc = ScriptedNfc.instances.at(-1);
    nfc?.emit('reader', new ScriptedReader('ACS ACR122U PICC Interface 00 00'));
    await rec.waitFor('attached');
    const count = ScriptedNfc.instances.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(ScriptedNfc.instances.length).toBe(count);
    expect(nfc?.closed).toBe(false);
  });

  it('closes a lost context only once pcscd answers again (pcsclite blocks the thread closing it while pcscd is gone)', async () => {
    const nfc = await session();
    const r1 = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    nfc.emit('reader', r1);
    await rec.waitFor('attached');
    // pcscd goes away: its socket closes, then pcsclite reports the context lost
    const socket = path.join(dir, 'pcscd.comm');
    await new Promise<void>((r) => server.close(() => r()));
    nfc.emit('error', new Error('SCardGetStatusChange error: Service was stopped.(0x8010001e)'));
    await rec.waitFor('detached');
    await new Promise((r) => setTimeout(r, 150));
    // a close() now would join pcsclite's status thread, which retries without end until pcscd is back
    expect(nfc.closed).toBe(false);
    expect(r1.calls).not.toContain('close');
    server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(socket, r));
    for (let i = 0; i < 200 && !nfc.closed; i++) await new Promise((r) => setTimeout(r, 5));
    expect(nfc.closed).toBe(true);
    expect(r1.calls.at(-1)).toBe('close');
  });

  it('stopping while pcscd stays gone gives up closing the lost context after a bounded wait', async () => {
    const nfc = await session();
    await new Promise<void>((r) => server.close(() => r()));
    nfc.emit('error', new Error('SCardGetStatusChange error: Service was stopped.(0x8010001e)'));
    await new Promise((r) => setTimeout(r, 50));
    await reader.stop(); // resolves: it does not wait for pcscd without end
    expect(nfc.closed).toBe(false);
    // afterEach closes the server: give it one to close
    server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(path.join(dir, 'pcscd.comm'), r));
  });

  it('says how to fix a missing nfc-pcsc package', async () => {
    const broken = createNfcPcscReader({
      logger,
      clock: systemClock,
      nfcModule: () => Promise.reject(new Error("Cannot find package 'nfc-pcsc'")),
    });
    await expect(broken.start()).rejects.toThrow(/apt install pcscd libpcsclite-dev.*"simulated"/);
    expect(broken.attached).toBe(false);
  });

  it('rejects escape with no reader attached, and closes every reader and the context on stop', async () => {
    const nfc = await session();
    await expect(reader.escape(Buffer.from('ff00400004010101', 'hex'))).rejects.toThrow(/no card reader/);
    const r = new ScriptedReader('ACS ACR122U PICC Interface 00 00');
    const other = new ScriptedReader('Other 00 00');
    nfc.emit('reader', r);
    nfc.emit('reader', other);
    await rec.waitFor('attached');
    await r.cardIn();
    await rec.waitFor('card');
    await reader.stop();
    expect(r.calls).toContain('disconnect');
    expect(r.calls.at(-1)).toBe('close');
    expect(other.calls.at(-1)).toBe('close');
    expect(nfc.closed).toBe(true);
    expect(rec.of('detached')).toEqual([]); // stop is silent
  });
});
