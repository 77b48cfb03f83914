import type { ActionKind } from '../scenario/types.js';

/** What the simulator needs from one virtual reader, in-process or in a child process. */
export interface VirtualReader {
  readonly readerId: string;
  /** Whether the device is running (false while killed / powered off). */
  readonly alive: boolean;
  start(): Promise<void>;
  /**
   * Scripted card behaviour on the simulated reader. A child-process reader returns a promise that
   * settles once the child has handled it (its feedback is then already reported) or has died.
   */
  act(kind: ActionKind, uid: string): void | Promise<void>;
  /** Called with every feedback pattern the worker would see or hear. */
  onSignal: ((pattern: string) => void) | null;
  /** The device's own sequence state (null while not running). */
  state(): Promise<{ lastSeq: number; queueDepth: number } | null>;
  /** Clean stop. */
  stop(): Promise<void>;
  /**
   * Child-process readers only: SIGKILL now, or armed: inside the next tap's journal commit
   * (midWrite) or right after the next tap's feedback (afterFeedback).
   */
  kill?(opts?: { midWrite?: boolean; afterFeedback?: boolean }): Promise<void>;
  /** Child-process readers only: boot again on the same journal, clock synced or not. */
  restart?(opts: { synced: boolean }): Promise<void>;
  /** The wall clock gets synced (NTP). */
  sync(): void;
  /** Resolves when the process has exited (child readers), for mid-write kills. */
  exited?(): Promise<void>;
}

export interface DeviceParams {
  readerId: string;
  dataDir: string;
  fleetKey: string;
  mqttUrl: string;
  password: string;
  repeatWindowMs: number;
  maxOpenMs: number;
  skewMs: number;
  seed: number;
  /**
   * Checker self-test only: a deliberately broken journal. 'non-durable-journal' keeps the state
   * from before each tap's commit and restores it after a crash, as a journal without durable
   * commits (synchronous=OFF) would after a power cut: the tap got its feedback, then vanished.
   */
  broken?: 'non-durable-journal';
}

/** Device settings of a simulated reader (validated by the device's own schema by the caller). */
export function deviceSettingsInput(p: DeviceParams) {
  return {
    readerId: p.readerId,
    dataDir: p.dataDir,
    fleetKey: p.fleetKey,
    mqtt: { url: p.mqttUrl, username: p.readerId, password: p.password, keepaliveSec: 120 },
    reader: { driver: 'simulated' as const },
    feedback: { driver: 'simulated' as const },
    journal: { capacity: 100_000, warnAtFraction: 0.8 },
    visit: { repeatWindowMs: p.repeatWindowMs, maxOpenMs: p.maxOpenMs },
    uplink: {
      batchSize: 100,
      window: 4,
      ackTimeoutMs: 15_000,
      backoff: { baseMs: 1_000, capMs: 30_000 },
      statusIntervalMs: 3_600_000,
    },
    logLevel: 'silent' as const,
  };
}
