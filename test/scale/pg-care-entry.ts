import { createLogger } from '../../gateway/index.js';
import { createPgGateway } from '../../gateway/pg-instance.js';
import { loadGatewaySettings } from '../../gateway/src/config.js';

/**
 * A gateway instance on PostgreSQL as `visittag-gateway run` composes it (gateway/pg-instance.ts), with
 * the care plan's tick from VT_CARE_TICK_MS (the settings file has no care section; the real default is
 * 30 s). Started by test/scale/pg-care-alerts.test.ts as `node entry.mjs run --config FILE`; prints the
 * same ready line as gateway/main.ts and stops on SIGTERM.
 */
const file = process.argv[process.argv.indexOf('--config') + 1] ?? '';
const parsed = loadGatewaySettings(file);
if (!parsed.ok) {
  process.stderr.write(`${parsed.error}\n`);
  process.exit(78);
}
const config = parsed.config;
const logger = createLogger(config.logLevel);
const gw = createPgGateway({
  config,
  logger,
  care: { tickMs: Number(process.env.VT_CARE_TICK_MS ?? 1000) },
});
process.once('SIGTERM', () => {
  gw.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
await gw.start();
process.stdout.write(
  `${JSON.stringify({ event: 'ready', mqttPort: gw.mqttPort, adminPort: gw.adminPort, pid: process.pid })}\n`,
);
