/**
 * Lightweight protocol clients (raw MQTT.js, one connection per reader): NOT full devices. Each keeps its
 * unacknowledged taps in memory, resends them after every (re)connect, deletes them only on the gateway's
 * app-level ack, and reconnects with capped exponential backoff + jitter like a device does.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { backoffDelay, decode, topics } from '../../protocol/index.js';
import { wallNow } from './stats.js';
import { TapSource, type TapEventInput } from './taps.js';
import { noNagle } from '../../device/src/core/no-nagle.js';

/** device/src/core/uplink.ts BUSY_RETRY_WINDOW_MS (not imported: the uplink module pulls in the device). */
const BUSY_RETRY_WINDOW_MS = 5_000;

export interface FleetOptions {
  url: string;
  readers: { readerId: string; password?: string; cardRef?: string }[];
  cardRefs: string[];
  batchSize: number;
  backoff: { baseMs: number; capMs: number };
  random: () => number;
  /** Subscribe to the reader's acks topic (gateway and glue); off for the raw relay baseline. */
  appAcks: boolean;
}

export class BenchReader {
  client: MqttClient | null = null;
  connected = false;
  ackedUpTo = 0;
  unacked: TapEventInput[] = [];
  attempts = 0;
  connects = 0;
  refusals = 0;
  /** Refusals that said the gateway is busy (CONNACK 3), each followed by a short retry. */
  busyRefusals = 0;
  private busy = false;
  /** MQTT connect timeout of the next attempts (`rearm` sets it: the storm row uses the device's). */
  connectTimeoutMs = 60_000;
  /** The current attempt's TCP connection is up (CONNECT sent), not yet answered: since when (wall ms). */
  private tcpUpAt: number | null = null;
  drainedAt: number | null = null;
  closing = false;
  private ackWaiters: { upTo: number; resolve: () => void }[] = [];
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly connectWaiters: (() => void)[] = [];
  readonly source: TapSource;

  constructor(
    readonly spec: { readerId: string; password?: string; cardRef?: string },
    private readonly opts: FleetOptions,
  ) {
    this.source = new TapSource(spec.readerId, spec.cardRef ? [spec.cardRef] : opts.cardRefs, opts.random);
  }

  connect(): void {
    if (this.closing) return;
    this.attempts++;
    const c = mqtt.connect(this.opts.url, {
      clientId: this.spec.readerId,
      username: this.spec.readerId,
      password: this.spec.password ?? 'bench-anonymous',
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      keepalive: 120,
      connectTimeout: this.connectTimeoutMs,
    });
    this.client = c;
    this.tcpUpAt = null;
    (c as unknown as { stream?: { once?: (ev: string, f: () => void) => void } }).stream?.once?.(
      'connect',
      () => {
        if (this.client === c) this.tcpUpAt = wallNow();
      },
    );
    c.on('connect', () => {
      noNagle(c); // as the device's uplink does (device/src/core/uplink.ts)
      this.attempts = 0;
      this.connects++;
      if (this.opts.appAcks) c.subscribe(topics.acks(this.spec.readerId), { qos: 1 });
      this.connected = true;
      for (const w of this.connectWaiters.splice(0)) w();
      this.flushUnacked();
    });
    c.on('message', (_topic, payload) => this.onAck(payload));
    c.on('error', (err) => {
      if ((err as { code?: unknown }).code === 3) this.busy = true;
    });
    c.on('close', () => {
      if (this.client === c) this.tcpUpAt = null;
      if (!this.connected) this.refusals++;
      this.connected = false;
      if (this.client !== c) return;
      c.removeAllListeners('close');
      c.end(true);
      this.client = null;
      if (this.closing) return;
      // like the device's uplink: a busy gateway's refusal (CONNACK 3) means retry soon, no back-off growth
      const { baseMs, capMs } = this.opts.backoff;
      const busy = this.busy;
      this.busy = false;
      if (busy) this.busyRefusals++;
      const delay = busy
        ? Math.round(
            baseMs / 2 + this.opts.random() * Math.max(0, Math.min(capMs, BUSY_RETRY_WINDOW_MS) - baseMs / 2),
          )
        : backoffDelay(this.attempts, { ...this.opts.backoff, random: this.opts.random });
      if (busy) this.attempts = Math.max(0, this.attempts - 1);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /**
   * Forgets the back-off grown during the current outage: a reader waiting to reconnect waits its first
   * back-off step again. The storm rows call it before each storm so that every storm starts from the same
   * state, however long the gateway before it took to stop.
   */
  rearm(connectTimeoutMs?: number): void {
    if (connectTimeoutMs !== undefined) this.connectTimeoutMs = connectTimeoutMs;
    if (this.connected || this.closing || this.client !== null) return;
    this.attempts = 0;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(
      () => this.connect(),
      backoffDelay(0, { ...this.opts.backoff, random: this.opts.random }),
    );
  }

  /**
   * Where this reader is (the storm row's timeline): connected; `tcp-up` (its TCP connection is up and its
   * CONNECT sent, no CONNACK yet; with the wait so far); `tcp-pending` (no TCP connection yet: a SYN not
   * answered, for instance one the gateway's kernel dropped); or `idle` (between attempts).
   */
  phase(): { phase: 'connected' | 'tcp-up' | 'tcp-pending' | 'idle'; waitMs?: number } {
    if (this.connected) return { phase: 'connected' };
    if (!this.client) return { phase: 'idle' };
    if (this.tcpUpAt === null) return { phase: 'tcp-pending' };
    return { phase: 'tcp-up', waitMs: wallNow() - this.tcpUpAt };
  }

  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((r) => this.connectWaiters.push(r));
  }

  private onAck(payload: Buffer): void {
    const d = decode('acks', this.spec.readerId, payload);
    if (!d.ok) return;
    const upTo = d.value.upTo;
    if (upTo <= this.ackedUpTo) return;
    this.ackedUpTo = upTo;
    this.unacked = this.unacked.filter((e) => e.seq > upTo);
    if (this.unacked.length === 0 && this.drainedAt === null) this.drainedAt = wallNow();
    this.ackWaiters = this.ackWaiters.filter((w) => {
      if (w.upTo > upTo) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once the app-level ack covers `seq`. */
  waitAck(seq: number): Promise<void> {
    if (this.ackedUpTo >= seq) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push({ upTo: seq, resolve }));
  }

  /** Queues new taps (journalled on a device) and sends them when connected. */
  queue(events: TapEventInput[]): void {
    this.unacked.push(...events);
    this.drainedAt = null;
    if (this.connected) this.sendEvents(events);
  }

  private flushUnacked(): void {
    if (this.unacked.length > 0) this.sendEvents(this.unacked);
  }

  private sendEvents(events: TapEventInput[]): void {
    for (let i = 0; i < events.length; i += this.opts.batchSize) {
      const chunk = events.slice(i, i + this.opts.batchSize);
      void this.publish(this.source.batch(chunk, wallNow()));
    }
  }

  /** QoS 1 publish; resolves on PUBACK (false if the connection went away first). */
  publish(payload: Buffer): Promise<boolean> {
    const c = this.client;
    if (!c || !this.connected) return Promise.resolve(false);
    return new Promise((resolve) => {
      c.publish(topics.events(this.spec.readerId), payload, { qos: 1 }, (err) => resolve(!err));
    });
  }

  close(): void {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.client?.end(true);
    this.client = null;
    this.connected = false;
  }
}
