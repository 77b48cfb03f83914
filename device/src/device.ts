import { EventEmitter } from 'node:events';
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { pseudonymiseCard } from '../../protocol/index.js';
import type { Clock, EventTime, TapDecision, TapEvent, TimerHandle } from '../../protocol/index.js';
import type { DeviceSettings } from './config.js';
import { decideExpiry, decideTap, msUntilExpiry } from './core/decision.js';
import type { CardState, VisitRules } from './core/decision.js';
import { Journal } from './core/journal.js';
import { Uplink } from './core/uplink.js';
import { createNtpSyncDetector, deviceClock, eventTime, readBootId } from './core/time.js';
import { RemoteControl } from './remote.js';
import type { CardReader } from './ports/card-reader.js';
import type { Feedback, FeedbackPattern } from './ports/feedback.js';
import { buildStatus, toWireStatus } from './status.js';
import type { DeviceStatus } from './status.js';

export interface TapReport {
  seq: number;
  eventId: string;
  decision: TapDecision;
  visitId: string | null;
  card: string;
  feedback: FeedbackPattern;
  time: EventTime;
}

export interface DeviceEvents {
  /** A tap was journalled (durably) and its feedback signalled. */
  tap: [TapReport];
  /** An open visit was auto-closed by the timer (missing stop); journalled, no feedback. */
  'auto-close': [{ seq: number; visitId: string; card: string }];
  /** A tap was refused (journal full or storage error): fault feedback, nothing journalled. */
  refused: [{ card: string; reason: 'journal-full' | 'storage-error' }];
  /** Status changed (reader, connection, config, journal pressure). */
  status: [DeviceStatus];
  /** The gateway asked for a restart (the CLI exits; systemd restarts it). */
  'restart-requested': [];
}

export interface CreateDeviceOptions {
  config: DeviceSettings;
  clock?: Clock;
  clockSynced?: () => boolean;
  bootId?: string;
  random?: () => number;
  logger?: Logger;
  cardReader?: CardReader;
  feedback?: Feedback;
  journalHooks?: { beforeCommit?: () => void };
  /** Firmware version reported in status. */
  firmware?: string;
  /** Called with the status on every change (the CLI writes it to a tmpfs file). */
  onStatus?: (s: DeviceStatus) => void;
}

export const FIRMWARE_VERSION = '0.1.0';

export class Device extends EventEmitter<DeviceEvents> {
  readonly bootId: string;
  readonly config: DeviceSettings;
  private readonly o: CreateDeviceOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly synced: () => boolean;
  private reader: CardReader | null;
  private feedback: Feedback | null;
  private journal: Journal | null = null;
  private uplink: Uplink | null = null;
  private remote: RemoteControl | null = null;
  private cards = new Map<string, CardState>();
  private expiryTimer: TimerHandle | null = null;
  private running = false;
  private pending = new Set<Promise<void>>();
  private fullWarned = false;

  constructor(opts: CreateDeviceOptions) {
    super();
    this.o = opts;
    this.config = opts.config;
    this.clock = opts.clock ?? deviceClock;
    this.random = opts.random ?? Math.random;
    this.bootId = opts.bootId ?? readBootId(this.random);
    this.log = (opts.logger ?? pino({ level: opts.config.logLevel, name: 'visittag-device' })).child({
      module: 'device',
      readerId: opts.config.readerId,
    });
    this.synced = opts.clockSynced ?? createNtpSyncDetector({ clock: this.clock });
    this.reader = opts.cardReader ?? null;
    this.feedback = opts.feedback ?? null;
  }

  get isRunning(): boolean {
    return this.running;
  }

  now(): EventTime {
    return eventTime(this.clock, this.bootId, this.synced());
  }

  rules(): VisitRules {
    const pushed = this.remote?.config ?? null;
    return {
      repeatWindowMs: pushed?.visit.repeatWindowMs ?? this.config.visit.repeatWindowMs,
      maxOpenMs: pushed?.visit.maxOpenMs ?? this.config.visit.maxOpenMs,
      allowList: this.remote?.allowList ?? null,
      revoked: this.remote?.revoked ?? new Set(),
    };
  }

  async start(): Promise<void> {
    if (this.running) return;
    const cfg = this.config;
    mkdirSync(cfg.dataDir, { recursive: true });
    const deps = { logger: this.log, clock: this.clock };
    if (!this.reader || !this.feedback) {
      const { createCardReader, createFeedback } = await import('./drivers/factory.js');
      this.reader ??= await createCardReader(cfg.reader, deps);
      this.feedback ??= await createFeedback(cfg.feedback, { ...deps, reader: this.reader });
    }
    const journal = new Journal({
      path: join(cfg.dataDir, 'journal.db'),
      logger: this.log,
      capacity: cfg.journal.capacity,
      ...(this.o.journalHooks?.beforeCommit ? { beforeCommit: this.o.journalHooks.beforeCommit } : {}),
    });
    this.journal = journal;
    this.cards = journal.loadCardStates();
    journal.pruneCardStates(this.bootId, this.cards);
    this.remote = new RemoteControl({
      device: this,
      journal,
      logger: this.log,
      clock: this.clock,
      feedback: () => this.feedback,
      publishResult: (r) => this.uplink?.publishCommandResult(r),
      changed: () => this.statusChanged(),
    });
    this.uplink = new Uplink({
      readerId: cfg.readerId,
      mqtt: cfg.mqtt,
      uplink: cfg.uplink,
      journal,
      clock: this.clock,
      random: this.random,
      logger: this.log,
      now: () => this.now(),
      status: () => toWireStatus(this.status()),
      onConfig: (p) => this.remote?.onConfig(p),
      onCommand: (p) => this.remote?.onCommand(p),
    });
    this.uplink.on('connected', () => this.statusChanged());
    this.uplink.on('disconnected', () => this.statusChanged());
    this.uplink.on('acked', () => this.statusChanged(false));
    await this.feedback.start();
    this.reader.on('card', this.onCard);
    this.reader.on('attached', this.onAttached);
    this.reader.on('detached', this.onDetached);
    this.reader.on('error', this.onReaderError);
    this.running = true;
    await this.reader.start();
    this.armExpiry();
    this.uplink.start();
    this.log.info(
      { bootId: this.bootId, depth: journal.depth, openVisits: this.openVisits().length },
      'started',
    );
    this.statusChanged();
  }

  /** Stops taking taps, waits for pending feedback, flushes the uplink (up to graceMs) and closes. */
  async stop(graceMs = 0): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.reader?.off('card', this.onCard);
    this.reader?.off('attached', this.onAttached);
    this.reader?.off('detached', this.onDetached);
    await this.reader?.stop().catch((err: unknown) => this.log.warn({ err }, 'reader stop failed'));
    this.reader?.off('error', this.onReaderError);
    await Promise.allSettled([...this.pending]);
    if (this.expiryTimer) this.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    await this.uplink?.stop(graceMs);
    await this.feedback?.stop().catch((err: unknown) => this.log.warn({ err }, 'feedback stop failed'));
    this.o.onStatus?.(this.status());
    this.journal?.close();
    this.log.info('stopped');
  }

  status(): DeviceStatus {
    if (!this.journal) throw new Error('device not started');
    return buildStatus({
      readerId: this.config.readerId,
      firmware: this.o.firmware ?? FIRMWARE_VERSION,
      now: this.now(),
      journal: this.journal.stats(),
      readerAttached: this.reader?.attached ?? false,
      freeStorageBytes: freeBytes(this.config.dataDir),
      remote: this.remote,
      uplink: this.uplink?.stats() ?? null,
      openVisits: this.openVisits().length,
      warnAtFraction: this.config.journal.warnAtFraction,
      feedbackError: this.feedback?.lastError ?? null,
    });
  }

  /** Open visits (card refs only), for status and tests. */
  openVisits(): { card: string; visitId: string; startSeq: number }[] {
    const out: { card: string; visitId: string; startSeq: number }[] = [];
    for (const [card, s] of this.cards)
      if (s.open) out.push({ card, visitId: s.open.visitId, startSeq: s.open.startSeq });
    return out;
  }

  /** Shows a pattern unless the pushed feedback mode is "silent" (faults always show). */
  signal(pattern: FeedbackPattern): Promise<void> {
    const f = this.feedback;
    if (!f) return Promise.resolve();
    if (this.remote?.feedbackMode === 'silent' && !pattern.startsWith('fault')) return Promise.resolve();
    return f.signal(pattern).catch(() => undefined);
  }

  statusChanged(publish = true): void {
    if (!this.journal || !this.journal.isOpen) return;
    const s = this.status();
    if (publish) this.uplink?.publishStatus();
    this.o.onStatus?.(s);
    this.emit('status', s);
  }

  /** Re-arms the auto-close timer for the nearest expiry (called after each change). */
  armExpiry(): void {
    if (this.expiryTimer) this.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (!this.running) return;
    const now = this.now();
    const rules = this.rules();
    let next: number | null = null;
    for (const s of this.cards.values()) {
      const ms = msUntilExpiry(s, now, rules);
      if (ms !== null && (next === null || ms < next)) next = ms;
    }
    if (next === null) return;
    this.expiryTimer = this.clock.setTimeout(() => this.expireDue(), Math.min(next + 1, 2 ** 31 - 1));
  }

  private expireDue(): void {
    this.expiryTimer = null;
    const journal = this.journal;
    if (!this.running || !journal) return;
    const rules = this.rules();
    for (const [card, state] of this.cards) {
      const time = this.now();
      const d = decideExpiry({ state, time, rules });
      if (!d || !d.event.visitId) continue;
      if (!journal.hasRoom(1)) {
        this.log.error('journal full: auto-close postponed');
        break;
      }
      const event = this.buildEvent(journal.nextSeq, card, d.event, time);
      try {
        journal.append([event], { card, state: d.next });
      } catch (err) {
        this.log.error({ err }, 'auto-close not journalled');
        break;
      }
      this.cards.set(card, d.next);
      this.log.info({ visitId: d.event.visitId, seq: event.seq }, 'visit auto-closed (missing stop)');
      this.emit('auto-close', { seq: event.seq, visitId: d.event.visitId, card });
    }
    this.uplink?.kick();
    this.armExpiry();
  }

  private buildEvent(
    seq: number,
    card: string,
    d: { decision: TapDecision; visitId: string | null; rejectReason?: 'unknown-card' | 'revoked-card' },
    time: EventTime,
  ): TapEvent {
    return {
      readerId: this.config.readerId,
      seq,
      eventId: this.newId('e'),
      card,
      decision: d.decision,
      visitId: d.visitId,
      ...(d.rejectReason ? { rejectReason: d.rejectReason } : {}),
      time,
    };
  }

  private newId(prefix: string): string {
    let s = prefix;
    for (let i = 0; i < 20; i++) s += Math.floor(this.random() * 36).toString(36);
    return s;
  }

  private readonly onCard = ({ uid }: { uid: string }): void => {
    const p = this.handleCard(uid);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  };

  private async handleCard(uid: string): Promise<void> {
    const journal = this.journal;
    if (!this.running || !journal) return;
    let card: string;
    try {
      card = pseudonymiseCard(uid, this.config.fleetKey);
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'unreadable card ignored');
      return;
    }
    const time = this.now();
    const outcome = decideTap({
      card,
      state: this.cards.get(card) ?? null,
      time,
      seq: journal.nextSeq,
      rules: this.rules(),
      newVisitId: () => this.newId('v'),
    });
    if (!journal.hasRoom(outcome.events.length)) {
      this.log.error({ depth: journal.depth, capacity: journal.capacity }, 'journal full: tap refused');
      await this.signal('fault-storage');
      this.emit('refused', { card, reason: 'journal-full' });
      this.statusChanged();
      return;
    }
    const events = outcome.events.map((d, i) => this.buildEvent(journal.nextSeq + i, card, d, time));
    try {
      journal.append(events, { card, state: outcome.next });
    } catch (err) {
      this.log.error({ err }, 'tap not journalled: storage error');
      await this.signal('fault-storage');
      this.emit('refused', { card, reason: 'storage-error' });
      return;
    }
    if (outcome.next) this.cards.set(card, outcome.next);
    else this.cards.delete(card);
    const last = events[events.length - 1] as TapEvent;
    this.log.info({ seq: last.seq, decision: last.decision, card, visitId: last.visitId }, 'tap');
    await this.signal(outcome.feedback);
    this.emit('tap', {
      seq: last.seq,
      eventId: last.eventId,
      decision: last.decision,
      visitId: last.visitId,
      card,
      feedback: outcome.feedback,
      time,
    });
    this.uplink?.kick();
    this.armExpiry();
    this.checkPressure(journal);
  }

  private checkPressure(journal: Journal): void {
    const high = journal.depth >= journal.capacity * this.config.journal.warnAtFraction;
    if (high && !this.fullWarned) {
      this.log.warn(
        { depth: journal.depth, capacity: journal.capacity },
        'journal filling up: check the uplink',
      );
      this.statusChanged();
    }
    this.fullWarned = high;
  }

  private readonly onAttached = ({ name }: { name: string }): void => {
    this.log.info({ reader: name }, 'reader attached');
    this.statusChanged();
  };

  private readonly onDetached = ({ name, reason }: { name: string; reason: string }): void => {
    this.log.warn({ reader: name, reason }, 'reader detached');
    void this.signal('fault-reader');
    this.statusChanged();
  };

  private readonly onReaderError = ({ message, code }: { message: string; code: string }): void => {
    this.log.warn({ code, message }, 'reader error');
  };
}

function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return Math.max(0, Math.floor(Number(s.bavail) * Number(s.bsize)));
  } catch {
    return 0;
  }
}
