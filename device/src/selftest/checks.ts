import { execFile } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import type { Clock } from '../../../protocol/index.js';
import { statusFilePath } from '../cli/status-cmd.js';
import { loadMqtt } from '../core/load-mqtt.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when it failed. */
  fix?: string;
}

export const MIN_FREE_BYTES = 64 * 1024 * 1024;

/** Races a promise against the injected clock; resolves null on timeout. */
export function within<T>(clock: Clock, ms: number, p: Promise<T>): Promise<T | null> {
  return new Promise((resolve, reject) => {
    const h = clock.setTimeout(() => resolve(null), ms);
    p.then(
      (v) => {
        clock.clearTimeout(h);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(h);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The service holds the journal: the self-test must not run beside it. */
export function serviceRunning(readerId: string): number | null {
  for (const dir of [process.env.RUNTIME_DIRECTORY, '/run/visittag', tmpdir()]) {
    if (!dir) continue;
    const file = statusFilePath(dir, readerId);
    if (!existsSync(file)) continue;
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as { pid?: number; running?: boolean };
      if (!s.running || typeof s.pid !== 'number' || s.pid === process.pid) continue;
      process.kill(s.pid, 0);
      return s.pid;
    } catch {
      // stale file or dead pid
    }
  }
  return null;
}

export function checkStorage(dataDir: string): CheckResult {
  const name = 'storage writable with room';
  try {
    mkdirSync(dataDir, { recursive: true });
    const probe = join(dataDir, `.selftest-${process.pid}`);
    const fd = openSync(probe, 'w', 0o600);
    try {
      writeSync(fd, 'visittag selftest\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    unlinkSync(probe);
    const s = statfsSync(dataDir);
    const free = Number(s.bavail) * Number(s.bsize);
    const mb = Math.floor(free / 1024 / 1024);
    if (free < MIN_FREE_BYTES) {
      return {
        name,
        ok: false,
        detail: `${dataDir} is writable but only ${mb} MB are free`,
        fix: 'free space on the SD card (sudo journalctl --vacuum-size=50M; remove old files), at least 64 MB',
      };
    }
    return { name, ok: true, detail: `${dataDir} writable, ${mb} MB free` };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: `cannot write to ${dataDir}: ${(err as Error).message}`,
      fix: `create it and give it to the service user: sudo install -d -o visittag -g visittag ${dataDir}`,
    };
  }
}

/** systemd-timesyncd's flag file, else `timedatectl`. */
export async function checkClock(flagFile: string): Promise<CheckResult> {
  const name = 'clock synced';
  if (existsSync(flagFile)) return { name, ok: true, detail: `synchronised (${flagFile})` };
  const answer = await new Promise<string>((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 3_000 }, (err, out) =>
      resolve(err ? `error: ${err.message.split('\n')[0] ?? ''}` : out.trim()),
    );
  });
  if (answer === 'yes') return { name, ok: true, detail: 'synchronised (timedatectl)' };
  return {
    name,
    ok: false,
    detail: `not synchronised (timedatectl: ${answer || 'no'}); taps still register, their times are corrected later`,
    fix: 'connect to the network and enable NTP: sudo timedatectl set-ntp true; wait a minute and run the self-test again',
  };
}

/** A plain MQTT connect with the reader's own credentials (the precise refusal, if any). */
export async function checkGateway(
  clock: Clock,
  url: string,
  opts: IClientOptions,
  timeoutMs: number,
): Promise<CheckResult> {
  const name = 'gateway reachable, credentials accepted';
  const { connectAsync } = await loadMqtt();
  try {
    const c = await within(clock, timeoutMs, connectAsync(url, { ...opts, will: undefined }));
    if (!c) {
      return {
        name,
        ok: false,
        detail: `no answer from ${url} within ${timeoutMs} ms`,
        fix: 'check the network and mqtt.url; a firewall may block the MQTT port',
      };
    }
    await c.endAsync();
    return { name, ok: true, detail: `connected to ${url} as ${String(opts.username)}` };
  } catch (err) {
    const msg = (err as Error).message;
    const auth = /not authori[sz]ed|bad user ?name or password|identifier rejected/i.test(msg);
    return {
      name,
      ok: false,
      detail: `${url}: ${msg}`,
      fix: auth
        ? 'the gateway refused this reader\u2019s credentials (revoked or replaced): ask the coordinator for a new code and run visittag-device provision again'
        : 'check that the gateway runs and mqtt.url is right (ping the host; the port must be open)',
    };
  }
}
