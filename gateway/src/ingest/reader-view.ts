import type { CommandResult, EventTime, Status } from '../../../protocol/index.js';

/** What the gateway saw from one reader in this process run (the DB keeps the durable part). */
export interface ReaderLive {
  lastSeenMs: number | null;
  status: Status | null;
  statusReceivedAtMs: number | null;
  /** Device wall clock minus gateway wall clock at receipt, ms (positive: device ahead). */
  clockOffsetMs: number | null;
  clockSynced: boolean | null;
  lastBatchAtMs: number | null;
  rejects: Record<string, number>;
  lastReject: { reason: string; detail: string; atMs: number } | null;
  lastCommandResult: CommandResult | null;
}

const MAX_TRACKED = 100_000;

/** In-memory per-reader live state, bounded. */
export class ReaderLiveView {
  private readonly readers = new Map<string, ReaderLive>();

  get(readerId: string): ReaderLive | undefined {
    return this.readers.get(readerId);
  }

  private entry(readerId: string): ReaderLive {
    let e = this.readers.get(readerId);
    if (!e) {
      if (this.readers.size >= MAX_TRACKED) {
        const oldest = this.readers.keys().next().value;
        if (oldest !== undefined) this.readers.delete(oldest);
      }
      e = {
        lastSeenMs: null,
        status: null,
        statusReceivedAtMs: null,
        clockOffsetMs: null,
        clockSynced: null,
        lastBatchAtMs: null,
        rejects: {},
        lastReject: null,
        lastCommandResult: null,
      };
      this.readers.set(readerId, e);
    }
    return e;
  }

  seen(readerId: string, atMs: number): void {
    this.entry(readerId).lastSeenMs = atMs;
  }

  batch(readerId: string, sentAt: EventTime, atMs: number): void {
    const e = this.entry(readerId);
    e.lastBatchAtMs = atMs;
    e.clockOffsetMs = sentAt.wallMs - atMs;
    e.clockSynced = sentAt.synced;
  }

  status(readerId: string, status: Status, atMs: number): void {
    const e = this.entry(readerId);
    e.status = status;
    e.statusReceivedAtMs = atMs;
    if (status.state === 'online') {
      e.clockOffsetMs = status.at.wallMs - atMs;
      e.clockSynced = status.clock.synced;
    }
  }

  commandResult(readerId: string, r: CommandResult): void {
    this.entry(readerId).lastCommandResult = r;
  }

  reject(readerId: string, reason: string, detail: string, atMs: number): void {
    const e = this.entry(readerId);
    e.rejects[reason] = (e.rejects[reason] ?? 0) + 1;
    e.lastReject = { reason, detail, atMs };
  }
}
