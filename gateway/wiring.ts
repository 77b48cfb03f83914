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
import type { AdminResponse, AdminRoute } from './src/admin/types.js';
import { createAccess, Role } from './src/auth/index.js';
import { loadOrCreateKeyFile } from './src/broker/credentials.js';
import { createDynsecCredentials } from './src/broker/dynsec.js';
import { createEmbeddedBroker } from './src/broker/embedded.js';
import { createExternalBroker } from './src/broker/external.js';
import type { Transport } from './src/broker/transport.js';
import type { CardLifecycle } from './src/cards/lifecycle.js';
import { cardRoutes } from './src/cards/routes.js';
import { sealedReaderCards, type CardUidVault } from './src/cards/uid-vault.js';
import type { CarePlanConfig } from './src/care/index.js';
import type { GatewaySettings } from './src/config.js';
import { createEnrollment, ENROLLMENT_PUBLIC_PATHS, enrollmentRoutes } from './src/enrollment/index.js';
import { alertRoutes, readerSnapshot } from './src/fleet/alerts.js';
import { commandRoutes } from './src/fleet/command-routes.js';
import { configRoutes, type ConfigPushDeps } from './src/fleet/config-push.js';
import { createIngest, type Ingest, type IngestOptions } from './src/ingest/ingest.js';
import { ReaderLiveView } from './src/ingest/reader-view.js';
import { MetricsRegistry } from './src/metrics.js';
import { GapWatch, type GapWatchOptions } from './src/retention/gaps.js';
import { DEFAULT_RETENTION } from './src/retention/policy.js';
import { ReaderRegistry } from './src/registry.js';
import type { IngestLog, IngestStore, ReaderDirectory } from './src/store/ingest-store.js';
import type { CardStore, EnrollmentStore } from './src/store/ports.js';
import { sqliteAccessStores } from './src/store/sqlite/access.js';
import { openDatabase, type Migration } from './src/store/sqlite/db.js';
import { instanceSqliteMigrations } from './src/store/sqlite/migrations.js';

/**
 * The wiring both composition roots share, so they cannot drift: gateway/index.ts (the embedded
 * default, SQLite) and gateway/pg-instance.ts (`store.engine: "postgres"`). Here: the instance's SQLite
 * file and access (accounts, sessions, audit), the reader registry, ingest, the MQTT transport
 * (embedded broker, or an external one with Mosquitto's dynamic security), enrollment, the gap
 * timeout, the reader-side admin routes, the admin server, and the order in which MQTT starts and
 * stops. What differs is passed in: the stores, what a commit triggers, the roots' own routes.
 */

export interface GatewayOptions {
  config: GatewaySettings;
  clock?: Clock;
  random?: () => number;
  logger?: pino.Logger;
  fetch?: typeof fetch;
  /** Care plan settings (time zone, matching windows, alert thresholds, tick); defaults in care/service.ts. */
  care?: Partial<CarePlanConfig>;
  /**
   * The ingest's group commits and the visits engine in a worker thread with its own SQLite connection
   * (visits/engine-thread.ts); absent: config `store.writerThread` (default off). The bench turns it on with
   * BENCH_VISITS_THREAD=1. Ignored with an injected clock (the thread runs on the system clock).
   */
  visitsThread?: boolean;
}

/** What every instance's facade offers (gateway/index.ts `Gateway`, gateway/pg-instance.ts `PgGateway`). */
export interface GatewayInstance {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly mqttPort: number | null;
  readonly adminPort: number | null;
  readonly adminUrl: string;
  readonly metrics: MetricsRegistry;
  /** Commits pending ingest now (tests, shutdown). */
  flush(): void;
}

export function createLogger(level: string): pino.Logger {
  return pino({
    level,
    base: { app: 'visittag-gateway' },
    redact: [
      'password',
      '*.password',
      'token',
      '*.token',
      'secret',
      '*.secret',
      'fleetKey',
      'retiredFleetKeys',
    ],
  });
}

/**
 * What every instance opens first: settings with their defaults, the SQLite file (every table of every
 * module, plus `extraMigrations` after them), access.
 */
export function openInstance(opts: GatewayOptions, extraMigrations: readonly Migration[] = []) {
  const config = opts.config;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const logger = opts.logger ?? createLogger(config.logLevel);
  const metrics = new MetricsRegistry();
  mkdirSync(config.dataDir, { recursive: true });
  // The ONE place the SQLite schema is applied: every table of every module (store/sqlite/migrations.ts).
  const db = openDatabase(join(config.dataDir, 'gateway.db'), [
    ...instanceSqliteMigrations,
    ...extraMigrations,
  ]);
  // HTTPS for the admin API and web app (config admin.tls; a clear error names a bad file), SSO (admin.oidc)
  const adminTls = config.admin.tls ? loadAdminTls(config.admin.tls) : null;
  const access = createAccess({
    stores: sqliteAccessStores(db, (s) => Role.parse(s)),
    now: () => clock.now(),
    secureCookies: adminTls !== null,
    oidc: config.admin.oidc ?? null,
  });
  // what either visits pipeline takes besides its store: time, randomness, logs, the planning backend
  const pipeline = {
    clock,
    random,
    logger,
    metrics,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(config.backend.url ? { backend: { ...config.backend, url: config.backend.url } } : {}),
  };
  return { config, clock, random, logger, metrics, db, adminTls, access, pipeline };
}

export type Instance = ReturnType<typeof openInstance>;

export interface ReaderEdgeOptions {
  /** The reader registry's rows (the SQLite file; on PostgreSQL the directory every instance shares). */
  registryStore: ReaderDirectory;
  /** Where ingest commits (SQLite answers synchronously, PostgreSQL with a Promise). */
  ingestStore: IngestLog;
  /** The readers' journal epochs, on the same engine as the ingest store. */
  epochs: IngestOptions['epochs'];
  /** After each durable group commit (the visits engine). */
  onCommitted: IngestOptions['onCommitted'];
  /** The visits engine's backlog in events, for the ingest's back-pressure (IngestOptions.backlog). */
  visitBacklog?: () => number;
  screen?: IngestOptions['screen'];
  /** After a revoke has disconnected the reader and disabled its broker account. */
  onRevoked?: (readerId: string) => void;
  enrollmentStore: EnrollmentStore;
  onReplaced?: (oldReaderId: string, newReaderId: string) => Promise<void>;
  /** Where the gap timeout looks for gaps (on PostgreSQL: only while holding its lease). */
  gaps: GapWatchOptions['store'];
  gapCheckEveryMs?: number;
  /** What the reader pages, alerts and sealed card lists read (sequence state, gaps, statuses, rejects). */
  readerPages: IngestStore;
  /** The sealed card UID vault (PostgreSQL: shared by the instances); default: dataDir/card-uids.jsonl. */
  cardVault?: CardUidVault;
}

/** The admin routes around the roots' own: `visits` after the reader routes, `beforeCommands` near the end. */
export interface EdgeRoutes {
  /** After the access routes (the web app's). */
  leading?: AdminRoute[];
  leadingPublicPaths?: string[];
  links?: (readerId: string) => { replacedBy: string | null; replaces: string | null };
  visits: AdminRoute[];
  /** The card registry (unknown cards, a card's holder, the lists a config push carries). */
  cards: Pick<CardStore, 'get' | 'unknown' | 'refs'>;
  addCard: Parameters<typeof cardRoutes>[0]['addCard'];
  lifecycle?: CardLifecycle;
  fleet: ConfigPushDeps['fleet'];
  uidOnlyCards?: ConfigPushDeps['uidOnlyCards'];
  beforeCommands?: AdminRoute[];
  /** Besides not stopped, the database open and MQTT up (default: always). */
  ready?: () => boolean;
}

/**
 * The reader side of an instance: registry, ingest, transport, enrollment, gap timeout, and the
 * admin server around the roots' routes (`admin`). `start` brings MQTT and the admin API up,
 * `stopMqtt` takes MQTT down with ingest flushed (the roots then stop their own parts).
 */
export function createReaderEdge(base: Instance, o: ReaderEdgeOptions) {
  const { config, clock, logger, metrics, db, access } = base;
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
  let stopped = false;
  const live = new ReaderLiveView();
  // sealed-v1 readers' card lists (issue 16)
  const sealed = sealedReaderCards(config, live, (id) => o.readerPages.lastStatus(id)?.status, o.cardVault);
  const readers = new ReaderRegistry({
    store: o.registryStore,
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
      o.onRevoked?.(id);
    },
    onRevokedElsewhere: (id) => transport?.disconnect(id),
    onPasswordChanged: (id) => transport?.disconnect(id),
  });
  const publish = (topic: string, payload: Buffer, retain: boolean) => {
    if (!transport) return Promise.reject(new Error('gateway is not started'));
    return transport.publish(topic, payload, { qos: 1, retain });
  };
  const ingest: Ingest = createIngest({
    store: o.ingestStore,
    epochs: o.epochs,
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
    onCommitted: o.onCommitted,
    ...(o.visitBacklog ? { backlog: o.visitBacklog } : {}),
    fleetKey: config.fleetKey, // sealed cards are opened at ingest (issue 16)
    retiredFleetKeys: config.retiredFleetKeys, // and those sealed to a key a rotation retired
    cardVault: sealed.vault,
    ...(o.screen ? { screen: o.screen } : {}),
    ...(config.limits
      ? { maxSeqJump: config.limits.maxSeqJump, rejectLogPerMinute: config.limits.rejectLogPerMinute }
      : {}),
  });
  // a seq that never arrives is declared lost after retention.gapTimeoutMinutes, or accepted by hand (issue 16)
  const gapWatch = new GapWatch({
    store: o.gaps,
    ingest,
    clock,
    logger,
    metrics,
    timeoutMs: (config.retention ?? DEFAULT_RETENTION).gapTimeoutMinutes * 60_000,
    ...(o.gapCheckEveryMs ? { checkEveryMs: o.gapCheckEveryMs } : {}),
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
          // connection admission (broker/admission.ts): fewer new connections while the commit queue grows
          ...(config.limits ? { admission: config.limits.connectionAdmission } : {}),
          commitBacklog: () => ingest.pending(),
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
    store: o.enrollmentStore,
    config,
    clock,
    logger,
    registry: readers,
    mqttPort: () => transport?.port ?? null,
    ...(o.onReplaced ? { onReplaced: o.onReplaced } : {}),
    ...(dynsec ? { brokerAccounts: dynsec } : {}),
  });

  const readerExists = (id: string) => readers.getReader(id) !== undefined;
  const publishConfig = (readerId: string, cfg: PayloadInputOf<'config'>) =>
    publish(topics.config(readerId), encode('config', cfg), true);
  const sendCommand = (readerId: string, cmd: Command) =>
    publish(topics.commands(readerId), encode('commands', cmd), false);
  let fleetConfigRoutes: AdminRoute[] = [];

  /** The admin server: health, metrics, access, the reader side, and the roots' routes in between. */
  const adminServer = (r: EdgeRoutes): AdminServer => {
    const ready = r.ready ?? (() => true);
    const coreRoutes: AdminRoute[] = [
      { method: 'GET', path: '/healthz', handler: () => ({ status: 200, body: { status: 'ok' } }) },
      {
        method: 'GET',
        path: '/readyz',
        handler: () => {
          const up = ready() && !stopped && db.open && Boolean(transport?.ready());
          return {
            status: up ? 200 : 503,
            body: { ready: up, mqtt: transport?.ready() ?? false, db: db.open },
          };
        },
      },
      {
        method: 'GET',
        path: '/metrics',
        handler: () => ({ status: 200, body: metrics.render(), contentType: 'text/plain; version=0.0.4' }),
      },
    ];
    const pages = { store: o.readerPages, live, transport: () => transport };
    return new AdminServer({
      host: config.admin.host,
      port: config.admin.port,
      token: config.admin.token,
      ...(base.adminTls ? { tls: base.adminTls } : {}),
      authenticate: access.authenticate,
      authorize: access.authorize,
      onChange: access.onChange,
      logger,
      publicPaths: [
        '/healthz',
        '/readyz',
        ...ENROLLMENT_PUBLIC_PATHS,
        ...access.publicPaths,
        ...(r.leadingPublicPaths ?? []),
      ],
      // area/provider scope for coordinators and unit managers in front of every route (auth/scoped-routes.ts)
      routes: access.scope([
        ...coreRoutes,
        ...access.routes,
        ...(r.leading ?? []),
        ...readerRoutes({ ...pages, registry: readers, ...(r.links ? { links: r.links } : {}) }),
        ...r.visits,
        ...enrollmentRoutes(enrollment),
        ...cardRoutes({
          cards: r.cards,
          addCard: r.addCard,
          ...(r.lifecycle ? { lifecycle: r.lifecycle } : {}),
        }),
        ...(fleetConfigRoutes = configRoutes({
          fleet: r.fleet,
          cards: r.cards,
          clock,
          readerExists,
          publish: (id, cfg) => publishConfig(id, cfg),
          cardListsFor: sealed.cardListsFor,
          ...(r.uidOnlyCards ? { uidOnlyCards: r.uidOnlyCards } : {}),
        })),
        ...alertRoutes({
          metrics,
          now: () => clock.now(),
          snapshots: () => readers.listReaders().map((x) => readerSnapshot(pages, x)),
        }),
        ...gapWatch.routes(),
        ...(r.beforeCommands ?? []),
        ...commandRoutes({ clock, readerExists, send: sendCommand }),
      ]),
    });
  };
  let admin: AdminServer | null = null;

  return {
    readers,
    live,
    ingest,
    enrollment,
    gapWatch,
    transport: () => transport,
    publishConfig,
    sendCommand,
    /** A sealed-v1 reader's card lists in its own references (the card pusher's). */
    cardListsFor: sealed.cardListsFor,
    get stopped() {
      return stopped;
    },
    /** Builds the admin server (once, after the roots' modules exist). */
    admin(r: EdgeRoutes): AdminServer {
      admin = adminServer(r);
      return admin;
    },
    /** The ports and the admin URL, read when asked (the roots' facades are built on this object). */
    endpoints() {
      const server = () => {
        if (!admin) throw new Error('the admin server is not built');
        return admin;
      };
      return {
        get mqttPort(): number | null {
          return transport?.port ?? null;
        },
        get adminPort(): number | null {
          return server().port;
        },
        get adminUrl(): string {
          return server().url;
        },
      };
    },
    /** Calls the config route as a client would (the card lifecycle re-pushes through it). */
    configRoute(method: 'GET' | 'POST', readerId: string, body?: unknown): Promise<AdminResponse> {
      const route = fleetConfigRoutes.find(
        (x) => x.method === method && x.path === '/api/readers/:readerId/config',
      );
      if (!route) return Promise.reject(new Error('config route missing'));
      return Promise.resolve(
        route.handler({
          method,
          params: { readerId },
          query: new URLSearchParams(),
          body,
          actor: 'card-lifecycle',
        }),
      );
    },
    /** The broker's accounts (dynamic security), the transport, the admin API, the gap timeout. */
    async start(): Promise<void> {
      if (dynsec) {
        await dynsec.start();
        dynsecStarted = true;
        await dynsec.ensureRoles();
      }
      transport = makeTransport();
      await transport.start();
      await admin?.start();
      gapWatch.start();
      logger.info({ mqttPort: transport.port, adminPort: admin?.port }, 'gateway started');
    },
    /** No new readers, the last commits and acks out, MQTT closed. Marks the instance stopped. */
    async stopMqtt(): Promise<void> {
      stopped = true;
      gapWatch.stop(); // before the ingest stops: no gap is declared lost into a stopping ingest
      transport?.stopAccepting(); // no new connections; live readers still get their last acks
      await ingest.stop();
      const t = transport;
      if (t) await t.stop();
      ingest.flush(); // anything that raced the close is committed (its ack is resent later)
      transport = null;
      if (dynsecStarted) await dynsec?.stop();
    },
  };
}

export type ReaderEdge = ReturnType<typeof createReaderEdge>;
