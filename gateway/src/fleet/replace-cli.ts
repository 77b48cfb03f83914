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

export const REPLACE_HELP = `visittag-gateway readers replace OLD_READER_ID [--label TEXT] [--ttl-minutes N] [--config FILE]

A technician swaps a broken reader: issues a one-time enrollment code for a NEW reader id at the old
reader's client (label: the old one's unless --label). When the new reader is provisioned with it, the
old reader is retired at once: its credentials are revoked, its live connection dropped, and visits
still open at it are closed with the anomaly "manual-close" (by reader-replace). Taps the old Pi still
holds stay on it until you decide (docs/fleet.md "Replacing a reader").`;

/**
 * `visittag-gateway readers replace OLD_ID …` (works on the SQLite file, also while the gateway runs; on a
 * postgres config on the shared database: any instance that exchanges the code retires the old reader).
 */
export async function replaceCommand(
  argv: string[],
  out: Out,
  err: Out,
  withGateway: OpenGateway,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      label: { type: 'string' },
      'ttl-minutes': { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    REPLACE_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [oldId, extra] = positionals;
  if (!oldId || extra !== undefined) {
    err(`give exactly one OLD_READER_ID (see: visittag-gateway readers list)\n\n${REPLACE_HELP}`);
    return EXIT.usage;
  }
  const ttl = ttlMinutesOption(values['ttl-minutes'], err);
  if (ttl === null) return EXIT.usage;
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  const config = loaded.config;
  // on PostgreSQL the code and the link are in the shared database (no local file involved)
  const run = (f: (gw: Pick<CliGateway, 'replacements'>) => Promise<number>) =>
    onPostgres(config) ? withPgFleet(config, f) : withGateway(config, f);
  return run(async (gw) => {
    try {
      const issued = await gw.replacements.issue(oldId, {
        ttlMs: ttl * 60_000,
        ...(values.label !== undefined ? { label: values.label } : {}),
      });
      out(`enrollment code: ${issued.code}`);
      out(`new reader:      ${issued.readerId} (replaces ${oldId})`);
      out(`client:          ${issued.clientRef ?? '-'}${issued.label ? ` (${issued.label})` : ''}`);
      out(`expires:         ${new Date(issued.expiresAtMs).toISOString()} (works once)`);
      if (issued.openVisits > 0) {
        out(
          `open visits:     ${issued.openVisits} at ${oldId}; closed with anomaly "manual-close" when the new reader is provisioned`,
        );
      }
      out(`on the new Pi:   ${provisionCommandLine(config, issued.code)}`);
      return 0;
    } catch (e) {
      err((e as Error).message);
      return 1;
    }
  });
}
