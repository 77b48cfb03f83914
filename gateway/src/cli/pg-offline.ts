/**
 * The offline CLI paths on a `store.engine: "postgres"` config (issue 14): with no instance of this
 * config running, `readers add|list|enroll|replace|revoke|move`, `cards import|assign|unknown` and the card
 * lifecycle (`cards revoke|reinstate|validity|replace`, `cards import --full`) and `user add|list` write and
 * read the PostgreSQL database the instances share, not the local SQLite file (which no instance reads
 * for these any more). Running instances see a reader change at once (the registry's LISTEN/NOTIFY), a
 * card change at their next turn (and the card-list push at the lease holder's next tick, within a minute),
 * an enrollment code at its exchange (any instance: the code key is derived from the fleet key), an account at
 * the next request.
 */
import pino from 'pino';
import { systemClock } from '../../../protocol/index.js';
import { AuditLog } from '../audit/log.js';
import { Role } from '../auth/roles.js';
import { AuthService } from '../auth/service.js';
import type { GatewaySettings, PostgresStoreSettings } from '../config.js';
import { CardLifecycle } from '../cards/lifecycle.js';
import { createEnrollment, type Enrollment } from '../enrollment/index.js';
import { ReaderReplacements, type ReplacementLinks } from '../fleet/replace.js';
import { ReaderRegistry } from '../registry.js';
import { PgAuditStore } from '../store/postgres/audit.js';
import { PgAuthStore } from '../store/postgres/auth.js';
import { PgCardStore } from '../store/postgres/cards.js';
import { migrate, openPgPool, type PgPool } from '../store/postgres/db.js';
import { postgresMigrations } from '../store/postgres/migrations.js';
import { PgEnrollmentStore } from '../store/postgres/enrollment.js';
import { PgFleetStore } from '../store/postgres/fleet.js';
import { createPgIngestStore } from '../store/postgres/ingest-store.js';
import { PgReaderDirectory } from '../store/postgres/reader-directory.js';
import { PgReaderState } from '../store/postgres/reader-state.js';
import { PgVisitStore } from '../store/postgres/visits.js';
import type { CardAssignResult } from '../store/ports.js';

/** Whether the config puts the gateway's tables on PostgreSQL. */
export const onPostgres = (config: GatewaySettings): boolean => config.store?.engine === 'postgres';

/**
 * Runs `fn` on a small pool of the config's PostgreSQL database (schema brought up to date first, under
 * the same advisory lock the instances use), always closed after.
 */
export async function withPg<T>(config: GatewaySettings, fn: (pool: PgPool) => Promise<T>): Promise<T> {
  const settings = config.store as PostgresStoreSettings;
  const pool = openPgPool({ url: settings.url, max: 2, applicationName: `visittag-cli-${process.pid}` });
  try {
    await migrate(pool, postgresMigrations);
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

const NO_CACHE = {
  get: () => undefined,
  set: () => undefined,
  delete: () => undefined,
  flush: () => undefined,
};

/** The shared reader registry's rows read once (no LISTEN: a one-off command). */
async function readerDirectory(pool: PgPool, config: GatewaySettings): Promise<PgReaderDirectory> {
  const directory = new PgReaderDirectory({
    pool,
    url: (config.store as PostgresStoreSettings).url,
    authTags: NO_CACHE,
    logger: { warn: () => undefined },
  });
  await directory.pull();
  return directory;
}

/** `readers revoke ID` on PostgreSQL: refused when the reader is unknown there. */
export function pgRevokeReader(config: GatewaySettings, readerId: string, nowMs: number): Promise<void> {
  return withPg(config, async (pool) => {
    const d = await readerDirectory(pool, config);
    if (!d.getReader(readerId))
      throw new Error(`unknown reader ${readerId} (not in the PostgreSQL registry)`);
    await d.setRevoked(readerId, nowMs);
  });
}

/** `readers move ID --client REF` on PostgreSQL (with the client history row, as the instances write it). */
export function pgMoveReader(
  config: GatewaySettings,
  readerId: string,
  clientRef: string,
  nowMs: number,
): Promise<void> {
  return withPg(config, async (pool) => {
    const d = await readerDirectory(pool, config);
    if (!d.getReader(readerId))
      throw new Error(`unknown reader ${readerId} (not in the PostgreSQL registry)`);
    await d.setClientRef(readerId, clientRef, nowMs);
  });
}

/** The card registry on PostgreSQL for `fn` (assignments and their attribution in one transaction each). */
export function withPgCards<T>(config: GatewaySettings, fn: (cards: PgCardStore) => Promise<T>): Promise<T> {
  return withPg(config, (pool) => fn(new PgCardStore(pool)));
}

/** `cards import` on PostgreSQL: every good row in ONE transaction (all or none), as on SQLite. */
export function pgImportCards(
  config: GatewaySettings,
  rows: ReadonlyArray<{ cardRef: string; staffRef: string; actor: string }>,
  nowMs: number,
): Promise<CardAssignResult[]> {
  return withPgCards(config, (cards) => cards.assignMany(rows.map((r) => ({ ...r, nowMs }))));
}

/** Accounts and the audit log the instances share, for `user add|list`. */
export function withPgAccess<T>(
  config: GatewaySettings,
  fn: (service: Pick<AuthService, 'createUser' | 'listUsers'>) => Promise<T>,
): Promise<T> {
  return withPg(config, (pool) =>
    fn(
      new AuthService({
        store: new PgAuthStore(pool, (r) => Role.parse(r)),
        audit: new AuditLog(new PgAuditStore(pool), Date.now),
        now: Date.now,
      }),
    ),
  );
}

/** The shared registry, enrollment codes and replacements on PostgreSQL, for `readers add|list|enroll|replace`. */
export interface PgFleetOffline {
  registry: Pick<ReaderRegistry, 'addReader' | 'getReader' | 'listReaders'>;
  enrollment: Pick<Enrollment, 'issue'>;
  replacements: Pick<ReaderReplacements, 'issue'>;
  /** A reader's contiguous sequence mark and its replacement links (for `readers list`). */
  reader(readerId: string): Promise<{ contiguousUpto: number } & ReplacementLinks>;
}

/**
 * Runs `fn` over the shared reader registry (read once, written through), enrollment codes and replacement
 * links on PostgreSQL; every registry write is stored before the pool closes. A replacement's old reader is
 * retired by the instance that provisions the new one, as when the code is issued through the admin API.
 */
export function withPgFleet<T>(config: GatewaySettings, fn: (f: PgFleetOffline) => Promise<T>): Promise<T> {
  return withPg(config, async (pool) => {
    const directory = await readerDirectory(pool, config);
    const logger = pino({ level: 'silent' });
    const registry = new ReaderRegistry({
      store: directory,
      clock: systemClock,
      logger,
      // what the instances of this config verify with (wiring.ts createReaderEdge)
      kdf: config.mqtt.mode === 'embedded' ? config.mqtt.kdf : { logN: 11, r: 8, p: 1 },
    });
    const enrollment = createEnrollment({
      store: new PgEnrollmentStore(pool),
      config,
      clock: systemClock,
      logger,
      registry,
      mqttPort: () => null,
    });
    const fleet = new PgFleetStore(pool);
    const visits = new PgVisitStore(pool);
    const replacements = new ReaderReplacements({
      fleet,
      clock: systemClock,
      logger,
      registry,
      enrollment,
      visits: {
        processNow: () => undefined,
        openVisitIds: (id) => visits.openVisitIds(id),
        // issue only: the retirement (and its closes) runs on the instance that provisions the new reader
        closeVisit: () => ({ ok: false, status: 409, error: 'not closed offline' }),
      },
    });
    const state = new PgReaderState(pool, createPgIngestStore(pool));
    let refreshed = false;
    try {
      return await fn({
        registry,
        enrollment,
        replacements,
        reader: async (readerId) => {
          if (!refreshed) await state.refresh();
          refreshed = true;
          return {
            contiguousUpto: state.seqState(readerId).contiguousUpto,
            ...(await fleet.links(readerId)),
          };
        },
      });
    } finally {
      await registry.written();
    }
  });
}

/**
 * The card lifecycle on PostgreSQL for one offline command: audited in the shared log; not pushed from here (no
 * MQTT): the instance holding the lease `card-push` pushes the changed lists at its next tick.
 */
export function withPgCardLifecycle<T>(
  config: GatewaySettings,
  fn: (
    l: Pick<CardLifecycle, 'revoke' | 'reinstate' | 'setValidity' | 'replace' | 'withdrawMissing'>,
  ) => Promise<T>,
): Promise<T> {
  return withPg(config, (pool) => {
    const audit = new AuditLog(new PgAuditStore(pool), Date.now);
    return fn(
      new CardLifecycle({
        store: new PgCardStore(pool),
        clock: systemClock,
        audit: (r) => audit.record(r),
      }),
    );
  });
}
