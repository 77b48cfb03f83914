import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createGateway, createLogger } from '../../index.js';
import { loadGatewaySettings } from '../config.js';
import { planCardImport } from './csv-import.js';

type Out = (line: string) => void;

export const CARDS_HELP = `visittag-gateway cards import FILE [--dry-run] [--config FILE]

FILE is CSV (comma or semicolon) with a header naming "staff" and "uid" (hex card UID as the badge
system prints it; pseudonymised with the fleet key, never stored raw) or "card_ref" (c1_…).
Good rows are imported (a card already known is re-assigned to the staff member given), bad rows are
listed with their line number and reason. Exit code 0 when every row was good, 1 when some were bad,
2 when nothing could be read.`;

export async function cardsCommand(argv: string[], out: Out, err: Out): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err(`${(e as Error).message}\n\n${CARDS_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(CARDS_HELP);
    return 0;
  }
  const [sub, file] = positionals;
  if (sub !== 'import' || !file) {
    err(CARDS_HELP);
    return 2;
  }
  const loaded = loadGatewaySettings(
    values.config ?? process.env.VISITTAG_GATEWAY_CONFIG ?? '/etc/visittag/gateway.json',
  );
  if (!loaded.ok) {
    err(loaded.error);
    return 78;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    err(`cannot read ${file}: ${(e as Error).message}`);
    return 2;
  }
  const plan = planCardImport(text, loaded.config.fleetKey);
  for (const b of plan.bad) out(`line ${b.line}: ${b.reason}`);
  if (!values['dry-run'] && plan.good.length) {
    const gw = createGateway({ config: loaded.config, logger: createLogger('error') });
    try {
      gw.db.transaction(() => {
        for (const r of plan.good) gw.registry.addCard({ cardRef: r.cardRef, staffRef: r.staffRef });
      })();
    } finally {
      await gw.stop();
    }
  }
  const verb = values['dry-run'] ? 'would import' : 'imported';
  out(
    `${verb} ${plan.good.length} card(s); ${plan.bad.length} bad row(s)${plan.bad.length ? ' listed above (fix them and import the file again: good rows are idempotent)' : ''}`,
  );
  if (!plan.good.length && plan.bad.length) return 2;
  return plan.bad.length ? 1 : 0;
}
