import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, parseDeviceSettings, resolveBeside } from '../config.js';
import { serviceRunning } from '../selftest/checks.js';
import { exchangeCode } from './exchange.js';
import { archiveJournal, inspectJournal } from './journal-check.js';
import { plainRemoteBroker } from './plain.js';

export interface ProvisionOptions {
  gatewayUrl: string;
  code: string;
  configPath: string;
  /** Journal directory when the config file does not exist yet (default /var/lib/visittag). */
  dataDir?: string;
  readerDriver?: 'simulated' | 'nfc-pcsc';
  feedbackDriver?: 'console' | 'simulated' | 'reader-led';
  forceNewIdentity?: boolean;
  /** Accept an http:// gateway address (closed test networks only: everything travels in clear). */
  allowPlainHttp?: boolean;
  /** Accept a plain mqtt:// (or ws://) broker (closed test networks only). */
  allowPlainMqtt?: boolean;
  /** chown the config file to this user (the service user); default "visittag" when run as root and it exists. */
  owner?: string;
  fetch?: typeof fetch;
  now?: () => Date;
}

export type ProvisionResult =
  { ok: true; lines: string[]; readerId: string } | { ok: false; exitCode: number; lines: string[] };

const fail = (exitCode: number, ...lines: string[]): ProvisionResult => ({ ok: false, exitCode, lines });

function readExisting(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * `visittag-device provision`: exchange a one-time code for this reader's identity and credentials,
 * write the config file (0600, atomically), and keep any journal with unacknowledged events.
 */
export async function provision(o: ProvisionOptions): Promise<ProvisionResult> {
  const existing = readExisting(o.configPath);
  // --data-dir is relative to the current directory; a dataDir already in the config is relative to
  // the config file (as `run` reads it). The config gets the absolute path.
  const dataDir =
    o.dataDir !== undefined
      ? resolve(o.dataDir)
      : typeof existing?.dataDir === 'string'
        ? resolveBeside(o.configPath, existing.dataDir)
        : '/var/lib/visittag';
  const journal = inspectJournal(dataDir);
  const oldId =
    (typeof existing?.readerId === 'string' ? existing.readerId : null) ?? journal?.eventsReaderId ?? null;
  const pid = oldId ? serviceRunning(oldId) : null;
  if (pid !== null) {
    return fail(
      4,
      `REFUSED: visittag-device is running (pid ${pid}) and holds the journal.`,
      'Fix: sudo systemctl stop visittag-device, provision, then sudo systemctl start visittag-device.',
      'Nothing was changed; the code is still valid.',
    );
  }
  const ask = {
    gatewayUrl: o.gatewayUrl,
    code: o.code,
    hostname: hostname(),
    ...(o.fetch ? { fetch: o.fetch } : {}),
    ...(o.allowPlainHttp ? { allowPlainHttp: true } : {}),
  };

  // 1. Which reader is this code for, and which broker? (does not use the code up)
  const preview = await exchangeCode({ ...ask, preview: true });
  if (!preview.ok) return refused(preview);
  const newId = preview.response.readerId;
  const plainBroker = (url: string | undefined) => (url && !o.allowPlainMqtt ? plainMqtt(url) : null);
  const plainAhead = plainBroker(preview.response.mqttUrl);
  if (plainAhead) return fail(2, ...plainAhead, 'Nothing was written; the code is still valid.');
  const identityChanges = journal !== null && oldId !== newId;
  if (identityChanges && journal.unacked > 0 && !o.forceNewIdentity) {
    return fail(
      3,
      `REFUSED: this device still holds ${journal.unacked} unsent event(s) of reader "${oldId ?? 'unknown'}" in ${journal.path},`,
      `but the code is for reader "${newId}". Those events belong to the old id: sent under the new id they`,
      'would be refused or attributed to the wrong home.',
      'Fix: connect the device to the network and let it deliver them first (`visittag-device status` shows',
      `the queue), or ask the coordinator for a code that re-enrolls "${oldId ?? 'the old reader'}" (readers enroll --reader ${oldId ?? 'ID'}),`,
      'or pass --force-new-identity: the old journal is then kept aside (renamed, not deleted) for recovery.',
      'Nothing was changed; the code is still valid.',
    );
  }

  // 2. Use the code.
  const ex = await exchangeCode({ ...ask, preview: false });
  if (!ex.ok) return refused(ex);
  const r = ex.response;
  if (!r.mqtt || (!r.fleetKey && !r.cardKeys))
    return fail(1, 'the gateway sent no credentials (gateway bug); nothing was written');
  const plain = plainBroker(r.mqtt.url);
  if (plain) return fail(2, ...plain, 'Nothing was written; ask the coordinator for a new code.');
  const caPath = join(dirname(resolve(o.configPath)), 'broker-ca.pem');
  const caProblem = r.mqtt.ca !== undefined ? pemProblem(r.mqtt.ca) : null;
  if (caProblem) {
    return fail(
      1,
      `REFUSED (bad-ca): the broker CA the gateway sent cannot be read (${caProblem}); nothing was written`,
      'Fix: the gateway operator must check mqtt.tls.caFile (or mqtt.caFile); then ask for a new code.',
    );
  }

  const oldMqtt: Record<string, unknown> =
    existing?.mqtt && typeof existing.mqtt === 'object'
      ? { ...(existing.mqtt as Record<string, unknown>) }
      : {};
  // The CA comes with the credentials: a delivered one replaces ours, a stale one of ours is dropped.
  if (r.mqtt.ca !== undefined) oldMqtt.ca = caPath;
  else if (oldMqtt.ca === caPath) delete oldMqtt.ca;
  // --allow-plain-mqtt accepted a broker without TLS on another machine: `run` needs it said in the config too.
  if (plainRemoteBroker(r.mqtt.url)) oldMqtt.allowPlain = true;
  else delete oldMqtt.allowPlain;
  const next: Record<string, unknown> = {
    version: 1,
    ...(existing ?? {}),
    readerId: r.readerId,
    dataDir,
    // sealed scheme: the reader's own card key and the gateway's seal key replace the fleet key (undefined
    // drops a key the old config held)
    fleetKey: r.cardKeys ? undefined : r.fleetKey,
    cardKeys: r.cardKeys,
    mqtt: { ...oldMqtt, url: r.mqtt.url, username: r.mqtt.username, password: r.mqtt.password },
    ...(o.readerDriver
      ? { reader: { driver: o.readerDriver } }
      : existing?.reader
        ? {}
        : { reader: { driver: 'nfc-pcsc' } }),
    ...(o.feedbackDriver ? { feedback: { driver: o.feedbackDriver } } : {}),
  };
  try {
    parseDeviceSettings(next);
  } catch (err) {
    const detail = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
    return fail(
      78,
      `the resulting config is invalid, nothing was written: ${detail}`,
      `Fix: correct ${o.configPath} (or move it away) and ask for a new code.`,
    );
  }
  const lines: string[] = [];
  if (identityChanges) {
    const stamp = (o.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
    const moved = archiveJournal(dataDir, oldId ?? 'unknown', stamp);
    lines.push(
      `journal of "${oldId ?? 'unknown'}" (${journal.unacked} unsent event(s)) kept aside as ${moved}; the new identity starts a fresh journal`,
    );
  } else if (journal) {
    lines.push(`journal kept: ${journal.unacked} unsent event(s) will be delivered with the new credentials`);
  }
  const owner = ownerUid(o.owner);
  if (r.mqtt.ca !== undefined) writeSecretFile(caPath, r.mqtt.ca, owner, 0o644);
  writeSecretFile(o.configPath, `${JSON.stringify(next, null, 2)}\n`, owner);
  lines.unshift(
    `provisioned as reader "${r.readerId}"${r.clientRef ? ` for client ${r.clientRef}` : ''}${r.label ? ` (${r.label})` : ''}`,
    `config written to ${o.configPath} (mode 0600; holds the reader password and ${r.cardKeys ? 'its own card key' : 'fleet key'})`,
    `broker: ${r.mqtt.url}${r.mqtt.ca !== undefined ? ` (trusting the CA the gateway sent: ${caPath})` : ''}`,
  );
  lines.push(`next: visittag-device selftest --config ${o.configPath}`);
  return { ok: true, lines, readerId: r.readerId };
}

/** Why a broker URL is refused without --allow-plain-mqtt (null: TLS). */
function plainMqtt(url: string): string[] | null {
  if (!/^(mqtt|ws|tcp):\/\//i.test(url)) return null;
  return [
    `REFUSED (plain-mqtt): the gateway hands out the broker ${url}, without TLS: taps, card pseudonyms and this reader's password would travel in clear.`,
    'Fix: the gateway operator turns on TLS for the broker (mqtt.tls in the gateway config, docs/security.md); only on a closed test network pass --allow-plain-mqtt.',
  ];
}

/** What is wrong with a delivered PEM CA bundle, or null when every certificate in it reads. */
function pemProblem(pem: string): string | null {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'no PEM certificate in it';
  for (const b of blocks) {
    try {
      if (new X509Certificate(b).raw.length === 0) return 'an empty certificate';
    } catch (err) {
      return (err as Error).message;
    }
  }
  return null;
}

function refused(e: { reason: string; message: string; fix: string }): ProvisionResult {
  const code =
    e.reason === 'unreachable' || e.reason === 'rate-limited' || e.reason === 'unavailable' ? 75 : 2;
  return fail(code, `REFUSED (${e.reason}): ${e.message}`, `Fix: ${e.fix}`, 'Nothing was written.');
}

/** uid/gid to chown to: the given user, else "visittag" when we are root and it exists. */
function ownerUid(user: string | undefined): { uid: number; gid: number } | null {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const name = user ?? (isRoot ? 'visittag' : undefined);
  if (!name) return null;
  try {
    const uid = Number(
      execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    );
    const gid = Number(
      execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    );
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
  } catch {
    if (user) throw new Error(`--owner ${user}: no such user`);
    return null;
  }
}

/** Write tmp (0600) → fsync → rename → fsync dir: never a half-written or world-readable config. */
function writeSecretFile(
  path: string,
  text: string,
  owner: { uid: number; gid: number } | null,
  mode = 0o600,
): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  if (owner) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // best effort
  }
}
