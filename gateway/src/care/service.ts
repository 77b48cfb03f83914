/**
 * The care plan's service: registries, plan import, matching (recomputed on plan and visit changes) and
 * live alerts on an injected clock. All storage goes through the `CareStore` port.
 */
import type pino from 'pino';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { MetricsRegistry } from '../metrics.js';
import { DEFAULT_ALERT_CONFIG, decideAlerts, type AlertConfig, type AlertThresholds } from './alerts.js';
import { parsePlanCsv, parsePlanJson, type RowError } from './import.js';
import { DEFAULT_MATCH_CONFIG, matchClient, type MatchConfig, type PlanMatch } from './matching.js';
import type { Absence, MissedReasonCode } from './model.js';
import {
  executedKey,
  Area,
  Client,
  Provider,
  ServiceCode,
  Staff,
  Team,
  type AlertKind,
  type ServiceCode as ServiceCodeT,
} from './model.js';
import type { AlertChange, CareStore, RegistryBatch, RematchInput, RematchOutput } from './store.js';
import { addDays, localDateOf, localToUtcMs } from './time.js';
import { z } from 'zod';

export interface CarePlanConfig {
  timeZone: string;
  match: Omit<MatchConfig, 'timeZone' | 'lateAfterMinutes'>;
  alerts: AlertConfig;
  /** How often visit changes are matched and alerts evaluated (ms). */
  tickMs: number;
}

export const DEFAULT_CARE_CONFIG: CarePlanConfig = {
  timeZone: DEFAULT_MATCH_CONFIG.timeZone,
  match: {
    windowBeforeMinutes: DEFAULT_MATCH_CONFIG.windowBeforeMinutes,
    windowAfterMinutes: DEFAULT_MATCH_CONFIG.windowAfterMinutes,
  },
  alerts: DEFAULT_ALERT_CONFIG,
  tickMs: 30_000,
};

export const RegistryBatchSchema = z
  .object({
    providers: z.array(Provider).optional(),
    areas: z.array(Area).optional(),
    teams: z.array(Team).optional(),
    clients: z.array(Client).optional(),
    staff: z.array(Staff).optional(),
    serviceCodes: z.array(ServiceCode).optional(),
  })
  .strict();

export interface ImportRequest {
  areaId: string;
  fromDate: string;
  toDate: string;
  dryRun: boolean;
  actor: string;
  source: string;
  csvText?: string;
  rows?: readonly unknown[];
}

export interface ImportResult {
  ok: boolean;
  dryRun: boolean;
  areaId: string;
  fromDate: string;
  toDate: string;
  rows: number;
  errors: RowError[];
  planVersionId: number | null;
  /** Planned visits of the earlier version(s) replaced in that area and range. */
  replaced: number;
  clientsRematched: number;
}

const DAY = 86_400_000;

export interface CarePlanOptions {
  store: CareStore;
  clock: Clock;
  logger: pino.Logger;
  metrics?: MetricsRegistry;
  config?: Partial<CarePlanConfig>;
  /** Called after alert events were queued (wake the forwarder). */
  onQueued?: () => void;
  /**
   * Several instances on one database (store.engine postgres): the timed sweep (visit changes, late/missed
   * alerts) runs only when this answers true, i.e. on the instance holding the named lease; and each timed
   * sweep first reads the registries again (areas' thresholds, absences), which another instance may have
   * changed. Without it every tick runs (one gateway).
   */
  sweepGate?: () => Promise<boolean>;
}

export class CarePlan {
  readonly store: CareStore;
  readonly config: CarePlanConfig;
  private readonly clock: Clock;
  private readonly log: pino.Logger;
  private readonly onQueued: () => void;
  private readonly sweepGate: (() => Promise<boolean>) | null;
  private areas = new Map<string, AlertThresholds>();
  /** Client absences from the registry (hospital, short-term stay): planned visits in them are excused. */
  private absences = new Map<string, readonly Absence[]>();
  private timer: TimerHandle | null = null;
  private running = false;
  private busy: Promise<unknown> = Promise.resolve();
  private readonly gauges: {
    open: ReturnType<MetricsRegistry['gauge']>;
    raised: ReturnType<MetricsRegistry['counter']>;
  } | null;

  constructor(opts: CarePlanOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.logger.child({ module: 'care' });
    this.onQueued = opts.onQueued ?? (() => undefined);
    this.sweepGate = opts.sweepGate ?? null;
    this.config = {
      ...DEFAULT_CARE_CONFIG,
      ...opts.config,
      match: { ...DEFAULT_CARE_CONFIG.match, ...opts.config?.match },
      alerts: { ...DEFAULT_CARE_CONFIG.alerts, ...opts.config?.alerts },
    };
    this.gauges = opts.metrics
      ? {
          open: opts.metrics.gauge('visittag_plan_alerts_open', 'Care-plan alerts open now, by kind.'),
          raised: opts.metrics.counter(
            'visittag_plan_alerts_raised_total',
            'Care-plan alerts raised, by kind.',
          ),
        }
      : null;
  }

  /** Serialises units of work that read then write (import, rematch, tick) in this process. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch(() => undefined);
    return next;
  }

  private thresholds(areaId: string): AlertThresholds {
    return this.areas.get(areaId) ?? this.config.alerts;
  }

  async loadAreas(): Promise<void> {
    const m = new Map<string, AlertThresholds>();
    for (const a of await this.store.listAreas()) {
      m.set(a.areaId, {
        lateAfterMinutes: a.lateAfterMinutes ?? this.config.alerts.lateAfterMinutes,
        missedAfterMinutes: a.missedAfterMinutes ?? this.config.alerts.missedAfterMinutes,
      });
    }
    this.areas = m;
    const ab = new Map<string, readonly Absence[]>();
    for (const c of await this.store.listClients()) if (c.absences.length) ab.set(c.clientRef, c.absences);
    this.absences = ab;
  }

  /**
   * The reason a client's absence gives a planned visit on `localDate` (hospital: client-in-hospital;
   * short-term stay or other: other), or null when the client was at home. A reason set by a person wins.
   */
  absenceReason(clientRef: string, localDate: string): MissedReasonCode | null {
    const a = this.absences.get(clientRef)?.find((x) => x.from <= localDate && x.to >= localDate);
    if (!a) return null;
    return a.kind === 'hospital' ? 'client-in-hospital' : 'other';
  }

  /** Reason codes set by people, plus those the clients' registered absences give. */
  private withAbsences(
    plans: readonly { plannedVisitId: string; clientRef: string; localDate: string }[],
    reasons: ReadonlyMap<string, MissedReasonCode>,
  ): Map<string, MissedReasonCode> {
    const out = new Map(reasons);
    if (this.absences.size === 0) return out;
    for (const p of plans) {
      if (out.has(p.plannedVisitId)) continue;
      const r = this.absenceReason(p.clientRef, p.localDate);
      if (r) out.set(p.plannedVisitId, r);
    }
    return out;
  }

  async upsertRegistry(batch: RegistryBatch): Promise<void> {
    const before = this.absences;
    await this.store.upsertRegistry(batch, this.clock.now());
    await this.loadAreas();
    // A changed absence changes the status of the client's planned visits in it (old and new periods).
    const changed = new Map<string, Array<readonly [string, string]>>();
    for (const c of batch.clients ?? []) {
      const periods = [...(before.get(c.clientRef) ?? []), ...c.absences].map((a) => [a.from, a.to] as const);
      if (periods.length) changed.set(c.clientRef, periods);
    }
    if (changed.size) {
      await this.exclusive(async () => {
        for (const [client, periods] of [...changed].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
          for (const [from, to] of periods) {
            const r = this.dateRangeMs(addDays(from, -1), addDays(to, 1));
            await this.rematchRange(client, r.fromMs, r.toMs);
          }
        }
      });
    }
  }

  importPlan(req: ImportRequest): Promise<ImportResult> {
    return this.exclusive(async () => {
      await this.sharedRegistries();
      const codes = new Map<string, ServiceCodeT>(
        (await this.store.listServiceCodes()).map((c) => [c.code, c]),
      );
      const ctx = {
        areaId: req.areaId,
        fromDate: req.fromDate,
        toDate: req.toDate,
        timeZone: this.config.timeZone,
        serviceCodes: codes,
      };
      const parsed =
        req.csvText !== undefined ? parsePlanCsv(req.csvText, ctx) : parsePlanJson(req.rows ?? [], ctx);
      const base = {
        dryRun: req.dryRun,
        areaId: req.areaId,
        fromDate: req.fromDate,
        toDate: req.toDate,
        rows: parsed.visits.length + parsed.errors.length,
        errors: parsed.errors,
        planVersionId: null,
        replaced: 0,
        clientsRematched: 0,
      };
      if (parsed.errors.length) return { ...base, ok: false };
      if (req.dryRun) return { ...base, ok: true };
      const range = this.dateRangeMs(req.fromDate, req.toDate);
      const before = await this.store.clientsWithPlans({ ...range, areaId: req.areaId });
      const r = await this.store.replacePlan({
        areaId: req.areaId,
        fromDate: req.fromDate,
        toDate: req.toDate,
        visits: parsed.visits,
        importedBy: req.actor,
        source: req.source,
        nowMs: this.clock.now(),
      });
      if (!r.ok) {
        return {
          ...base,
          ok: false,
          errors: r.conflicts.map((c) => ({
            line: 0,
            reason: `planned visit id ${c.plannedVisitId} is in the plan of area ${c.areaId} on ${c.localDate}: ids must be unique across areas and dates`,
          })),
        };
      }
      const clients = [...new Set([...before, ...parsed.visits.map((v) => v.clientRef)])].sort();
      await this.rematchMany(clients, range.fromMs - DAY, range.toMs + DAY);
      this.log.info(
        {
          areaId: req.areaId,
          fromDate: req.fromDate,
          toDate: req.toDate,
          visits: parsed.visits.length,
          planVersionId: r.version.planVersionId,
        },
        'plan imported',
      );
      return {
        ...base,
        ok: true,
        planVersionId: r.version.planVersionId,
        replaced: r.replaced,
        clientsRematched: clients.length,
      };
    });
  }

  /** [start of fromDate, start of the day after toDate) in UTC ms. */
  dateRangeMs(fromDate: string, toDate: string): { fromMs: number; toMs: number } {
    const tz = this.config.timeZone;
    return {
      fromMs: localToUtcMs(fromDate, '00:00', tz),
      toMs: localToUtcMs(addDays(toDate, 1), '00:00', tz),
    };
  }

  private async rematchRange(clientRef: string, fromMs: number, toMs: number): Promise<void> {
    await this.store.rematch(clientRef, { fromMs, toMs }, (input) => this.compute(clientRef, input));
  }

  private rematchMany(clientRefs: string[], fromMs: number, toMs: number): Promise<void> {
    return this.store.rematchMany(clientRefs, { fromMs, toMs }, (c, input) => this.compute(c, input));
  }

  private compute(clientRef: string, input: RematchInput): RematchOutput {
    const now = this.clock.now();
    return matchClient(clientRef, input.plans, input.visits, {
      config: {
        ...this.config.match,
        lateAfterMinutes: this.config.alerts.lateAfterMinutes,
        timeZone: this.config.timeZone,
      },
      nowMs: now,
      reasons: this.withAbsences(input.plans, input.reasons),
      lateAfterFor: (a) => this.thresholds(a).lateAfterMinutes,
    });
  }

  /** Re-matches every client with a plan in [fromDate, toDate] (e.g. after changing the windows). */
  rematchAll(fromDate: string, toDate: string): Promise<number> {
    return this.exclusive(async () => {
      await this.sharedRegistries();
      const range = this.dateRangeMs(fromDate, toDate);
      const clients = await this.store.clientsWithPlans(range);
      await this.rematchMany(clients, range.fromMs - DAY, range.toMs + DAY);
      return clients.length;
    });
  }

  /**
   * Matches executed visits that changed since the last call (new, ended, corrected, attributed, taps
   * delivered days late): each changed visit's client is re-matched over its local day ± 1 day. Taken
   * `limit` visits at a time: a backlog (a year of visits when care is switched on, or a restore) costs one
   * pass per client per chunk. The event loop is given back between the chunk's read, the look-up of earlier
   * matches, the grouping and each batch, and a chunk is 2,000 visits: with 10,000 those three steps held the loop
   * about 100 ms in one go when 5,000 readers had each tapped once (the tap → backend latency row's care tick);
   * reading a 50,000-visit chunk alone had held it about 0.4 s (test/scale/measure-care-catchup.ts).
   */
  processVisitChanges(limit = 2_000): Promise<number> {
    return this.exclusive(async () => {
      let cursor = await this.store.getCursor();
      let total = 0;
      for (;;) {
        const { visits, cursor: next } = await this.store.changedVisits(cursor, limit);
        if (!visits.length || !next) break;
        await yieldToIo();
        const days = new Map<string, Set<string>>();
        const mark = (clientRef: string | null, t: number | null) => {
          if (clientRef === null || t === null) return;
          const set = days.get(clientRef) ?? new Set<string>();
          set.add(localDateOf(t, this.config.timeZone));
          days.set(clientRef, set);
        };
        for (const v of visits) mark(v.clientRef, v.startedAtMs ?? v.endedAtMs);
        // A corrected visit (another client, another time) is re-matched where it was matched before too.
        for (const p of await this.store.previousMatchOf(visits.map(executedKey)))
          mark(p.clientRef, p.timeMs);
        await yieldToIo();
        // Clients whose changed days give the same range (a day's taps, a reconnect storm's visits at
        // thousands of homes) are matched together, up to REMATCH_BATCH clients per unit of work (one commit
        // instead of one per client). A client's own ranges keep their order (groups go by range start).
        const groups = new Map<string, { fromMs: number; toMs: number; clients: string[] }>();
        for (const [client, set] of [...days].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
          for (const [from, to] of runs([...set].sort(), MERGE_GAP_DAYS)) {
            // most clients of a chunk share a range (one day's taps): its time-zone arithmetic is done once
            const key = `${from}:${to}`;
            let g = groups.get(key);
            if (!g) {
              const r = this.dateRangeMs(addDays(from, -1), addDays(to, 1));
              g = { fromMs: r.fromMs, toMs: r.toMs, clients: [] };
              groups.set(key, g);
            }
            g.clients.push(client);
          }
        }
        await yieldToIo();
        const ordered = [...groups.values()].sort((a, b) => a.fromMs - b.fromMs || a.toMs - b.toMs);
        // batches sized from the last one's time per client, so one holds the event loop about SLICE_MS
        let size = 1;
        for (const g of ordered) {
          for (let i = 0; i < g.clients.length;) {
            const batch = g.clients.slice(i, i + size);
            const t0 = this.clock.monotonic();
            await this.rematchMany(batch, g.fromMs, g.toMs);
            const perClient = (this.clock.monotonic() - t0) / batch.length;
            size =
              perClient > 0
                ? Math.max(1, Math.min(REMATCH_BATCH, Math.floor(SLICE_MS / perClient)))
                : REMATCH_BATCH;
            i += batch.length;
            // a large backlog (a year of visits after care was switched on) must not starve MQTT and HTTP
            await yieldToIo();
          }
        }
        await this.store.setCursor(next);
        cursor = next;
        total += visits.length;
        if (visits.length < limit) break;
      }
      return total;
    });
  }

  /** Matches of planned visits starting in [fromMs, toMs), with their status at the clock's now. */
  async matches(q: {
    fromMs: number;
    toMs: number;
    areaId?: string;
    clientRef?: string;
  }): Promise<PlanMatch[]> {
    const rows = await this.store.matches({ ...q, nowMs: this.clock.now() });
    // A visit excused by an absence shows its reason (the stored status is already 'missed').
    return rows.map((m) =>
      m.reasonCode === null && m.executedKeys.length === 0
        ? { ...m, reasonCode: this.absenceReason(m.clientRef, m.localDate) }
        : m,
    );
  }

  /** Evaluates alerts at the clock's now (after matching pending visit changes). */
  async tick(): Promise<AlertChange> {
    await this.processVisitChanges();
    return this.exclusive(async () => {
      const now = this.clock.now();
      const horizon = (this.config.alerts.liveHorizonMinutes + 24 * 60) * 60_000;
      // Plans whose window closed since the last tick become missed in the stored matches too.
      const change = await this.store.alertTick({ fromMs: now - horizon, toMs: now + 1 }, (input) =>
        decideAlerts(
          { ...input, reasons: this.withAbsences(input.plans, input.reasons) },
          now,
          this.config.alerts,
          (a) => this.thresholds(a),
        ),
      );
      if (change.raise.length || change.clear.length) {
        for (const a of change.raise) {
          this.gauges?.raised.inc({ kind: a.kind });
          this.log.info(
            { plannedVisitId: a.plannedVisitId, kind: a.kind, areaId: a.areaId },
            'plan alert raised',
          );
        }
        for (const c of change.clear) {
          this.log.info(
            { plannedVisitId: c.plannedVisitId, kind: c.kind, by: c.clearedBy },
            'plan alert cleared',
          );
        }
        this.onQueued();
      }
      if (this.gauges) {
        const counts = await this.store.openAlertCounts();
        for (const k of Object.keys(counts) as AlertKind[]) this.gauges.open.set(counts[k], { kind: k });
      }
      return change;
    });
  }

  async setReason(r: {
    plannedVisitId: string;
    reasonCode: MissedReasonCode;
    actor: string;
    note: string;
  }): Promise<boolean> {
    await this.sharedRegistries();
    const ok = await this.store.setReason(r, this.clock.now());
    if (!ok) return false;
    const p = await this.store.plannedVisit(r.plannedVisitId);
    if (p) await this.exclusive(() => this.rematchRange(p.clientRef, p.startMs - DAY, p.startMs + DAY));
    await this.tick();
    return true;
  }

  /**
   * Visits changed outside the ingest (a correction, an added or withdrawn visit): re-match them and evaluate
   * the alerts now, not at the next timed sweep. On a shared database (a sweep gate is set) this runs on the
   * instance that made the change, lease or not: the registries are read again first, every write is one
   * transaction under the care plan's lock (store/postgres/care.ts) and an alert is raised once by its key,
   * so the lease holder's sweep at the same time re-matches the same rows to the same result.
   */
  async visitsChanged(): Promise<void> {
    await this.sharedRegistries();
    await this.tick();
  }

  start(): Promise<void> {
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.timedSweep()
        .catch((err: unknown) => this.log.error({ err }, 'care plan tick failed'))
        .finally(() => {
          if (this.running) this.timer = this.clock.setTimeout(loop, this.config.tickMs);
        });
    };
    return this.loadAreas().then(() => {
      this.timer = this.clock.setTimeout(loop, 0);
    });
  }

  /**
   * On a shared database (a sweep gate is set) another instance may have changed an area's thresholds or a
   * client's absences: read them again before a unit of work that matches. One gateway keeps its copy.
   */
  private async sharedRegistries(): Promise<void> {
    if (this.sweepGate) await this.loadAreas();
  }

  /** One timed sweep: on a shared database only while holding the lease, with the registries read again. */
  private async timedSweep(): Promise<void> {
    if (this.sweepGate) {
      if (!(await this.sweepGate())) return;
      await this.sharedRegistries();
    }
    await this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.busy;
  }
}

/** Consecutive runs of sorted local dates: ['2026-01-01','2026-01-02','2026-01-05'] → [[01,02],[05,05]]. */
/**
 * Sorted local dates as ranges; dates at most `gap` days apart share a range. One client's changed visits
 * spread over a year are re-matched in one pass over that client's range rather than once per day (one
 * full pass per run made a backlog of 200,000 visits take minutes; see bench/README.md, web section).
 */
function runs(dates: string[], gap = 0): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const d of dates) {
    const last = out[out.length - 1];
    if (last && addDays(last[1], gap + 1) >= d) last[1] = d;
    else out.push([d, d]);
  }
  return out;
}

/** Days between two changed dates of one client that are still re-matched as one range. */
const MERGE_GAP_DAYS = 14;
/**
 * Most clients re-matched in one unit of work (one commit) by `processVisitChanges`; fewer when each takes long
 * (a client's backlog of weeks), so a batch holds the event loop about `SLICE_MS`. One commit per client cost
 * a reconnect storm of 10,000 readers 10,000 commits on the gateway's main thread (bench/README.md, "The care
 * matcher in a storm").
 */
const REMATCH_BATCH = 100;
const SLICE_MS = 25;

/** Lets pending I/O (MQTT acks, HTTP) run between units of synchronous database work. */
const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
