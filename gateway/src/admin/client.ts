import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewaySettings } from '../config.js';

/**
 * The CLI's way to the running gateway's admin API (gateway/main.ts, gateway/src/fleet/cli.ts).
 *
 * Finding it: `visittag-gateway run` writes `<dataDir>/admin-endpoint.json` (`{ pid, adminUrl }`) once it
 * listens and removes it when it stops; a file whose process is gone is ignored. Without that file the
 * configured `admin.host:admin.port` is tried (not when the port is 0: nothing to find there).
 * The bearer token is `admin.token` from the same config; it is never printed.
 */

export const ENDPOINT_FILE = 'admin-endpoint.json';

export interface AdminEndpoint {
  url: string;
  /** Where the URL came from (named in messages). */
  source: 'runtime file' | 'config';
}

export interface AdminRequestSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
}

export type AdminCallResult =
  | { kind: 'ok'; url: string; status: number; body: unknown }
  /** No gateway listens for this config/data dir (nothing found, or the connection was refused). */
  | { kind: 'not-running'; detail: string }
  /** The gateway answered with an error, or could not be asked: `message` says what to do. */
  | { kind: 'failed'; message: string };

export interface AdminClientOptions {
  /** Path of the config file (named in messages). */
  configFile: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Called by `visittag-gateway run` once the gateway is started. */
export function writeAdminEndpoint(dataDir: string, adminUrl: string, pid = process.pid): void {
  const file = join(dataDir, ENDPOINT_FILE);
  const tmp = `${file}.${pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ pid, adminUrl })}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Called by `visittag-gateway run` after the gateway stopped; leaves another process's file alone. */
export function removeAdminEndpoint(dataDir: string, pid = process.pid): void {
  const found = readEndpointFile(dataDir);
  if (found && found.pid === pid) rmSync(join(dataDir, ENDPOINT_FILE), { force: true });
}

function readEndpointFile(dataDir: string): { pid: number; adminUrl: string } | null {
  let raw: string;
  try {
    raw = readFileSync(join(dataDir, ENDPOINT_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(raw) as { pid?: unknown; adminUrl?: unknown };
    if (typeof v.pid !== 'number' || typeof v.adminUrl !== 'string') return null;
    return { pid: v.pid, adminUrl: v.adminUrl };
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The admin URL of the gateway running for this config, or null when there is none to try. */
export function locateGateway(config: GatewaySettings): AdminEndpoint | null {
  const file = readEndpointFile(config.dataDir);
  if (file && alive(file.pid)) return { url: file.adminUrl, source: 'runtime file' };
  if (config.admin.port === 0) return null;
  const h = config.admin.host;
  const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return { url: `http://${host}:${config.admin.port}`, source: 'config' };
}

function refusedConnection(e: unknown): boolean {
  const codes: unknown[] = [];
  const cause = (e as { cause?: { code?: unknown; errors?: { code?: unknown }[] } }).cause;
  codes.push(cause?.code);
  for (const x of cause?.errors ?? []) codes.push(x.code);
  return codes.includes('ECONNREFUSED');
}

function errorText(body: unknown, status: number): string {
  if (body && typeof body === 'object') {
    const b = body as { error?: unknown; detail?: unknown; message?: unknown };
    const parts = [b.error, b.detail ?? b.message].filter((x): x is string => typeof x === 'string');
    if (parts.length) return parts.join(': ');
  }
  return `HTTP ${status}`;
}

/** One admin API call to the running gateway; never throws. */
export async function callRunningGateway(
  config: GatewaySettings,
  req: AdminRequestSpec,
  opts: AdminClientOptions,
): Promise<AdminCallResult> {
  const ep = locateGateway(config);
  if (!ep) {
    return { kind: 'not-running', detail: `no ${ENDPOINT_FILE} in ${config.dataDir} and admin.port is 0` };
  }
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let res: Response;
  try {
    res = await doFetch(`${ep.url}${req.path}`, {
      method: req.method,
      headers: {
        authorization: `Bearer ${config.admin.token}`,
        ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    if (refusedConnection(e)) return { kind: 'not-running', detail: `nothing listens at ${ep.url}` };
    const why = (e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : errMsg(e);
    return {
      kind: 'failed',
      message:
        `cannot use the gateway admin API at ${ep.url} (from the ${ep.source}): ${why}. Nothing was confirmed: ` +
        'check the gateway (visittag-gateway status, journalctl -u visittag-gateway) and run the command again.',
    };
  }
  const text = await res.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? (JSON.parse(text) as unknown) : null;
  } catch {
    body = text;
  }
  if (res.ok) return { kind: 'ok', url: ep.url, status: res.status, body };
  const at = `the running gateway at ${ep.url}`;
  if (res.status === 401 || res.status === 403) {
    return {
      kind: 'failed',
      message:
        `${at} refused the admin token from ${opts.configFile} (HTTP ${res.status}); nothing was changed. ` +
        `Fix: admin.token in ${opts.configFile} must be the token the gateway was started with ` +
        '(after changing it, restart the gateway: systemctl restart visittag-gateway).',
    };
  }
  const error = errorText(body, res.status);
  if (res.status === 404 && error === 'not found') {
    return {
      kind: 'failed',
      message:
        `${at} has no route for ${req.method} ${req.path} (an older gateway version?); ` +
        'nothing was changed. Fix: restart the gateway with this version.',
    };
  }
  if (res.status >= 500) {
    return {
      kind: 'failed',
      message: `${at} failed (HTTP ${res.status}: ${error}); see its log (journalctl -u visittag-gateway).`,
    };
  }
  return { kind: 'failed', message: `refused by ${at} (HTTP ${res.status}): ${error}` };
}

const errMsg = (e: unknown): string => {
  const cause = (e as { cause?: { message?: unknown } }).cause;
  const m = (e as Error).message;
  return typeof cause?.message === 'string' ? `${m} (${cause.message})` : m;
};

type Out = (line: string) => void;

export interface LiveChange {
  config: GatewaySettings;
  configFile: string;
  /** The admin API call that makes the change in the running gateway. */
  request: AdminRequestSpec;
  /** Output lines once the running gateway made the change. */
  live: (body: unknown) => string[];
  /** Makes the change in the database when no gateway runs (throws on refusal); output lines. */
  offline: () => Promise<string[]>;
  /** What the fallback did, after "gateway not running: " (e.g. "revoked in the database; …"). */
  offlineNote: string;
  out: Out;
  err: Out;
  fetch?: typeof fetch;
}

/**
 * A registry change the running gateway must act on at once (revoke: drop the connection): made through
 * its admin API; when no gateway runs, in the database (said so in the output). An error answer (token,
 * 4xx) is printed and exits 1, never falling back.
 */
export async function applyLiveOrOffline(c: LiveChange): Promise<number> {
  const r = await callRunningGateway(c.config, c.request, {
    configFile: c.configFile,
    ...(c.fetch ? { fetch: c.fetch } : {}),
  });
  switch (r.kind) {
    case 'ok':
      for (const line of c.live(r.body)) c.out(line);
      return 0;
    case 'failed':
      c.err(r.message);
      return 1;
    case 'not-running': {
      let lines: string[];
      try {
        lines = await c.offline();
      } catch (e) {
        c.err((e as Error).message);
        return 1;
      }
      for (const line of lines) c.out(line);
      c.out(`gateway not running: ${c.offlineNote}`);
      return 0;
    }
  }
}
