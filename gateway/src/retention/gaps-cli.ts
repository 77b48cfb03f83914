import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import { SafeId } from '../../../protocol/index.js';
import { EXIT } from '../../../runtime/cli.js';
import { callRunningGateway } from '../admin/client.js';

type Out = (line: string) => void;

export const GAPS_HELP = `visittag-gateway gaps READER_ID [--config FILE]
visittag-gateway gaps accept READER_ID --reason TEXT [--from N --to N] [--config FILE]

gaps: the reader's missing sequence ranges (pairing of its visits waits at the first one).
accept: declares the first gap (or N..N inside a gap) lost now, so pairing continues; audited with
the reason (gap.accepted). Without it the gateway does so after retention.gapTimeoutMinutes.
Needs the running gateway (docs/retention.md "Sequence gaps").`;

export async function gapsCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      reason: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    GAPS_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const accept = parsed.positionals[0] === 'accept';
  const readerId = accept ? parsed.positionals[1] : parsed.positionals[0];
  if (!readerId || parsed.positionals.length !== (accept ? 2 : 1) || !SafeId.safeParse(readerId).success) {
    err(GAPS_HELP);
    return EXIT.usage;
  }
  const { from, to, reason } = parsed.values;
  if (accept && !reason) {
    err('--reason is required (it is kept in the audit log)');
    return EXIT.usage;
  }
  const range = from !== undefined || to !== undefined ? { from: Number(from), to: Number(to) } : null;
  if (range && !(Number.isInteger(range.from) && Number.isInteger(range.to) && range.from <= range.to)) {
    err('--from and --to take whole numbers, from <= to, both or neither');
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(parsed.values.config, err);
  if (typeof loaded === 'number') return loaded;
  const configFile = loaded.file;
  const r = await callRunningGateway(
    loaded.config,
    accept
      ? {
          method: 'POST',
          path: `/api/readers/${readerId}/gaps/accept`,
          body: { reason, ...(range ?? {}) },
        }
      : { method: 'GET', path: `/api/readers/${readerId}/gaps` },
    { configFile },
  );
  if (r.kind === 'not-running') {
    err(`the gateway is not running (${r.detail}): gaps are handled by the running gateway`);
    return 1;
  }
  if (r.kind === 'failed') {
    err(r.message);
    return 1;
  }
  if (accept) {
    const a = (r.body as { accepted: { from: number; to: number } }).accepted;
    out(`${readerId}: seqs ${a.from}-${a.to} declared lost (accepted, audited); pairing continues`);
    return 0;
  }
  const gaps = (r.body as { gaps: Array<{ from: number; to: number }> }).gaps;
  if (!gaps.length) out(`${readerId}: no sequence gap`);
  for (const g of gaps) out(`${readerId}: missing ${g.from}-${g.to} (${g.to - g.from + 1} seq(s))`);
  return 0;
}
