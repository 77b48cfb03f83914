import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { parseGatewaySettings, type GatewaySettings } from '../../gateway/src/config.js';
import {
  decode,
  encode,
  topics,
  type Ack,
  type EventBatch,
  type PayloadInputOf,
  type TapEvent,
} from '../../protocol/index.js';

export const silent = pino({ level: 'silent' });
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const PASSWORD = 'reader-password-0123456789-abcdef';

export function tempDir(prefix = 'vt-gw-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): GatewaySettings {
  const parsed = parseGatewaySettings({
    dataDir,
    fleetKey: 'test-fleet-key-0123456789',
    mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    ingest: { groupCommitMs: 5, groupCommitMax: 100 },
    ...overrides,
  });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.config;
}

export async function startGateway(
  dataDir: string,
  overrides: Record<string, unknown> = {},
): Promise<Gateway> {
  const gw = createGateway({ config: testConfig(dataDir, overrides), logger: silent });
  trackDataDir(gw, dataDir);
  await gw.start();
  return gw;
}

const dataDirs = new WeakMap<Gateway, string>();
const peeks = new WeakMap<Gateway, Database.Database>();

/** Remembers where `gw` keeps its database, for `dbOf` (startGateway does it itself). */
export function trackDataDir(gw: Gateway, dataDir: string): void {
  dataDirs.set(gw, dataDir);
}

/**
 * A read-only connection of the TEST to the gateway's SQLite file, to inspect rows the API does not
 * show (the gateway itself hands out no database handle). Sees every committed transaction.
 */
export function dbOf(gw: Gateway, mode: 'read' | 'write' = 'read'): Database.Database {
  // A writable connection (a test proving a trigger refuses writes): not cached, the caller closes it.
  if (mode === 'write') return new Database(join(dataDirs.get(gw) ?? gw.dataDir, 'gateway.db'));
  let db = peeks.get(gw);
  if (!db) {
    db = new Database(join(dataDirs.get(gw) ?? gw.dataDir, 'gateway.db'), { readonly: true });
    peeks.set(gw, db);
  }
  return db;
}

/** A card reference derived from a small number (valid `c1_` pseudonym shape). */
export const card = (n: number): string => `c1_${n.toString(16).padStart(32, '0')}`;

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

export function tapEvent(readerId: string, seq: number, overrides: Partial<TapEvent> = {}): TapEvent {
  return {
    readerId,
    seq,
    eventId: `${readerId}-e${seq}`,
    card: card((seq % 7) + 1),
    decision: 'start',
    visitId: `${readerId}-v${seq}`,
    time: { wallMs: T0 + seq * 1000, bootId: 'boot-1', monoMs: seq * 1000, synced: true },
    ...overrides,
  };
}

export function batchOf(readerId: string, seqs: readonly number[]): PayloadInputOf<'events'> {
  return {
    schemaVersion: 1,
    readerId,
    sentAt: { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true },
    events: seqs.map((s) => tapEvent(readerId, s)),
  } satisfies EventBatch;
}

export async function connectReader(
  port: number,
  readerId: string,
  password = PASSWORD,
  extra: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: readerId,
    username: readerId,
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  });
}

/** Connects expecting refusal; resolves with the error message. */
export async function connectRefused(
  port: number,
  opts: mqtt.IClientOptions,
): Promise<{ refused: boolean; message: string }> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  try {
    return await new Promise((resolve) => {
      c.once('connect', () => resolve({ refused: false, message: 'connected' }));
      c.once('error', (err) => resolve({ refused: true, message: err.message }));
      c.once('close', () => resolve({ refused: true, message: 'closed' }));
    });
  } finally {
    c.end(true);
  }
}

/** Collects acks for one reader. */
export class AckCollector {
  readonly acks: Ack[] = [];
  private constructor(private readonly client: MqttClient) {}

  static async attach(client: MqttClient, readerId: string): Promise<AckCollector> {
    const c = new AckCollector(client);
    client.on('message', (topic, payload) => {
      if (topic !== topics.acks(readerId)) return;
      const d = decode('acks', readerId, payload);
      if (d.ok) c.acks.push(d.value);
    });
    await client.subscribeAsync(topics.acks(readerId), { qos: 1 });
    return c;
  }

  get last(): Ack | undefined {
    return this.acks[this.acks.length - 1];
  }

  async waitFor(pred: (a: Ack) => boolean, timeoutMs = 10_000): Promise<Ack> {
    const found = await waitUntil(() => this.acks.find(pred), timeoutMs);
    return found;
  }

  publish(readerId: string, batch: PayloadInputOf<'events'>): Promise<unknown> {
    return this.client.publishAsync(topics.events(readerId), encode('events', batch), { qos: 1 });
  }
}

/** Polls `fn` until it returns a truthy value; bounded. */
export async function waitUntil<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function adminGet(
  gw: Gateway,
  path: string,
  token: string | null = ADMIN_TOKEN,
): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body, text };
}

export function storedSeqs(gw: Gateway, readerId: string): number[] {
  return dbOf(gw)
    .prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq')
    .pluck()
    .all(readerId) as number[];
}
