import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { decode, encode, topics } from '../../protocol/index.js';
import type { Clock, TapEvent, TimerHandle } from '../../protocol/index.js';
import { parseDeviceSettings } from '../../device/index.js';
import type { DeviceSettings, DeviceSettingsInput } from '../../device/index.js';

export const FLEET_KEY = 'test-fleet-key-0123456789abcdef';
export const silentLogger = pino({ level: 'silent' });

/**
 * A fresh temp dir. `ram: true` puts it on tmpfs (/dev/shm) where fsync is free: for tests of
 * throughput through the uplink, where per-commit fsync cost (~4 ms on this shared VM) is not what
 * is tested. Durability is tested on the real disk (crash test).
 */
export function tempDir(
  prefix = 'vt-device-',
  opts: { ram?: boolean } = {},
): { dir: string; cleanup: () => void } {
  const base = opts.ram && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function settings(
  dataDir: string,
  over: Partial<DeviceSettingsInput> & { mqttUrl?: string } = {},
): DeviceSettings {
  const { mqttUrl, ...rest } = over;
  return parseDeviceSettings({
    readerId: 'reader-1',
    dataDir,
    fleetKey: FLEET_KEY,
    mqtt: { url: mqttUrl ?? 'mqtt://127.0.0.1:1' },
    reader: { driver: 'simulated' },
    feedback: { driver: 'simulated' },
    logLevel: 'silent',
    ...rest,
  });
}

/** A manual clock: time moves only with advance(); timers fire in order. */
export class FakeClock implements Clock {
  wall: number;
  mono: number;
  private timers: { id: number; at: number; fn: () => void }[] = [];
  private nextId = 1;
  constructor(wall = Date.UTC(2026, 0, 5, 8, 0, 0), mono = 1_000) {
    this.wall = wall;
    this.mono = mono;
  }
  now(): number {
    return this.wall;
  }
  monotonic(): number {
    return this.mono;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, at: this.mono + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== (h as unknown as number));
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.mono + ms;
    for (let i = 0; i < 100_000; i++) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const t = this.timers[0];
      if (!t || t.at > end) break;
      this.timers.shift();
      this.wall += t.at - this.mono;
      this.mono = t.at;
      t.fn();
    }
    this.wall += end - this.mono;
    this.mono = end;
  }
}

/** Polls until `pred` holds (bounded: throws after `ms`). */
export async function waitFor(pred: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  for (let i = 0; ; i++) {
    if (pred()) return;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, i < 20 ? 5 : 20));
  }
}

/**
 * A broker on 127.0.0.1 port 0 that can be "down" (connections dropped) and a scripted gateway
 * peer: it subscribes to every reader's events, keeps them by seq (counting duplicates) and acks
 * the highest contiguous seq, unless told to drop acks.
 */
export class BrokerAndPeer {
  broker!: Aedes;
  server!: Server;
  port = 0;
  up = false;
  peer: MqttClient | null = null;
  readonly received = new Map<number, TapEvent>();
  readonly arrivalOrder: number[] = [];
  duplicates = 0;
  batches = 0;
  readonly batchFirstSeqs: number[] = [];
  acksSent = 0;
  dropAcks = 0;
  ackEnabled = true;
  private sockets = new Set<Socket>();
  private conns: { id: () => string; sock: Socket }[] = [];

  /** Kills a client's TCP connection from the broker side (the broker then publishes its will). */
  dropClient(clientId: string): boolean {
    // the newest live connection of that client: an earlier one (a connect the device gave up on under load) is dead
    const c = this.conns.filter((x) => x.id() === clientId && !x.sock.destroyed).at(-1);
    c?.sock.destroy();
    return c !== undefined;
  }

  async start(): Promise<void> {
    this.broker = await Aedes.createBroker();
    this.server = createServer((sock) => {
      if (!this.up) {
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      const client = this.broker.handle(sock);
      this.conns.push({ id: () => client.id, sock });
      sock.on('close', () => {
        this.sockets.delete(sock);
        this.conns = this.conns.filter((c) => c.sock !== sock);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get contiguous(): number {
    let n = 0;
    while (this.received.has(n + 1)) n++;
    return n;
  }

  /** Opens the broker and connects the gateway peer. */
  async bringUp(readerId = 'reader-1'): Promise<void> {
    this.up = true;
    const peer = connect(this.url, { clientId: 'gateway-peer', reconnectPeriod: 0 });
    peer.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      peer.once('connect', () => resolve());
      peer.once('error', reject);
    });
    await peer.subscribeAsync(topics.events(readerId), { qos: 1 });
    peer.on('message', (_topic, payload) => {
      const d = decode('events', readerId, payload);
      if (!d.ok) return;
      this.batches++;
      this.batchFirstSeqs.push(d.value.events[0]?.seq ?? 0);
      for (const e of d.value.events) {
        if (this.received.has(e.seq)) this.duplicates++;
        else {
          this.received.set(e.seq, e);
          this.arrivalOrder.push(e.seq);
        }
      }
      if (!this.ackEnabled) return;
      if (this.dropAcks > 0) {
        this.dropAcks--;
        return;
      }
      this.sendAck(readerId);
    });
    this.peer = peer;
  }

  sendAck(readerId = 'reader-1'): void {
    this.acksSent++;
    this.peer?.publish(
      topics.acks(readerId),
      encode('acks', { schemaVersion: 1, readerId, upTo: this.contiguous, rejected: [] }),
      { qos: 1 },
    );
  }

  async close(): Promise<void> {
    this.up = false;
    if (this.peer) await this.peer.endAsync(true).catch(() => undefined);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    await new Promise<void>((r) => this.broker.close(() => r()));
  }
}
