/**
 * Row shapes both engines read back (the same column names in the SQLite and PostgreSQL schemas) and their
 * mapping to the ports' types: one definition for the two adapters.
 */
import type { AnomalyKind } from '../../../protocol/index.js';
import type { CardStatus, EnrollmentRow, TimeQuality, VisitRow } from './ports.js';
import type { ReaderRecord } from './ingest-store.js';

/** Longest a device keeps a visit open: bounds the "still open elsewhere" scan (as sqlite/visit-index.ts). */
export const MAX_OPEN_SCAN_MS = 7 * 24 * 3_600_000;
/** visit_meta key of the time-anchor scan cursor (as visits/time.ts). */
export const ANCHOR_SCAN_KEY = 'anchor_scan_id';
/** visit_meta key of one reader's anchor-scan mark (the per-reader scan, VisitTx.anchorRows). */
export const readerScanKey = (readerId: string): string => `${ANCHOR_SCAN_KEY}:${readerId}`;
/** visit_meta key of a synced boot's measured clock offset (as visits/time.ts). */
export const syncedOffsetKey = (readerId: string, bootId: string): string =>
  `synced_offset:${readerId}\n${bootId}`;
/** visit_meta key of the measured offset of a reader's latest measured synced boot. */
export const clockOffsetKey = (readerId: string): string => `clock_offset:${readerId}`;

export interface RawVisit {
  reader_id: string;
  visit_id: string;
  client_ref: string | null;
  card_ref: string;
  staff_ref: string | null;
  group_id: string | null;
  state: 'open' | 'closed';
  started_at_ms: number | null;
  start_seq: number | null;
  ended_at_ms: number | null;
  end_seq: number | null;
  end_reason: string | null;
  time_quality: TimeQuality;
  anomalies_json: string;
  late_end_seq: number | null;
  updated_at_ms: number;
}

export const rawToVisit = (r: RawVisit): VisitRow => ({
  readerId: r.reader_id,
  visitId: r.visit_id,
  clientRef: r.client_ref,
  cardRef: r.card_ref,
  staffRef: r.staff_ref,
  groupId: r.group_id,
  state: r.state,
  startedAtMs: r.started_at_ms,
  startSeq: r.start_seq,
  endedAtMs: r.ended_at_ms,
  endSeq: r.end_seq,
  endReason: r.end_reason,
  timeQuality: r.time_quality,
  anomalies: JSON.parse(r.anomalies_json) as AnomalyKind[],
  lateEndSeq: r.late_end_seq,
  updatedAtMs: r.updated_at_ms,
});

export interface RawEnrollment {
  id: number;
  code_hash: string;
  reader_id: string;
  client_ref: string | null;
  label: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_from: string | null;
  replaces_reader_id: string | null;
}

export const toEnrollmentRow = (r: RawEnrollment): EnrollmentRow => ({
  id: r.id,
  codeHash: r.code_hash,
  readerId: r.reader_id,
  clientRef: r.client_ref,
  label: r.label,
  createdAtMs: r.created_at,
  expiresAtMs: r.expires_at,
  usedAtMs: r.used_at,
  usedFrom: r.used_from,
  replacesReaderId: r.replaces_reader_id,
});

/**
 * A card's status at `atMs` from its row (both engines; the same rule as the SQLite card store's
 * `statusAt`): revoked from its revocation time; outside its validity window it counts as revoked.
 */
export function cardStatusOf(
  c: { staffRef: string; revokedAtMs: number | null; validFromMs?: number | null; validToMs?: number | null },
  atMs: number,
): CardStatus {
  if (c.revokedAtMs !== null && c.revokedAtMs <= atMs) {
    return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.revokedAtMs };
  }
  if (c.validToMs != null && atMs >= c.validToMs) {
    return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.validToMs };
  }
  if (c.validFromMs != null && atMs < c.validFromMs) {
    return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: atMs };
  }
  return { kind: 'known', staffRef: c.staffRef };
}

/** A `readers` row as both engines read it back. */
export interface ReaderRow {
  reader_id: string;
  password_hash: string;
  client_ref: string | null;
  label: string | null;
  revoked_at: number | null;
  created_at: number;
}

export const readerRecord = (r: ReaderRow): ReaderRecord => ({
  readerId: r.reader_id,
  passwordHash: r.password_hash,
  clientRef: r.client_ref,
  label: r.label,
  revokedAt: r.revoked_at,
  createdAt: r.created_at,
});
