import { visitRoutes } from './src/visits/routes.js';
import { careRoutes } from './src/care/routes.js';
import { CarePlan } from './src/care/service.js';
import { dayRoutes } from './src/dayview/routes.js';
import { PgCareScopeReader, PgCareStore } from './src/store/postgres/care.js';
import type { PostgresStoreSettings } from './src/config.js';
import type { AddReaderInput } from './src/registry.js';
import type { IngestStore } from './src/store/ingest-store.js';
import { PgReaderDirectory } from './src/store/postgres/reader-directory.js';
import { createAccess, Role } from './src/auth/index.js';
import { PgAuditStore } from './src/store/postgres/audit.js';
import type { AuditStore } from './src/store/ports.js';
import { PgAuthStore } from './src/store/postgres/auth.js';
import { SqliteAuthStore } from './src/store/sqlite/auth.js';
import { PgCardStore } from './src/store/postgres/cards.js';
import { migrate, openPgPool } from './src/store/postgres/db.js';
import { PgEnrollmentStore } from './src/store/postgres/enrollment.js';
import { PgEpochLog } from './src/store/postgres/epochs.js';
import { PgFleetStore } from './src/store/postgres/fleet.js';
import { createPgIngestStore } from './src/store/postgres/ingest-store.js';
import { releaseLease, tryLease } from './src/store/postgres/leases.js';
import { postgresMigrations } from './src/store/postgres/migrations.js';
import { PgOutbox } from './src/store/postgres/outbox.js';
import { PgReaderState } from './src/store/postgres/reader-state.js';
import { syncReaders } from './src/store/postgres/readers.js';
import { PgVisitStore } from './src/store/postgres/visits.js';
import { DEFAULT_RETENTION } from './src/retention/policy.js';
import { erasePgAudited, PgRetentionJob, RETENTION_LEASE } from './src/retention/pg.js';
import { retentionRoutes } from './src/retention/routes.js';
import { createPruner, SqliteErasure } from './src/store/sqlite/retention.js';
import { PgRetentionStore } from './src/store/postgres/retention.js';
import { GatewayCardKeys } from '../protocol/index.js';
import { CardLifecycle } from './src/cards/lifecycle.js';
import { PgCardListTimer } from './src/cards/pg-push.js';
import { ReaderReplacements, replaceRoutes } from './src/fleet/replace.js';
import { PgCardUidVault } from './src/cards/pg-uid-vault.js';
import { createSqliteIngestStore } from './src/store/sqlite/ingest-store.js';
import { createTurnVisitPipeline } from './src/visits/turn-pipeline.js';
import { createReaderEdge, openInstance, type GatewayInstance, type GatewayOptions } from './wiring.js';
import { createPgReporting, PG_REPORTING_MODE } from './pg-reporting.js';
import { createSecureCards } from './src/secure-cards/index.js';
import { readerUidOnly } from './src/secure-cards/policy.js';
import { PgSecureCardStore } from './src/store/postgres/secure-cards.js';

/** What runs on PostgreSQL in `store.engine: "postgres"` mode, and what does not (the start-up log line, docs). */
export const PG_MODE = {
  onPostgres: [
    'ingest (events, sequences, rejects, statuses)',
    'visits',
    'outbox + forwarder',
    'cards',
    'enrollment',
    'fleet (config push)',
    'retention and erasure (one instance prunes PostgreSQL, lease `retention`; each applies recorded erasures to its own file)',
    'sealed card UID vault and card-list push (one instance pushes, lease `card-push`)',
    'reader registry (shared: a snapshot per instance, changes by LISTEN/NOTIFY, a full pull every 30 s)',
    'care plan: registries, plan import, matching, late/missed alerts (one instance sweeps, lease `care-alerts`)',
    'day view (GET /api/day, /api/day/stream: the plan and visits read from PostgreSQL)',
    'accounts, sessions, API tokens and the audit log (shared: read per request, one log in commit order)',
    ...PG_REPORTING_MODE.onPostgres,
    'reader replacement (a code issued on one instance, exchanged on any: the old reader retired, its open visits closed)',
    'card lifecycle: revoke, reinstate, validity, lost-card replacement, full-list withdrawal (pushed at once from the instance that made the change)',
    'secure cards (SUN counters, DESFire nonces, per-tap verdicts: shared, one transaction per screened batch under a lock per card)',
  ],
  onSqlite: ['the cache of verified reader credentials'],
  notServed: [],
} as const;

/** The lease of the care plan's timed sweep (late/missed alerts): one instance at a time. */
export const CARE_LEASE = 'care-alerts';

/** How often the reader pages' copy of sequence state and statuses is read again from PostgreSQL. */
const READER_PAGES_MS = 5_000;

export interface PgGateway extends GatewayInstance {
  /** Readers and cards through this instance (the others see a reader once its notification arrives). */
  readonly registry: {
    addReader(input: AddReaderInput): Promise<{ readerId: string; password: string }>;
    addCard(c: { cardRef: string; staffRef: string }): Promise<void>;
  };
  /** This instance's writes to the reader registry stored, then the registry and reader pages read again. */
  syncReaders(): Promise<void>;
  /** The shared reader registry's snapshot (what it did: notifications, pulls, reconnects). */
  readonly readerDirectory: PgReaderDirectory;
  /** Sealed readers' card lists on a timer and the shared UID vault's sync (issue 16, cards/pg-push.ts). */
  readonly cardLists: PgCardListTimer;
  /** The care plan (its settings: `config`; the timed sweep on the holder of the lease `care-alerts`). */
  readonly carePlan: CarePlan;
}

/**
 * The composition root of a gateway instance with `store.engine: "postgres"` (gateway/main.ts picks it;
 * the embedded default stays gateway/index.ts). Several instances may share one database: the ingest
 * commit and the visits turn lock per reader, the outbox is claimed with leases (store/postgres/).
 *
 * On PostgreSQL: ingest, the visits turn pipeline (visits/turn-pipeline.ts), the outbox and its
 * forwarder, cards (read, assign), enrollment codes, fleet config push and the reader registry (every
 * instance holds a snapshot of `readers` for its synchronous reads, writes through, and takes the
 * others' changes by LISTEN/NOTIFY: store/postgres/reader-directory.ts), accounts, sessions, API tokens
 * and the audit log (shared, read per request), secure cards (counters, nonces and verdicts shared; a
 * screened batch is one transaction under a lock per card: store/postgres/secure-cards.ts). Still in the
 * SQLite file under `dataDir`, per instance: the verified-credential cache. Modules that read visits from the SQLite tables
 * (reports, corrections) are NOT mounted: they would see no visits. The care plan is, on
 * PostgreSQL (store/postgres/care.ts): its timed sweep runs on the instance holding the lease `care-alerts`.
 * One log line at start says all this (`PG_MODE`).
 */
export function createPgGateway(opts: GatewayOptions): PgGateway {
  const local = openInstance(opts);
  const { config, clock, random, logger, metrics, db } = local;
  const settings = config.store as PostgresStoreSettings;
  const sqliteStore = createSqliteIngestStore(db);
  const pool = openPgPool({
    url: settings.url,
    max: settings.poolMax,
    applicationName: `visittag-gateway-${process.pid}`,
  });
  // Accounts, sessions, API tokens and the audit log on PostgreSQL, shared by every instance (issue 14):
  // nothing cached, so a user made on one instance logs in on all and a session ended on one is refused
  // by all from the next request on; one audit log in commit order (store/postgres/{auth,audit}.ts).
  const authStore = new PgAuthStore(pool, (r) => Role.parse(r));
  const pgAudit = new PgAuditStore(pool);
  // some callers record without awaiting (the gap timeout): a failed append is logged here, never an
  // unhandled rejection; callers that await still see the failure
  const auditStore: AuditStore = {
    list: (q) => pgAudit.list(q),
    all: () => pgAudit.all(),
    append: (e) => {
      const p = pgAudit.append(e);
      p.catch((err: unknown) =>
        logger.error({ err, action: e.action }, 'audit entry not stored on PostgreSQL'),
      );
      return p;
    },
  };
  const base = {
    ...local,
    access: createAccess({
      now: () => clock.now(),
      secureCookies: local.adminTls !== null,
      oidc: config.admin.oidc ?? null,
      stores: { auth: authStore, audit: auditStore, scopes: local.access.scopeReader },
    }),
  };
  const pgIngest = createPgIngestStore(pool);
  const visitsStore = new PgVisitStore(pool);
  const outbox = new PgOutbox({
    pool,
    holder: `gw-${process.pid}-${Math.floor(random() * 1e9).toString(36)}`,
  });
  const cards = new PgCardStore(pool, () => clock.now()); // "valid now" for the pushed card lists
  const fleet = new PgFleetStore(pool);

  // The reader registry on PostgreSQL, shared: a snapshot here, written through, refreshed by
  // LISTEN/NOTIFY. Readers an older version (or the offline CLI) put only in the local SQLite file are
  // inserted into PostgreSQL once at start, if missing there.
  const directory = new PgReaderDirectory({
    pool,
    url: settings.url,
    authTags: sqliteStore.authTags,
    logger,
    applicationName: `visittag-readers-${process.pid}`,
  });
  const registryStore = directory;
  // the reader pages and alerts read sequence state, status, rejects and counts synchronously: from a
  // copy of PostgreSQL's rows refreshed with the reader sync (at most READER_SYNC_MS old)
  const readerState = new PgReaderState(pool, pgIngest);
  const pagesStore: IngestStore = {
    ...sqliteStore,
    getReader: (id) => directory.getReader(id),
    listReaders: () => directory.listReaders(),
    seqState: (r) => readerState.seqState(r),
    gaps: (r, limit) => readerState.gaps(r, limit),
    readersWithGaps: () => readerState.readersWithGaps(),
    countEvents: (r) => readerState.countEvents(r),
    rejectSummary: (r) => readerState.rejectSummary(r),
    lastStatus: (r) => readerState.lastStatus(r),
  };

  const anomalies = metrics.counter('visittag_visit_anomalies_total', 'Visit anomalies recorded, by kind.');
  const visits = createTurnVisitPipeline({
    store: visitsStore,
    outbox,
    ...base.pipeline,
    onAnomalies: (kinds) => kinds.forEach((kind) => anomalies.inc({ kind })),
  });

  // The gap timeout (issue 16) runs on the instance holding the lease `gap-watch` (renewed at each check,
  // taken over when the holder stops renewing): a gap is declared lost once, not once per instance. The
  // holder times a gap from when it first saw it (a new holder waits anew). Accepting a gap by hand
  // works on every instance.
  const holder = outbox.holder;
  // The care plan on PostgreSQL (issue 14): imports and the API on every instance; the timed sweep (visit
  // changes, late/missed alerts) only on the instance holding the lease `care-alerts` (renewed at each tick,
  // taken over 3 ticks after a holder stops renewing), and each alert is raised once by its key
  // (care_alerts (planned visit, kind)), also when a holder dies after its commit.
  const careScope = new PgCareScopeReader(pool); // the day view's scoped reads
  let careSweeping = false;
  const carePlan: CarePlan = new CarePlan({
    store: new PgCareStore(pool),
    clock,
    logger,
    metrics,
    // the tick from the settings file (care.tickSeconds), unless the caller gives the care settings
    config: {
      ...(config.care?.tickSeconds ? { tickMs: config.care.tickSeconds * 1000 } : {}),
      ...opts.care,
    },
    onQueued: () => visits.forwarder?.wake(),
    sweepGate: async () => {
      const held = await tryLease(pool, CARE_LEASE, holder, clock.now(), 3 * carePlan.config.tickMs);
      if (held !== careSweeping) {
        careSweeping = held;
        logger.info(
          { lease: CARE_LEASE, holder },
          held
            ? 'care plan sweep: lease taken, this instance sweeps'
            : 'care plan sweep: lease held elsewhere',
        );
      }
      return held;
    },
  });
  // reports, visit corrections and the web app on PostgreSQL (pg-reporting.ts)
  const reporting = createPgReporting({
    pool,
    clock,
    timeZone: carePlan.config.timeZone,
    wake: () => visits.forwarder?.wake(),
    // scoped routes and the manual close's period-lock check on PostgreSQL; a correction re-matches the care
    // plan at once on this instance; reports in a worker thread with its own pool (pg-reporting.ts)
    access: base.access,
    carePlan,
    logger,
    reportWorker: { url: settings.url },
  });
  const GAP_CHECK_MS = 60_000;
  // retention and erasure (issue 16, docs/retention.md): PostgreSQL pruned by the lease holder
  const retentionSettings = config.retention ?? DEFAULT_RETENTION;
  const localErasure = new SqliteErasure(db); // this instance's own file: its audit log, registry copy
  const retention = new PgRetentionJob({
    shared: new PgRetentionStore(pool),
    local: { auditPruner: createPruner(db, retentionSettings, ['audit_log']), erasure: localErasure },
    clock,
    settings: retentionSettings,
    logger,
    metrics,
    holder,
    erasureKey: config.fleetKey, // every instance applies erasures recorded in PostgreSQL to its own file
  });
  // registry, ingest, MQTT, enrollment, gap timeout and the reader-side routes (shared with index.ts)
  // the sealed card UID vault shared by the instances, and sealed readers' card lists on a timer (issue 16)
  const cardVault = new PgCardUidVault(pool, new GatewayCardKeys(config.fleetKey), () => clock.now(), logger);
  // Secure cards (issue 18) on PostgreSQL (issue 14): the counters, nonces and verdicts shared by every
  // instance (store/postgres/secure-cards.ts); ingest's screen answers once a batch's verdicts are
  // committed. Refuses to start on a missing or loosely permitted key file, as on SQLite.
  const secureCards = config.secureCards
    ? createSecureCards({
        settings: config.secureCards,
        store: new PgSecureCardStore(pool),
        fleetKey: config.fleetKey,
        logger,
        metrics,
        clientOf: (id) => directory.getReader(id)?.clientRef ?? null,
      })
    : null;
  const edge = createReaderEdge(base, {
    registryStore,
    ingestStore: pgIngest,
    epochs: new PgEpochLog(pool),
    onCommitted: (ids) => visits.onCommitted(ids),
    ...(secureCards ? { screen: secureCards.screen } : {}),
    enrollmentStore: new PgEnrollmentStore(pool),
    // reader replacement (issue 14): the code may be issued on one instance and exchanged on another; the
    // instance that provisions the new reader retires the old one (revoked everywhere through the registry)
    onReplaced: async (oldId, newId) => {
      await replacements.retire(oldId, newId);
    },
    // a retired reader's late visits cannot be stopped by it
    onRevoked: (id) => {
      replacements.closeRetired(id).catch((err: unknown) => {
        logger.error({ err, readerId: id }, 'closing the open visits of a retired reader failed');
      });
    },
    gaps: {
      readersWithGaps: async () =>
        (await tryLease(pool, 'gap-watch', holder, clock.now(), 3 * GAP_CHECK_MS))
          ? pgIngest.readersWithGaps()
          : [],
      gaps: (r, limit) => pgIngest.gaps(r, limit),
    },
    gapCheckEveryMs: GAP_CHECK_MS,
    readerPages: pagesStore,
    cardVault,
  });
  const { readers, ingest } = edge;
  const replacements = new ReaderReplacements({
    fleet,
    clock,
    logger,
    registry: readers,
    enrollment: edge.enrollment,
    visits: {
      // catch up on what the old reader delivered: a turn over it (under its lock), then what stays open
      processNow: async (ids) => {
        visits.onCommitted(ids ?? []);
        await visits.idle();
      },
      openVisitIds: (id) => visitsStore.openVisitIds(id),
      closeVisit: (req) => visits.closeVisit(req),
    },
  });
  const cardLists = new PgCardListTimer({
    pool,
    vault: cardVault,
    cards,
    readers: () =>
      readers
        .listReaders()
        .filter((r) => r.revokedAt === null)
        .map((r) => r.readerId),
    configRoute: (method, id, body) => edge.configRoute(method, id, body),
    cardListsFor: edge.cardListsFor,
    canPublish: () => edge.transport() !== null,
    holder,
    clock,
    logger,
    metrics,
  });
  // Card lifecycle (issue 16, on PostgreSQL since issue 14): every change audited in the shared log and pushed
  // at once by the instance that made it; the other instances' ingest and visits turns read the card row
  // from PostgreSQL, so the change is in effect everywhere from their next tap
  const cardLifecycle = new CardLifecycle({
    store: cards,
    clock,
    audit: (r) => base.access.audit.record(r),
    pushAll: () => cardLists.pushAll(),
  });
  let started = false;
  const admin = edge.admin({
    leading: reporting.leading,
    leadingPublicPaths: reporting.leadingPublicPaths,
    visits: [
      ...replaceRoutes(replacements),
      ...visitRoutes({
        visits: visitsStore,
        outbox,
        closeVisit: (req) => visits.closeVisit(req),
        wakeForwarder: () => visits.forwarder?.wake(),
        forwarderStatus: () => visits.forwarder?.status() ?? null,
      }),
      ...reporting.routes,
      ...careRoutes(carePlan),
      ...dayRoutes({
        clock,
        now: () => clock.now(),
        plan: carePlan,
        visits: (scope, fromMs, toMs, limit) => careScope.visitsStartedBetween(scope, fromMs, toMs, limit),
        clients: (scope) => careScope.clients(scope),
      }),
    ],
    cards,
    addCard: (c) => cards.assign({ ...c, nowMs: clock.now() }),
    lifecycle: cardLifecycle,
    fleet,
    links: (id) => readerState.links(id), // the reader pages' replacedBy / replaces (copy at most 5 s old)
    ...(config.secureCards
      ? {
          uidOnlyCards: (id: string) =>
            readerUidOnly(config.secureCards!.policy, directory.getReader(id)?.clientRef ?? null),
        }
      : {}),
    ready: () => started,
    beforeCommands: retentionRoutes({
      now: () => clock.now(),
      appendAudit: (e) => base.access.auditStore.append(e),
      erase: (req) =>
        erasePgAudited(
          new PgRetentionStore(pool),
          localErasure,
          retentionSettings,
          (e) => base.access.auditStore.append(e),
          req,
          config.fleetKey,
        ),
    }),
  });

  let syncTimer: ReturnType<typeof setInterval> | null = null;
  return Object.assign(edge.endpoints(), {
    metrics,
    flush: () => ingest.flush(),
    registry: {
      addReader: (input: AddReaderInput) => readers.addReader(input),
      addCard: async (c: { cardRef: string; staffRef: string }) => {
        const r = await cards.assign({ ...c, actor: 'admin', nowMs: clock.now() });
        if (r.attributed.events > 0) visits.forwarder?.wake();
      },
    },
    readerDirectory: directory,
    cardLists,
    carePlan,
    async syncReaders() {
      await directory.settled();
      await directory.pull();
      await readerState.refresh();
    },
    async start() {
      logger.info(
        {
          store: 'postgres',
          onPostgres: PG_MODE.onPostgres,
          onSqlite: PG_MODE.onSqlite,
          notServed: PG_MODE.notServed,
        },
        'store.engine postgres: ingest, visits, outbox, cards and their lifecycle, enrollment, fleet and reader replacement, the reader registry, the care plan, the day view, reports, corrections, the web app and secure cards on PostgreSQL; accounts, sessions and the audit log shared on PostgreSQL',
      );
      // several instances starting together apply each step once (advisory lock in migrate)
      await migrate(pool, postgresMigrations);
      await syncReaders(pool, sqliteStore.listReaders(), clock.now(), 'missing');
      await copyLocalAccounts(new SqliteAuthStore(db, (r) => Role.parse(r)), authStore, logger);
      await directory.start(); // before MQTT: logins and admission read its snapshot
      await readerState.refresh();
      syncTimer = setInterval(() => {
        readerState
          .refresh()
          .catch((err: unknown) =>
            logger.warn({ err }, 'reader pages refresh from PostgreSQL failed; will retry'),
          );
      }, READER_PAGES_MS);
      syncTimer.unref();
      await visits.start();
      await carePlan.start();
      retention.start();
      await cardVault.sync();
      await edge.start(); // broker accounts, MQTT, the admin API, the gap timeout
      cardLists.start();
      started = true;
    },
    async stop() {
      if (edge.stopped) return;
      if (syncTimer) clearInterval(syncTimer);
      await edge.stopMqtt();
      await carePlan.stop();
      await visits.stop();
      await admin.stop();
      await directory.stop();
      await cardLists.stop();
      await retention.stop();
      await reporting.stop();
      await releaseLease(pool, RETENTION_LEASE, holder).catch(() => undefined);
      await releaseLease(pool, 'gap-watch', holder).catch(() => undefined);
      await releaseLease(pool, CARE_LEASE, holder).catch(() => undefined);
      sqliteStore.authTags.flush();
      db.close();
      await pool.end();
      logger.info('gateway stopped');
    },
  });
}

/**
 * Accounts and API tokens that exist only in this instance's SQLite file (made before accounts moved to
 * PostgreSQL, or by an older CLI) are copied into PostgreSQL once at start. An account whose id or name
 * PostgreSQL already has is left alone (PostgreSQL wins; a clash of names is logged, never a hash).
 * Sessions are not copied (their users log in again); the local audit log stays in the file.
 */
async function copyLocalAccounts(
  from: SqliteAuthStore<Role>,
  to: PgAuthStore<Role>,
  logger: { warn: (o: object, msg: string) => void; info: (o: object, msg: string) => void },
): Promise<void> {
  let users = 0;
  let tokens = 0;
  for (const u of from.listUsers()) {
    if (await to.userById(u.userId)) continue;
    if (await to.userByName(u.name)) {
      logger.warn(
        { user: u.name },
        'an account of this name exists on PostgreSQL: the local one is not copied',
      );
      continue;
    }
    try {
      await to.insertUser(u);
      users++;
    } catch (err) {
      logger.warn({ user: u.name, err: (err as Error).message }, 'local account not copied to PostgreSQL');
    }
  }
  for (const t of from.listTokens()) {
    if (await to.tokenById(t.tokenId)) continue;
    try {
      await to.insertToken(t);
      tokens++;
    } catch (err) {
      logger.warn({ token: t.name, err: (err as Error).message }, 'local API token not copied to PostgreSQL');
    }
  }
  if (users + tokens > 0) {
    logger.info(
      { users, tokens },
      'accounts and API tokens found only in the local file copied to PostgreSQL',
    );
  }
}
