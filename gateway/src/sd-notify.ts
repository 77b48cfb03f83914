import { execFile } from 'node:child_process';
import type pino from 'pino';

/**
 * systemd readiness and watchdog via `systemd-notify` (Node has no unix datagram sockets). Does
 * nothing unless NOTIFY_SOCKET is set, i.e. outside systemd. The unit sets NotifyAccess=all because
 * the message comes from a child process.
 */
export interface SdNotifier {
  ready(): void;
  stopping(): void;
  /** Starts watchdog pings at half of WATCHDOG_USEC; returns a stop function. */
  startWatchdog(): () => void;
}

export function createSdNotifier(logger: pino.Logger, env: NodeJS.ProcessEnv = process.env): SdNotifier {
  const enabled = Boolean(env.NOTIFY_SOCKET);
  const send = (...args: string[]) => {
    if (!enabled) return;
    execFile('systemd-notify', args, (err) => {
      if (err) logger.warn({ err: err.message }, 'systemd-notify failed');
    });
  };
  return {
    ready: () => send('--ready'),
    stopping: () => send('STOPPING=1'),
    startWatchdog: () => {
      const usec = Number(env.WATCHDOG_USEC);
      if (!enabled || !Number.isFinite(usec) || usec <= 0) return () => undefined;
      const t = setInterval(() => send('WATCHDOG=1'), Math.max(1000, usec / 2000));
      t.unref();
      return () => clearInterval(t);
    },
  };
}
