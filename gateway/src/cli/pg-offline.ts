/**
 * The offline CLI paths on a `store.engine: "postgres"` config (issue 14): with no instance of this
 * config running, `readers revoke|move`, `cards import|assign|unknown` and `user add|list` write and
 * read the PostgreSQL database the instances share, not the local SQLite file (which no instance reads
 * for these any more). Running instances see a reader change at once (the registry's LISTEN/NOTIFY), a
 * card assignment at their next turn, an account at the next request.
 */
import { AuditLog } from '../audit/log.js';
import { Role } from '../auth/roles.js';
import { AuthService } from '../auth/service.js';
import type { GatewaySettings, PostgresStoreSettings } from '../config.js';
import { PgAuditStore } from '../store/postgres/audit.js';
import { PgAuthStore } from '../store/postgres/auth.js';
import { PgCardStore } from '../store/postgres/cards.js';
import { migrate, openPgPool, type PgPool } from '../store/postgres/db.js';
import { postgresMigrations } from '../store/postgres/migrations.js';
import { PgReaderDirectory } from '../store/postgres/reader-directory.js';
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
