import { join } from 'node:path';
import type { Command, DeviceConfig, PayloadInputOf } from '../protocol/index.js';
import type { AdminServer } from './src/admin/server.js';
import { WEB_PUBLIC_PATHS, webRoutes } from './src/admin/web-assets.js';
import type { Access } from './src/auth/index.js';
import { CardLifecycle } from './src/cards/lifecycle.js';
import { CardListPusher } from './src/cards/push.js';
import { createCareModule, type CareModule } from './src/care/index.js';
import { correctionRoutes, VisitCorrections } from './src/corrections/index.js';
import { dayRoutes } from './src/dayview/index.js';
import type { Enrollment } from './src/enrollment/index.js';
import { ReaderReplacements, replaceRoutes } from './src/fleet/replace.js';
import type { ReaderRegistry } from './src/registry.js';
import { reportRoutes } from './src/reports/routes.js';
import { WorkerReportRunner } from './src/reports/runner.js';
import { DEFAULT_RETENTION } from './src/retention/policy.js';
import { RetentionJob } from './src/retention/prune.js';
import { retentionRoutes } from './src/retention/routes.js';
import { createSecureCards } from './src/secure-cards/index.js';
import { readerUidOnly } from './src/secure-cards/policy.js';
import type { IngestStore } from './src/store/ingest-store.js';
import type { CardStore } from './src/store/ports.js';
import { SqliteCardStore } from './src/store/sqlite/cards.js';
import { SqliteEnrollmentStore } from './src/store/sqlite/enrollment.js';
import { createSqliteCareStore } from './src/store/sqlite/care.js';
import { createSqliteEpochLog } from './src/store/sqlite/epochs.js';
import { SqliteFleetStore } from './src/store/sqlite/fleet.js';
import { createSqliteIngestStore } from './src/store/sqlite/ingest-store.js';
import { sqliteCorrectionPorts } from './src/store/sqlite/corrections.js';
import { createPruner, SqliteErasure } from './src/store/sqlite/retention.js';
import { reportMigrations } from './src/store/sqlite/reports/migrations.js';
import { SqliteReportSource } from './src/store/sqlite/reports/source.js';
import { SqliteOutbox } from './src/store/sqlite/outbox.js';
import { SqliteVisitSide } from './src/store/sqlite/visits.js';
import { createSqliteSecureCardStore } from './src/store/sqlite/secure-cards.js';
import { createVisitPipeline, type VisitPipeline } from './src/visits/pipeline.js';
import { createReaderEdge, openInstance, type GatewayInstance, type GatewayOptions } from './wiring.js';

export type { GatewaySettings } from './src/config.js';
export {
  parseGatewaySettings,
  loadGatewaySettings,
  GatewaySettings as GatewaySettingsSchema,
} from './src/config.js';

export type { GatewayOptions } from './wiring.js';
export { createLogger } from './wiring.js';

type ReaderMethods = Pick<
  ReaderRegistry,
  'addReader' | 'revokeReader' | 'restoreReader' | 'moveReader' | 'setPassword' | 'getReader' | 'listReaders'
>;

/** `stop` is graceful: flushes the group commit and its acks, closes MQTT, the pipeline, the admin API, the DB. */
export interface Gateway extends GatewayInstance {
  readonly registry: ReaderMethods & VisitPipeline['registry'];
  /** The visits pipeline (visit engine, outbox, forwarder). */
  readonly pipeline: VisitPipeline;
  readonly store: IngestStore;
  /** Where the gateway keeps its files (config `dataDir`). */
  readonly dataDir: string;
  /** The card registry's read side (unknown cards, a card's holder). */
  readonly cards: Pick<CardStore, 'get' | 'unknown'>;
  /** Care plan: registries, plan import, matching, live alerts (gateway/src/care). */
  readonly care: CareModule;
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

/** The gateway's composition root (CLI: gateway/main.ts). */
export function createGateway(opts: GatewayOptions): Gateway {
  const base = openInstance(opts, reportMigrations); // after care and corrections: its triggers sit on their tables
  const { config, clock, logger, metrics, db, access } = base;
  // Reports run in a worker thread on its own connection: a long report never blocks this event loop.
  const reportRunner = new WorkerReportRunner({ path: join(config.dataDir, 'gateway.db') });
  const retentionSettings = config.retention ?? DEFAULT_RETENTION;
  const retention = new RetentionJob({
    pruner: createPruner(db, retentionSettings),
    clock,
    settings: retentionSettings,
    logger,
    metrics,
    onVisitsDeleted: () => pipeline.visitWriter.repo.index.invalidate(),
  });
  const store = createSqliteIngestStore(db);
  const fleet = new SqliteFleetStore(db);
  const pipeline = createVisitPipeline({
    store: new SqliteVisitSide(db, clock),
    ...base.pipeline,
    ...(config.store?.engine === 'sqlite' ? { visitIndexMaxVisits: config.store.visitIndexMaxVisits } : {}),
    thread:
      (opts.visitsThread ?? (config.store?.engine === 'sqlite' && config.store.writerThread)) === true &&
      opts.clock === undefined,
  });

  // Visit corrections (issue 13): through the pipeline's repo and outbox, audited in the access audit log.
  const corrections = new VisitCorrections({
    ...sqliteCorrectionPorts(db, {
      visits: pipeline.visitWriter.repo,
      enqueue: (e, nowMs) => pipeline.visitWriter.outbox.enqueue(e, nowMs),
      appendAudit: (e) => access.auditStore.append(e),
    }),
    scopes: access.scopeReader,
    clock,
    ...(opts.care?.timeZone ? { timeZone: opts.care.timeZone } : {}), // a period lock's month
  });
  // a manual close inside a locked period is a unit manager's change only (corrections/periods.ts)
  access.lockCloses((clientRef, startedAtMs) =>
    corrections.locks.lockFor(clientRef, [startedAtMs, clock.now()]),
  );

  const careOutbox = new SqliteOutbox({ db }); // alert events queued inside the care store's transactions
  const care = createCareModule({
    store: createSqliteCareStore({ db, enqueue: (e, now) => careOutbox.enqueue(e, now) }),
    clock,
    logger,
    metrics,
    // the tick from the settings file (care.tickSeconds), unless the caller gives the care settings
    config: { ...(config.care?.tickSeconds ? { tickMs: config.care.tickSeconds * 1000 } : {}), ...opts.care },
    onQueued: () => pipeline.forwarder?.wake(),
  });

  // Secure cards (issue 18): refuses to start on a missing or loosely permitted key file.
  const secureCards = config.secureCards
    ? createSecureCards({
        settings: config.secureCards,
        store: createSqliteSecureCardStore(db),
        fleetKey: config.fleetKey,
        logger,
        metrics,
        clientOf: (id) => store.getReader(id)?.clientRef ?? null,
      })
    : null;
  // registry, ingest, MQTT, enrollment, gap timeout and the reader-side routes (shared with pg-instance.ts)
  const edge = createReaderEdge(base, {
    registryStore: store,
    ingestStore: pipeline.ingestLog(store),
    epochs: createSqliteEpochLog(db),
    onCommitted: (ids, committed) => pipeline.onCommitted(ids, committed),
    visitBacklog: () => pipeline.backlog(),
    ...(secureCards ? { screen: secureCards.screen } : {}),
    // a retired reader's late visits cannot be stopped by it
    onRevoked: (id) => {
      replacements.closeRetired(id).catch((err: unknown) => {
        logger.error({ err, readerId: id }, 'closing the open visits of a retired reader failed');
      });
    },
    enrollmentStore: new SqliteEnrollmentStore(db),
    onReplaced: async (oldId, newId) => {
      await replacements.retire(oldId, newId);
    },
    gaps: store,
    readerPages: store,
  });
  const { readers, ingest, enrollment } = edge;
  const replacements = new ReaderReplacements({
    fleet,
    clock,
    logger,
    registry: readers,
    enrollment,
    visits: pipeline,
  });
  // Card lifecycle (issue 16): changes are audited and pushed to every reader at once, through the
  // config route's own build/publish/record path (the reader keeps the options of its last config).
  const lifecycleCards = new SqliteCardStore({ db, clock });
  const cardPusher = new CardListPusher({
    readers: () =>
      readers
        .listReaders()
        .filter((r) => r.revokedAt === null)
        .map((r) => r.readerId),
    lastConfig: async (id) => {
      const r = await edge.configRoute('GET', id);
      return r.status === 200 ? ((r.body as { config: DeviceConfig }).config ?? null) : null;
    },
    push: (id, input) => edge.configRoute('POST', id, input),
    lists: () => lifecycleCards.cardLists(clock.now()),
    cardListsFor: edge.cardListsFor,
    logger,
  });
  const cardLifecycle = new CardLifecycle({
    store: lifecycleCards,
    clock,
    audit: (r) => access.audit.record(r),
    pushAll: () => (edge.transport() ? cardPusher.pushAll() : Promise.resolve({ pushed: [], failed: [] })),
  });
  let cardTimer: ReturnType<typeof setInterval> | null = null;
  const admin = edge.admin({
    leading: webRoutes(),
    leadingPublicPaths: WEB_PUBLIC_PATHS,
    links: (id) => fleet.links(id), // the SQLite adapter answers synchronously
    visits: [
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
    ],
    cards: pipeline.cards,
    addCard: (c) => pipeline.registry.addCard(c),
    lifecycle: cardLifecycle,
    fleet,
    ...(config.secureCards
      ? {
          uidOnlyCards: (id: string) =>
            readerUidOnly(config.secureCards!.policy, store.getReader(id)?.clientRef ?? null),
        }
      : {}),
    // retention and erasure (issue 16, docs/retention.md); the visit index reloads after either deletes
    beforeCommands: retentionRoutes({
      store: new SqliteErasure(db),
      settings: retentionSettings,
      now: () => clock.now(),
      appendAudit: (e) => access.auditStore.append(e),
      onErased: () => pipeline.visitWriter.repo.index.invalidate(),
    }),
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

  return Object.assign(edge.endpoints(), {
    access,
    admin,
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
    publishConfig: edge.publishConfig,
    sendCommand: edge.sendCommand,
    async start() {
      await pipeline.start();
      await care.plan.start();
      // validity dates pass by themselves: re-push where the lists changed (and retry failed pushes)
      cardTimer = setInterval(() => void cardPusher.tick().catch(() => undefined), 60_000);
      cardTimer.unref();
      retention.start();
      await edge.start(); // broker accounts, MQTT, the admin API, the gap timeout
    },
    async stop() {
      if (edge.stopped) return;
      await edge.stopMqtt();
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
  });
}
