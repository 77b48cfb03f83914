/** Child process for the alert crash test: the real gateway on a config file, care ticks every 50 ms. */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { createGateway, parseGatewaySettings } from '../../gateway/index.js';

const parsed = parseGatewaySettings(JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as unknown);
if (!parsed.ok) throw new Error(parsed.error);
const gw = createGateway({
  config: parsed.config,
  logger: pino({ level: 'silent' }),
  care: { tickMs: 50, alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 } },
});
await gw.start();
process.stdout.write('ready\n');
