import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

/**
 * systemd readiness and watchdog through `systemd-notify` (Node has no unix datagram sockets), the one helper
 * both the reader and the gateway use (CONTRIBUTING.md, "Lifecycle and one composition root"). Does nothing
 * outside systemd (no NOTIFY_SOCKET). Messages name our pid (`--pid`) so systemd attributes them to the service
 * even though a child process sends them (unit: NotifyAccess=all).
 */
export interface SdNotifier {
  ready(): void;
  stopping(): void;
  /**
   * Pings the watchdog at half of WATCHDOG_USEC while `healthy()` holds (always, when not given); returns a
   * stop function.
   */
  startWatchdog(healthy?: () => boolean): () => void;
}

export function createSdNotifier(logger: Logger, env: NodeJS.ProcessEnv = process.env): SdNotifier {
  const enabled = Boolean(env.NOTIFY_SOCKET);
  const send = (...args: string[]): void => {
    if (!enabled) return;
    execFile('systemd-notify', [`--pid=${process.pid}`, ...args], { timeout: 5_000 }, (err) => {
      if (err) logger.warn({ err: { message: err.message } }, 'systemd-notify failed');
    });
  };
  return {
    ready: () => send('--ready'),
    stopping: () => send('STOPPING=1'),
    startWatchdog: (healthy = () => true) => {
      const usec = Number(env.WATCHDOG_USEC);
      if (!enabled || !Number.isFinite(usec) || usec <= 0) return () => undefined;
      const t = setInterval(
        () => {
          if (healthy()) send('WATCHDOG=1');
        },
        Math.max(1_000, usec / 2_000),
      );
      t.unref();
      return () => clearInterval(t);
    },
  };
}
