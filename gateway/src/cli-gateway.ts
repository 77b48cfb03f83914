/** What the gateway CLI commands that work on the SQLite file share (enroll, replace, cards). */
import { createGateway, createLogger, type Gateway } from '../index.js';
import type { GatewaySettings } from './config.js';

/** Opens the gateway on `config` (not started: no broker, no HTTP), runs `fn`, always closes it. */
export async function withGateway(
  config: GatewaySettings,
  fn: (gw: Gateway) => number | Promise<number>,
): Promise<number> {
  const gw = createGateway({ config, logger: createLogger('error') });
  try {
    return await fn(gw);
  } finally {
    await gw.stop();
  }
}

/** The `visittag-device provision …` line a technician types for `code`. */
export function provisionCommandLine(config: GatewaySettings, code: string): string {
  const host = config.admin.host === '0.0.0.0' ? '<gateway-host>' : config.admin.host;
  return `visittag-device provision --gateway http://${host}:${config.admin.port} --code ${code}`;
}
