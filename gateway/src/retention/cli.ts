import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafeId } from '../../../protocol/index.js';
import { EXIT } from '../../../runtime/cli.js';
import { applyLiveOrOffline } from '../admin/client.js';
import { PgAuditStore } from '../store/postgres/audit.js';
import { SqliteAuditStore } from '../store/sqlite/audit.js';
import { migrate, openPgPool, type PgPool } from '../store/postgres/db.js';
import { postgresMigrations } from '../store/postgres/migrations.js';
import { PgRetentionStore } from '../store/postgres/retention.js';
import { openDatabase } from '../store/sqlite/db.js';
import { createPruner, SqliteErasure } from '../store/sqlite/retention.js';
import { DEFAULT_RETENTION, RETENTION_CLASSES, daysOf, type RetentionSettings } from './policy.js';
import { erasePgAudited, pgPrunerFor } from './pg.js';
import { eraseAudited, type ErasureInput } from './service.js';

type Out = (line: string) => void;

export const RETENTION_HELP = `visittag-gateway erase client|staff REF --reason TEXT [--force-records-law] [--config FILE]
visittag-gateway retention show|run [--config FILE]

erase: replaces the client's or staff member's reference (and a staff member's card references) in
every table by a random pseudonym, so nothing left in the database names them; visits stay in the
figures. Refused (exit 1, the reason printed) when they have visits that retention.visitsDays keeps:
records law may require keeping the care record. --force-records-law erases anyway, after the legal
review. Audited (erasure.client / erasure.staff, naming the pseudonym only). Through the running
gateway when it runs, else in the database.
retention show: the retention per data class; run: deletes now what is past retention (the gateway
also does this every retention.intervalMinutes). docs/retention.md.`;

/** store.engine postgres: a small pool on its database (the offline commands work there, not in the SQLite file). */
const pgPoolOf = (c: { store?: { engine: string; url?: string } }): PgPool | null =>
  c.store?.engine === 'postgres' && c.store.url ? openPgPool({ url: c.store.url, max: 2 }) : null;

const settingsOf = (c: { retention?: RetentionSettings }): RetentionSettings =>
  c.retention ?? DEFAULT_RETENTION;

export async function retentionCommand(
  cmd: 'erase' | 'retention',
  argv: string[],
  out: Out,
  err: Out,
  now: () => number = Date.now,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      reason: { type: 'string' },
      'force-records-law': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    RETENTION_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const [sub, ref, ...rest] = parsed.positionals;
  const loaded = loadSubcommandSettings(parsed.values.config, err);
  if (typeof loaded === 'number') return loaded;
  const configFile = loaded.file;
  const settings = settingsOf(loaded.config);
  const dbFile = join(loaded.config.dataDir, 'gateway.db');
  if (cmd === 'retention') {
    if ((sub !== 'show' && sub !== 'run') || ref !== undefined) {
      err(RETENTION_HELP);
      return EXIT.usage;
    }
    if (sub === 'show') {
      for (const c of RETENTION_CLASSES) {
        const d = daysOf(settings, c);
        out(`${c}: ${d === 'keep' ? 'kept (no retention period set)' : `${d} days`}`);
      }
      return 0;
    }
    if (!existsSync(dbFile)) {
      err(`no gateway database at ${dbFile}`);
      return 1;
    }
    const db = openDatabase(dbFile, []);
    const pool = pgPoolOf(loaded.config);
    try {
      // store.engine postgres: PostgreSQL's tables, and this instance's own audit log in its SQLite file
      const r = pool
        ? await pgPrunerFor(new PgRetentionStore(pool), settings).runAll(now())
        : createPruner(db, settings).runAll(now());
      if (pool) {
        const local = createPruner(db, settings, ['audit_log']).runAll(now());
        r.audit += local.audit;
      }
      out(`deleted: ${RETENTION_CLASSES.map((c) => `${c} ${r[c]}`).join(', ')}`);
      return 0;
    } finally {
      db.close();
      await pool?.end();
    }
  }
  if ((sub !== 'client' && sub !== 'staff') || !ref || rest.length || !SafeId.safeParse(ref).success) {
    err(RETENTION_HELP);
    return EXIT.usage;
  }
  const reason = parsed.values.reason;
  if (!reason) {
    err('--reason is required (it is kept in the audit log): e.g. --reason "erasure request 2026-12-05"');
    return EXIT.usage;
  }
  const force = parsed.values['force-records-law'] === true;
  const printed = (b: { pseudonym: string; cards: number; changed: Record<string, number> }) => [
    `${sub} erased: replaced by ${b.pseudonym}${sub === 'staff' ? ` (${b.cards} card(s) revoked and pseudonymised)` : ''}`,
    ...Object.entries(b.changed).map(([k, n]) => `  ${k}: ${n} row(s)`),
  ];
  return applyLiveOrOffline({
    config: loaded.config,
    configFile,
    request: {
      method: 'POST',
      path: '/api/erasure',
      body: { kind: sub, ref, reason, ...(force ? { forceRecordsLaw: true } : {}) },
    },
    out,
    err,
    live: (body) => printed(body as { pseudonym: string; cards: number; changed: Record<string, number> }),
    offline: async () => {
      if (!existsSync(dbFile)) throw new Error(`no gateway database at ${dbFile}`);
      const db = openDatabase(dbFile, []);
      const pool = pgPoolOf(loaded.config);
      try {
        // a database of an earlier version gets the missing steps (erasure_log) first
        if (pool) await migrate(pool, postgresMigrations);
        // the audit entry goes where the instances keep their audit log: PostgreSQL on a postgres config
        const audit = pool ? new PgAuditStore(pool) : new SqliteAuditStore(db);
        const local = new SqliteErasure(db);
        const input: ErasureInput = {
          kind: sub,
          ref,
          force,
          nowMs: now(),
          actor: `cli:${process.env.USER ?? 'unknown'}`,
          reason,
        };
        const r = pool
          ? await erasePgAudited(
              new PgRetentionStore(pool),
              local,
              settings,
              (e) => audit.append(e),
              input,
              loaded.config.fleetKey,
            )
          : eraseAudited(local, settings, (e) => audit.append(e), input);
        if (!r.ok) throw new Error(`erasure refused: ${r.reason}`);
        return printed(r);
      } finally {
        db.close();
        await pool?.end();
      }
    },
    offlineNote: 'the erasure was made in the database',
  });
}
