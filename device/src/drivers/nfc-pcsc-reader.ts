import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { NFC as NfcClass, Reader as NfcReader, CardInfo } from 'nfc-pcsc';
import { sleep } from '../../../protocol/index.js';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { CardReader, CardReaderEvent, CardReaderEvents } from '../ports/card-reader.js';
import { DEFAULT_PCSCD_SOCKET, probePcscd } from './pcsc-socket.js';
import { GET_DATA_MAX_RESPONSE, GET_DATA_UID, parseGetDataResponse } from './pcsc-uid.js';
import type { UidReadResult } from './pcsc-uid.js';
import { describePcscError, sendEscape } from './pcsc-escape.js';
import { readSecureProof } from './secure-read.js';
import { authenticateDesfire, type DesfireReaderKey } from './desfire-auth.js';
import type { CardProof } from '../../../protocol/index.js';

export interface NfcPcscReaderOptions {
  logger: Logger;
  clock: Clock;
  /** Use the first PC/SC reader whose name contains this text (case-insensitive; default: any). */
  readerName?: string;
  /** pcscd's socket (default $PCSCLITE_CSOCK_NAME or /run/pcscd/pcscd.comm). */
  pcscdSocket?: string;
  /** Loads nfc-pcsc (tests and the factory may inject; default `import('nfc-pcsc')`). */
  nfcModule?: () => Promise<unknown>;
  /** Wait between pcscd probes while it is absent, and before a new PC/SC context (default 500 ms). */
  pollMs?: number;
  /** The same card still on the reader when it comes back within this window is not a new tap (60 s). */
  reattachGraceMs?: number;
  /** The same card presented again within this window after leaving is a flicker, not a tap (400 ms). */
  debounceMs?: number;
  /** While no reader is attached, open a fresh PC/SC context this often (default 5 s). */
  rescanMs?: number;
  /** Read the SUN message of ISO 14443-4 cards (NTAG 424 DNA) after the UID (default true). */
  secureRead?: boolean;
  /**
   * DESFire EV2/EV3 authentication (issue 18): an ISO 14443-4 card without a SUN message that has
   * this application must authenticate with its diversified read key; absent: such cards are UID only.
   */
  desfire?: DesfireReaderKey;
}

/** A CardReader over nfc-pcsc, plus the reader's own escape channel (LED/buzzer). */
export interface NfcPcscCardReader extends CardReader {
  /** Sends a reader command: pseudo-APDU over the card connection, else SCardControl(IOCTL_CCID_ESCAPE). */
  escape(apdu: Buffer): Promise<Buffer>;
  /** Full PC/SC name of the reader in use, or null. */
  readonly readerName: string | null;
  /** Sends an APDU to the card in the field (personalisation); one at a time with escapes. */
  transmit(apdu: Buffer, maxResponse: number): Promise<Buffer>;
}

type NfcCtor = new () => NfcClass;
type Mono = { uid: string; atMs: number };

interface Session {
  nfc: NfcClass;
  /** Readers that match readerName, by name. */
  readers: Map<string, NfcReader>;
  /** Every reader seen, matching or not: all are closed with the session. */
  seen: Set<NfcReader>;
}

const RESCAN = 'rescan';
const STOPPED = 'stopped';
/** How long a stopping driver waits for a gone pcscd before it leaves the PC/SC context unclosed. */
const CLOSE_WAIT_MS = 2_000;

export function createNfcPcscReader(opts: NfcPcscReaderOptions): NfcPcscCardReader {
  return new NfcPcscReader(opts);
}

class NfcPcscReader implements NfcPcscCardReader {
  private readonly emitter = new EventEmitter();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly socket: string;
  private running = false;
  private abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private session: Session | null = null;
  private active: NfcReader | null = null;
  /** Card in the field of the active reader; `silent` when it was not reported (left on / flicker). */
  private current: { uid: string; silent: boolean } | null = null;
  private lastRemoved: Mono | null = null;
  private leftOnAtDetach: Mono | null = null;
  /** Card events of the active reader, in order (a removal waits for the read it follows). */
  private events: Promise<void> = Promise.resolve();
  /** Escape commands, one at a time. */
  private ops: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: NfcPcscReaderOptions) {
    this.log = opts.logger.child({ module: 'nfc-pcsc-reader' });
    this.clock = opts.clock;
    this.socket = opts.pcscdSocket ?? process.env.PCSCLITE_CSOCK_NAME ?? DEFAULT_PCSCD_SOCKET;
  }

  get attached(): boolean {
    return this.running && this.active !== null;
  }

  get readerName(): string | null {
    return this.active?.name ?? null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    // libpcsclite reads this once, at the first context: set it before nfc-pcsc loads.
    if (this.opts.pcscdSocket) process.env.PCSCLITE_CSOCK_NAME = this.opts.pcscdSocket;
    let mod: { NFC?: NfcCtor; default?: { NFC?: NfcCtor } };
    try {
      mod = (await (this.opts.nfcModule ?? (() => import('nfc-pcsc')))()) as typeof mod;
    } catch (err) {
      throw new Error(
        `the nfc-pcsc package cannot be loaded (${describePcscError(err)}). Fix: sudo apt install ` +
          'pcscd libpcsclite-dev, then npm install; or set reader.driver to "simulated"',
      );
    }
    const Nfc = mod.NFC ?? mod.default?.NFC;
    if (typeof Nfc !== 'function') throw new Error('nfc-pcsc does not export NFC');
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.supervise(Nfc).catch((err: unknown) => {
      this.log.error({ err }, 'PC/SC supervisor stopped unexpectedly');
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    await this.loop;
    await this.events.catch(() => undefined);
  }

  /** Keeps one PC/SC context alive: waits for pcscd, watches readers, starts over when pcscd goes. */
  private async supervise(Nfc: NfcCtor): Promise<void> {
    const pollMs = this.opts.pollMs ?? 500;
    let absentLogged = false;
    while (this.running) {
      if (!(await probePcscd(this.socket))) {
        if (!absentLogged) this.log.warn({ socket: this.socket }, 'pcscd not reachable; waiting for it');
        absentLogged = true;
        await sleep(this.clock, pollMs, this.abort.signal);
        continue;
      }
      absentLogged = false;
      const reason = await this.runSession(Nfc);
      if (reason === RESCAN) this.log.debug('no reader attached; opening a fresh PC/SC context');
      else if (this.running) {
        this.log.warn({ reason }, 'PC/SC context lost; reconnecting');
        await sleep(this.clock, pollMs, this.abort.signal);
      }
    }
  }

  /** One PC/SC context (one `new NFC()`), until it fails or the driver stops. Returns why it ended. */
  private async runSession(Nfc: NfcCtor): Promise<string> {
    let nfc: NfcClass;
    try {
      nfc = new Nfc(); // only after probePcscd() said yes: without pcscd this spins forever
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.emit('error', { message: `cannot open a PC/SC context: ${message}`, code: 'pcsc-context' });
      return message;
    }
    const session: Session = { nfc, readers: new Map(), seen: new Set() };
    this.session = session;
    let rescan: TimerHandle | null = null;
    const ended = new Promise<string>((resolve) => {
      // Always listen: close() itself emits "Command cancelled", and a lost pcscd emits here.
      nfc.on('error', (err: Error) => resolve(err.message));
      this.abort.signal.addEventListener('abort', () => resolve(STOPPED), { once: true });
      // Safety net: pcsclite's reader watch can re-attach itself to a restarted pcscd and then miss
      // readers that come later. While no reader is attached, start a fresh context now and then.
      // And a restarted pcscd (a new socket file) that pcsclite did not report: the reader we hold
      // may be gone from it, so start a fresh context and let it tell us what is attached now.
      const socketAtStart = this.socketIdentity();
      const check = () => {
        const restarted = socketAtStart !== null && this.socketIdentity() !== socketAtStart;
        if (this.active === null) resolve(RESCAN);
        else if (restarted) resolve('pcscd restarted');
        else rescan = this.clock.setTimeout(check, this.opts.rescanMs ?? 5_000);
      };
      rescan = this.clock.setTimeout(check, this.opts.rescanMs ?? 5_000);
    });
    nfc.on('reader', (r: NfcReader) => this.onReader(session, r));
    const reason = await ended;
    if (rescan) this.clock.clearTimeout(rescan);
    this.session = null;
    if (this.active) this.detach(reason === STOPPED ? 'driver stopped' : `pcscd lost: ${reason}`);
    await this.events.catch(() => undefined);
    await this.ops.catch(() => undefined);
    // pcsclite's close() joins the context's status thread, and while pcscd is gone that thread retries
    // SCardEstablishContext without end: a close() then blocks this (the event loop's) thread until pcscd is
    // back, and for ever in a process that would itself start pcscd again. So the context is closed once
    // pcscd answers again; when the driver stops and pcscd does not come back within CLOSE_WAIT_MS, the
    // context is left to the process's exit.
    if (!(await this.pcscdAnswers())) {
      this.log.warn('pcscd did not come back while stopping; the PC/SC context is left open until exit');
      return reason;
    }
    for (const r of session.seen) {
      // Release the card handle first: pcsclite's close() and a disconnect still queued on its
      // thread pool wait on the same reader mutex.
      if (r.connection) await r.disconnect().catch(() => undefined);
      try {
        r.reader.close(); // ends the reader's status thread; without it the process never exits
      } catch {
        // already closed by pcscd going away
      }
    }
    try {
      nfc.close();
    } catch (err) {
      this.log.debug({ err }, 'closing the PC/SC context failed');
    }
    return reason;
  }

  /** Waits until pcscd answers (true); while stopping, gives up after CLOSE_WAIT_MS (false). */
  private async pcscdAnswers(): Promise<boolean> {
    const stepMs = Math.min(this.opts.pollMs ?? 500, 100);
    let stoppedFor = 0;
    for (;;) {
      if (await probePcscd(this.socket)) return true;
      if (!this.running) {
        if (stoppedFor >= CLOSE_WAIT_MS) return false;
        stoppedFor += stepMs;
      }
      await sleep(this.clock, stepMs);
    }
  }

  /** The pcscd socket file's identity (inode + change time), null when it cannot be read. */
  private socketIdentity(): string | null {
    try {
      const st = statSync(this.socket);
      return `${st.ino}:${st.ctimeMs}`;
    } catch {
      return null;
    }
  }

  private onReader(session: Session, r: NfcReader): void {
    r.autoProcessing = false; // read the UID ourselves (ISO 14443-4 cards have no AID for nfc-pcsc)
    session.seen.add(r);
    r.on('error', (err: Error) => this.log.debug({ err, reader: r.name }, 'reader error'));
    const wanted = this.opts.readerName?.toLowerCase();
    if (wanted && !r.name.toLowerCase().includes(wanted)) {
      this.log.debug({ reader: r.name }, 'ignoring reader (name does not match)');
      return;
    }
    session.readers.set(r.name, r);
    r.on('card', (info: CardInfo) => this.enqueue(r, () => this.onCard(r, info)));
    r.on('card.off', () => this.enqueue(r, () => this.onCardOff()));
    r.on('end', () => {
      session.readers.delete(r.name);
      if (r !== this.active) return;
      this.detach('reader removed');
      const next = session.readers.values().next();
      if (!next.done && this.session === session) this.activate(next.value);
    });
    if (!this.active && this.session === session) this.activate(r);
  }

  private activate(r: NfcReader): void {
    this.active = r;
    this.current = null;
    this.log.info({ reader: r.name }, 'reader attached');
    this.emit('attached', { name: r.name });
  }

  private detach(reason: string): void {
    const r = this.active;
    if (!r) return;
    if (this.current) this.leftOnAtDetach = { uid: this.current.uid, atMs: this.clock.monotonic() };
    this.active = null;
    this.current = null;
    this.log.warn({ reader: r.name, reason }, 'reader detached');
    this.emit('detached', { name: r.name, reason });
  }

  private enqueue(r: NfcReader, fn: () => Promise<void> | void): void {
    this.events = this.events
      .then(() => (r === this.active && this.running ? fn() : undefined))
      .catch((err: unknown) => this.log.error({ err }, 'card event handler failed'));
  }

  private async onCard(r: NfcReader, info: CardInfo): Promise<void> {
    const t0 = this.clock.monotonic();
    const atMonoMs = Math.floor(t0);
    const res = await this.readUid(r);
    if (r !== this.active) return;
    if (!res.ok) {
      this.log.warn({ code: res.code, standard: info.standard }, res.reason);
      this.emit('error', { message: res.reason, code: res.code });
      return;
    }
    let proof: CardProof | undefined;
    let authFailed: { code: 'card-auth-failed'; reason: string } | undefined;
    if (info.standard === 'TAG_ISO_14443_4' && this.opts.secureRead !== false) {
      const transmit = (apdu: Buffer, max: number) => r.transmit(apdu, max);
      const sec = await readSecureProof(transmit).catch(
        (err: unknown) =>
          ({ kind: 'error', code: 'secure-read-failed', reason: describePcscError(err) }) as const,
      );
      if (r !== this.active) return;
      if (sec.kind === 'error') {
        this.log.warn({ code: sec.code }, sec.reason);
        this.emit('error', { message: sec.reason, code: sec.code });
        return;
      }
      if (sec.kind === 'proof') proof = sec.proof;
      else if (this.opts.desfire) {
        const key = this.opts.desfire;
        const des = await authenticateDesfire(transmit, { key, uid: Buffer.from(res.uid, 'hex') }).catch(
          (err: unknown) => ({ ok: false, code: 'transmit', reason: describePcscError(err) }) as const,
        );
        if (r !== this.active) return;
        if (des.ok) proof = des.proof;
        else if (des.code === 'transmit') {
          // the card left mid-authentication (or the reader failed): neither a secure tap nor a plain one
          const message = `DESFire authentication interrupted: ${des.reason}; tap the card again`;
          this.log.warn({ code: 'secure-read-failed' }, message);
          this.emit('error', { message, code: 'secure-read-failed' });
          return;
        } else if (des.code !== 'no-application') {
          authFailed = { code: 'card-auth-failed', reason: `DESFire authentication failed: ${des.reason}` };
          this.log.warn({ code: authFailed.code }, authFailed.reason);
        }
      }
    }
    const readMs = this.clock.monotonic() - t0;
    const now = this.clock.monotonic();
    const left = this.leftOnAtDetach;
    this.leftOnAtDetach = null;
    const grace = this.opts.reattachGraceMs ?? 60_000;
    const debounce = this.opts.debounceMs ?? 400;
    const lr = this.lastRemoved;
    if (left && left.uid === res.uid && now - left.atMs <= grace) {
      this.log.info('card still on the reader after re-attach: not a new tap');
      this.current = { uid: res.uid, silent: true };
    } else if (lr && lr.uid === res.uid && now - lr.atMs <= debounce) {
      this.log.debug('card flicker absorbed');
      this.current = { uid: res.uid, silent: true };
    } else {
      this.current = { uid: res.uid, silent: false };
      this.emit('card', {
        uid: res.uid,
        atMonoMs,
        readMs,
        ...(proof ? { proof } : {}),
        ...(authFailed ? { authFailed } : {}),
      });
    }
  }

  private onCardOff(): void {
    const c = this.current;
    if (!c) return;
    this.current = null;
    const atMonoMs = Math.floor(this.clock.monotonic());
    this.lastRemoved = { uid: c.uid, atMs: atMonoMs };
    if (!c.silent) this.emit('card-removed', { uid: c.uid, atMonoMs });
  }

  /** GET DATA; on a transmit failure (e.g. an escape held the reader), reconnect once and retry. */
  private async readUid(r: NfcReader): Promise<UidReadResult> {
    let lastError = 'no attempt';
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        if (attempt > 0) {
          await this.ops.catch(() => undefined);
          await r.disconnect().catch(() => undefined);
          await r.connect();
        }
        return parseGetDataResponse(await r.transmit(GET_DATA_UID, GET_DATA_MAX_RESPONSE));
      } catch (err) {
        lastError = describePcscError(err);
      }
    }
    return { ok: false, code: 'read-failed', reason: `card read failed: ${lastError}` };
  }

  transmit(apdu: Buffer, maxResponse: number): Promise<Buffer> {
    const r = this.active;
    const run = () => {
      if (!r || !this.running || r !== this.active || !r.card) throw new Error('no card on the reader');
      return r.transmit(apdu, maxResponse);
    };
    const p = this.ops.catch(() => undefined).then(run);
    this.ops = p;
    return p;
  }

  escape(apdu: Buffer): Promise<Buffer> {
    const r = this.active;
    const run = () => {
      if (!r || !this.running || r !== this.active) throw new Error('no card reader attached');
      return sendEscape(r, apdu);
    };
    const p = this.ops.catch(() => undefined).then(run);
    this.ops = p;
    return p;
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
    if (!this.running) return;
    if (event === 'error' && this.emitter.listenerCount('error') === 0) return;
    try {
      this.emitter.emit(event, ...args);
    } catch (err) {
      this.log.error({ err, event }, 'a card reader listener threw');
    }
  }
}
