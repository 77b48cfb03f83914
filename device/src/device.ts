import { EventEmitter } from 'node:events';
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { sleep } from '../../protocol/index.js';
import type { CardProof, Clock, ClockState, EventTime, FeedbackMode } from '../../protocol/index.js';
import { cardIdentifier } from './card-keys.js';
import type { DeviceSettings } from './config.js';
import type { VisitRules } from './core/decision.js';
import { Journal, JournalIdentityError } from './core/journal.js';
import { inspectJournal, journalIdentityProblem } from './provision/journal-check.js';
import { Uplink } from './core/uplink.js';
import { deviceClock, eventTime, readBootId } from './core/time.js';
import { createSystemdClockSync } from './drivers/systemd-clock-sync.js';
import { signalOptions } from './feedback-mode.js';
import type { ClockSync } from './ports/clock-sync.js';
import { RemoteControl } from './remote.js';
import type { CardReader } from './ports/card-reader.js';
import type { Feedback, FeedbackPattern } from './ports/feedback.js';
import { buildStatus, toWireStatus } from './status.js';
import type { DeviceStatus } from './status.js';
import { TapPipeline } from './taps.js';
import type { TapReport } from './taps.js';

export type { TapReport } from './taps.js';

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
  /** Overrides the sync state of `clockSync` (tests, simulator). */
  clockSynced?: () => boolean;
  /** Clock-sync port (sync state, resync-clock command); default: systemd-timesyncd. */
  clockSync?: ClockSync;
  bootId?: string;
  random?: () => number;
  logger?: Logger;
  cardReader?: CardReader;
  feedback?: Feedback;
  journalHooks?: { beforeCommit?: () => void; newEpoch?: () => string };
  /** Firmware version reported in status. */
  firmware?: string;
  /** Called with the status on every change (the CLI writes it to a tmpfs file). */
  onStatus?: (s: DeviceStatus) => void;
}

export const FIRMWARE_VERSION = '0.1.0';

/** Longest wait for a feedback driver to take a pattern. */
const SIGNAL_WAIT_MS = 2_000;

export class Device extends EventEmitter<DeviceEvents> {
  readonly bootId: string;
  readonly config: DeviceSettings;
  private readonly o: CreateDeviceOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly rootLog: Logger;
  private readonly synced: () => boolean;
  private reader: CardReader | null;
  private feedback: Feedback | null;
  private journal: Journal | null = null;
  private uplink: Uplink | null = null;
  private remote: RemoteControl | null = null;
  private taps: TapPipeline | null = null;
  private running = false;
  private pending = new Set<Promise<void>>();
  private feedbackStartError: string | null = null;
  private readonly clockSync: ClockSync;
  private lastResync: NonNullable<ClockState['lastResync']> | null = null;

  constructor(opts: CreateDeviceOptions) {
    super();
    this.o = opts;
    this.config = opts.config;
    this.clock = opts.clock ?? deviceClock;
    this.random = opts.random ?? Math.random;
    this.bootId = opts.bootId ?? readBootId(this.random);
    // Components bind their own {module}; the reader id is bound once here.
    this.rootLog = (opts.logger ?? pino({ level: opts.config.logLevel, name: 'visittag-device' })).child({
      readerId: opts.config.readerId,
    });
    this.log = this.rootLog.child({ module: 'device' });
    this.clockSync = opts.clockSync ?? createSystemdClockSync({ clock: this.clock });
    this.synced = opts.clockSynced ?? (() => this.clockSync.synced());
    this.reader = opts.cardReader ?? null;
    this.feedback = opts.feedback ?? null;
  }

  get isRunning(): boolean {
    return this.running;
  }

  now(): EventTime {
    return eventTime(this.clock, this.bootId, this.synced());
  }

  /** The log level in force: the pushed config's, else the config file's. */
  get logLevel(): DeviceSettings['logLevel'] {
    return this.remote?.config?.logLevel ?? this.config.logLevel;
  }

  get feedbackMode(): FeedbackMode {
    return this.remote?.feedbackMode ?? 'normal';
  }

  /** Applies the log level in force to every module's logger (children follow the root's level). */
  applyLogLevel(): void {
    const level = this.logLevel;
    const from = this.rootLog.level;
    if (from === level) return;
    // Said once, at whichever of the two levels shows info lines.
    const announce = (): void => this.log.info({ from, to: level }, 'log level changed');
    const shownBefore = this.log.isLevelEnabled('info');
    if (shownBefore) announce();
    this.rootLog.level = level;
    if (!shownBefore) announce();
  }

  /**
   * Asks the OS to resync the clock (gateway command resync-clock). The outcome and the clock state
   * go into the status, published at once (the next heartbeat carries them too).
   */
  async resyncClock(): Promise<{ ok: boolean; detail: string; clock: ClockState }> {
    const out = await this.clockSync.resync();
    const now = this.now();
    const detail = out.ok ? out.detail : out.reason;
    this.lastResync = { atWallMs: now.wallMs, ok: out.ok, detail: detail.slice(0, 200) };
    if (out.ok) this.log.info({ detail }, 'clock resynchronised');
    else this.log.warn({ reason: detail }, 'clock resync failed');
    this.statusChanged();
    return { ok: out.ok, detail, clock: this.clockState(now) };
  }

  private clockState(now: EventTime): ClockState {
    return {
      synced: now.synced,
      source: now.synced ? 'ntp' : 'none',
      ...(this.lastResync ? { lastResync: this.lastResync } : {}),
    };
  }

  rules(): VisitRules {
    const pushed = this.remote?.config ?? null;
    return {
      repeatWindowMs: pushed?.visit.repeatWindowMs ?? this.config.visit.repeatWindowMs,
      maxOpenMs: pushed?.visit.maxOpenMs ?? this.config.visit.maxOpenMs,
      allowList: this.remote?.allowList ?? null,
      revoked: this.remote?.revoked ?? new Set(),
      refuseUidOnly: pushed?.uidOnlyCards === 'refuse',
    };
  }

  async start(): Promise<void> {
    if (this.running) return;
    const cfg = this.config;
    mkdirSync(cfg.dataDir, { recursive: true });
    // Before any driver starts: a journal of another reader id must never take taps (docs/design.md,
    // invariant 1: positive feedback only for a tap that will be delivered).
    const identity = journalIdentityProblem(inspectJournal(cfg.dataDir), cfg.readerId);
    if (identity !== null) throw new JournalIdentityError(identity);
    const deps = { logger: this.rootLog, clock: this.clock };
    if (!this.reader || !this.feedback) {
      const { createCardReader, createFeedback } = await import('./drivers/factory.js');
      this.reader ??= await createCardReader(cfg.reader, deps);
      this.feedback ??= await createFeedback(cfg.feedback, { ...deps, reader: this.reader });
    }
    const journal = new Journal({
      path: join(cfg.dataDir, 'journal.db'),
      logger: this.rootLog,
      capacity: cfg.journal.capacity,
      readerId: cfg.readerId,
      ...(this.o.journalHooks?.beforeCommit ? { beforeCommit: this.o.journalHooks.beforeCommit } : {}),
      ...(this.o.journalHooks?.newEpoch ? { newEpoch: this.o.journalHooks.newEpoch } : {}),
    });
    this.journal = journal;
    this.remote = new RemoteControl({
      device: this,
      journal,
      logger: this.rootLog,
      clock: this.clock,
      feedback: () => this.feedback,
      publishResult: (r) => this.uplink?.publishCommandResult(r),
      changed: () => this.statusChanged(),
    });
    this.applyLogLevel(); // a persisted pushed config is in force from the start
    this.taps = new TapPipeline(
      {
        readerId: cfg.readerId,
        identify: cardIdentifier(cfg).identify,
        journal,
        clock: this.clock,
        logger: this.rootLog,
        random: this.random,
        warnAtFraction: cfg.journal.warnAtFraction,
        now: () => this.now(),
        rules: () => this.rules(),
        signal: (p) => this.signal(p),
        onTap: (t) => this.emit('tap', t),
        onAutoClose: (a) => this.emit('auto-close', a),
        onRefused: (r) => this.emit('refused', r),
        onPressure: () => this.statusChanged(),
        onJournalled: () => this.uplink?.kick(),
      },
      this.bootId,
    );
    this.uplink = new Uplink({
      readerId: cfg.readerId,
      mqtt: cfg.mqtt,
      uplink: cfg.uplink,
      journal,
      clock: this.clock,
      random: this.random,
      logger: this.rootLog,
      now: () => this.now(),
      status: () => toWireStatus(this.status()),
      onConfig: (p) => this.remote?.onConfig(p),
      onCommand: (p) => this.remote?.onCommand(p),
    });
    this.uplink.on('connected', () => this.statusChanged());
    this.uplink.on('disconnected', () => this.statusChanged());
    this.uplink.on('acked', () => this.statusChanged(false));
    this.reader.on('card', this.onCard);
    this.reader.on('attached', this.onAttached);
    this.reader.on('detached', this.onDetached);
    this.reader.on('error', this.onReaderError);
    this.running = true;
    // A broken LED/buzzer must not stop registration: taps are still journalled; status shows it.
    await this.feedback.start().catch((err: unknown) => {
      this.feedbackStartError = err instanceof Error ? err.message : String(err);
      this.log.error({ err }, 'feedback failed to start; taps are still registered');
    });
    try {
      await this.reader.start();
    } catch (err) {
      this.running = false;
      this.taps.stop();
      journal.close();
      throw err;
    }
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
    this.taps?.stop();
    await this.uplink?.stop(graceMs);
    await this.feedback?.stop().catch((err: unknown) => this.log.warn({ err }, 'feedback stop failed'));
    this.o.onStatus?.(this.status());
    this.journal?.close();
    this.log.info('stopped');
  }

  status(): DeviceStatus {
    if (!this.journal) throw new Error('device not started');
    const now = this.now();
    return buildStatus({
      readerId: this.config.readerId,
      firmware: this.o.firmware ?? FIRMWARE_VERSION,
      now,
      clock: this.clockState(now),
      logLevel: this.logLevel,
      feedbackMode: this.feedbackMode,
      journal: this.journal.stats(),
      readerAttached: this.reader?.attached ?? false,
      freeStorageBytes: freeBytes(this.config.dataDir),
      remote: this.remote,
      uplink: this.uplink?.stats() ?? null,
      openVisits: this.openVisits().length,
      warnAtFraction: this.config.journal.warnAtFraction,
      feedbackError: this.feedback?.lastError ?? this.feedbackStartError,
      ...(this.config.cardKeys ? { cardScheme: this.config.cardKeys.scheme } : {}),
    });
  }

  /** Open visits (card refs only), for status and tests. */
  openVisits(): { card: string; visitId: string; startSeq: number }[] {
    return this.taps?.openVisits() ?? [];
  }

  /** Shows a pattern, with or without sound as the pushed feedback mode says (always with light). */
  signal(pattern: FeedbackPattern): Promise<void> {
    const f = this.feedback;
    if (!f) return Promise.resolve();
    // A hung LED/buzzer driver must not hold up the tap path or shutdown: give up waiting after 2 s.
    const ac = new AbortController();
    const shown = f.signal(pattern, signalOptions(this.feedbackMode, pattern)).catch(() => undefined);
    return Promise.race([
      shown.then(() => ac.abort()),
      sleep(this.clock, SIGNAL_WAIT_MS, ac.signal).then(() => {
        if (!ac.signal.aborted)
          this.log.warn({ pattern }, 'feedback driver did not take the pattern in time');
      }),
    ]);
  }

  statusChanged(publish = true): void {
    if (!this.journal || !this.journal.isOpen) return;
    const s = this.status();
    if (publish) this.uplink?.publishStatus();
    this.o.onStatus?.(s);
    this.emit('status', s);
  }

  /** Re-arms the auto-close timer (after a config push changed the windows). */
  armExpiry(): void {
    this.taps?.armExpiry();
  }

  private readonly onCard = ({
    uid,
    proof,
    authFailed,
  }: {
    uid: string;
    proof?: CardProof;
    authFailed?: { code: 'card-auth-failed'; reason: string };
  }): void => {
    if (!this.running || !this.taps) return;
    const p = this.taps.handleCard(uid, proof, authFailed !== undefined);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  };

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
