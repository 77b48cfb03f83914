import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createGateway, createLogger, type Gateway } from './index.js';
import { createPgGateway } from './pg-instance.js';
import type { GatewaySettings } from './src/config.js';
import type { ReplacementLinks } from './src/fleet/replace.js';
import type { ReaderRecord } from './src/store/ingest-store.js';
import { plainBrokerProblem } from './src/enrollment/tls.js';
import { bashCompletion, EXIT, type CommandSpec } from '../runtime/cli.js';
import { formatHelp, jsonText } from '../runtime/help.js';
import { createSdNotifier } from '../runtime/sd-notify.js';
import { loadSubcommandSettings, parseSubcommand, type OpenGateway } from './src/cli-gateway.js';
import {
  applyLiveOrOffline,
  callRunningGateway,
  removeAdminEndpoint,
  writeAdminEndpoint,
} from './src/admin/client.js';
import { cardsCommand } from './src/cards/cli.js';
import { onPostgres, pgMoveReader, pgRevokeReader, withPgFleet } from './src/cli/pg-offline.js';
import { backupCommand } from './src/backup/cli.js';
import { retentionCommand } from './src/retention/cli.js';
import { gapsCommand } from './src/retention/gaps-cli.js';
import { keysCommand, staleFleetKeyProblem } from './src/keys/cli.js';
import { planCommand } from './src/care/cli.js';
import { userCommand } from './src/auth/cli.js';
import { reportCommand } from './src/reports/cli.js';
import { enrollCommand } from './src/enrollment/cli.js';
import { commandCommand } from './src/fleet/cli.js';
import { replaceCommand } from './src/fleet/replace-cli.js';

const HELP = formatHelp({
  program: 'visittag-gateway',
  summary: 'home-care visit tag gateway (MQTT broker, ingest, visits, forwarding)',
  usage: [
    'run [--config FILE]',
    'readers add READER_ID --client CLIENT_REF [--label TEXT] [--password PW] [--config FILE]',
    'readers enroll --client CLIENT_REF [--label TEXT] [--reader ID] [--ttl-minutes N] [--config FILE]',
    'readers list [--json] [--config FILE]',
    'readers replace OLD_READER_ID [--label TEXT] [--ttl-minutes N] [--config FILE]',
    'readers command READER_ID identify|restart|resync-clock|selftest-echo [--config FILE]',
    'readers revoke READER_ID [--config FILE]',
    'readers move READER_ID --client CLIENT_REF [--config FILE]',
    'cards import FILE [--dry-run] [--config FILE]   (CSV: staff,uid)',
    'cards unknown [--config FILE]                   cards seen but not registered',
    'cards assign CARD_REF --staff REF [--reassign] [--config FILE]',
    'plan import FILE --area A --from YYYY-MM-DD --to YYYY-MM-DD [--dry-run] [--config FILE]',
    'plan registry FILE.json | plan alerts [--all]   (care plan: docs/plan.md)',
    'report executed|continuity|monthly|staffing|quality --from … [--format json|csv|xlsx]   (docs/reports.md)',
    'user add NAME --role ROLE [--areas A,B] [--provider P] [--password-stdin] | user list   (web app accounts)',
    'backup FILE | restore FILE [--config FILE]   (online SQLite backup; restore with the gateway stopped: docs/backup.md)',
    'erase client|staff REF --reason TEXT [--force-records-law] | retention show|run   (docs/retention.md)',
    'gaps READER | gaps accept READER --reason TEXT [--from N --to N]   (sequence gaps: docs/retention.md)',
    'keys rotate --new-fleet-key-file FILE [--drop-unmapped] [--dry-run]   (gateway stopped; docs/security.md)',
    "status [--json] [--config FILE]      ask the running gateway's admin API",
    'check-config [--config FILE]',
    'completion bash   bash completion (| sudo tee /etc/bash_completion.d/visittag-gateway)',
  ],
  options: [
    {
      flag: '--config FILE',
      text: 'JSON config (default: $VISITTAG_GATEWAY_CONFIG or /etc/visittag/gateway.json)',
    },
    { flag: '--json', text: '(status, readers list) machine-readable output (one JSON document on stdout)' },
  ],
  notes: [
    `"readers add" prints a generated 256-bit password once when --password is not given; put it into the
reader's config. "readers revoke" and "readers move" go through the running gateway's admin API, so they
take effect at once (revoke: the live connection is dropped); with no gateway running they change the
database and say so. The other readers commands work on the SQLite file, also while the gateway runs.`,
  ],
  reference: 'gateway/README.md (config fields, TLS, backups, the external-broker mode)',
});

/** The commands and their options, for bash completion. */
const COMMANDS: readonly CommandSpec[] = [
  { name: 'run', options: ['config'] },
  { name: 'readers', options: ['client', 'label', 'password', 'reader', 'ttl-minutes', 'json', 'config'] },
  { name: 'cards', options: ['dry-run', 'staff', 'reassign', 'config'] },
  { name: 'plan', options: ['area', 'from', 'to', 'dry-run', 'all', 'config'] },
  {
    name: 'report',
    options: [
      'from',
      'to',
      'period',
      'by',
      'threshold',
      'format',
      'lang',
      'out',
      'tz',
      'late-hours',
      'offset',
      'limit',
      'table',
      'config',
    ],
  },
  {
    name: 'user',
    options: ['role', 'areas', 'provider', 'display-name', 'password-stdin', 'json', 'config'],
  },
  { name: 'backup', options: ['config'] },
  { name: 'restore', options: ['config'] },
  { name: 'erase', options: ['reason', 'force-records-law', 'config'] },
  { name: 'retention', options: ['config'] },
  { name: 'gaps', options: ['reason', 'from', 'to', 'config'] },
  { name: 'keys', options: ['new-fleet-key-file', 'drop-unmapped', 'dry-run', 'config'] },
  { name: 'status', options: ['json', 'config'] },
  { name: 'check-config', options: ['config'] },
  { name: 'completion', options: [] },
];

type Out = (line: string) => void;

export async function main(
  argv: string[],
  out: Out = console.log,
  err: Out = console.error,
): Promise<number> {
  // The command modules get the gateway opener from here: this entry owns the composition root.
  const open: OpenGateway = (config, fn) => withOfflineGateway(config, (gw) => Promise.resolve(fn(gw)));
  if (argv[0] === 'readers' && argv[1] === 'enroll') return enrollCommand(argv.slice(2), out, err, open);
  if (argv[0] === 'cards') return cardsCommand(argv.slice(1), out, err, open);
  if (argv[0] === 'backup' || argv[0] === 'restore') return backupCommand(argv[0], argv.slice(1), out, err);
  if (argv[0] === 'erase' || argv[0] === 'retention')
    return retentionCommand(argv[0], argv.slice(1), out, err);
  if (argv[0] === 'gaps') return gapsCommand(argv.slice(1), out, err);
  if (argv[0] === 'keys') return keysCommand(argv.slice(1), out, err);
  if (argv[0] === 'plan') return planCommand(argv.slice(1), out, err, open);
  if (argv[0] === 'user') return userCommand(argv.slice(1), out, err, open, readAllStdin);
  if (argv[0] === 'report') return reportCommand(argv.slice(1), out, err);
  if (argv[0] === 'readers' && argv[1] === 'command') return commandCommand(argv.slice(2), out, err);
  if (argv[0] === 'readers' && argv[1] === 'replace') return replaceCommand(argv.slice(2), out, err, open);
  if (argv[0] === 'completion') {
    if (argv[1] !== 'bash' || argv.length !== 2) {
      err('usage: visittag-gateway completion bash');
      return EXIT.usage;
    }
    out(bashCompletion('visittag-gateway', COMMANDS).trimEnd());
    return EXIT.ok;
  }
  // the preamble every subcommand shares (gateway/src/cli-gateway.ts): 64 with the help, --help 0, 78
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      client: { type: 'string' },
      label: { type: 'string' },
      password: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [cmd, sub, id] = positionals;
  if (cmd === 'help' || cmd === undefined) {
    out(HELP);
    return cmd === undefined ? EXIT.usage : EXIT.ok;
  }
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  const { config, file } = loaded;
  switch (cmd) {
    case 'check-config':
      out(`config ${file} is valid (mqtt mode: ${config.mqtt.mode}, dataDir: ${config.dataDir})`);
      return 0;
    case 'run': {
      const plain = plainBrokerProblem(config.mqtt); // mqtts by default (issue 16)
      if (plain) {
        err(plain);
        return EXIT.config;
      }
      const stale = staleFleetKeyProblem(config); // a key retired by keys rotate (issue 16)
      if (stale) {
        err(stale);
        return EXIT.config;
      }
      return run(config);
    }
    case 'status':
      return status(config, file, values.json === true, out, err);
    case 'readers':
      return readers({ config, file }, sub, id, values, out, err);
    default:
      err(`unknown command "${cmd}"\n\n${HELP}`);
      return EXIT.usage;
  }
}

/** All of stdin as text (a password piped in: `user add … --password-stdin`). */
async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

async function withOfflineGateway<T>(config: GatewaySettings, fn: (gw: Gateway) => Promise<T>): Promise<T> {
  const gw = createGateway({ config, logger: createLogger('error') });
  try {
    return await fn(gw);
  } finally {
    await gw.stop();
  }
}

async function readers(
  { config, file }: { config: GatewaySettings; file: string },
  sub: string | undefined,
  id: string | undefined,
  values: { client?: string; label?: string; password?: string; json?: boolean },
  out: Out,
  err: Out,
): Promise<number> {
  if (sub === 'list') {
    // on a postgres config: the shared registry (cli/pg-offline.ts), else the SQLite file
    const open = (
      fn: (
        readers: ReaderRecord[],
        of: (id: string) => Promise<{ contiguousUpto: number } & ReplacementLinks>,
      ) => Promise<number>,
    ) =>
      onPostgres(config)
        ? withPgFleet(config, (f) => fn(f.registry.listReaders(), (id) => f.reader(id)))
        : withOfflineGateway(config, (gw) =>
            fn(gw.registry.listReaders(), async (id) => ({
              ...(await gw.replacements.links(id)),
              contiguousUpto: gw.store.seqState(id).contiguousUpto,
            })),
          );
    return open(async (readers, of) => {
      const rows = [];
      for (const r of readers) {
        const x = await of(r.readerId);
        rows.push({
          readerId: r.readerId,
          clientRef: r.clientRef ?? null,
          state: r.revokedAt ? ('revoked' as const) : ('active' as const),
          contiguousUpto: x.contiguousUpto,
          replacedBy: x.replacedBy ?? null,
          replaces: x.replaces ?? null,
          label: r.label ?? null,
        });
      }
      if (values.json) {
        out(jsonText({ readers: rows }));
        return 0;
      }
      for (const r of rows) {
        out(
          [
            r.readerId,
            r.clientRef ?? '-',
            r.state,
            `upTo=${r.contiguousUpto}`,
            ...(r.replacedBy ? [`replaced-by=${r.replacedBy}`] : []),
            ...(r.replaces ? [`replaces=${r.replaces}`] : []),
            r.label ?? '',
          ]
            .join('\t')
            .trimEnd(),
        );
      }
      if (!rows.length) out('(no readers)');
      return 0;
    });
  }
  if (!id) {
    err('a READER_ID is required (visittag-gateway --help)');
    return EXIT.usage;
  }
  if (sub === 'revoke') return revoke(config, file, id, out, err);
  if (sub === 'move') {
    if (!values.client) {
      err('--client CLIENT_REF is required');
      return EXIT.usage;
    }
    return move(config, file, id, values.client, out, err);
  }
  try {
    // `readers add` on a postgres config writes the shared registry (cli/pg-offline.ts)
    const open = (fn: (gw: { registry: Pick<Gateway['registry'], 'addReader'> }) => Promise<number>) =>
      onPostgres(config) ? withPgFleet(config, fn) : withOfflineGateway(config, fn);
    return await open(async (gw) => {
      switch (sub) {
        case 'add': {
          if (!values.client) {
            err('--client CLIENT_REF is required: the client (home) the reader is installed for');
            return EXIT.usage;
          }
          const r = await gw.registry.addReader({
            readerId: id,
            clientRef: values.client,
            ...(values.label ? { label: values.label } : {}),
            ...(values.password ? { password: values.password } : {}),
          });
          out(`reader ${r.readerId} added`);
          if (!values.password) out(`password: ${r.password}`);
          return 0;
        }
        case undefined:
        default:
          err(`unknown readers command "${sub ?? ''}" (add, enroll, list, replace, command, revoke, move)`);
          return EXIT.usage;
      }
    });
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
}

/** `readers revoke ID`: through the running gateway (connection dropped at once), else the database. */
function revoke(config: GatewaySettings, file: string, id: string, out: Out, err: Out): Promise<number> {
  const external =
    config.mqtt.mode === 'external'
      ? [
          `external broker mode: revoke ${id}'s credential on the MQTT broker too (the gateway ignores it meanwhile)`,
        ]
      : [];
  return applyLiveOrOffline({
    config,
    configFile: file,
    request: { method: 'POST', path: `/api/readers/${encodeURIComponent(id)}/revoke` },
    live: (body) => [
      `reader ${id} revoked by the running gateway: ${
        (body as { wasConnected?: boolean } | null)?.wasConnected
          ? 'its live connection was dropped'
          : 'it was not connected'
      }; reconnects are refused; its stored events are kept`,
      ...external,
    ],
    // store.engine postgres: in the registry the instances share (running ones drop the reader at once)
    offline: () =>
      onPostgres(config)
        ? pgRevokeReader(config, id, Date.now()).then(() => [
            `reader ${id} revoked on PostgreSQL`,
            ...external,
          ])
        : withOfflineGateway(config, (gw) => {
            gw.registry.revokeReader(id);
            return Promise.resolve([`reader ${id} revoked`, ...external]);
          }),
    offlineNote: onPostgres(config)
      ? 'revoked in the database the instances share; instances running elsewhere drop it at once'
      : 'revoked in the database; takes effect when it starts',
    out,
    err,
  });
}

/** `readers move ID --client REF`: through the running gateway, else the database. */
function move(
  config: GatewaySettings,
  file: string,
  id: string,
  clientRef: string,
  out: Out,
  err: Out,
): Promise<number> {
  return applyLiveOrOffline({
    config,
    configFile: file,
    request: { method: 'POST', path: `/api/readers/${encodeURIComponent(id)}/move`, body: { clientRef } },
    live: () => [`reader ${id} now serves ${clientRef} (applied by the running gateway)`],
    offline: () =>
      onPostgres(config)
        ? pgMoveReader(config, id, clientRef, Date.now()).then(() => [
            `reader ${id} now serves ${clientRef} (on PostgreSQL)`,
          ])
        : withOfflineGateway(config, (gw) => {
            gw.registry.moveReader(id, clientRef);
            return Promise.resolve([`reader ${id} now serves ${clientRef}`]);
          }),
    offlineNote: onPostgres(config)
      ? 'moved in the database the instances share; instances running elsewhere show it at once'
      : 'moved in the database; takes effect when it starts',
    out,
    err,
  });
}

async function status(
  config: GatewaySettings,
  file: string,
  json: boolean,
  out: Out,
  err: Out,
): Promise<number> {
  const opts = { configFile: file };
  const ready = await callRunningGateway(config, { method: 'GET', path: '/readyz' }, opts);
  if (ready.kind === 'not-running') {
    if (json) out(jsonText({ running: false, ready: false, detail: ready.detail, readers: [] }));
    err(`gateway not running (${ready.detail})`);
    return 1;
  }
  const list = await callRunningGateway(config, { method: 'GET', path: '/api/readers' }, opts);
  if (list.kind !== 'ok') {
    err(list.kind === 'failed' ? list.message : `gateway not running (${list.detail})`);
    return 1;
  }
  const { readers } = list.body as {
    readers: Array<{
      readerId: string;
      connected: boolean;
      contiguousUpto: number;
      hasGaps: boolean;
      queueDepth: number | null;
    }>;
  };
  if (json) {
    out(
      jsonText({
        running: true,
        ready: ready.kind === 'ok',
        url: list.url,
        readers: readers.map((r) => ({
          readerId: r.readerId,
          connected: r.connected,
          contiguousUpto: r.contiguousUpto,
          hasGaps: r.hasGaps,
          queueDepth: r.queueDepth ?? null,
        })),
      }),
    );
    return ready.kind === 'ok' ? 0 : 1;
  }
  out(ready.kind === 'ok' ? `gateway ready at ${ready.url}` : `gateway NOT ready at ${list.url}`);
  for (const r of readers) {
    out(
      `${r.readerId}\t${r.connected ? 'connected' : 'offline'}\tupTo=${r.contiguousUpto}` +
        `${r.hasGaps ? '\tGAPS' : ''}\tqueue=${r.queueDepth ?? '?'}`,
    );
  }
  return ready.kind === 'ok' ? 0 : 1;
}

async function run(config: GatewaySettings): Promise<number> {
  const logger = createLogger(config.logLevel);
  const sd = createSdNotifier(logger);
  // store.engine "postgres": the instance's composition root on PostgreSQL (gateway/pg-instance.ts)
  const gw =
    config.store?.engine === 'postgres'
      ? createPgGateway({ config, logger })
      : createGateway({ config, logger });
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) {
      logger.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ sig }, 'shutting down');
    abort.abort();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  try {
    await gw.start();
  } catch (e) {
    logger.fatal({ err: e }, 'gateway failed to start');
    await gw.stop().catch(() => undefined);
    return 1;
  }
  // How the CLI (readers revoke, move, command, status) finds this process: gateway/src/admin/client.ts.
  try {
    writeAdminEndpoint(config.dataDir, gw.adminUrl);
  } catch (e) {
    logger.warn(
      { err: e },
      'cannot write admin-endpoint.json: the CLI finds this gateway only by admin.port',
    );
  }
  sd.ready();
  const stopWatchdog = sd.startWatchdog();
  // Machine-readable line for supervisors and tests.
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', mqttPort: gw.mqttPort, adminPort: gw.adminPort, pid: process.pid })}\n`,
  );
  await new Promise<void>((resolve) =>
    abort.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  sd.stopping();
  stopWatchdog();
  try {
    await gw.stop();
  } finally {
    removeAdminEndpoint(config.dataDir);
  }
  return 0;
}

/** Is this file the process's entry point? Compared on real paths, so a symlinked checkout or node_modules agrees. */
function isEntryPoint(argv1: string | undefined): boolean {
  if (argv1 === undefined) return false;
  if (import.meta.url.endsWith(argv1.replace(/\\/g, '/'))) return true;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
const isEntry = isEntryPoint(process.argv[1]);
if (isEntry || process.env.VISITTAG_GATEWAY_MAIN === '1') {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
