import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import { pseudonymiseCard, systemClock, type Clock } from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  adminGet,
  dbOf,
  silent,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import { deviceCli, RunningDevice, simulatedProvisionArgs, writeGatewayCliConfig } from './cli-child.js';

/**
 * Acceptance (issue 6): enroll → provision (device CLI child) → selftest passes → taps flow, through a
 * real gateway (embedded broker on port 0) and the device CLI with the simulated reader.
 */
describe('provisioning end to end (device CLI ↔ real gateway)', () => {
  const tmp = tempDir('vt-prov-e2e-');
  let gw: Gateway;
  let offset = 0;
  const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
  const synced = join(tmp.dir, 'timesync-synchronized');
  const running: RunningDevice[] = [];

  beforeAll(async () => {
    gw = createGateway({ config: testConfig(join(tmp.dir, 'gw')), clock, logger: silent });
    trackDataDir(gw, join(tmp.dir, 'gw'));
    await gw.start();
    writeFileSync(synced, '');
  });
  afterAll(async () => {
    for (const d of running) await d.stop();
    await gw.stop();
    tmp.cleanup();
  });

  const provisionArgs = (code: string, cfg: string, data: string) =>
    simulatedProvisionArgs(gw.adminUrl, code, cfg, data);

  it('enroll → provision → selftest passes → taps reach the gateway store; identify and config push round trips', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-12', label: 'hallway' });
    const cfg = join(tmp.dir, 'a', 'device.json');
    const data = join(tmp.dir, 'a', 'data');
    const p = await deviceCli(provisionArgs(issued.code, cfg, data));
    expect(p.stderr).not.toMatch(/REFUSED/);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`provisioned as reader "${issued.readerId}" for client home-12`);
    expect(statSync(cfg).mode & 0o777).toBe(0o600);
    const written = JSON.parse(readFileSync(cfg, 'utf8')) as {
      readerId: string;
      mqtt: { url: string; password: string };
    };
    expect(written.readerId).toBe(issued.readerId);
    expect(written.mqtt.url).toBe(`mqtt://127.0.0.1:${gw.mqttPort}`);
    expect(p.stdout).not.toContain(written.mqtt.password); // the secret goes to the file only

    const st = await deviceCli(['selftest', '--config', cfg, '--timesync-flag', synced], {
      RUNTIME_DIRECTORY: join(tmp.dir, 'a'),
    });
    expect(st.stdout).toContain('VERDICT: PASS');
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/\[ OK \] test tap round trip: .*seq 1 journalled, sent and acknowledged/);
    for (const pattern of ['visit-started', 'visit-ended', 'rejected', 'identify']) {
      expect(st.stdout).toContain(`▸ ${pattern}: you should see/hear`);
    }
    gw.flush();
    expect(storedSeqs(gw, issued.readerId)).toEqual([1]);
    const ev = JSON.parse(
      dbOf(gw)
        .prepare('SELECT event_json FROM events WHERE reader_id = ? AND seq = 1')
        .pluck()
        .get(issued.readerId) as string,
    ) as { selftest?: boolean };
    expect(ev.selftest).toBe(true);

    const dev = new RunningDevice(cfg, join(tmp.dir, 'a'));
    running.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    dev.send('tap 04AABBCCDDEE01');
    await dev.waitFor((l) => l.type === 'tap' && l.decision === 'start');
    await waitUntil(() => storedSeqs(gw, issued.readerId).includes(2), 20_000);
    // identify: the technician/coordinator finds the right box; the device reports the result back.
    const sent = await fetch(`${gw.adminUrl}/api/readers/${issued.readerId}/commands`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'identify' }),
    });
    expect(sent.status).toBe(202);
    const { commandId } = (await sent.json()) as { commandId: string };
    const result = await waitUntil(async () => {
      const v = (await adminGet(gw, `/api/readers/${issued.readerId}`)).body as {
        lastCommandResult: { commandId: string; status: string } | null;
      };
      return v.lastCommandResult?.commandId === commandId ? v.lastCommandResult : null;
    }, 10_000);
    expect(result.status).toBe('ok');
    // The same from the coordinator's CLI (over the running gateway's admin API).
    const gwCfg = writeGatewayCliConfig(gw, join(tmp.dir, 'gw'), join(tmp.dir, 'gw-cli.json'));
    const cliOut: string[] = [];
    const cliCode = await gatewayMain(
      ['readers', 'command', issued.readerId, 'identify', '--config', gwCfg],
      (l) => cliOut.push(l),
      (l) => cliOut.push(l),
    );
    expect(cliOut.at(-1)).toBe('reader answered: ok');
    expect(cliCode).toBe(0);

    // Config push: only registered cards from now on; the reader applies it and reports the version.
    gw.registry.addCard({
      cardRef: pseudonymiseCard('04AABBCCDDEE01', 'test-fleet-key-0123456789'),
      staffRef: 'nurse-1',
    });
    const pushed = await fetch(`${gw.adminUrl}/api/readers/${issued.readerId}/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ useAllowList: true }),
    });
    expect(pushed.status).toBe(202);
    expect(await pushed.json()).toMatchObject({ version: 1, allowListSize: 1 });
    await waitUntil(async () => {
      const v = (await adminGet(gw, `/api/readers/${issued.readerId}`)).body as {
        status: { configVersion?: number } | null;
      };
      return v.status?.configVersion === 1;
    }, 10_000);
    dev.send('tap 04AABBCCDDEE09'); // not registered: refused by the reader itself
    await dev.waitFor((l) => l.type === 'tap' && l.decision === 'rejected');
    await dev.stop();
    // The self-test tap never became a visit; the real one did.
    const visits = dbOf(gw).prepare('SELECT count(*) FROM visits WHERE reader_id = ?').pluck();
    await waitUntil(() => (visits.get(issued.readerId) as number) === 1, 10_000);
    expect(visits.get(issued.readerId)).toBe(1);
  }, 90_000);

  it('wrong, reused and expired codes are refused plainly, with the fix, and write nothing', async () => {
    const cfg = join(tmp.dir, 'b', 'device.json');
    const data = join(tmp.dir, 'b', 'data');
    const wrong = await deviceCli(provisionArgs('ABCD-EFGH-JK', cfg, data));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('REFUSED (invalid-code): this code is not known to the gateway');
    expect(wrong.stderr).toMatch(/Fix: check the code for typos/);

    const issued = await gw.enrollment.issue({ clientRef: 'home-13' });
    expect((await deviceCli(provisionArgs(issued.code, join(tmp.dir, 'c', 'device.json'), data))).code).toBe(
      0,
    );
    const reused = await deviceCli(provisionArgs(issued.code, cfg, data));
    expect(reused.code).toBe(2);
    expect(reused.stderr).toContain('REFUSED (used-code): this code was already used');
    expect(reused.stderr).toContain('Fix: each code works once');

    const late = await gw.enrollment.issue({ clientRef: 'home-14', ttlMs: 60_000 });
    offset += 61_000;
    const expired = await deviceCli(provisionArgs(late.code, cfg, data));
    expect(expired.code).toBe(2);
    expect(expired.stderr).toContain('REFUSED (expired-code): this code has expired');
    expect(expired.stderr).toContain('Fix: ask the coordinator for a new code');
    expect(existsSync(cfg)).toBe(false);
    expect(gw.registry.getReader(late.readerId)).toBeUndefined();
  }, 60_000);

  it('re-provisioning keeps unsent events: a new identity is refused, a re-enrollment delivers them', async () => {
    const issued = await gw.enrollment.issue({ clientRef: 'home-20' });
    const dir = join(tmp.dir, 'd');
    const cfg = join(dir, 'device.json');
    const data = join(dir, 'data');
    expect((await deviceCli(provisionArgs(issued.code, cfg, data))).code).toBe(0);
    gw.registry.revokeReader(issued.readerId); // the gateway refuses it: taps stay in the journal
    const dev = new RunningDevice(cfg, dir);
    running.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    dev.send('tap 04AABBCCDDEE02');
    dev.send('tap 04AABBCCDDEE03');
    await dev.waitFor((l) => l.type === 'tap' && l.seq === 2);
    await dev.stop();
    const before = readFileSync(cfg, 'utf8');

    const other = await gw.enrollment.issue({ clientRef: 'home-21' });
    const refused = await deviceCli(provisionArgs(other.code, cfg, data));
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(
      `REFUSED: this device still holds 2 unsent event(s) of reader "${issued.readerId}"`,
    );
    expect(refused.stderr).toContain('--force-new-identity');
    expect(readFileSync(cfg, 'utf8')).toBe(before);
    expect(gw.registry.getReader(other.readerId)).toBeUndefined(); // the code was not spent

    const again = await gw.enrollment.issue({ clientRef: 'home-20', readerId: issued.readerId });
    const ok = await deviceCli(provisionArgs(again.code, cfg, data));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('journal kept: 2 unsent event(s)');
    const dev2 = new RunningDevice(cfg, dir);
    running.push(dev2);
    await dev2.waitFor((l) => l.type === 'ready');
    await waitUntil(() => storedSeqs(gw, issued.readerId).length === 2, 20_000);
    expect(storedSeqs(gw, issued.readerId)).toEqual([1, 2]);
    await dev2.stop();
  }, 90_000);
});
