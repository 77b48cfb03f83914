import type { Gateway } from '../../gateway/index.js';
import type { AdmissionSettings } from '../../gateway/src/broker/admission.js';
import { startGateway, tempDir } from '../gateway/helpers.js';

/**
 * A gateway with an embedded broker on loopback, the given connection admission and base rate and burst, in its
 * own temporary data dir; its stop and the dir's removal go on `cleanups` (run in reverse after each test).
 */
export async function admissionGateway(
  cleanups: (() => Promise<void> | void)[],
  admission: Partial<AdmissionSettings>,
  perSecond: number,
  burst: number,
  prefix = 'vt-storm-',
): Promise<Gateway> {
  const tmp = tempDir(prefix);
  cleanups.push(() => tmp.cleanup());
  const gw = await startGateway(tmp.dir, {
    mqtt: {
      mode: 'embedded',
      host: '127.0.0.1',
      port: 0,
      maxConnectionsPerSecond: perSecond,
      connectionBurst: burst,
    },
    limits: { connectionAdmission: admission },
  });
  cleanups.push(() => gw.stop());
  return gw;
}
