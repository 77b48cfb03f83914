import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSdNotifier } from '../../runtime/sd-notify.js';
import { silentLogger, tempDir, waitFor } from './helpers.js';

const cleanups: (() => void)[] = [];
const PATH = process.env.PATH;
afterEach(() => {
  process.env.PATH = PATH;
  for (const c of cleanups.splice(0)) c();
});

/** A stand-in `systemd-notify` on PATH that records its arguments. */
function fakeSystemdNotify(): { log: string } {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const log = join(dir, 'calls.log');
  const bin = join(dir, 'systemd-notify');
  writeFileSync(bin, `#!/bin/sh\necho "$*" >> ${log}\n`);
  chmodSync(bin, 0o755);
  process.env.PATH = `${dir}:${PATH ?? ''}`;
  return { log };
}

describe('systemd notify', () => {
  it('does nothing outside systemd', async () => {
    const { log } = fakeSystemdNotify();
    const sd = createSdNotifier(silentLogger, {});
    sd.ready();
    const stop = sd.startWatchdog(() => true);
    stop();
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(log)).toBe(false);
  });

  it('under systemd: ready, watchdog pings only while healthy, stopping; all naming our pid', async () => {
    const { log } = fakeSystemdNotify();
    let healthy = true;
    const sd = createSdNotifier(silentLogger, {
      NOTIFY_SOCKET: '/run/systemd/notify',
      WATCHDOG_USEC: '2000000',
    });
    sd.ready();
    const stop = sd.startWatchdog(() => healthy);
    cleanups.push(stop);
    await waitFor(
      () => existsSync(log) && readFileSync(log, 'utf8').includes('WATCHDOG=1'),
      10_000,
      'a ping',
    );
    healthy = false;
    stop();
    sd.stopping();
    await waitFor(() => readFileSync(log, 'utf8').includes('STOPPING=1'), 10_000, 'stopping');
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines[0]).toBe(`--pid=${process.pid} --ready`);
    expect(lines.every((l) => l.startsWith(`--pid=${process.pid} `))).toBe(true);
  });
});
