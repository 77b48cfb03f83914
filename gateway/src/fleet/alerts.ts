import type { AdminRoute } from '../admin/types.js';
import type { Transport } from '../broker/transport.js';
import type { ReaderLiveView } from '../ingest/reader-view.js';
import type { IngestStore, ReaderRecord } from '../store/ingest-store.js';
import type { MetricsRegistry } from '../metrics.js';

export const ALERT_KINDS = [
  'offline',
  'queue-growing',
  'clock-unsynced',
  'clock-offset',
  'reader-detached',
  'storage-near-full',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface AlertThresholds {
  /** A reader not seen for this long (and not connected) is offline. */
  offlineAfterMs: number;
  /** Unacknowledged events on the device from which the queue counts as growing. */
  queueDepth: number;
  /** Oldest unacknowledged event older than this also counts. */
  oldestUnackedMs: number;
  /** Free storage below this on the device. */
  minFreeBytes: number;
  /**
   * A clock that says it is synced but reads further than this from the gateway's (its last batch's or status's
   * send time against the receive time) is flagged: its NTP is likely broken (issue 16).
   */
  maxClockOffsetMs: number;
}

export const DEFAULT_ALERT_THRESHOLDS: AlertThresholds = {
  offlineAfterMs: 15 * 60_000,
  queueDepth: 50,
  oldestUnackedMs: 10 * 60_000,
  minFreeBytes: 64 * 1024 * 1024,
  maxClockOffsetMs: 5_000,
};

/** The fields of the reader status view (admin API) the alerts are derived from. */
export interface ReaderSnapshot {
  readerId: string;
  clientRef: string | null;
  revoked: boolean;
  connected: boolean;
  lastSeenMs: number | null;
  clockSynced: boolean | null;
  /** Device clock − gateway clock at the last batch or status (transit included), when seen. */
  clockOffsetMs?: number | null;
  status?: {
    state?: string;
    queueDepth?: unknown;
    oldestUnackedAgeMs?: unknown;
    readerAttached?: unknown;
    freeStorageBytes?: unknown;
    faults?: unknown;
    clock?: unknown;
  } | null;
}

export interface Alert {
  readerId: string;
  clientRef: string | null;
  kind: AlertKind;
  detail: string;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Alerts for one reader from its latest status and what the gateway saw (pure; thresholds injected). */
export function deriveAlerts(r: ReaderSnapshot, nowMs: number, t: AlertThresholds): Alert[] {
  if (r.revoked) return [];
  const out: Alert[] = [];
  const add = (kind: AlertKind, detail: string) =>
    out.push({ readerId: r.readerId, clientRef: r.clientRef, kind, detail });
  if (!r.connected && r.lastSeenMs !== null && nowMs - r.lastSeenMs > t.offlineAfterMs) {
    add('offline', `not seen for ${Math.round((nowMs - r.lastSeenMs) / 60_000)} min`);
  }
  const s = r.status?.state === 'online' ? r.status : null;
  if (!s) return out;
  const depth = num(s.queueDepth);
  const age = num(s.oldestUnackedAgeMs);
  if ((depth !== null && depth >= t.queueDepth) || (age !== null && age > t.oldestUnackedMs)) {
    add(
      'queue-growing',
      `${depth ?? '?'} unsent event(s), oldest ${age === null ? '?' : Math.round(age / 60_000)} min`,
    );
  }
  const clock = s.clock as { synced?: unknown; lastResync?: { ok?: unknown; detail?: unknown } } | undefined;
  if (r.clockSynced === false || clock?.synced === false) {
    const resync = clock?.lastResync;
    const why =
      resync?.ok === false && typeof resync.detail === 'string'
        ? `; last resync failed: ${resync.detail}`
        : '';
    add('clock-unsynced', `device clock not synchronised (NTP)${why}`);
  }
  const offset = r.clockOffsetMs ?? null;
  if (r.clockSynced === true && offset !== null && Math.abs(offset) > t.maxClockOffsetMs) {
    add(
      'clock-offset',
      `device clock says it is synced but reads ${Math.round(offset / 1000)} s ${offset > 0 ? 'ahead of' : 'behind'} the gateway (check its NTP); visit times are corrected or its concurrent-visit checks widened`,
    );
  }
  if (s.readerAttached === false) add('reader-detached', 'the card reader is unplugged or not found');
  const free = num(s.freeStorageBytes);
  const faults = Array.isArray(s.faults) ? (s.faults as unknown[]) : [];
  if (
    (free !== null && free < t.minFreeBytes) ||
    faults.includes('storage-low') ||
    faults.includes('journal-full')
  ) {
    add(
      'storage-near-full',
      `${free === null ? '?' : Math.round(free / 1024 / 1024)} MB free${faults.includes('journal-full') ? ', journal full' : ''}`,
    );
  }
  return out;
}

/** `GET /api/alerts` and the `visittag_reader_alerts{kind}` gauge. */
export function alertRoutes(d: {
  snapshots: () => ReaderSnapshot[];
  now: () => number;
  metrics: MetricsRegistry;
  thresholds?: AlertThresholds;
}): AdminRoute[] {
  const t = d.thresholds ?? DEFAULT_ALERT_THRESHOLDS;
  const all = () => d.snapshots().flatMap((r) => deriveAlerts(r, d.now(), t));
  d.metrics.gauge('visittag_reader_alerts', 'Readers with an active alert, by kind.', () => {
    const list = all();
    return ALERT_KINDS.map((kind) => ({
      labels: { kind },
      value: list.filter((a) => a.kind === kind).length,
    }));
  });
  return [
    {
      method: 'GET',
      path: '/api/alerts',
      handler: () => ({ status: 200, body: { alerts: all(), thresholds: t } }),
    },
  ];
}

/** A cheap per-reader snapshot (no gap scans): registry row + latest status + live view. */
export function readerSnapshot(
  d: { store: IngestStore; live: ReaderLiveView; transport: () => Transport | null },
  r: ReaderRecord,
): ReaderSnapshot {
  const live = d.live.get(r.readerId);
  const stored = live?.status ? undefined : d.store.lastStatus(r.readerId);
  const status = (live?.status ?? stored?.status ?? null) as ReaderSnapshot['status'];
  return {
    readerId: r.readerId,
    clientRef: r.clientRef,
    revoked: r.revokedAt !== null,
    connected: d.transport()?.isOnline(r.readerId) ?? false,
    lastSeenMs: live?.lastSeenMs ?? stored?.receivedAtMs ?? null,
    clockSynced: live?.clockSynced ?? null,
    clockOffsetMs: live?.clockOffsetMs ?? null,
    status,
  };
}
