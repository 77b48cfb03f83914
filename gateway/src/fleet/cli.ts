import { parseArgs } from 'node:util';
import { loadGatewaySettings } from '../config.js';

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
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (e) {
    err(`${(e as Error).message}\n\n${COMMAND_HELP}`);
    return 2;
  }
  const [readerId, kind] = parsed.positionals;
  if (parsed.values.help) {
    out(COMMAND_HELP);
    return 0;
  }
  if (!readerId || !KINDS.includes(kind as (typeof KINDS)[number])) {
    err(COMMAND_HELP);
    return 2;
  }
  const loaded = loadGatewaySettings(
    parsed.values.config ?? process.env.VISITTAG_GATEWAY_CONFIG ?? '/etc/visittag/gateway.json',
  );
  if (!loaded.ok) {
    err(loaded.error);
    return 78;
  }
  const { admin } = loaded.config;
  const base = `http://${admin.host === '0.0.0.0' ? '127.0.0.1' : admin.host}:${admin.port}`;
  const headers = { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' };
  try {
    const res = await fetch(`${base}/api/readers/${encodeURIComponent(readerId)}/commands`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ kind }),
    });
    const body = (await res.json()) as { commandId?: string; error?: string };
    if (res.status !== 202 || !body.commandId) {
      err(`command refused: ${body.error ?? `HTTP ${res.status}`}`);
      return 1;
    }
    out(`sent ${kind} to ${readerId} (command ${body.commandId}); waiting for the reader…`);
    const waitS = kind === 'resync-clock' ? 45 : 15;
    for (let i = 0; i < waitS * 2; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const v = (await (
        await fetch(`${base}/api/readers/${encodeURIComponent(readerId)}`, { headers })
      ).json()) as { lastCommandResult?: { commandId: string; status: string; detail?: string } | null };
      const r = v.lastCommandResult;
      if (r?.commandId === body.commandId) {
        out(`reader answered: ${r.status}${r.detail ? ` (${r.detail})` : ''}`);
        return r.status === 'ok' ? 0 : 1;
      }
    }
    err(`no answer within ${waitS} s: the reader is probably offline (see visittag-gateway status)`);
    return 1;
  } catch (e) {
    err(`cannot reach the gateway admin API at ${base}: ${(e as Error).message}`);
    return 1;
  }
}
