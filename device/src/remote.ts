import type { Logger } from 'pino';
import { decode } from '../../protocol/index.js';
import type { Clock, ClockState, CommandResult, DeviceConfig, EventTime } from '../../protocol/index.js';
import type { ReaderCardKeys } from '../../protocol/index.js';
import { cardListProblem } from './card-keys.js';
import type { Journal } from './core/journal.js';
import type { Feedback } from './ports/feedback.js';

/**
 * What the gateway pushes: the retained config (validated, kept when good, persisted so an offline
 * reboot keeps the allow-list, the feedback mode and the log level) and commands (identify,
 * selftest-echo, restart, resync-clock).
 */
export interface RemoteControlOptions {
  device: {
    readonly config: { readerId: string; cardKeys?: ReaderCardKeys | undefined };
    now(): EventTime;
    armExpiry(): void;
    applyLogLevel(): void;
    resyncClock(): Promise<{ ok: boolean; detail: string; clock: ClockState }>;
    signal(p: 'identify'): Promise<void>;
    emit(e: 'restart-requested'): boolean;
  };
  journal: Journal;
  logger: Logger;
  clock: Clock;
  feedback: () => Feedback | null;
  publishResult: (r: CommandResult) => void;
  changed: () => void;
}

export class RemoteControl {
  config: DeviceConfig | null;
  configError: string | null = null;
  allowList: ReadonlySet<string> | null = null;
  revoked: ReadonlySet<string> = new Set();
  private readonly o: RemoteControlOptions;
  private readonly log: Logger;
  private readonly seenCommands: string[] = [];

  constructor(opts: RemoteControlOptions) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'remote' });
    this.config = opts.journal.loadConfig();
    // A reader provisioned again onto the sealed scheme keeps its journal, and with it a config whose card lists
    // name cards in the old form: it would refuse every card. It is set aside until the gateway pushes anew.
    const form = this.config ? cardListProblem(this.scheme, this.config) : null;
    if (form) {
      this.config = null;
      this.configError = `saved config not used: ${form}`.slice(0, 200);
      this.log.warn(`saved config not used (every card accepted until the gateway pushes one): ${form}`);
    }
    if (this.config) this.use(this.config);
  }

  /** How this reader names cards (its card lists must be in that form). */
  private get scheme(): 'sealed-v1' | 'fleet-key' {
    return this.o.device.config.cardKeys ? 'sealed-v1' : 'fleet-key';
  }

  get configVersion(): number {
    return this.config?.version ?? 0;
  }

  get feedbackMode(): DeviceConfig['feedbackMode'] {
    return this.config?.feedbackMode ?? 'normal';
  }

  private use(cfg: DeviceConfig): void {
    this.config = cfg;
    this.allowList = cfg.allowList ? new Set(cfg.allowList) : null;
    this.revoked = new Set(cfg.revoked);
  }

  /** Applies a pushed config if valid and newer; otherwise keeps the last good one and says why. */
  onConfig(payload: Buffer): void {
    if (payload.length === 0) return; // a cleared retained message
    const d = decode('config', this.o.device.config.readerId, payload);
    if (!d.ok) {
      this.configError = `${d.reason}: ${d.detail}`.slice(0, 200);
      this.log.warn(
        { reason: d.reason, detail: d.detail },
        'pushed config refused; keeping the last good one',
      );
      this.o.changed();
      return;
    }
    const cfg = d.value;
    const form = cardListProblem(this.scheme, cfg);
    if (form) {
      this.configError = form.slice(0, 200);
      this.log.warn({ version: cfg.version }, `pushed config refused; keeping the last good one: ${form}`);
      this.o.changed();
      return;
    }
    if (cfg.version <= this.configVersion) {
      this.log.debug({ version: cfg.version, current: this.configVersion }, 'config not newer; ignored');
      return;
    }
    this.o.journal.saveConfig(cfg);
    this.use(cfg);
    this.configError = null;
    this.o.device.applyLogLevel();
    this.log.info(
      {
        version: cfg.version,
        allowList: cfg.allowList?.length ?? null,
        revoked: cfg.revoked.length,
        feedbackMode: cfg.feedbackMode,
        logLevel: cfg.logLevel,
      },
      'config applied',
    );
    this.o.device.armExpiry();
    this.o.changed();
  }

  onCommand(payload: Buffer): void {
    const readerId = this.o.device.config.readerId;
    const d = decode('commands', readerId, payload);
    if (!d.ok) {
      this.log.warn({ reason: d.reason, detail: d.detail }, 'command refused');
      return;
    }
    const cmd = d.value;
    if (this.seenCommands.includes(cmd.commandId)) return;
    this.seenCommands.push(cmd.commandId);
    if (this.seenCommands.length > 100) this.seenCommands.shift();
    const now = this.o.device.now();
    const reply = (status: CommandResult['status'], detail?: string, clock?: ClockState): void => {
      const at = this.o.device.now();
      this.o.publishResult({
        schemaVersion: 1,
        readerId,
        commandId: cmd.commandId,
        status,
        ...(detail ? { detail: detail.slice(0, 200) } : {}),
        at: { wallMs: at.wallMs, monoMs: at.monoMs, bootId: at.bootId },
        ...(clock ? { clock } : {}),
      });
    };
    if (cmd.expiresAt !== undefined && now.synced && now.wallMs > cmd.expiresAt) {
      reply('expired');
      return;
    }
    this.log.info({ commandId: cmd.commandId, kind: cmd.kind }, 'command');
    switch (cmd.kind) {
      case 'identify':
        void this.o.device.signal('identify');
        reply('ok');
        return;
      case 'selftest-echo':
        reply('ok', 'echo');
        return;
      case 'restart':
        reply('ok', 'restarting');
        this.o.device.emit('restart-requested');
        return;
      case 'resync-clock':
        // Answered when the OS has resynced or given up (bounded by the clock-sync driver).
        void this.o.device.resyncClock().then(
          (r) => reply(r.ok ? 'ok' : 'failed', r.detail, r.clock),
          (err: unknown) => reply('failed', `resync crashed: ${(err as Error).message}`),
        );
        return;
    }
  }
}
