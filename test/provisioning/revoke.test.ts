import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { adminGet, silent, storedSeqs, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { deviceCli, RunningDevice, simulatedProvisionArgs } from './cli-child.js';

const refusedRevoked = (gw: Gateway): number => {
  const m = /visittag_mqtt_connections_refused_total\{reason="revoked"\} (\d+)/.exec(gw.metrics.render());
  return m ? Number(m[1]) : 0;
};

describe('revoking a provisioned reader', () => {
  const tmp = tempDir('vt-prov-revoke-');
  let gw: Gateway;
  const devices: RunningDevice[] = [];
  beforeAll(async () => {
    gw = createGateway({ config: testConfig(join(tmp.dir, 'gw')), logger: silent });
    await gw.start();
  });
  afterAll(async () => {
    for (const d of devices) await d.stop();
    await gw.stop();
    tmp.cleanup();
  });

  it('while connected: dropped at once, cannot reconnect, its journal keeps the unsent taps; selftest says what to do', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-30' });
    const dir = join(tmp.dir, 'dev');
    const cfg = join(dir, 'device.json');
    mkdirSync(dir, { recursive: true });
    // Reconnect quickly so the refused retry is seen soon (default backoff is 1 s … 60 s).
    writeFileSync(cfg, JSON.stringify({ uplink: { backoff: { baseMs: 50, capMs: 200 } } }));
    const prov = await deviceCli(simulatedProvisionArgs(gw.adminUrl, issued.code, cfg, join(dir, 'data')));
    expect(prov.code).toBe(0);
    const dev = new RunningDevice(cfg, dir);
    devices.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    dev.send('tap 04AABBCCDDEE31');
    await waitUntil(() => storedSeqs(gw, issued.readerId).includes(1), 20_000);
    const view = async () =>
      (await adminGet(gw, `/api/readers/${issued.readerId}`)).body as { connected: boolean };
    await waitUntil(async () => (await view()).connected, 10_000);

    const before = refusedRevoked(gw);
    gw.registry.revokeReader(issued.readerId);
    await waitUntil(async () => !(await view()).connected, 10_000); // dropped
    await waitUntil(() => refusedRevoked(gw) >= before + 2, 20_000); // it retried, and was refused
    dev.send('tap 04AABBCCDDEE32'); // a second worker arrives: still registered on the device
    await dev.waitFor((l) => l.type === 'tap' && l.seq === 2 && l.decision === 'start');
    expect((await view()).connected).toBe(false);
    await dev.stop();
    gw.flush();
    expect(storedSeqs(gw, issued.readerId)).toEqual([1]);

    const st = await deviceCli(['status', '--config', cfg, '--json'], { RUNTIME_DIRECTORY: dir });
    const status = JSON.parse(st.stdout) as { journal: { depth: number; lastAckedSeq: number } };
    expect(status.journal).toMatchObject({ depth: 1, lastAckedSeq: 1 });

    const self = await deviceCli(['selftest', '--config', cfg], { RUNTIME_DIRECTORY: dir });
    expect(self.code).toBe(1);
    expect(self.stdout).toContain('[FAIL] gateway reachable, credentials accepted');
    expect(self.stdout).toContain('ask the coordinator for a new code');
    expect(self.stdout).toContain('[FAIL] test tap round trip: skipped');
    expect(self.stdout).toContain('VERDICT: FAIL');
  }, 90_000);
});
