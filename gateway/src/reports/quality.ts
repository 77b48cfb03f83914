/**
 * Data quality, shown beside every report: how many of the visits it used had a stop the gateway closed
 * itself, a manual correction, an unknown card, a clock time that could not be corrected, or taps that
 * reached the gateway late, and how many taps a coordinator withdrew as mistakes (those visits count in no
 * figure). Registration errors skew statistics, so a reader of a figure sees them.
 */
import { UNKNOWN, type Lookup } from './facts.js';
import type { QualityCell, QualityCounts, ReportVisit, TapCount } from '../store/report-types.js';

export type { QualityCell, QualityCounts } from '../store/report-types.js';

export interface QualityShares {
  autoClosed: number;
  corrected: number;
  unknownCard: number;
  uncorrectableTime: number;
  lateDelivered: number;
  incomplete: number;
  /** Of every recorded visit (`visits` + `withdrawn`), the share withdrawn. */
  withdrawn: number;
}

export interface QualityRow extends QualityCounts {
  shares: QualityShares;
}

export interface AssuranceRow {
  taps: number;
  /** Taps of a secure card whose proof the gateway checked. */
  secure: number;
  /** Taps that identified the card by its UID only (cloneable). */
  uidOnly: number;
  shareSecure: number | null;
  shareUidOnly: number | null;
}

export interface Assurance {
  /** False when the gateway does not check secure cards: nothing is recorded, every tap is UID only. */
  recorded: boolean;
  total: AssuranceRow;
  byArea: Array<AssuranceRow & { areaId: string }>;
  byReader: Array<AssuranceRow & { readerId: string }>;
}

export interface DataQuality {
  lateDeliveryHours: number;
  /** Assurance level of the taps of the report's readers, received in the report's window. */
  assurance: Assurance;
  total: QualityRow;
  byArea: Array<QualityRow & { areaId: string }>;
  byReader: Array<QualityRow & { readerId: string }>;
}

const zero = (): QualityCounts => ({
  visits: 0,
  autoClosed: 0,
  corrected: 0,
  unknownCard: 0,
  uncorrectableTime: 0,
  lateDelivered: 0,
  incomplete: 0,
  withdrawn: 0,
});

const share = (n: number, d: number): number => (d === 0 ? 0 : Math.round((n / d) * 10000) / 10000);

function withShares(c: QualityCounts): QualityRow {
  return {
    ...c,
    shares: {
      autoClosed: share(c.autoClosed, c.visits),
      corrected: share(c.corrected, c.visits),
      unknownCard: share(c.unknownCard, c.visits),
      uncorrectableTime: share(c.uncorrectableTime, c.visits),
      lateDelivered: share(c.lateDelivered, c.visits),
      incomplete: share(c.incomplete, c.visits),
      withdrawn: share(c.withdrawn, c.visits + c.withdrawn),
    },
  };
}

function add(c: QualityCounts, v: ReportVisit, lateMs: number): void {
  if (v.withdrawn === true) {
    c.withdrawn++;
    return;
  }
  c.visits++;
  if (v.endReason === 'auto-close' && !v.corrected) c.autoClosed++;
  if (v.corrected) c.corrected++;
  if (v.staffRef === null) c.unknownCard++;
  if (v.timeQuality === 'uncorrected') c.uncorrectableTime++;
  const at = v.endedAtMs ?? v.startedAtMs;
  if (v.receivedAtMs !== null && at !== null && v.receivedAtMs - at > lateMs) c.lateDelivered++;
  if (v.startedAtMs === null || v.endedAtMs === null) c.incomplete++;
}

const assuranceRow = (secure: number, uidOnly: number): AssuranceRow => {
  const taps = secure + uidOnly;
  return {
    taps,
    secure,
    uidOnly,
    shareSecure: taps ? share(secure, taps) : null,
    shareUidOnly: taps ? share(uidOnly, taps) : null,
  };
};

/**
 * Tap assurance per reader, area (the area of the client of the reader's visits in the report) and in
 * total. Only readers that have visits in the report count, so a scoped report shows only its readers.
 */
function assuranceOf(
  taps: readonly TapCount[] | null | undefined,
  areaOfReader: Map<string, string>,
): Assurance {
  const by = (keyOf: (t: TapCount) => string | undefined) => {
    const m = new Map<string, [number, number]>();
    for (const t of taps ?? []) {
      const k = keyOf(t);
      if (k === undefined) continue;
      let c = m.get(k);
      if (!c) m.set(k, (c = [0, 0]));
      c[t.assurance === 'secure' ? 0 : 1] += t.taps;
    }
    return [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  };
  const known = (t: TapCount) => (areaOfReader.has(t.readerId) ? t.readerId : undefined);
  const total = by((t) => (areaOfReader.has(t.readerId) ? '' : undefined))[0]?.[1] ?? [0, 0];
  return {
    recorded: taps !== null && taps !== undefined,
    total: assuranceRow(total[0], total[1]),
    byArea: by((t) => areaOfReader.get(t.readerId)).map(([areaId, c]) => ({
      areaId,
      ...assuranceRow(c[0], c[1]),
    })),
    byReader: by(known).map(([readerId, c]) => ({ readerId, ...assuranceRow(c[0], c[1]) })),
  };
}

/** Quality cells of visits, in their order. */
export function qualityCellsOf(visits: readonly ReportVisit[], lateDeliveryHours = 24): QualityCell[] {
  const lateMs = lateDeliveryHours * 3_600_000;
  const cells = new Map<string, QualityCell>();
  let i = 0;
  for (const v of visits) {
    const k = `${v.readerId}\u0000${v.clientRef ?? '\u0001'}`;
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { readerId: v.readerId, clientRef: v.clientRef, ord: i, counts: zero() }));
    add(c.counts, v, lateMs);
    i++;
  }
  return [...cells.values()];
}

const addCounts = (a: QualityCounts, b: QualityCounts) => {
  a.visits += b.visits;
  a.autoClosed += b.autoClosed;
  a.corrected += b.corrected;
  a.unknownCard += b.unknownCard;
  a.uncorrectableTime += b.uncorrectableTime;
  a.lateDelivered += b.lateDelivered;
  a.incomplete += b.incomplete;
  a.withdrawn += b.withdrawn;
};

export function dataQualityFromCells(
  cells: readonly QualityCell[],
  lookup: Lookup,
  lateDeliveryHours = 24,
  taps?: readonly TapCount[] | null,
): DataQuality {
  const total = zero();
  const byArea = new Map<string, QualityCounts>();
  const byReader = new Map<string, QualityCounts>();
  const areaOfReader = new Map<string, string>();
  const ordered = [...cells].sort((a, b) => (a.ord < b.ord ? -1 : a.ord > b.ord ? 1 : 0));
  for (const cell of ordered) {
    const v = cell;
    addCounts(total, cell.counts);
    const area = (v.clientRef !== null && lookup.clients.get(v.clientRef)?.areaId) || UNKNOWN;
    if (!areaOfReader.has(v.readerId) || areaOfReader.get(v.readerId) === UNKNOWN)
      areaOfReader.set(v.readerId, area);
    let a = byArea.get(area);
    if (!a) byArea.set(area, (a = zero()));
    addCounts(a, cell.counts);
    let r = byReader.get(v.readerId);
    if (!r) byReader.set(v.readerId, (r = zero()));
    addCounts(r, cell.counts);
  }
  return {
    lateDeliveryHours,
    assurance: assuranceOf(taps, areaOfReader),
    total: withShares(total),
    byArea: [...byArea]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([areaId, c]) => ({ areaId, ...withShares(c) })),
    byReader: [...byReader]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([readerId, c]) => ({ readerId, ...withShares(c) })),
  };
}

export function dataQuality(
  visits: readonly ReportVisit[],
  lookup: Lookup,
  lateDeliveryHours = 24,
  taps?: readonly TapCount[] | null,
): DataQuality {
  return dataQualityFromCells(qualityCellsOf(visits, lateDeliveryHours), lookup, lateDeliveryHours, taps);
}
