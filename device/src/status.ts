import type { ClockState, EventTime, StatusOnline } from '../../protocol/index.js';
import { elapsedMs } from './core/decision.js';
import type { JournalStats } from './core/journal.js';
import type { UplinkStats } from './core/uplink.js';

/** Wire status (published retained) without the envelope fields. */
export type WireStatus = Omit<StatusOnline, 'schemaVersion' | 'state'>;

/** The device's status snapshot: the wire status plus local detail. */
export interface DeviceStatus extends WireStatus {
  connected: boolean;
  openVisits: number;
  lastSeq: number;
  quarantinedRows: number;
  feedbackError: string | null;
  uplink: UplinkStats | null;
}

/** Free space below which status reports storage-low. */
export const LOW_STORAGE_BYTES = 64 * 1024 * 1024;

export function buildStatus(i: {
  readerId: string;
  firmware: string;
  now: EventTime;
  clock: ClockState;
  logLevel: NonNullable<WireStatus['logLevel']>;
  feedbackMode: NonNullable<WireStatus['feedbackMode']>;
  journal: JournalStats;
  readerAttached: boolean;
  freeStorageBytes: number;
  remote: { configVersion: number; configError: string | null } | null;
  uplink: UplinkStats | null;
  openVisits: number;
  warnAtFraction: number;
  feedbackError: string | null;
  /** sealed-v1 readers say so, so the gateway pushes their card lists in their own references. */
  cardScheme?: WireStatus['cardScheme'];
}): DeviceStatus {
  const j = i.journal;
  const faults: WireStatus['faults'] = [];
  if (!i.readerAttached) faults.push('reader-detached');
  if (i.freeStorageBytes < LOW_STORAGE_BYTES || j.depth >= j.capacity * i.warnAtFraction)
    faults.push('storage-low');
  if (j.depth >= j.capacity) faults.push('journal-full');
  if (!i.now.synced) faults.push('clock-unsynced');
  const oldest = j.oldestUnacked;
  return {
    readerId: i.readerId,
    firmware: i.firmware,
    bootId: i.now.bootId,
    at: { wallMs: i.now.wallMs, monoMs: i.now.monoMs },
    queueDepth: j.depth,
    oldestUnackedSeq: oldest?.seq ?? null,
    oldestUnackedAgeMs: oldest ? Math.floor(elapsedMs({ ...oldest, synced: i.now.synced }, i.now)) : null,
    lastAckedSeq: j.lastAckedSeq,
    journalCapacity: j.capacity,
    clock: i.clock,
    readerAttached: i.readerAttached,
    freeStorageBytes: i.freeStorageBytes,
    configVersion: i.remote?.configVersion ?? 0,
    configError: i.remote?.configError ?? null,
    faults,
    logLevel: i.logLevel,
    feedbackMode: i.feedbackMode,
    ...(i.cardScheme ? { cardScheme: i.cardScheme } : {}),
    connected: i.uplink?.connected ?? false,
    openVisits: i.openVisits,
    lastSeq: j.lastSeq,
    quarantinedRows: j.quarantined,
    feedbackError: i.feedbackError,
    uplink: i.uplink,
  };
}

/** The wire part of a status (what is published on the status topic). */
export function toWireStatus(s: DeviceStatus): WireStatus {
  return {
    readerId: s.readerId,
    firmware: s.firmware,
    bootId: s.bootId,
    at: s.at,
    queueDepth: s.queueDepth,
    oldestUnackedSeq: s.oldestUnackedSeq,
    oldestUnackedAgeMs: s.oldestUnackedAgeMs,
    lastAckedSeq: s.lastAckedSeq,
    journalCapacity: s.journalCapacity,
    clock: s.clock,
    readerAttached: s.readerAttached,
    freeStorageBytes: s.freeStorageBytes,
    configVersion: s.configVersion,
    configError: s.configError,
    faults: s.faults,
    ...(s.logLevel ? { logLevel: s.logLevel } : {}),
    ...(s.feedbackMode ? { feedbackMode: s.feedbackMode } : {}),
    ...(s.cardScheme ? { cardScheme: s.cardScheme } : {}),
  };
}
