import { hkdfSync } from 'node:crypto';
import { join } from 'node:path';
import type pino from 'pino';
import type { Clock } from '../../../protocol/index.js';
import { loadOrCreateKeyFile } from '../broker/credentials.js';
import type { GatewaySettings } from '../config.js';
import type { ReaderRegistry } from '../registry.js';
import type { EnrollmentStore } from '../store/ports.js';
import { brokerUrlFor } from './broker-url.js';
import { Enrollment } from './enrollment.js';
import { adminKeySha256, brokerCaFor } from './tls.js';
import type { GuessLimitSettings } from './rate-limit.js';

export { Enrollment } from './enrollment.js';
export type { ExchangeResult, IssuedCode, IssueInput, EnrollmentRecord } from './enrollment.js';
export { enrollmentRoutes, ENROLLMENT_PUBLIC_PATHS } from './routes.js';

/** Wires the enrollment module for the composition root (gateway/index.ts). */
export function createEnrollment(opts: {
  store: EnrollmentStore;
  config: GatewaySettings;
  clock: Clock;
  logger: pino.Logger;
  registry: ReaderRegistry;
  mqttPort: () => number | null;
  limits?: GuessLimitSettings;
  onReplaced?: (oldReaderId: string, newReaderId: string) => void | Promise<void>;
  brokerAccounts?: { upsertReader(readerId: string, password: string): Promise<void> };
}): Enrollment {
  const broker = brokerCaFor(opts.config.mqtt);
  const log = opts.logger.child({ module: 'enrollment' });
  if (broker.warning) log.warn(broker.warning);
  const { admin, mqtt } = opts.config;
  const loopback = (h: string) => h === '127.0.0.1' || h === '::1' || h === 'localhost';
  if (!admin.tls && !loopback(admin.host)) {
    log.warn(
      'admin.tls is not set: readers refuse to provision over plain HTTP unless given --allow-plain-http',
    );
  }
  if (mqtt.mode === 'embedded' && !mqtt.tls && !loopback(mqtt.host)) {
    log.warn(
      'mqtt.tls is not set: readers refuse a broker without TLS unless provisioned with --allow-plain-mqtt',
    );
  }
  return new Enrollment({
    store: opts.store,
    clock: opts.clock,
    logger: opts.logger,
    registry: opts.registry,
    hashKey: enrollmentHashKey(opts.config),
    fleetKey: opts.config.fleetKey,
    brokerUrl: brokerUrlFor(opts.config.mqtt, opts.mqttPort),
    gatewayKeySha256: adminKeySha256(opts.config.admin),
    brokerCa: broker.ca,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.onReplaced ? { onReplaced: opts.onReplaced } : {}),
    ...(opts.brokerAccounts ? { brokerAccounts: opts.brokerAccounts } : {}),
  });
}

/**
 * The key codes are stored under (keyed hashes only). On PostgreSQL the instances share the codes, so a code
 * issued through one must be found by any other: the key is derived from the fleet key, which every instance
 * of the fleet holds (issue 14). Embedded (SQLite): a key file beside the database, as before.
 */
function enrollmentHashKey(config: GatewaySettings): Buffer {
  if (config.store?.engine === 'postgres') {
    return Buffer.from(
      hkdfSync(
        'sha256',
        Buffer.from(config.fleetKey, 'utf8'),
        Buffer.alloc(0),
        'visittag/enrollment-code/v1',
        32,
      ),
    );
  }
  return loadOrCreateKeyFile(join(config.dataDir, 'enrollment.key'));
}
