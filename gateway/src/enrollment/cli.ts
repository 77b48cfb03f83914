import { onPostgres, withPgFleet } from '../cli/pg-offline.js';
import {
  type CliGateway,
  loadSubcommandSettings,
  parseSubcommand,
  provisionCommandLine,
  type OpenGateway,
} from '../cli-gateway.js';
import { ttlMinutesOption } from '../config.js';
import { EXIT } from '../../../runtime/cli.js';

type Out = (line: string) => void;

export const ENROLL_HELP = `visittag-gateway readers enroll --client CLIENT_REF [--label TEXT] [--reader READER_ID]
                                [--ttl-minutes N] [--config FILE]

Issues a one-time enrollment code for a reader in a client's home. The technician types it on the
reader: visittag-device provision --gateway https://GATEWAY:ADMIN_PORT --code CODE
With admin.tls set the code ends with a pin of the gateway's certificate (ABCD-EFGH-JKMN-PQ): the
reader checks it before sending the code. The code works once and expires (default 60 minutes).
--reader re-enrolls an existing reader (same id, new credentials; its history and unsent events stay
valid).`;

/** `visittag-gateway readers enroll …` (works on the SQLite file, also while the gateway runs). */
export async function enrollCommand(
  argv: string[],
  out: Out,
  err: Out,
  withGateway: OpenGateway,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      client: { type: 'string' },
      label: { type: 'string' },
      reader: { type: 'string' },
      'ttl-minutes': { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    ENROLL_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length > 0) {
    err(`unexpected argument "${positionals[0]}"\n\n${ENROLL_HELP}`);
    return EXIT.usage;
  }
  if (!values.client) {
    err(`--client CLIENT_REF is required: the client (home) the reader is installed for\n\n${ENROLL_HELP}`);
    return EXIT.usage;
  }
  const ttl = ttlMinutesOption(values['ttl-minutes'], err);
  if (ttl === null) return EXIT.usage;
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  const config = loaded.config;
  const clientRef = values.client;
  // on a postgres config the code goes into the shared database (issue 14: cli/pg-offline.ts)
  const run = (f: (gw: Pick<CliGateway, 'enrollment'>) => Promise<number>) =>
    onPostgres(config) ? withPgFleet(config, f) : withGateway(config, f);
  return run(async (gw) => {
    try {
      const issued = await gw.enrollment.issue({
        clientRef,
        ttlMs: ttl * 60_000,
        ...(values.label ? { label: values.label } : {}),
        ...(values.reader ? { readerId: values.reader } : {}),
      });
      out(`enrollment code: ${issued.code}`);
      out(
        `reader:          ${issued.readerId}${issued.replacesCredentials ? ' (re-enroll: new credentials)' : ''}`,
      );
      out(`client:          ${issued.clientRef ?? '-'}${issued.label ? ` (${issued.label})` : ''}`);
      out(`expires:         ${new Date(issued.expiresAtMs).toISOString()} (works once)`);
      out(`on the reader:   ${provisionCommandLine(config, issued.code)}`);
      return 0;
    } catch (e) {
      err((e as Error).message);
      return 1;
    }
  });
}
