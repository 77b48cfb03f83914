import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import {
  encode,
  systemClock,
  topics,
  type Clock,
  type Command,
  type PayloadInputOf,
} from '../protocol/index.js';
import { readerRoutes } from './src/admin/reader-routes.js';
import { AdminServer } from './src/admin/server.js';
import { loadAdminTls } from './src/admin/tls.js';
import { WEB_PUBLIC_PATHS, webRoutes } from './src/admin/web-assets.js';
import { type Access, createAccess } from './src/auth/index.js';
import type { AdminRoute } from './src/admin/types.js';
import { loadOrCreateKeyFile } from './src/broker/credentials.js';
import { commandRoutes } from './src/fleet/command-routes.js';
import { alertRoutes, readerSnapshot } from './src/fleet/alerts.js';
import { configRoutes } from './src/fleet/config-push.js';
import { ReaderReplacements, replaceRoutes } from './src/fleet/replace.js';
import { cardRoutes } from './src/cards/routes.js';
import { CardLifecycle } from './src/cards/lifecycle.js';
import { CardListPusher } from './src/cards/push.js';
import { sealedReaderCards } from './src/cards/uid-vault.js';
import { SqliteCardStore } from './src/store/sqlite/cards.js';
import type { DeviceConfig } from '../protocol/index.js';
import { createEmbeddedBroker } from './src/broker/embedded.js';
import { createExternalBroker } from './src/broker/external.js';
import { createDynsecCredentials } from './src/broker/dynsec.js';
import type { Transport } from './src/broker/transport.js';
import {
  createEnrollment,
  ENROLLMENT_PUBLIC_PATHS,
  enrollmentRoutes,
  type Enrollment,
} from './src/enrollment/index.js';
import type { GatewaySettings } from './src/config.js';
import { createIngest, type Ingest } from './src/ingest/ingest.js';
import { ReaderLiveView } from './src/ingest/reader-view.js';
import { MetricsRegistry } from './src/metrics.js';
import { ReaderRegistry } from './src/registry.js';
import { openDatabase } from './src/store/sqlite/db.js';
import type { IngestStore } from './src/store/ingest-store.js';
import type { CardStore } from './src/store/ports.js';
import { createSqliteIngestStore } from './src/store/sqlite/ingest-store.js';
import { createSqliteEpochLog } from './src/store/sqlite/epochs.js';
import { SqliteEnrollmentStore } from './src/store/sqlite/enrollment.js';
import { SqliteFleetStore } from './src/store/sqlite/fleet.js';
import { sqliteMigrations } from './src/store/sqlite/migrations.js';
import { careMigrations, createCareModule, type CareModule, type CarePlanConfig } from './src/care/index.js';
import { reportRoutes } from './src/reports/routes.js';
import { reportMigrations } from './src/reports/migrations.js';
import { WorkerReportRunner } from './src/reports/runner.js';
import { SqliteReportSource } from './src/reports/sqlite-source.js';
import { createVisitPipeline, type VisitPipeline } from './src/visits/pipeline.js';
import { DEFAULT_RETENTION } from './src/retention/policy.js';
import { RetentionJob } from './src/retention/prune.js';
import { GapWatch } from './src/retention/gaps.js';
import { retentionRoutes } from './src/retention/routes.js';
import { correctionMigrations, correctionRoutes, VisitCorrections } from './src/corrections/index.js';
import { dayRoutes } from './src/dayview/index.js';
import { createSecureCards } from './src/secure-cards/index.js';
import { readerUidOnly } from './src/secure-cards/policy.js';

export type { GatewaySettings } from './src/config.js';
export {
  parseGatewaySettings,
  loadGatewaySettings,
  GatewaySettings as GatewaySettingsSchema,
} from './src/config.js';

export interface GatewayOptions {
  config: GatewaySettings;
  clock?: Clock;
  random?: () => number;
  logger?: pino.Logger;
  fetch?: typeof fetch;
  /** Care plan settings (time zone, matching windows, alert thresholds, tick); defaults in care/service.ts. */
  care?: Partial<CarePlanConfig>;
}

type ReaderMethods = Pick<
  ReaderRegistry,
  'addReader' | 'revokeReader' | 'restoreReader' | 'moveReader' | 'setPassword' | 'getReader' | 'listReaders'
>;

export interface Gateway {
  start(): Promise<void>;
  /** Graceful: flush the group commit and its acks, close MQTT, the pipeline, the admin API, the DB. */
  stop(): Promise<void>;
  readonly mqttPort: number | null;
  readonly adminPort: number | null;
  readonly adminUrl: string;
  readonly registry: ReaderMethods & VisitPipeline['registry'];
  /** The visits pipeline (visit engine, outbox, forwarder). */
  readonly pipeline: VisitPipeline;
  readonly store: IngestStore;
  /** Where the gateway keeps its files (config `dataDir`). */
  readonly dataDir: string;
  /** The card registry's read side (unknown cards, a card's holder). */
  readonly cards: Pick<CardStore, 'get' | 'unknown'>;
  readonly metrics: MetricsRegistry;
  /** Care plan: registries, plan import, matching, live alerts (gateway/src/care). */
  readonly care: CareModule;
  /** Commits pending ingest now (tests, shutdown). */
  flush(): void;
  publishConfig(readerId: string, config: PayloadInputOf<'config'>): Promise<void>;
  sendCommand(readerId: string, command: Command): Promise<void>;
  /** One-time enrollment codes and the provisioning exchange (gateway/src/enrollment). */
  readonly enrollment: Enrollment;
  /** Accounts, sessions, API tokens and the audit log (gateway/src/auth, gateway/src/audit). */
  readonly access: Access;
  /** The admin HTTP server (its mounted routes, for the security test). */
  readonly admin: AdminServer;
  /** Replacing a reader by a new one at the same client (gateway/src/fleet/replace.ts). */
  readonly replacements: ReaderReplacements;
  /** Card revoke/reinstate/validity/replacement, pushed to readers at once (gateway/src/cards). */
  readonly cardLifecycle: CardLifecycle;
  /** Pushes the card lists to readers (a timer also runs `tick` once a minute for validity dates). */
  readonly cardPusher: CardListPusher;
}

export function createLogger(level: string): pino.Logger {
  return pino({
    level,
    base: { app: 'visittag-gateway' },
    redact: ['password', '*.password', 'token', '*.token', 'secret', '*.secret', 'fleetKey'],
  });
}

/** The gateway's composition root (CLI: gateway/main.ts). */
export function createGateway(opts: GatewayOptions): Gateway {
  const config = opts.config;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const logger = opts.logger ?? createLogger(config.logLevel);
  const metrics = new MetricsRegistry();
  mkdirSync(config.dataDir, { recursive: true });
  // The ONE place the schema is applied: every table of every module (store/sqlite/migrations.ts).
  const db = openDatabase(join(config.dataDir, 'gateway.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
    ...reportMigrations, // after care and corrections: its triggers sit on their tables
  ]);
  // Reports run in a worker thread on its own connection: a long report never blocks this event loop.
  const reportRunner = new WorkerReportRunner({ path: join(config.dataDir, 'gateway.db') });
  const retentionSettings = config.retention ?? DEFAULT_RETENTION;
  const retention = new RetentionJob({
    db,
    clock,
    settings: retentionSettings,
    logger,
    metrics,
    onVisitsDeleted: () => pipeline.visitWriter.repo.index.invalidate(),
  });
  // HTTPS for the admin API and web app (config admin.tls; a clear error names a bad file), SSO (admin.oidc)
  const adminTls = config.admin.tls ? loadAdminTls(config.admin.tls) : null;
  const access = createAccess({
    db,
    now: () => clock.now(),
    secureCookies: adminTls !== null,
    oidc: config.admin.oidc ?? null,
  });
  const store = createSqliteIngestStore(db);
  const fleet = new SqliteFleetStore(db);
  const pipeline = createVisitPipeline({
    db,
    clock,
    random,
    logger,
    metrics,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(config.backend.url ? { backend: { ...config.backend, url: config.backend.url } } : {}),
  });

  // Visit corrections (issue 13): through the pipeline's repo and outbox, audited in the access audit log.
  const corrections = new VisitCorrections({
    db,
    clock,
    repo: pipeline.visitWriter.repo,
    enqueue: (e, nowMs) => pipeline.visitWriter.outbox.enqueue(e, nowMs),
    appendAudit: (e) => access.auditStore.append(e),
    ...(opts.care?.timeZone ? { timeZone: opts.care.timeZone } : {}), // a period lock's month
  });
  // a manual close inside a locked period is a unit manager's change only (corrections/periods.ts)
  access.lockCloses((clientRef, startedAtMs) =>
    corrections.locks.lockFor(clientRef, [startedAtMs, clock.now()]),
  );

  const care = createCareModule({
    db,
    clock,
    logger,
    metrics,
    ...(opts.care ? { config: opts.care } : {}),
    onQueued: () => pipeline.forwarder?.wake(),
  });

  let transport: Transport | null = null;
  // Reader accounts on an external Mosquitto (dynamic security): provisioning and revocation reach it.
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
  const readers = new ReaderRegistry({
    store,
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
      // a retired reader's late visits cannot be stopped by it
      replacements.closeRetired(id).catch((err: unknown) => {
        logger.error({ err, readerId: id }, 'closing the open visits of a retired reader failed');
      });
    },
    onPasswordChanged: (id) => transport?.disconnect(id),
  });
  // Secure cards (issue 18): refuses to start on a missing or loosely permitted key file.
  const secureCards = config.secureCards
    ? createSecureCards({
        settings: config.secureCards,
        db,
        fleetKey: config.fleetKey,
        logger,
        metrics,
        clientOf: (id) => store.getReader(id)?.clientRef ?? null,
      })
    : null;
  // sealed-v1 readers' card lists (issue 16)
  const sealed = sealedReaderCards(config, live, (id) => store.lastStatus(id)?.status);
  const ingest: Ingest = createIngest({
    store,
    epochs: createSqliteEpochLog(db),
    clock,
    logger,
    metrics,
    live,
    groupCommitMs: config.ingest.groupCommitMs,
    groupCommitMax: config.ingest.groupCommitMax,
    admission: (id) => readers.admission(id),
    publish: (topic, payload) =>
      transport
        ? transport.publish(topic, payload, { qos: 1, retain: false })
        : Promise.reject(new Error('MQTT stopped')),
    onCommitted: (ids) => pipeline.onCommitted(ids),
    fleetKey: config.fleetKey, // sealed cards are opened at ingest (issue 16)
    cardVault: sealed.vault,
    ...(secureCards ? { screen: secureCards.screen } : {}),
    ...(config.limits
      ? { maxSeqJump: config.limits.maxSeqJump, rejectLogPerMinute: config.limits.rejectLogPerMinute }
      : {}),
  });
  // a seq that never arrives is declared lost after retention.gapTimeoutMinutes, or accepted by hand (issue 16)
  const gapWatch = new GapWatch({
    store,
    ingest,
    clock,
    logger,
    metrics,
    timeoutMs: retentionSettings.gapTimeoutMinutes * 60_000,
    audit: (e) => access.auditStore.append({ atMs: clock.now(), before: null, ...e }),
  });
  const onDenied = (readerId: string | null, reason: string, detail: string) => {
    metrics_rejects(reason);
    if (readerId) live.reject(readerId, reason, detail, clock.now());
  };
  const aclRejects = metrics.counter('visittag_mqtt_acl_rejects_total', 'ACL refusals by reason.');
  const metrics_rejects = (reason: string) => aclRejects.inc({ reason });
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
    'visittag_auth_kdf_runs',
    'Credential checks that needed the KDF (cache misses).',
    () => readers.kdfRuns,
  );
  metrics.gauge(
    'visittag_connected_readers',
    'Readers connected now (embedded) or reported online (external).',
    () => (transport ? transport.connectedReaders() : 0),
  );

  const enrollment = createEnrollment({
    store: new SqliteEnrollmentStore(db),
    config,
    clock,
    logger,
    registry: readers,
    mqttPort: () => transport?.port ?? null,
    onReplaced: async (oldId, newId) => {
      await replacements.retire(oldId, newId);
    },
    ...(dynsec ? { brokerAccounts: dynsec } : {}),
  });
  const replacements = new ReaderReplacements({
    fleet,
    clock,
    logger,
    registry: readers,
    enrollment,
    visits: pipeline,
  });
  let stopped = false;
  const coreRoutes: AdminRoute[] = [
    { method: 'GET', path: '/healthz', handler: () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'GET',
      path: '/readyz',
      handler: () => {
        const ready = !stopped && db.open && Boolean(transport?.ready());
        return { status: ready ? 200 : 503, body: { ready, mqtt: transport?.ready() ?? false, db: db.open } };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: () => ({ status: 200, body: metrics.render(), contentType: 'text/plain; version=0.0.4' }),
    },
  ];
  // Card lifecycle (issue 16): changes are audited and pushed to every reader at once, through the
  // config route's own build/publish/record path (the reader keeps the options of its last config).
  let fleetConfigRoutes: AdminRoute[] = [];
  const configRoute = (method: 'GET' | 'POST', readerId: string, body?: unknown) => {
    const r = fleetConfigRoutes.find(
      (x) => x.method === method && x.path === '/api/readers/:readerId/config',
    );
    if (!r) return Promise.reject(new Error('config route missing'));
    return Promise.resolve(
      r.handler({
        method,
        params: { readerId },
        query: new URLSearchParams(),
        body,
        actor: 'card-lifecycle',
      }),
    );
  };
  const lifecycleCards = new SqliteCardStore({ db, clock });
  const cardPusher = new CardListPusher({
    readers: () =>
      readers
        .listReaders()
        .filter((r) => r.revokedAt === null)
        .map((r) => r.readerId),
    lastConfig: async (id) => {
      const r = await configRoute('GET', id);
      return r.status === 200 ? ((r.body as { config: DeviceConfig }).config ?? null) : null;
    },
    push: (id, input) => configRoute('POST', id, input),
    lists: () => lifecycleCards.cardLists(clock.now()),
    cardListsFor: sealed.cardListsFor,
    logger,
  });
  const cardLifecycle = new CardLifecycle({
    store: lifecycleCards,
    clock,
    audit: (r) => access.audit.record(r),
    pushAll: () => (transport ? cardPusher.pushAll() : Promise.resolve({ pushed: [], failed: [] })),
  });
  let cardTimer: ReturnType<typeof setInterval> | null = null;
  const admin = new AdminServer({
    host: config.admin.host,
    port: config.admin.port,
    token: config.admin.token,
    ...(adminTls ? { tls: adminTls } : {}),
    authenticate: access.authenticate,
    authorize: access.authorize,
    onChange: access.onChange,
    logger,
    publicPaths: [
      '/healthz',
      '/readyz',
      ...ENROLLMENT_PUBLIC_PATHS,
      ...access.publicPaths,
      ...WEB_PUBLIC_PATHS,
    ],
    // area/provider scope for coordinators and unit managers in front of every route (auth/scoped-routes.ts)
    routes: access.scope([
      ...coreRoutes,
      ...access.routes,
      ...webRoutes(),
      ...readerRoutes({
        store,
        registry: readers,
        live,
        transport: () => transport,
        links: (id) => fleet.links(id), // the SQLite adapter answers synchronously
      }),
      ...replaceRoutes(replacements),
      ...pipeline.routes,
      ...correctionRoutes({
        corrections,
        visible: (p, v) => access.canSeeClient(p, v.clientRef),
        wake: () => pipeline.forwarder?.wake(),
        changed: () =>
          void care.plan.tick().catch((err: unknown) => logger.error({ err }, 'care plan tick failed')),
      }),
      ...care.routes,
      ...dayRoutes({
        clock,
        now: () => clock.now(),
        plan: care.plan,
        visits: (scope, fromMs, toMs, limit) =>
          access.scopeReader.visitsStartedBetween(scope, fromMs, toMs, limit),
        clients: (scope) => access.scopeReader.clients(scope),
      }),
      ...reportRoutes({
        source: new SqliteReportSource(db),
        timeZone: care.plan.config.timeZone,
        runner: reportRunner,
      }),
      ...enrollmentRoutes(enrollment),
      ...cardRoutes({
        cards: pipeline.cards,
        addCard: (c) => pipeline.registry.addCard(c),
        lifecycle: cardLifecycle,
      }),
      ...(fleetConfigRoutes = configRoutes({
        fleet,
        cards: pipeline.cards,
        clock,
        readerExists: (id) => readers.getReader(id) !== undefined,
        publish: (id, cfg) => publishRetained(topics.config(id), encode('config', cfg), true),
        cardListsFor: sealed.cardListsFor,
        ...(config.secureCards
          ? {
              uidOnlyCards: (id: string) =>
                readerUidOnly(config.secureCards!.policy, store.getReader(id)?.clientRef ?? null),
            }
          : {}),
      })),
      ...alertRoutes({
        metrics,
        now: () => clock.now(),
        snapshots: () =>
          readers.listReaders().map((r) => readerSnapshot({ store, live, transport: () => transport }, r)),
      }),
      // retention and erasure (issue 16, docs/retention.md); the visit index reloads after either deletes
      ...gapWatch.routes(),
      ...retentionRoutes({
        db,
        settings: retentionSettings,
        now: () => clock.now(),
        appendAudit: (e) => access.auditStore.append(e),
        onErased: () => pipeline.visitWriter.repo.index.invalidate(),
      }),
      ...commandRoutes({
        clock,
        readerExists: (id) => readers.getReader(id) !== undefined,
        send: (id, cmd) => publishRetained(topics.commands(id), encode('commands', cmd), false),
      }),
    ]),
  });

  const registry: Gateway['registry'] = {
    addReader: (input) => readers.addReader(input),
    revokeReader: (id) => readers.revokeReader(id),
    restoreReader: (id) => readers.restoreReader(id),
    moveReader: (id, clientRef) => readers.moveReader(id, clientRef),
    setPassword: (id, pw) => readers.setPassword(id, pw),
    getReader: (id) => readers.getReader(id),
    listReaders: () => readers.listReaders(),
    addCard: (c) => pipeline.registry.addCard(c),
    addCards: (cs) => pipeline.registry.addCards(cs),
    revokeCard: (cardRef) => pipeline.registry.revokeCard(cardRef),
  };

  const publishRetained = (topic: string, payload: Buffer, retain: boolean) => {
    if (!transport) return Promise.reject(new Error('gateway is not started'));
    return transport.publish(topic, payload, { qos: 1, retain });
  };

  return {
    access,
    admin,
    get mqttPort() {
      return transport?.port ?? null;
    },
    get adminPort() {
      return admin.port;
    },
    get adminUrl() {
      return admin.url;
    },
    registry,
    enrollment,
    replacements,
    pipeline,
    care,
    store,
    dataDir: config.dataDir,
    cards: pipeline.cards,
    cardLifecycle,
    cardPusher,
    metrics,
    flush: () => ingest.flush(),
    publishConfig: (readerId, cfg) => publishRetained(topics.config(readerId), encode('config', cfg), true),
    sendCommand: (readerId, cmd) =>
      publishRetained(topics.commands(readerId), encode('commands', cmd), false),
    async start() {
      await pipeline.start();
      await care.plan.start();
      if (dynsec) {
        await dynsec.start();
        dynsecStarted = true;
        await dynsec.ensureRoles();
      }
      transport = makeTransport();
      await transport.start();
      await admin.start();
      // validity dates pass by themselves: re-push where the lists changed (and retry failed pushes)
      cardTimer = setInterval(() => void cardPusher.tick().catch(() => undefined), 60_000);
      cardTimer.unref();
      retention.start();
      gapWatch.start();
      logger.info({ mqttPort: transport.port, adminPort: admin.port }, 'gateway started');
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      gapWatch.stop(); // before the ingest stops: no gap is declared lost into a stopping ingest
      transport?.stopAccepting(); // no new connections; live readers still get their last acks
      await ingest.stop();
      const t = transport;
      if (t) await t.stop();
      ingest.flush(); // anything that raced the close is committed (its ack is resent later)
      transport = null;
      if (dynsecStarted) await dynsec?.stop();
      await care.plan.stop();
      if (cardTimer) clearInterval(cardTimer);
      retention.stop();
      await pipeline.stop();
      await admin.stop();
      store.authTags.flush();
      await reportRunner.close();
      db.close();
      logger.info('gateway stopped');
    },
  };
}
