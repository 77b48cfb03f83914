import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { sleep } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { ClockSync, ResyncOutcome } from '../ports/clock-sync.js';

/** Result of one OS command. `notFound`: the program is not installed. */
export interface CommandOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
  notFound?: boolean;
}

export type RunCommand = (file: string, args: string[], timeoutMs: number) => Promise<CommandOutcome>;

export interface SystemdClockSyncOptions {
  clock: Clock;
  /** Runs an OS command (default: execFile with LC_ALL=C); tests inject a fake. */
  run?: RunCommand;
  /** systemd-timesyncd's "synchronised" flag file. */
  flagFile?: string;
  /** How long resync waits for a time server (default 30 s) and how often it looks (default 1 s). */
  waitMs?: number;
  pollMs?: number;
  /** synced() asks timedatectl at most this often, in the background (default 60 s). */
  refreshMs?: number;
}

const TIMESYNCD = 'systemd-timesyncd.service';

/** Runs a command without a shell; never rejects. */
export const execCommand: RunCommand = (file, args, timeoutMs) =>
  new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (e && e.code === 'ENOENT') {
          resolve({ code: null, stdout: '', stderr: '', notFound: true });
          return;
        }
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        resolve({ code, stdout, stderr: stderr || (e && code === null ? e.message : '') });
      },
    );
  });

/** `Key=value` lines of `timedatectl show`. */
function parseShow(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

/** The first meaningful line of a command's error output, short. */
function why(o: CommandOutcome, max = 80): string {
  const line = (o.stderr || o.stdout).split('\n').find((l) => l.trim()) ?? `exit code ${o.code ?? '?'}`;
  return line.trim().slice(0, max);
}

const fail = (synced: boolean, reason: string): ResyncOutcome => ({
  ok: false,
  synced,
  reason: reason.slice(0, 200),
});

/**
 * Clock sync through systemd-timesyncd (Raspberry Pi OS, Debian): the sync state from timesyncd's flag
 * file or `timedatectl show`; a resync switches NTP on if it is off, restarts systemd-timesyncd (which
 * makes it query its time server now) and waits until timedatectl reports the clock synchronised.
 * The service user needs a polkit rule to restart the unit (docs/technician.md).
 */
export class SystemdClockSync implements ClockSync {
  private readonly run: RunCommand;
  private cached = false;
  private checkedAt = -Infinity;
  private checking = false;
  private inFlight: Promise<ResyncOutcome> | null = null;

  constructor(private readonly o: SystemdClockSyncOptions) {
    this.run = o.run ?? execCommand;
  }

  synced(): boolean {
    const now = this.o.clock.monotonic();
    if (now - this.checkedAt >= (this.o.refreshMs ?? 60_000)) {
      this.checkedAt = now;
      this.refresh();
    }
    return this.cached;
  }

  resync(): Promise<ResyncOutcome> {
    this.inFlight ??= this.doResync().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private refresh(): void {
    if (this.checking) return;
    try {
      if (existsSync(this.o.flagFile ?? '/run/systemd/timesync/synchronized')) {
        this.cached = true;
        return;
      }
    } catch {
      // fall through to timedatectl
    }
    this.checking = true;
    void this.ntpSynchronized().then((s) => {
      this.checking = false;
      this.cached = s;
    });
  }

  private async ntpSynchronized(): Promise<boolean> {
    const r = await this.run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], 5_000);
    return r.code === 0 && r.stdout.trim() === 'yes';
  }

  private async doResync(): Promise<ResyncOutcome> {
    const show = await this.run('timedatectl', ['show', '-p', 'NTP', '-p', 'NTPSynchronized'], 5_000);
    if (show.notFound) {
      return fail(
        false,
        'timedatectl not found: this system has no systemd time sync (on a Pi: sudo apt install systemd-timesyncd)',
      );
    }
    if (show.code !== 0) {
      return fail(false, `timedatectl cannot read the clock state (${why(show)}): is systemd running?`);
    }
    const before = parseShow(show.stdout);
    const wasSynced = before.get('NTPSynchronized') === 'yes';
    if (before.get('NTP') !== 'yes') {
      const on = await this.run('timedatectl', ['set-ntp', 'true'], 10_000);
      if (on.code !== 0) {
        return fail(
          wasSynced,
          `NTP is switched off and the service may not switch it on (${why(on)}): run "sudo timedatectl set-ntp true" on the reader`,
        );
      }
    }
    const restart = await this.run('systemctl', ['--no-ask-password', 'restart', TIMESYNCD], 15_000);
    if (restart.notFound) return fail(wasSynced, 'systemctl not found: this system does not run systemd');
    if (restart.code !== 0) {
      const msg = why(restart);
      const full = why(restart, 1_000);
      if (/not (be )?found|no such unit/i.test(full)) {
        return fail(
          wasSynced,
          `systemd-timesyncd is not installed (${msg}): sudo apt install systemd-timesyncd`,
        );
      }
      if (/access denied|authenticat|not authorized|permission|interactive/i.test(full)) {
        return fail(
          wasSynced,
          `not allowed to restart systemd-timesyncd (${msg}): add the polkit rule of docs/technician.md step 2`,
        );
      }
      return fail(
        wasSynced,
        `restarting systemd-timesyncd failed (${msg}): see journalctl -u systemd-timesyncd`,
      );
    }
    const waitMs = this.o.waitMs ?? 30_000;
    const pollMs = this.o.pollMs ?? 1_000;
    for (let waited = 0; waited < waitMs; waited += pollMs) {
      await sleep(this.o.clock, pollMs);
      if (await this.ntpSynchronized()) {
        this.cached = true;
        this.checkedAt = this.o.clock.monotonic();
        const server = await this.run('timedatectl', ['show-timesync', '-p', 'ServerName', '--value'], 5_000);
        const name = server.code === 0 ? server.stdout.trim().slice(0, 60) : '';
        return {
          ok: true,
          synced: true,
          detail: `clock synchronised by systemd-timesyncd${name ? ` from ${name}` : ''}`,
        };
      }
    }
    this.cached = false;
    this.checkedAt = this.o.clock.monotonic();
    return fail(
      false,
      `systemd-timesyncd restarted but no time server answered within ${Math.round(waitMs / 1000)} s: let UDP port 123 out, or set NTP= in /etc/systemd/timesyncd.conf`,
    );
  }
}

export function createSystemdClockSync(opts: SystemdClockSyncOptions): SystemdClockSync {
  return new SystemdClockSync(opts);
}
