import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type pino from 'pino';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { NewAuditEntry } from '../audit/store.js';
import type { MetricsRegistry } from '../metrics.js';
import type {
  EraseResult,
  LocalErasure,
  LocalRetention,
  SharedPruner,
  SharedRetention,
} from '../store/retention.js';
import { daysOf, RETENTION_CLASSES, type RetentionSettings } from './policy.js';
import { zeroCounts, type PruneCounts } from './prune.js';
import type { ErasureInput } from './service.js';

/**
 * How long a recorded erasure is kept for instances to apply (then deleted by the lease holder: a digest of a
 * reference kept with its pseudonym would let a holder of the fleet key confirm a guessed reference). An instance
 * down for longer gets the erasure by hand (docs/retention.md).
 */
export const ERASURE_LOG_KEEP_MS = 7 * 86_400_000;

/** The keyed digest of an erased reference (HMAC-SHA256 with a key derived from the fleet key). */
export function erasureDigest(fleetKey: string): (ref: string) => string {
  const key = Buffer.from(
    hkdfSync('sha256', Buffer.from(fleetKey, 'utf8'), Buffer.alloc(0), 'visittag/erasure-digest/v1', 32),
  );
  return (ref) => createHmac('sha256', key).update(ref, 'utf8').digest('hex');
}

/**
 * Applies to this instance's SQLite file the erasures recorded in PostgreSQL since its mark: each digest is looked
 * for among the file's text values (whole, JSON strings, after a ':'), and a reference found is replaced by the
 * recorded pseudonym, as the erasing instance did in its own file. Returns the references replaced here.
 */
export async function applyRecordedErasures(
  shared: Pick<SharedRetention, 'erasuresSince'>,
  local: Pick<LocalErasure, 'erasureMark' | 'findByDigest' | 'applyErasures'>,
  digest: (ref: string) => string,
): Promise<number> {
  const mark = local.erasureMark();
  const rows = await shared.erasuresSince(mark);
  if (rows.length === 0) return 0;
  const found = local.findByDigest(digest, new Set(rows.map((r) => r.ref_digest)));
  const pairs: Array<[string, string]> = [];
  for (const r of rows) {
    const ref = found.get(r.ref_digest);
    if (ref !== undefined) pairs.push([ref, r.pseudonym]);
  }
  const upto = Number(rows[rows.length - 1]?.id ?? mark);
  local.applyErasures(pairs, upto);
  return pairs.length;
}

/** The lease name: one instance at a time prunes PostgreSQL. */
export const RETENTION_LEASE = 'retention';

/** The PostgreSQL pruner with the periods of `settings` (docs/retention.md). */
export const pgPrunerFor = (
  shared: Pick<SharedRetention, 'pruner'>,
  settings: RetentionSettings,
): SharedPruner => shared.pruner({ days: (c) => daysOf(settings, c), batchRows: settings.batchRows });

export interface PgRetentionJobOptions {
  /** The shared database's retention (store/postgres/retention.ts `PgRetentionStore`). */
  shared: SharedRetention;
  /**
   * The instance's own SQLite file (store/sqlite/retention.ts `localRetention`): its access audit log is pruned
   * here on every instance, and recorded erasures are applied to it.
   */
  local?: LocalRetention;
  clock: Clock;
  settings: RetentionSettings;
  logger: pino.Logger;
  metrics?: MetricsRegistry;
  /** This instance's lease holder name (unique per instance). */
  holder: string;
  /** Transactions per timer turn before yielding (default 10). */
  batchesPerTurn?: number;
  /**
   * The fleet key: each turn, erasures recorded in PostgreSQL by any instance are applied to this instance's
   * SQLite file (applyRecordedErasures). Absent: not applied (send the erasure to each instance).
   */
  erasureKey?: string;
}

/**
 * The retention job of `store.engine: "postgres"` (issue 16): every `intervalMinutes`, on the injected clock, the
 * instance holding the lease `retention` deletes what is past retention on PostgreSQL, `batchesPerTurn`
 * transactions per turn (yielding between turns, renewing the lease each turn); the other instances skip
 * PostgreSQL. A holder that stops renewing loses the lease after two intervals and another instance takes over.
 * Every instance prunes its own SQLite audit log (not shared). Counts are in `deletedByThisInstance`, and in the
 * `visittag_retention_deleted_total{class}` counter as on SQLite.
 */
export class PgRetentionJob {
  private timer: TimerHandle | null = null;
  private readonly pruner: SharedPruner;
  private readonly log: pino.Logger;
  private readonly counter;
  private running = false;
  private current = zeroCounts();
  /** Rows this instance deleted since it started (per class): the tests' view of "once across instances". */
  readonly deletedByThisInstance: PruneCounts = zeroCounts();
  /** Turns in which this instance held the lease. */
  leasedTurns = 0;
  private inTurn: Promise<void> | null = null;
  private readonly digest: ((ref: string) => string) | null;
  /** References this instance replaced in its own file from erasures recorded by any instance. */
  erasuresApplied = 0;
  constructor(private readonly o: PgRetentionJobOptions) {
    this.digest = o.erasureKey ? erasureDigest(o.erasureKey) : null;
    this.pruner = pgPrunerFor(o.shared, o.settings);
    this.log = o.logger.child({ module: 'retention' });
    this.counter = o.metrics?.counter(
      'visittag_retention_deleted_total',
      'Rows deleted by the retention job, by data class.',
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(60_000);
  }

  /** Stops the timer and waits for a turn in flight. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.inTurn;
  }

  /** Resolves when no turn is in flight (tests on a virtual clock). */
  async idle(): Promise<void> {
    await this.inTurn;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      this.inTurn = this.turn().finally(() => (this.inTurn = null));
    }, ms);
  }

  private count(deleted: PruneCounts): void {
    for (const c of RETENTION_CLASSES) {
      if (deleted[c] > 0) this.counter?.inc({ class: c }, deleted[c]);
      this.current[c] += deleted[c];
      this.deletedByThisInstance[c] += deleted[c];
    }
  }

  private async turn(): Promise<void> {
    if (!this.running) return;
    let more = false;
    try {
      const now = this.o.clock.now();
      const ttl = 2 * this.o.settings.intervalMinutes * 60_000;
      if (await this.o.shared.tryLease(RETENTION_LEASE, this.o.holder, now, ttl)) {
        this.leasedTurns++;
        const r = await this.pruner.step(now, this.o.batchesPerTurn ?? 10);
        if (this.digest) {
          await this.o.shared.pruneErasureLog(now - ERASURE_LOG_KEEP_MS);
        }
        more = r.more;
        this.count(r.deleted);
      }
      const local = this.o.local;
      if (!more && local?.auditPruner.isOpen()) this.count(local.auditPruner.runAll(now, 100));
      if (this.digest && local?.erasure.isOpen())
        this.erasuresApplied += await applyRecordedErasures(this.o.shared, local.erasure, this.digest);
    } catch (err) {
      this.log.error({ err }, 'retention run failed; retried at the next interval');
    }
    if (more) return this.schedule(0);
    if (RETENTION_CLASSES.some((c) => this.current[c] > 0)) {
      this.log.info({ deleted: this.current }, 'retention run: rows past their retention deleted');
    }
    this.current = zeroCounts();
    this.schedule(this.o.settings.intervalMinutes * 60_000);
  }
}

/**
 * Erasure in `store.engine: "postgres"` mode, with its audit entry: PostgreSQL first (records-law check, cards
 * revoked, sealed UIDs dropped, every reference pseudonymised in one transaction), then the instance's own SQLite
 * file (its audit log and reader registry copy) with the same pseudonyms. `not-found` only when neither names
 * the person. Other instances' SQLite files are not reached: send the same erasure to each instance (it finds
 * only its local copies then). The audit entry goes to this instance's audit log and names only the pseudonym.
 */
export async function erasePgAudited(
  shared: Pick<SharedRetention, 'erase' | 'recordErasures'>,
  local: Pick<LocalErasure, 'scanForRef' | 'replaceRefs'>,
  settings: RetentionSettings,
  appendAudit: (e: NewAuditEntry) => unknown,
  req: ErasureInput,
  /** The fleet key: the erasure is recorded (digests only) for every instance's own file (applyRecordedErasures). */
  erasureKey?: string,
): Promise<EraseResult> {
  const r = await shared.erase({
    kind: req.kind,
    ref: req.ref,
    force: req.force,
    nowMs: req.nowMs,
    visitsDays: settings.visitsDays,
  });
  if (!r.ok && r.code === 'records-law') return r;
  let pseudonym: string;
  let changed: Record<string, number>;
  let pairs: Array<[string, string]>;
  if (r.ok) {
    pseudonym = r.pseudonym;
    changed = r.changed;
    pairs = [...r.cardPseudonyms, [req.ref, r.pseudonym]];
  } else {
    if (Object.keys(local.scanForRef(req.ref)).length === 0) return r; // nowhere: not-found
    pseudonym = `erased-${randomBytes(9).toString('hex')}`; // only this instance's file names the person
    changed = {};
    pairs = [[req.ref, pseudonym]];
  }
  for (const [k, n] of Object.entries(local.replaceRefs(pairs))) changed[`local ${k}`] = n;
  if (erasureKey) {
    const digest = erasureDigest(erasureKey);
    await shared.recordErasures(
      pairs.map(([ref, pseudo]) => [digest(ref), pseudo] as const),
      req.nowMs,
    );
  }
  // awaited: on PostgreSQL the entry is a round trip, and a CLI closes its pool right after
  await appendAudit({
    atMs: req.nowMs,
    actor: req.actor,
    action: `erasure.${req.kind}`,
    target: pseudonym,
    before: null,
    after: { changed, cards: r.ok ? r.cards : 0, forcedRecordsLaw: req.force },
    reason: req.reason,
  });
  return { ok: true, pseudonym, changed, cards: r.ok ? r.cards : 0 };
}
