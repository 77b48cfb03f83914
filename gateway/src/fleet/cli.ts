import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import { callRunningGateway } from '../admin/client.js';
import { EXIT } from '../../../runtime/cli.js';

type Out = (line: string) => void;

const KINDS = ['identify', 'restart', 'resync-clock', 'selftest-echo'] as const;

export const COMMAND_HELP = `visittag-gateway readers command READER_ID identify|restart|resync-clock|selftest-echo [--config FILE]

Sends a command to a connected reader through the running gateway's admin API and waits for the
reader's result (≤ 15 s; resync-clock ≤ 45 s: the reader waits up to 30 s for a time server).
  identify       the reader blinks so a technician finds the right box
  resync-clock   the reader restarts systemd-timesyncd and reports "ok (clock synchronised …)" or
                 "failed (why, and what to do)"; its status then shows clock.synced / clock.lastResync
  restart        the service exits cleanly and systemd starts it again
  selftest-echo  a round trip only`;

/** `visittag-gateway readers command ID KIND`: over the running gateway's admin API. */
export async function commandCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    COMMAND_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const [readerId, kind] = parsed.positionals;
  if (!readerId || !KINDS.includes(kind as (typeof KINDS)[number])) {
    err(COMMAND_HELP);
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(parsed.values.config, err);
  if (typeof loaded === 'number') return loaded;
  const file = loaded.file;
  const config = loaded.config;
  const opts = { configFile: file };
  const path = `/api/readers/${encodeURIComponent(readerId)}`;
  const sent = await callRunningGateway(
    config,
    { method: 'POST', path: `${path}/commands`, body: { kind } },
    opts,
  );
  if (sent.kind === 'not-running') {
    err(`gateway not running (${sent.detail}): commands go through the running gateway; start it first`);
    return 1;
  }
  if (sent.kind === 'failed') {
    err(`command refused: ${sent.message}`);
    return 1;
  }
  const body = sent.body as { commandId?: string } | null;
  if (sent.status !== 202 || !body?.commandId) {
    err(`command refused: HTTP ${sent.status}`);
    return 1;
  }
  out(`sent ${kind} to ${readerId} (command ${body.commandId}); waiting for the reader…`);
  const waitS = kind === 'resync-clock' ? 45 : 15;
  for (let i = 0; i < waitS * 2; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const v = await callRunningGateway(config, { method: 'GET', path }, opts);
    if (v.kind !== 'ok') {
      err(v.kind === 'failed' ? v.message : `the gateway stopped while waiting (${v.detail})`);
      return 1;
    }
    const r = (
      v.body as { lastCommandResult?: { commandId: string; status: string; detail?: string } | null }
    ).lastCommandResult;
    if (r?.commandId === body.commandId) {
      out(`reader answered: ${r.status}${r.detail ? ` (${r.detail})` : ''}`);
      return r.status === 'ok' ? 0 : 1;
    }
  }
  err(`no answer within ${waitS} s: the reader is probably offline (see visittag-gateway status)`);
  return 1;
}
