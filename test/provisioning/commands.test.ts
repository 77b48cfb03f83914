import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import { adminGet, silent, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { deviceCli, RunningDevice, simulatedProvisionArgs, writeGatewayCliConfig } from './cli-child.js';

/**
 * `visittag-gateway readers command ID resync-clock` end to end: gateway CLI → admin API → MQTT → the
 * device CLI (a child process) → its systemd-timesyncd driver → result and status back. The OS side is
 * faked with `timedatectl` / `systemctl` scripts first on the child's PATH (a state dir says whether
 * the clock is synchronised and whether the restart is allowed).
 */

const TIMEDATECTL = `#!/bin/sh
s="$FAKE_TIMESYNC_DIR/synced"
case "$*" in
  "show -p NTP -p NTPSynchronized") echo NTP=yes; if [ -f "$s" ]; then echo NTPSynchronized=yes; else echo NTPSynchronized=no; fi ;;
  "show -p NTPSynchronized --value") if [ -f "$s" ]; then echo yes; else echo no; fi ;;
  "show-timesync -p ServerName --value") echo ntp.test.invalid ;;
  *) echo "fake timedatectl: unexpected $*" >&2; exit 1 ;;
esac
`;
const SYSTEMCTL = `#!/bin/sh
echo "$*" >> "$FAKE_TIMESYNC_DIR/systemctl.log"
if [ -f "$FAKE_TIMESYNC_DIR/deny" ]; then
  echo "Failed to restart systemd-timesyncd.service: Access denied" >&2; exit 1
fi
if [ "$*" = "--no-ask-password restart systemd-timesyncd.service" ]; then touch "$FAKE_TIMESYNC_DIR/synced"; exit 0; fi
echo "fake systemctl: unexpected $*" >&2; exit 1
`;

describe('resync-clock end to end', () => {
  const tmp = tempDir('vt-prov-cmd-');
  let gw: Gateway;
  let gwCfg: string;
  const devices: RunningDevice[] = [];
  beforeAll(async () => {
    gw = createGateway({ config: testConfig(join(tmp.dir, 'gw')), logger: silent });
    await gw.start();
    gwCfg = writeGatewayCliConfig(gw, join(tmp.dir, 'gw'), join(tmp.dir, 'gw-cli.json'));
  });
  afterAll(async () => {
    for (const d of devices) await d.stop();
    await gw.stop();
    tmp.cleanup();
  });

  it('failed with the reason while the restart is refused; ok with the new state once allowed; status shows it', async () => {
    const bin = join(tmp.dir, 'bin');
    const state = join(tmp.dir, 'timesync');
    mkdirSync(bin, { recursive: true });
    mkdirSync(state, { recursive: true });
    for (const [name, text] of [
      ['timedatectl', TIMEDATECTL],
      ['systemctl', SYSTEMCTL],
    ] as const) {
      writeFileSync(join(bin, name), text);
      chmodSync(join(bin, name), 0o755);
    }
    writeFileSync(join(state, 'deny'), '');

    const issued = await gw.enrollment.issue({ clientRef: 'home-50' });
    const dir = join(tmp.dir, 'dev');
    const cfg = join(dir, 'device.json');
    const prov = await deviceCli(simulatedProvisionArgs(gw.adminUrl, issued.code, cfg, join(dir, 'data')));
    expect(prov.code).toBe(0);
    const env = { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, FAKE_TIMESYNC_DIR: state };
    const dev = new RunningDevice(cfg, dir, env);
    devices.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    type View = {
      connected: boolean;
      status: { clock?: { synced: boolean; lastResync?: { ok: boolean; detail: string } } } | null;
      lastCommandResult: { status: string; detail?: string; clock?: { synced: boolean } } | null;
    };
    const view = async () => (await adminGet(gw, `/api/readers/${issued.readerId}`)).body as View;
    await waitUntil(async () => (await view()).status?.clock !== undefined, 10_000);
    expect((await view()).status?.clock?.synced).toBe(false);

    const command = async () => {
      const lines: string[] = [];
      const code = await gatewayMain(
        ['readers', 'command', issued.readerId, 'resync-clock', '--config', gwCfg],
        (l) => lines.push(l),
        (l) => lines.push(l),
      );
      return { code, lines };
    };

    const refused = await command();
    expect(refused.lines.at(-1)).toBe(
      'reader answered: failed (not allowed to restart systemd-timesyncd (Failed to restart systemd-timesyncd.service: Access denied): add the polkit rule of docs/technician.md step 2)',
    );
    expect(refused.code).toBe(1);
    expect((await view()).lastCommandResult?.clock?.synced).toBe(false);
    await waitUntil(async () => (await view()).status?.clock?.lastResync?.ok === false, 10_000);
    // The coordinator's alert says what the reader said.
    const alerts = (await adminGet(gw, '/api/alerts')).body as {
      alerts: { readerId: string; kind: string; detail: string }[];
    };
    expect(
      alerts.alerts.find((a) => a.readerId === issued.readerId && a.kind === 'clock-unsynced')?.detail,
    ).toBe(
      'device clock not synchronised (NTP); last resync failed: not allowed to restart systemd-timesyncd (Failed to restart systemd-timesyncd.service: Access denied): add the polkit rule of docs/technician.md step 2',
    );

    rmSync(join(state, 'deny')); // the technician added the polkit rule
    const ok = await command();
    expect(ok.lines[0]).toMatch(
      new RegExp(`^sent resync-clock to ${issued.readerId} \\(command cmd-[0-9a-f]+\\)`),
    );
    expect(ok.lines.at(-1)).toBe(
      'reader answered: ok (clock synchronised by systemd-timesyncd from ntp.test.invalid)',
    );
    expect(ok.code).toBe(0);
    const v = await view();
    expect(v.lastCommandResult).toMatchObject({ status: 'ok', clock: { synced: true, source: 'ntp' } });
    // The status that follows carries the clock state (published right after the resync).
    await waitUntil(async () => (await view()).status?.clock?.synced === true, 10_000);
    const after = (await adminGet(gw, '/api/alerts')).body as {
      alerts: { readerId: string; kind: string }[];
    };
    expect(after.alerts.filter((a) => a.readerId === issued.readerId).map((a) => a.kind)).not.toContain(
      'clock-unsynced',
    );
    expect((await view()).status?.clock?.lastResync).toMatchObject({
      ok: true,
      detail: 'clock synchronised by systemd-timesyncd from ntp.test.invalid',
    });
    await dev.stop();
  }, 90_000);
});
