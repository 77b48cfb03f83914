/**
 * The gateway under simulation: the real createGateway(), in this process on the virtual clock, or
 * (for SIGKILL faults) in a child process whose virtual clock the parent drives over IPC.
 */
import type { Logger } from 'pino';
import { GatewaySettingsSchema, createGateway } from '../gateway/index.js';
import type { Gateway } from '../gateway/index.js';
import type { VirtualClock } from './clock.js';

export interface GatewayHostParams {
  dataDir: string;
  fleetKey: string;
  adminToken: string;
  backendUrl: string;
  backendSecret: string;
  /**
   * One of several instances (`--store postgres --instances N`, ./gateway-cluster.ts): store on
   * PostgreSQL, readers on an external broker through an MQTT 5 shared subscription.
   */
  scaleOut?: { pgUrl: string; brokerUrl: string; username: string; password: string; clientId: string };
}

export interface GatewayHost {
  readonly mqttPort: number;
  readonly adminUrl: string;
  readonly alive: boolean;
  addReader(r: { readerId: string; password: string; clientRef: string }): Promise<void>;
  addCard(c: { cardRef: string; staffRef: string }): Promise<void>;
  /** GET on the admin API (with the token). */
  api<T>(path: string): Promise<T>;
  /** Tell the gateway about the new virtual time (child mode; in-process shares the clock). */
  tick(now: number): Promise<void> | undefined;
  /** Child mode only. */
  kill?(): Promise<void>;
  restart?(): Promise<void>;
  /** Several instances only: each takes the readers added elsewhere from PostgreSQL now. */
  syncReaders?(): Promise<void>;
  stop(): Promise<void>;
}

export function gatewaySettingsInput(p: GatewayHostParams) {
  return {
    dataDir: p.dataDir,
    fleetKey: p.fleetKey,
    mqtt: p.scaleOut
      ? {
          mode: 'external' as const,
          url: p.scaleOut.brokerUrl,
          username: p.scaleOut.username,
          password: p.scaleOut.password,
          clientId: p.scaleOut.clientId,
          protocolVersion: 5 as const,
          sharedGroup: 'visittag',
        }
      : {
          mode: 'embedded' as const,
          host: '127.0.0.1',
          port: 0,
          maxConnectionsPerSecond: 10_000,
          connectionBurst: 10_000,
          kdf: { logN: 10, r: 8, p: 1 },
        },
    ...(p.scaleOut ? { store: { engine: 'postgres' as const, url: p.scaleOut.pgUrl, poolMax: 4 } } : {}),
    admin: { host: '127.0.0.1', port: 0, token: p.adminToken },
    backend: {
      url: p.backendUrl,
      secret: p.backendSecret,
      timeoutMs: 10_000,
      batchMax: 100,
      backoff: { baseMs: 500, capMs: 30_000 },
    },
    ingest: { groupCommitMs: 10, groupCommitMax: 200 },
    logLevel: 'fatal' as const,
  };
}

export async function adminGet<T>(adminUrl: string, token: string, path: string): Promise<T> {
  const res = await fetch(new URL(path, adminUrl), { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`admin GET ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

export async function startInProcessGateway(opts: {
  params: GatewayHostParams;
  clock: VirtualClock;
  random: () => number;
  logger: Logger;
  /** Test hook: wrap the gateway's fetch (e.g. to observe deliveries). */
  fetch?: typeof fetch;
}): Promise<GatewayHost> {
  const config = GatewaySettingsSchema.parse(gatewaySettingsInput(opts.params));
  const gw: Gateway = createGateway({
    config,
    clock: opts.clock,
    random: opts.random,
    logger: opts.logger,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  await gw.start();
  let running = true;
  return {
    get mqttPort() {
      return gw.mqttPort ?? 0;
    },
    get adminUrl() {
      return gw.adminUrl;
    },
    get alive() {
      return running;
    },
    async addReader(r) {
      await gw.registry.addReader(r);
    },
    addCard(c) {
      gw.registry.addCard(c);
      return Promise.resolve();
    },
    api: (path) => adminGet(gw.adminUrl, opts.params.adminToken, path),
    tick: () => undefined,
    async stop() {
      if (!running) return;
      running = false;
      await gw.stop();
    },
  };
}
