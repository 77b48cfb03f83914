/**
 * resync-clock: the systemd-timesyncd driver (timedatectl / systemctl behind an injected command
 * runner, on a fake clock), and the command through MQTT: result with the command id and the clock
 * state, and the state in the status that follows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { ClockSync, CommandOutcome, ResyncOutcome } from '../../device/index.js';
import { SystemdClockSync } from '../../device/src/drivers/systemd-clock-sync.js';
import { decode, encode, topics } from '../../protocol/index.js';
import type { CommandResult, Status } from '../../protocol/index.js';
import { BrokerAndPeer, FakeClock, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A scripted OS: answers timedatectl/systemctl like a Pi would; records what was run. */
function fakeOs(o: {
  ntp?: 'yes' | 'no';
  setNtp?: CommandOutcome;
  restart?: CommandOutcome;
  /** Polls of NTPSynchronized after the restart that still say "no". */
  syncAfterPolls?: number;
  missing?: boolean;
}) {
  const ran: string[] = [];
  let synced = false;
  let polls = 0;
  let restarted = false;
  const ok = (stdout = ''): CommandOutcome => ({ code: 0, stdout, stderr: '' });
  const run = (file: string, args: string[]): Promise<CommandOutcome> => {
    const cmd = `${file} ${args.join(' ')}`;
    ran.push(cmd);
    if (o.missing) return Promise.resolve({ code: null, stdout: '', stderr: '', notFound: true });
    if (cmd === 'timedatectl show -p NTP -p NTPSynchronized')
      return Promise.resolve(ok(`NTP=${o.ntp ?? 'yes'}\nNTPSynchronized=${synced ? 'yes' : 'no'}\n`));
    if (cmd === 'timedatectl set-ntp true') return Promise.resolve(o.setNtp ?? ok());
    if (cmd === 'systemctl --no-ask-password restart systemd-timesyncd.service') {
      restarted = (o.restart ?? ok()).code === 0;
      return Promise.resolve(o.restart ?? ok());
    }
    if (cmd === 'timedatectl show -p NTPSynchronized --value') {
      if (restarted && o.syncAfterPolls !== undefined && polls++ >= o.syncAfterPolls) synced = true;
      return Promise.resolve(ok(synced ? 'yes\n' : 'no\n'));
    }
    if (cmd === 'timedatectl show-timesync -p ServerName --value')
      return Promise.resolve(ok('2.debian.pool.ntp.org\n'));
    return Promise.resolve({ code: 1, stdout: '', stderr: `unexpected ${cmd}` });
  };
  return { ran, run };
}

/** Runs a resync on the fake clock: advances it until the outcome is there. */
async function resync(sync: SystemdClockSync, clock: FakeClock): Promise<ResyncOutcome> {
  let out: ResyncOutcome | null = null;
  void sync.resync().then((r) => (out = r));
  for (let i = 0; i < 200 && out === null; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(500);
  }
  if (out === null) throw new Error('resync did not finish');
  return out;
}

const NO_FLAG = '/nonexistent/visittag-test/synchronized';

describe('systemd-timesyncd clock sync', () => {
  it('restarts timesyncd and waits until timedatectl says synchronised', async () => {
    const clock = new FakeClock();
    const os = fakeOs({ syncAfterPolls: 2 });
    const sync = new SystemdClockSync({ clock, run: os.run, flagFile: NO_FLAG, waitMs: 10_000 });
    expect(await resync(sync, clock)).toEqual({
      ok: true,
      synced: true,
      detail: 'clock synchronised by systemd-timesyncd from 2.debian.pool.ntp.org',
    });
    expect(os.ran.slice(0, 2)).toEqual([
      'timedatectl show -p NTP -p NTPSynchronized',
      'systemctl --no-ask-password restart systemd-timesyncd.service',
    ]);
    expect(os.ran.filter((c) => c.endsWith('NTPSynchronized --value'))).toHaveLength(3);
    expect(sync.synced()).toBe(true); // the cached state follows at once
  });

  it('switches NTP on when it is off; says what to do when that is not allowed', async () => {
    const clock = new FakeClock();
    const on = fakeOs({ ntp: 'no', syncAfterPolls: 0 });
    expect(
      await resync(new SystemdClockSync({ clock, run: on.run, flagFile: NO_FLAG }), clock),
    ).toMatchObject({ ok: true });
    expect(on.ran).toContain('timedatectl set-ntp true');

    const denied = fakeOs({
      ntp: 'no',
      setNtp: { code: 1, stdout: '', stderr: 'Failed to set ntp: Access denied\n' },
    });
    const out = await resync(new SystemdClockSync({ clock, run: denied.run, flagFile: NO_FLAG }), clock);
    expect(out).toEqual({
      ok: false,
      synced: false,
      reason:
        'NTP is switched off and the service may not switch it on (Failed to set ntp: Access denied): run "sudo timedatectl set-ntp true" on the reader',
    });
    expect(denied.ran).not.toContain('systemctl --no-ask-password restart systemd-timesyncd.service');
  });

  it('a refused restart names the polkit rule; a missing unit or timedatectl says what to install', async () => {
    const clock = new FakeClock();
    const refused = fakeOs({
      restart: {
        code: 1,
        stdout: '',
        stderr: 'Failed to restart systemd-timesyncd.service: Interactive authentication required.\n',
      },
    });
    const r1 = await resync(new SystemdClockSync({ clock, run: refused.run, flagFile: NO_FLAG }), clock);
    expect(r1.ok).toBe(false);
    expect(!r1.ok && r1.reason).toMatch(
      /^not allowed to restart systemd-timesyncd .*polkit rule of docs\/technician\.md/,
    );

    const noUnit = fakeOs({
      restart: {
        code: 5,
        stdout: '',
        stderr: 'Failed to restart systemd-timesyncd.service: Unit systemd-timesyncd.service not found.\n',
      },
    });
    const r2 = await resync(new SystemdClockSync({ clock, run: noUnit.run, flagFile: NO_FLAG }), clock);
    expect(!r2.ok && r2.reason).toMatch(/not installed .*sudo apt install systemd-timesyncd$/);

    const bare = fakeOs({ missing: true });
    const r3 = await resync(new SystemdClockSync({ clock, run: bare.run, flagFile: NO_FLAG }), clock);
    expect(!r3.ok && r3.reason).toMatch(/^timedatectl not found/);
    for (const r of [r1, r2, r3]) expect(!r.ok && r.reason.length).toBeLessThanOrEqual(200);
  });

  it('no time server within the wait: failed, with the network fix, and synced() says unsynced', async () => {
    const clock = new FakeClock();
    const os = fakeOs({}); // never syncs
    const sync = new SystemdClockSync({
      clock,
      run: os.run,
      flagFile: NO_FLAG,
      waitMs: 5_000,
      pollMs: 1_000,
    });
    const out = await resync(sync, clock);
    expect(out).toEqual({
      ok: false,
      synced: false,
      reason:
        'systemd-timesyncd restarted but no time server answered within 5 s: let UDP port 123 out, or set NTP= in /etc/systemd/timesyncd.conf',
    });
    expect(os.ran.filter((c) => c.endsWith('NTPSynchronized --value'))).toHaveLength(5);
    expect(sync.synced()).toBe(false);
  });
});

/** A fake OS clock sync: the test decides the outcome. */
class FakeClockSync implements ClockSync {
  isSynced = false;
  next: ResyncOutcome = { ok: true, synced: true, detail: 'clock synchronised (fake)' };
  calls = 0;
  synced(): boolean {
    return this.isSynced;
  }
  resync(): Promise<ResyncOutcome> {
    this.calls++;
    this.isSynced = this.next.synced;
    return Promise.resolve(this.next);
  }
}

describe('resync-clock command through MQTT', () => {
  it('answers ok with the new sync state, or failed with the reason; the status carries the clock state', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const net = new BrokerAndPeer();
    await net.start();
    cleanups.push(() => net.close());
    await net.bringUp();
    const peer = net.peer;
    if (!peer) throw new Error('no peer');
    const results: CommandResult[] = [];
    const statuses: Status[] = [];
    await peer.subscribeAsync(topics.commandResults('reader-1'), { qos: 1 });
    await peer.subscribeAsync(topics.status('reader-1'), { qos: 1 });
    peer.on('message', (topic, payload) => {
      if (topic === topics.commandResults('reader-1')) {
        const d = decode('command-results', 'reader-1', payload);
        if (d.ok) results.push(d.value);
      } else if (topic === topics.status('reader-1')) {
        const d = decode('status', 'reader-1', payload);
        if (d.ok) statuses.push(d.value);
      }
    });
    const sync = new FakeClockSync();
    const device = createDevice({
      config: settings(dir, { mqttUrl: net.url, uplink: { backoff: { baseMs: 20, capMs: 200 } } }),
      logger: silentLogger,
      cardReader: new SimulatedCardReader(),
      feedback: new SimulatedFeedback(),
      clockSync: sync,
    });
    cleanups.push(() => device.stop());
    await device.start();
    await waitFor(() => statuses.some((s) => s.state === 'online'), 10_000, 'online status');
    const first = statuses.at(-1);
    expect(first?.state === 'online' && first.clock).toEqual({ synced: false, source: 'none' });
    expect(first?.state === 'online' && first.faults).toContain('clock-unsynced');

    const send = (commandId: string) =>
      peer.publish(
        topics.commands('reader-1'),
        encode('commands', {
          schemaVersion: 1,
          readerId: 'reader-1',
          commandId,
          kind: 'resync-clock',
          issuedAt: Date.now(),
          serverTimeMs: Date.now(),
        }),
        { qos: 1 },
      );
    send('cmd-sync-1');
    await waitFor(() => results.length === 1, 10_000, 'result 1');
    expect(results[0]).toMatchObject({
      commandId: 'cmd-sync-1',
      status: 'ok',
      detail: 'clock synchronised (fake)',
      clock: { synced: true, source: 'ntp', lastResync: { ok: true, detail: 'clock synchronised (fake)' } },
    });
    await waitFor(
      () => statuses.some((s) => s.state === 'online' && s.clock.synced && s.clock.lastResync?.ok === true),
      10_000,
      'status after resync',
    );
    const after = statuses.at(-1);
    expect(after?.state === 'online' && after.faults).not.toContain('clock-unsynced');

    sync.next = { ok: false, synced: false, reason: 'no time server answered: let UDP port 123 out' };
    send('cmd-sync-2');
    send('cmd-sync-2'); // a redelivery is not run twice
    await waitFor(() => results.length >= 2, 10_000, 'result 2');
    expect(results[1]).toMatchObject({
      commandId: 'cmd-sync-2',
      status: 'failed',
      detail: 'no time server answered: let UDP port 123 out',
      clock: { synced: false, source: 'none', lastResync: { ok: false } },
    });
    await waitFor(
      () => statuses.some((s) => s.state === 'online' && s.clock.lastResync?.ok === false),
      10_000,
      'status after failed resync',
    );
    expect(sync.calls).toBe(2);
    expect(device.status().clock).toMatchObject({ synced: false, lastResync: { ok: false } });
  }, 30_000);
});
