import { noNagle } from './no-nagle.js';
import { EventEmitter } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { backoffDelay, decode, encode, topics } from '../../../protocol/index.js';
import type {
  Clock,
  CommandResult,
  EventTime,
  PayloadInputOf,
  StatusOnline,
  TimerHandle,
} from '../../../protocol/index.js';
import type { DeviceSettings } from '../config.js';
import type { Journal } from './journal.js';
import { loadMqtt } from './load-mqtt.js';
import { mqttClientOptions } from './mqtt-options.js';

/**
 * The uplink (CONTRIBUTING.md, "Own the delivery guarantee"): MQTT.js with our own reconnect (capped exponential backoff with
 * jitter; MQTT.js's own is off). Publishes batches of unacknowledged journal events in seq order,
 * several batches in flight; deletes only on the gateway's application-level ack; resends on ack
 * timeout and on every reconnect (the gateway dedupes by reader + seq).
 */

export interface UplinkOptions {
  readerId: string;
  mqtt: DeviceSettings['mqtt'];
  uplink: DeviceSettings['uplink'];
  journal: Journal;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** Device time now (for the batch's sentAt). */
  now: () => EventTime;
  /** The current status (published retained on connect, every statusIntervalMs and on request). */
  status: () => Omit<StatusOnline, 'schemaVersion' | 'state'>;
  /** Raw payload from the config topic (the device validates and applies it). */
  onConfig: (payload: Buffer) => void;
  /** Raw payload from the commands topic. */
  onCommand: (payload: Buffer) => void;
}

/**
 * A gateway that refuses a connection because it is busy says so (CONNACK "Server unavailable": MQTT 3.1.1
 * return code 3; MQTT 5 reason codes 0x88 "Server unavailable" and 0x89 "Server busy"): it is up and
 * admitting connections as fast as it can take them (gateway/src/broker/admission.ts). The uplink then
 * retries within this window (full jitter from half the base) and does not grow its back-off towards the
 * cap, which after a gateway restart would leave a refused reader waiting up to a minute for a gateway
 * that admits it within seconds.
 */
export const BUSY_RETRY_WINDOW_MS = 5_000;
const BUSY_CODES = new Set([3, 0x88, 0x89]);

interface InFlight {
  from: number;
  to: number;
}

export interface UplinkStats {
  connected: boolean;
  inFlightBatches: number;
  batchesSent: number;
  resends: number;
  acksReceived: number;
  acksRejected: number;
  /** Acks naming another journal epoch than this journal's (ignored: they speak of other seqs). */
  acksOtherEpoch: number;
  reconnectAttempt: number;
  /** Reconnects scheduled after a busy gateway's refusal (short window, no back-off growth). */
  busyRetries: number;
}

export class Uplink extends EventEmitter<{
  connected: [];
  disconnected: [];
  acked: [upTo: number, deleted: number];
}> {
  private readonly o: UplinkOptions;
  private readonly log: Logger;
  private client: MqttClient | null = null;
  private connectFn: ((url: string, opts: IClientOptions) => MqttClient) | null = null;
  private connected = false;
  private subscribed = false;
  private stopped = true;
  private attempt = 0;
  /** The last connection attempt was refused by a busy gateway (the hint above). */
  private busy = false;
  /** Reconnects after a busy refusal (stats). */
  private busyRetries = 0;
  private reconnectTimer: TimerHandle | null = null;
  private ackTimer: TimerHandle | null = null;
  /** Consecutive ack timeouts without progress. */
  private timeouts = 0;
  private statusTimer: TimerHandle | null = null;
  private inFlight: InFlight[] = [];
  private sentUpTo = 0;
  /** The lastAckedSeq a lost-acked tombstone was sent for (after a gateway restore). */
  private lostDeclared: number | null = null;
  private readonly counters = {
    batchesSent: 0,
    resends: 0,
    acksReceived: 0,
    acksRejected: 0,
    acksOtherEpoch: 0,
  };

  constructor(opts: UplinkOptions) {
    super();
    this.o = opts;
    this.log = opts.logger.child({ module: 'uplink' });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // mqtt is loaded lazily: taps are taken (and journalled) while it loads.
    loadMqtt()
      .then((m) => {
        this.connectFn = m.connect;
        this.connectNow();
      })
      .catch((err: unknown) => this.log.fatal({ err }, 'cannot load the mqtt module'));
  }

  stats(): UplinkStats {
    return {
      connected: this.connected,
      inFlightBatches: this.inFlight.length,
      reconnectAttempt: this.attempt,
      busyRetries: this.busyRetries,
      ...this.counters,
    };
  }

  /** New events were journalled: send them if the window allows. */
  kick(): void {
    this.pump();
  }

  /** Publishes the current status now (retained). */
  publishStatus(): void {
    const c = this.client;
    if (!c || !this.connected) return;
    try {
      const payload = encode('status', { schemaVersion: 1, state: 'online', ...this.o.status() });
      c.publish(topics.status(this.o.readerId), payload, { qos: 1, retain: true }, (err) => {
        if (err) this.log.warn({ err }, 'status publish failed');
      });
    } catch (err) {
      this.log.error({ err }, 'status not published (invalid)');
    }
  }

  publishCommandResult(result: PayloadInputOf<'command-results'> & CommandResult): void {
    const c = this.client;
    if (!c || !this.connected) return;
    c.publish(
      topics.commandResults(this.o.readerId),
      encode('command-results', result),
      { qos: 1 },
      (err) => {
        if (err) this.log.warn({ err }, 'command result publish failed');
      },
    );
  }

  /**
   * Stops: waits up to `graceMs` for in-flight batches to be acknowledged (the journal keeps the
   * rest anyway), publishes the retained "offline" status and disconnects.
   */
  async stop(graceMs = 0): Promise<void> {
    if (this.stopped) return;
    const deadline = this.o.clock.monotonic() + graceMs;
    for (let i = 0; i < 500 && this.connected && this.inFlight.length > 0; i++) {
      if (this.o.clock.monotonic() >= deadline) break;
      await new Promise<void>((r) => this.o.clock.setTimeout(r, 20));
    }
    this.stopped = true;
    this.clearTimers();
    const c = this.client;
    this.client = null;
    if (!c) return;
    if (this.connected) {
      await new Promise<void>((resolve) => {
        const t = this.o.clock.setTimeout(resolve, 1_000);
        c.publish(
          topics.status(this.o.readerId),
          encode('status', { schemaVersion: 1, readerId: this.o.readerId, state: 'offline' }),
          { qos: 1, retain: true },
          () => {
            this.o.clock.clearTimeout(t);
            resolve();
          },
        );
      });
    }
    this.connected = false;
    await new Promise<void>((resolve) => c.end(false, {}, () => resolve()));
    c.removeAllListeners();
    c.on('error', () => undefined);
  }

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.ackTimer, this.statusTimer])
      if (t) this.o.clock.clearTimeout(t);
    this.reconnectTimer = this.ackTimer = this.statusTimer = null;
  }

  private connectNow(): void {
    this.reconnectTimer = null;
    this.busy = false;
    if (this.stopped || !this.connectFn) return;
    let client: MqttClient;
    try {
      client = this.connectFn(this.o.mqtt.url, mqttClientOptions(this.o.readerId, this.o.mqtt));
    } catch (err) {
      this.log.error({ err }, 'cannot create MQTT client');
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    let closed = false;
    client.on('connect', () => this.onConnect(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => {
      if (BUSY_CODES.has((err as { code?: unknown }).code as number)) this.busy = true;
      // Loud once per outage, quiet while retrying (a home may be offline for days).
      const level = this.attempt <= 1 ? 'warn' : 'debug';
      this.log[level]({ err: { message: err.message }, attempt: this.attempt }, 'mqtt error');
    });
    client.on('close', () => {
      if (closed || this.client !== client) return;
      closed = true;
      const was = this.connected;
      this.connected = false;
      this.subscribed = false;
      this.inFlight = [];
      if (this.ackTimer) this.o.clock.clearTimeout(this.ackTimer);
      this.ackTimer = null;
      client.removeAllListeners('connect');
      client.end(true);
      if (was) {
        this.log.info('disconnected');
        this.emit('disconnected');
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const { baseMs, capMs } = this.o.uplink.backoff;
    let delay: number;
    if (this.busy) {
      // the gateway is up and busy: retry soon, the back-off does not grow (BUSY_RETRY_WINDOW_MS)
      this.busy = false;
      this.busyRetries++;
      const from = Math.min(baseMs, capMs) / 2;
      const to = Math.max(from, Math.min(capMs, BUSY_RETRY_WINDOW_MS));
      delay = Math.round(from + this.o.random() * (to - from));
    } else {
      delay = backoffDelay(this.attempt++, { baseMs, capMs, random: this.o.random });
    }
    this.log.debug({ delay, attempt: this.attempt }, 'reconnect scheduled');
    this.reconnectTimer = this.o.clock.setTimeout(() => this.connectNow(), delay);
  }

  private onConnect(client: MqttClient): void {
    if (this.client !== client || this.stopped) return;
    this.connected = true;
    this.attempt = 0;
    this.log.info('connected');
    noNagle(client);
    const id = this.o.readerId;
    this.inFlight = [];
    this.sentUpTo = 0;
    this.timeouts = 0;
    this.lostDeclared = null; // a lost declaration is sent again if the gateway still lacks the seqs
    this.subscribed = false;
    // Send only once subscribed to acks (else the first acks are lost and every batch waits for a timeout).
    client.subscribe([topics.acks(id), topics.config(id), topics.commands(id)], { qos: 1 }, (err) => {
      if (this.client !== client) return;
      if (err) {
        this.log.warn({ err: { message: err.message } }, 'subscribe failed: reconnecting');
        client.end(true);
        return;
      }
      this.subscribed = true;
      // Resend everything unacknowledged: the gateway dedupes by reader + seq.
      this.pump();
    });
    this.publishStatus();
    this.armStatusTimer();
    this.emit('connected');
  }

  private armStatusTimer(): void {
    if (this.statusTimer) this.o.clock.clearTimeout(this.statusTimer);
    this.statusTimer = this.o.clock.setTimeout(() => {
      this.statusTimer = null;
      if (this.stopped) return;
      this.publishStatus();
      this.armStatusTimer();
    }, this.o.uplink.statusIntervalMs);
  }

  private pump(): void {
    const c = this.client;
    if (!c || !this.connected || !this.subscribed || this.stopped) return;
    const { batchSize } = this.o.uplink;
    // After an ack timeout, probe with one batch until the gateway acks again (no flood while it is down).
    const window = this.timeouts > 0 ? 1 : this.o.uplink.window;
    const lastAcked = this.o.journal.lastAckedSeq;
    if (this.sentUpTo < lastAcked) this.sentUpTo = lastAcked;
    const epoch = this.o.journal.epoch;
    while (this.inFlight.length < window) {
      const {
        events,
        tombstones,
        fromSeq: from,
        throughSeq: to,
      } = this.o.journal.readBatch(this.sentUpTo, batchSize);
      if (from === null || to === null) break;
      let payload: Buffer;
      try {
        payload = encode('events', {
          schemaVersion: 1,
          readerId: this.o.readerId,
          sentAt: this.o.now(),
          ...(epoch !== null ? { epoch } : {}),
          events,
          ...(tombstones.length > 0 ? { tombstones } : {}),
        });
      } catch (err) {
        this.log.error({ err, from, to }, 'batch not encodable; skipped');
        this.sentUpTo = to;
        continue;
      }
      c.publish(topics.events(this.o.readerId), payload, { qos: 1 }, (err) => {
        if (err)
          this.log.debug({ err: { message: err.message } }, 'batch publish not acknowledged by broker');
      });
      if (tombstones.length > 0) {
        this.log.warn(
          { tombstones: tombstones.map((t) => ({ from: t.from, to: t.to, reason: t.reason })) },
          'declaring undeliverable seqs to the gateway',
        );
      }
      this.inFlight.push({ from, to });
      this.sentUpTo = to;
      this.counters.batchesSent++;
    }
    if (this.inFlight.length > 0 && !this.ackTimer) this.armAckTimer();
  }

  private armAckTimer(): void {
    if (this.ackTimer) this.o.clock.clearTimeout(this.ackTimer);
    this.ackTimer = this.o.clock.setTimeout(() => {
      this.ackTimer = null;
      if (this.stopped || !this.connected || this.inFlight.length === 0) return;
      this.log.warn(
        { from: this.inFlight[0]?.from, batches: this.inFlight.length },
        'ack timeout: resending',
      );
      this.counters.resends++;
      this.timeouts++;
      this.inFlight = [];
      this.sentUpTo = this.o.journal.lastAckedSeq;
      this.pump();
    }, this.ackTimeoutNow());
  }

  /** The ack timeout, doubled after each consecutive timeout up to the backoff cap. */
  private ackTimeoutNow(): number {
    const { ackTimeoutMs, backoff } = this.o.uplink;
    return Math.min(ackTimeoutMs * 2 ** Math.min(this.timeouts, 20), Math.max(ackTimeoutMs, backoff.capMs));
  }

  private onMessage(topic: string, payload: Buffer): void {
    const id = this.o.readerId;
    try {
      if (topic === topics.acks(id)) this.onAck(payload);
      else if (topic === topics.config(id)) this.o.onConfig(payload);
      else if (topic === topics.commands(id)) this.o.onCommand(payload);
      else this.log.warn('message on an unexpected topic ignored');
    } catch (err) {
      this.log.error({ err }, 'inbound message handler failed');
    }
  }

  /**
   * The gateway holds less than it acknowledged before (restored from a backup): the seqs it lost were
   * deleted here after its ack, so they can never be sent again. Declare them with a tombstone
   * (reason acked-deleted, protocol "Journal epochs and tombstones") so the gateway reports the loss
   * with its extent and pairing continues, instead of waiting for them for good.
   */
  private declareLostAcked(upTo: number): void {
    const lastAcked = this.o.journal.lastAckedSeq;
    const c = this.client;
    if (upTo >= lastAcked || !c) return;
    if (this.lostDeclared !== null && this.lostDeclared >= lastAcked) return; // once per loss
    this.lostDeclared = lastAcked;
    const epoch = this.o.journal.epoch;
    this.log.warn(
      { from: upTo + 1, to: lastAcked },
      'the gateway lost seqs it acknowledged earlier (restored?): declaring them with a tombstone',
    );
    c.publish(
      topics.events(this.o.readerId),
      encode('events', {
        schemaVersion: 1,
        readerId: this.o.readerId,
        sentAt: this.o.now(),
        ...(epoch !== null ? { epoch } : {}),
        events: [],
        tombstones: [
          {
            from: upTo + 1,
            to: lastAcked,
            reason: 'acked-deleted',
            detail: 'acknowledged by the gateway earlier and deleted on the device',
          },
        ],
      }),
      { qos: 1 },
    );
  }

  private onAck(payload: Buffer): void {
    const d = decode('acks', this.o.readerId, payload);
    if (!d.ok) {
      this.counters.acksRejected++;
      this.log.warn({ reason: d.reason, detail: d.detail }, 'ack rejected');
      return;
    }
    const ack = d.value;
    const epoch = this.o.journal.epoch;
    // An ack of another epoch speaks of another journal's seqs: applying it could delete taps never stored.
    if (ack.epoch !== undefined && ack.epoch !== epoch) {
      this.counters.acksOtherEpoch++;
      this.log.warn({ ackEpoch: ack.epoch, journalEpoch: epoch }, 'ack of another journal epoch ignored');
      return;
    }
    this.counters.acksReceived++;
    this.declareLostAcked(ack.upTo);
    const deleted = this.o.journal.ack(
      ack.upTo,
      ack.rejected.map((r) => r.seq),
    );
    for (const r of ack.rejected)
      this.log.warn({ seq: r.seq, reason: r.reason }, 'gateway rejected an event');
    const before = this.inFlight.length;
    this.inFlight = this.inFlight.filter((b) => b.to > ack.upTo);
    const gap = ack.gaps?.[0];
    if (gap && gap.from <= this.sentUpTo) {
      this.log.warn({ from: gap.from, to: gap.to }, 'gateway reports a gap: resending from it');
      this.counters.resends++;
      this.inFlight = [];
      this.sentUpTo = Math.max(gap.from - 1, this.o.journal.lastAckedSeq);
    }
    if (this.inFlight.length < before) this.timeouts = 0;
    if (this.inFlight.length < before || gap) {
      if (this.ackTimer) this.o.clock.clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    if (deleted > 0) this.emit('acked', ack.upTo, deleted);
    this.pump();
  }
}
