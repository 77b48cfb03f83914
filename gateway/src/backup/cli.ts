import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../../runtime/cli.js';
import { callRunningGateway } from '../admin/client.js';
import { backupSqlite, restoreSqlite } from '../store/sqlite/backup.js';

type Out = (line: string) => void;

export const BACKUP_HELP = `visittag-gateway backup FILE [--config FILE]
visittag-gateway restore FILE [--config FILE]

backup: an online, consistent copy of the gateway's SQLite database (SQLite's backup API), taken
while the gateway runs; FILE must not exist; it is written with mode 0600 (it holds personal data).
restore: puts FILE back as the gateway's database. The gateway must be stopped (refused otherwise);
the current database is kept beside it as gateway.db.before-restore-<ms>. When the gateway starts,
every reader sends again what it still holds; what the gateway acknowledged after the backup and a
reader already deleted is declared by the reader with a tombstone (reason acked-deleted) and shown
as a lost range with its extent, never silently (docs/backup.md).`;

export async function backupCommand(
  cmd: 'backup' | 'restore',
  argv: string[],
  out: Out,
  err: Out,
  now: () => number = Date.now,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    BACKUP_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const file = parsed.positionals[0];
  if (!file || parsed.positionals.length > 1) {
    err(BACKUP_HELP);
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(parsed.values.config, err);
  if (typeof loaded === 'number') return loaded;
  const configFile = loaded.file;
  const dbFile = join(loaded.config.dataDir, 'gateway.db');
  try {
    if (cmd === 'backup') {
      const b = await backupSqlite(dbFile, file);
      chmodSync(file, 0o600);
      out(
        `backup written to ${file}: ${b.bytes} bytes, ${b.readers} reader(s), ${b.events} event(s), ${b.migrations} schema steps`,
      );
      return 0;
    }
    const running = await callRunningGateway(
      loaded.config,
      { method: 'GET', path: '/healthz' },
      { configFile },
    );
    if (running.kind !== 'not-running') {
      err(
        `the gateway is running (${running.kind === 'ok' ? running.url : 'it answered'}): stop it first ` +
          '(systemctl stop visittag-gateway), then restore, then start it',
      );
      return 1;
    }
    const r = restoreSqlite(file, dbFile, now());
    out(
      `restored ${file} as ${dbFile}: ${r.readers} reader(s), ${r.events} event(s)` +
        (r.keptAs ? `; the previous database is kept as ${r.keptAs}` : ''),
    );
    out(
      'start the gateway: readers send again what they still hold; seqs acknowledged after the backup and ' +
        'deleted by a reader are declared lost by it (tombstone acked-deleted) and kept as rejected seqs with their extent',
    );
    return 0;
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
}
