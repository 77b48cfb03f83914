import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type pino from 'pino';
import { encode, systemClock, topics } from '../protocol/index.js';
import { readerRoutes } from './src/admin/reader-routes.js';
import { AdminServer } from './src/admin/server.js';
import { loadAdminTls } from './src/admin/tls.js';
import type { AdminRoute } from './src/admin/types.js';
import { createAccess } from './src/auth/index.js';
import { loadOrCreateKeyFile } from './src/broker/credentials.js';
import { createDynsecCredentials } from './src/broker/dynsec.js';
import { createEmbeddedBroker } from './src/broker/embedded.js';
import { createExternalBroker } from './src/broker/external.js';
import type { Transport } from './src/broker/transport.js';
import { cardRoutes } from './src/cards/routes.js';
import { sealedReaderCards } from './src/cards/uid-vault.js';
import { careMigrations } from './src/care/index.js';
import type { PostgresStoreSettings } from './src/config.js';
import { correctionMigrations } from './src/corrections/index.js';
import { createEnrollment, ENROLLMENT_PUBLIC_PATHS, enrollmentRoutes } from './src/enrollment/index.js';
import { alertRoutes, readerSnapshot } from './src/fleet/alerts.js';
import { commandRoutes } from './src/fleet/command-routes.js';
import { configRoutes } from './src/fleet/config-push.js';
import { createIngest, type Ingest } from './src/ingest/ingest.js';
import { ReaderLiveView } from './src/ingest/reader-view.js';
import { MetricsRegistry } from './src/metrics.js';
import { GapWatch } from './src/retention/gaps.js';
import { DEFAULT_RETENTION } from './src/retention/policy.js';
import { ReaderRegistry, type AddReaderInput } from './src/registry.js';
import type { IngestStore } from './src/store/ingest-store.js';
import { migrate, openPgPool } from './src/store/postgres/db.js';
import { PgCardStore } from './src/store/postgres/cards.js';
import { PgEnrollmentStore } from './src/store/postgres/enrollment.js';
import { PgFleetStore } from './src/store/postgres/fleet.js';
import { PgEpochLog } from './src/store/postgres/epochs.js';
import { createPgIngestStore } from './src/store/postgres/ingest-store.js';
import { postgresMigrations } from './src/store/postgres/migrations.js';
import { PgOutbox } from './src/store/postgres/outbox.js';
import { releaseLease, tryLease } from './src/store/postgres/leases.js';
import { PgReaderState } from './src/store/postgres/reader-state.js';
import { syncReaders } from './src/store/postgres/readers.js';
import { PgVisitStore } from './src/store/postgres/visits.js';
import { openDatabase } from './src/store/sqlite/db.js';
import { createSqliteIngestStore } from './src/store/sqlite/ingest-store.js';
import { sqliteMigrations } from './src/store/sqlite/migrations.js';
import { visitRoutes } from './src/visits/routes.js';
import { createTurnVisitPipeline } from './src/visits/turn-pipeline.js';
import { createLogger, type GatewayOptions } from './index.js';

/** What runs on PostgreSQL in `store.engine: "postgres"` mode, and what does not (the start-up log line, docs). */
export const PG_MODE = {
  onPostgres: [
    'ingest (events, sequences, rejects, statuses)',
    'visits',
    'outbox + forwarder',
    'cards',
    'enrollment',
    'fleet (config push)',
  ],
  onSqlite: [
    'reader registry (a copy per instance, kept in step with PostgreSQL every 5 s)',
    'auth (accounts, sessions, tokens)',
    'audit log',
  ],
  notServed: [
    'care plan',
    'reports',
    'visit corrections',
    'day view and web app',
    'retention',
    'reader replacement',
    'card lifecycle (revoke/validity)',
    'secure cards',
  ],
} as const;

/** How often the local reader registry and the reader pages' copy are brought in step with PostgreSQL. */
const READER_SYNC_MS = 5_000;

export interface PgGateway {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly mqttPort: number | null;
  readonly adminPort: number | null;
  readonly adminUrl: string;
  readonly metrics: MetricsRegistry;
  /** Commits pending ingest now (tests, shutdown). */
  flush(): void;
  /** Readers and cards through this instance (the others take a reader at their next sync). */
  readonly registry: {
    addReader(input: AddReaderInput): Promise<{ readerId: string; password: string }>;
    addCard(c: { cardRef: string; staffRef: string }): Promise<void>;
  };
  /** Brings this instance's reader registry and reader pages in step with PostgreSQL now (not in 5 s). */
  syncReaders(): Promise<void>;
}

/**
 * The composition root of a gateway instance with `store.engine: "postgres"` (gateway/main.ts picks it;
 * the embedded default stays gateway/index.ts). Several instances may share one database: the ingest
 * commit and the visits turn lock per reader, the outbox is claimed with leases (store/postgres/).
 *
 * On PostgreSQL: ingest, the visits turn pipeline (visits/turn-pipeline.ts), the outbox and its
 * forwarder, cards (read, assign), enrollment codes and fleet config push. Still in the SQLite file
 * under `dataDir`, per instance: the reader registry (a copy kept in step with PostgreSQL's readers,
 * which the visits turn reads: see `pull`), auth and the audit log. Modules that read visits from the SQLite tables
 * (care plan, reports, corrections, day view, retention) are NOT mounted: they would see no visits.
 * One log line at start says all this (`PG_MODE`).
 */
export function createPgGateway(opts: GatewayOptions): PgGateway {
  const config = opts.config;
  const settings = config.store as PostgresStoreSettings;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const logger: pino.Logger = opts.logger ?? createLogger(config.logLevel);
  const metrics = new MetricsRegistry();
  mkdirSync(config.dataDir, { recursive: true });
  const db = openDatabase(join(config.dataDir, 'gateway.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
  ]);
  const sqliteStore = createSqliteIngestStore(db);
  const pool = openPgPool({
    url: settings.url,
    max: settings.poolMax,
    applicationName: `visittag-gateway-${process.pid}`,
  });
  const pgIngest = createPgIngestStore(pool);
  const visitsStore = new PgVisitStore(pool);
  const outbox = new PgOutbox({
    pool,
    holder: `gw-${process.pid}-${Math.floor(random() * 1e9).toString(36)}`,
  });
  const cards = new PgCardStore(pool);
  const fleet = new PgFleetStore(pool);

  // The reader registry stays in a SQLite file per instance; PostgreSQL's readers are the shared
  // truth: a change through this instance is written there at once, readers only in the local file
  // (added by the offline CLI) are inserted there, and every READER_SYNC_MS each instance takes what
  // the others changed (a reader added, revoked, moved or re-keyed elsewhere) into its own file.
  const pendingSync = new Set<Promise<unknown>>();
  let pushes = 0;
  const copy = (what: string, p: Promise<unknown>) => {
    pushes++;
    const q = p
      .catch((err: unknown) => logger.error({ err, what }, 'copying a reader change to PostgreSQL failed'))
      .finally(() => pendingSync.delete(q));
    pendingSync.add(q);
  };
  const pull = async (): Promise<void> => {
    const before = pushes;
    const shared = await pgIngest.listReaders();
    // a change of ours still on its way (or made meanwhile) would be undone: take the others' next time
    if (pendingSync.size > 0 || pushes !== before) return;
    for (const r of shared) {
      const mine = sqliteStore.getReader(r.readerId);
      if (!mine) {
        sqliteStore.insertReader(r);
        continue;
      }
      if (mine.passwordHash !== r.passwordHash) {
        sqliteStore.setPasswordHash(r.readerId, r.passwordHash);
        transport?.disconnect(r.readerId);
      }
      if (mine.revokedAt !== r.revokedAt) {
        sqliteStore.setRevoked(r.readerId, r.revokedAt);
        if (r.revokedAt !== null) transport?.disconnect(r.readerId);
      }
      if (mine.clientRef !== r.clientRef) sqliteStore.setClientRef(r.readerId, r.clientRef, clock.now());
    }
  };
  const syncAll = async (): Promise<void> => {
    await syncReaders(pool, sqliteStore.listReaders(), clock.now(), 'missing');
    await pull();
    await readerState.refresh();
  };
  const registryStore: IngestStore = {
    ...sqliteStore,
    insertReader: (r) => {
      sqliteStore.insertReader(r);
      copy('insert', syncReaders(pool, [r], clock.now()));
    },
    setPasswordHash: (id, hash) => {
      sqliteStore.setPasswordHash(id, hash);
      copy('password', pgIngest.setPasswordHash(id, hash));
    },
    setRevoked: (id, atMs) => {
      sqliteStore.setRevoked(id, atMs);
      copy('revoke', pgIngest.setRevoked(id, atMs));
    },
    setClientRef: (id, clientRef, atMs) => {
      sqliteStore.setClientRef(id, clientRef, atMs);
      copy('move', pgIngest.setClientRef(id, clientRef, atMs));
    },
  };

  // the reader pages and alerts read sequence state, status, rejects and counts synchronously: from a
  // copy of PostgreSQL's rows refreshed with the reader sync (at most READER_SYNC_MS old)
  const readerState = new PgReaderState(pool, pgIngest);
  const pagesStore: IngestStore = {
    ...registryStore,
    seqState: (r) => readerState.seqState(r),
    gaps: (r, limit) => readerState.gaps(r, limit),
    readersWithGaps: () => readerState.readersWithGaps(),
    countEvents: (r) => readerState.countEvents(r),
    rejectSummary: (r) => readerState.rejectSummary(r),
    lastStatus: (r) => readerState.lastStatus(r),
  };

  const adminTls = config.admin.tls ? loadAdminTls(config.admin.tls) : null;
  const access = createAccess({
    db,
    now: () => clock.now(),
    secureCookies: adminTls !== null,
    oidc: config.admin.oidc ?? null,
  });

  const anomalies = metrics.counter('visittag_visit_anomalies_total', 'Visit anomalies recorded, by kind.');
  const visits = createTurnVisitPipeline({
    store: visitsStore,
    outbox,
    clock,
    random,
    logger,
    metrics,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(config.backend.url ? { backend: { ...config.backend, url: config.backend.url } } : {}),
    onAnomalies: (kinds) => kinds.forEach((kind) => anomalies.inc({ kind })),
  });

  let transport: Transport | null = null;
  const dynsec =
    config.mqtt.mode === 'external' && config.mqtt.dynamicSecurity
      ? createDynsecCredentials({
          url: config.mqtt.url,
          username: config.mqtt.dynamicSecurity.username,
          password: config.mqtt.dynamicSecurity.password,
          clientId: `${config.mqtt.clientId}-dynsec`.slice(0, 64),
          logger,
        })
      : null;
  let dynsecStarted = false;
  const live = new ReaderLiveView();
  // sealed-v1 readers' card lists (issue 16)
  const sealed = sealedReaderCards(config, live, (id) => pagesStore.lastStatus(id)?.status);
  const readers = new ReaderRegistry({
    store: registryStore,
    clock,
    logger,
    kdf: config.mqtt.mode === 'embedded' ? config.mqtt.kdf : { logN: 11, r: 8, p: 1 },
    authCacheKey: loadOrCreateKeyFile(join(config.dataDir, 'auth-cache.key')),
    ...(config.limits ? { authThrottle: config.limits.authThrottle } : {}),
    onRevoked: (id) => {
      transport?.disconnect(id);
      if (dynsec && dynsecStarted) {
        dynsec.disableReader(id).catch((err: unknown) => {
          logger.error(
            { err, readerId: id },
            'revoked reader not disabled on the broker: disable it there by hand (mosquitto_ctrl dynsec disableClient)',
          );
        });
      }
    },
    onPasswordChanged: (id) => transport?.disconnect(id),
  });
  const publish = (topic: string, payload: Buffer, retain: boolean) => {
    if (!transport) return Promise.reject(new Error('gateway is not started'));
    return transport.publish(topic, payload, { qos: 1, retain });
  };
  const ingest: Ingest = createIngest({
    store: pgIngest,
    epochs: new PgEpochLog(pool),
    clock,
    logger,
    metrics,
    live,
    groupCommitMs: config.ingest.groupCommitMs,
    groupCommitMax: config.ingest.groupCommitMax,
    admission: (id) => readers.admission(id),
    publish: (topic, payload) => publish(topic, payload, false),
    onCommitted: (ids) => visits.onCommitted(ids),
    fleetKey: config.fleetKey, // sealed cards are opened at ingest (issue 16)
    cardVault: sealed.vault,
    ...(config.limits
      ? { maxSeqJump: config.limits.maxSeqJump, rejectLogPerMinute: config.limits.rejectLogPerMinute }
      : {}),
  });
  // The gap timeout (issue 16) runs on the instance holding the lease `gap-watch` (renewed at each check,
  // taken over when the holder stops renewing): a gap is declared lost once, not once per instance. The
  // holder times a gap from when it first saw it (a new holder waits anew). Accepting a gap by hand
  // works on every instance.
  const holder = outbox.holder;
  const GAP_CHECK_MS = 60_000;
  const gapWatch = new GapWatch({
    store: {
      readersWithGaps: async () =>
        (await tryLease(pool, 'gap-watch', holder, clock.now(), 3 * GAP_CHECK_MS))
          ? pgIngest.readersWithGaps()
          : [],
      gaps: (r, limit) => pgIngest.gaps(r, limit),
    },
    ingest,
    clock,
    logger,
    metrics,
    timeoutMs: (config.retention ?? DEFAULT_RETENTION).gapTimeoutMinutes * 60_000,
    checkEveryMs: GAP_CHECK_MS,
    audit: (e) => access.auditStore.append({ atMs: clock.now(), before: null, ...e }),
  });
  const aclRejects = metrics.counter('visittag_mqtt_acl_rejects_total', 'ACL refusals by reason.');
  const onDenied = (readerId: string | null, reason: string, detail: string) => {
    aclRejects.inc({ reason });
    if (readerId) live.reject(readerId, reason, detail, clock.now());
  };
  const makeTransport = (): Transport =>
    config.mqtt.mode === 'embedded'
      ? createEmbeddedBroker({
          settings: config.mqtt,
          clock,
          logger,
          metrics,
          authenticate: (id, pw, source) => readers.authenticate(id, pw, source),
          isActive: (id) => readers.admission(id) === 'active',
          onMessage: (m) => ingest.handle(m),
          onDenied,
          ...(config.limits ? { readerRate: config.limits.readerRate } : {}),
        })
      : createExternalBroker({ settings: config.mqtt, logger, onMessage: (m) => ingest.handle(m), onDenied });
  metrics.gauge(
    'visittag_connected_readers',
    'Readers connected now (embedded) or reported online (external).',
    () => (transport ? transport.connectedReaders() : 0),
  );

  const enrollment = createEnrollment({
    store: new PgEnrollmentStore(pool),
    config,
    clock,
    logger,
    registry: readers,
    mqttPort: () => transport?.port ?? null,
    ...(dynsec ? { brokerAccounts: dynsec } : {}),
  });

  let started = false;
  let stopped = false;
  const coreRoutes: AdminRoute[] = [
    { method: 'GET', path: '/healthz', handler: () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'GET',
      path: '/readyz',
      handler: () => {
        const ready = started && !stopped && db.open && Boolean(transport?.ready());
        return { status: ready ? 200 : 503, body: { ready, mqtt: transport?.ready() ?? false, db: db.open } };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: () => ({ status: 200, body: metrics.render(), contentType: 'text/plain; version=0.0.4' }),
    },
  ];
  const admin = new AdminServer({
    host: config.admin.host,
    port: config.admin.port,
    token: config.admin.token,
    ...(adminTls ? { tls: adminTls } : {}),
    authenticate: access.authenticate,
    authorize: access.authorize,
    onChange: access.onChange,
    logger,
    publicPaths: ['/healthz', '/readyz', ...ENROLLMENT_PUBLIC_PATHS, ...access.publicPaths],
    routes: access.scope([
      ...coreRoutes,
      ...access.routes,
      ...readerRoutes({ store: pagesStore, registry: readers, live, transport: () => transport }),
      ...visitRoutes({
        visits: visitsStore,
        outbox,
        closeVisit: (req) => visits.closeVisit(req),
        wakeForwarder: () => visits.forwarder?.wake(),
        forwarderStatus: () => visits.forwarder?.status() ?? null,
      }),
      ...enrollmentRoutes(enrollment),
      ...cardRoutes({
        cards,
        addCard: (c) => cards.assign({ ...c, nowMs: clock.now() }),
      }),
      ...configRoutes({
        fleet,
        cards,
        clock,
        readerExists: (id) => readers.getReader(id) !== undefined,
        publish: (id, cfg) => publish(topics.config(id), encode('config', cfg), true),
        cardListsFor: sealed.cardListsFor,
      }),
      ...alertRoutes({
        metrics,
        now: () => clock.now(),
        snapshots: () =>
          readers
            .listReaders()
            .map((r) => readerSnapshot({ store: pagesStore, live, transport: () => transport }, r)),
      }),
      ...gapWatch.routes(),
      ...commandRoutes({
        clock,
        readerExists: (id) => readers.getReader(id) !== undefined,
        send: (id, cmd) => publish(topics.commands(id), encode('commands', cmd), false),
      }),
    ]),
  });

  let syncTimer: ReturnType<typeof setInterval> | null = null;
  return {
    get mqttPort() {
      return transport?.port ?? null;
    },
    get adminPort() {
      return admin.port;
    },
    get adminUrl() {
      return admin.url;
    },
    metrics,
    flush: () => ingest.flush(),
    registry: {
      addReader: (input) => readers.addReader(input),
      addCard: async (c) => {
        const r = await cards.assign({ ...c, actor: 'admin', nowMs: clock.now() });
        if (r.attributed.events > 0) visits.forwarder?.wake();
      },
    },
    async syncReaders() {
      await Promise.allSettled([...pendingSync]);
      await syncAll();
    },
    async start() {
      logger.info(
        {
          store: 'postgres',
          onPostgres: PG_MODE.onPostgres,
          onSqlite: PG_MODE.onSqlite,
          notServed: PG_MODE.notServed,
        },
        'store.engine postgres: ingest, visits, outbox, cards, enrollment and fleet on PostgreSQL; reader registry, auth and audit still in the SQLite file; care, reports, corrections, day view, web app, retention, replacement and card lifecycle are not served in this mode',
      );
      // several instances starting together apply each step once (advisory lock in migrate)
      await migrate(pool, postgresMigrations);
      await syncAll();
      syncTimer = setInterval(() => {
        syncAll().catch((err: unknown) =>
          logger.warn({ err }, 'reader sync with PostgreSQL failed; will retry'),
        );
      }, READER_SYNC_MS);
      syncTimer.unref();
      await visits.start();
      if (dynsec) {
        await dynsec.start();
        dynsecStarted = true;
        await dynsec.ensureRoles();
      }
      transport = makeTransport();
      await transport.start();
      await admin.start();
      gapWatch.start();
      started = true;
      logger.info({ mqttPort: transport.port, adminPort: admin.port }, 'gateway started');
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (syncTimer) clearInterval(syncTimer);
      gapWatch.stop(); // before the ingest stops: no gap is declared lost into a stopping ingest
      transport?.stopAccepting();
      await ingest.stop();
      const t = transport;
      if (t) await t.stop();
      ingest.flush();
      transport = null;
      if (dynsecStarted) await dynsec?.stop();
      await visits.stop();
      await admin.stop();
      await Promise.allSettled([...pendingSync]);
      await releaseLease(pool, 'gap-watch', holder).catch(() => undefined);
      sqliteStore.authTags.flush();
      db.close();
      await pool.end();
      logger.info('gateway stopped');
    },
  };
}
