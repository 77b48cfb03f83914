import type { Socket } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../../../protocol/index.js';

/**
 * Connection admission for the embedded broker (issue 15, the reconnect storm).
 *
 * Before: a fixed token bucket (`mqtt.maxConnectionsPerSecond`, 500/s) and every connection over it closed
 * at once, so after a gateway restart most of a fleet was refused, backed off blindly (exponential, with
 * jitter) and came back when the gateway had long been idle again.
 *
 * Now three things change, each can be switched off (`limits.connectionAdmission`):
 * - **Parking**: a connection that finds no token waits, unread (its CONNECT stays in the socket buffer,
 *   no aedes client, no auth), in a FIFO queue, and is handed to the broker as soon as a token frees; up to
 *   `parkMs` (kept under a device's MQTT connect timeout) and `maxParked` connections.
 * - **Adaptive rate**: every `tickMs` the rate is raised (×1.5, up to `maxPerSecond`) while connections are
 *   waiting and the gateway keeps up, cut (×0.5, down to `minPerSecond`) as soon as the ingest commit queue
 *   holds more than `busyBacklog` items or the event loop's delay (p99 over the tick) exceeds `busyLagMs`,
 *   so a flood of new connections never starves the readers already connected; back to the configured
 *   base rate when nobody waits.
 * - **A window of handshakes**: at most `maxHandshakes` admitted connections whose bytes the gateway has read
 *   may be on their way to their CONNACK at once (./handshakes.ts); the rest wait parked. Connections with
 *   nothing read yet do not count: a client whose first segments the kernel dropped sends them again only
 *   seconds later, and a window full of those would hold everyone else back. The cost of a connection lands after its
 *   admission (reading its CONNECT, the login, then the taps it brings), so a rate alone overshoots: in a
 *   storm of 10,000 readers the adaptive rate admitted about 3,400 connections in 5 s, 2,866 of them still
 *   unread 5 s later, and the event loop was too busy to accept() for seconds. The kernel's accept queue
 *   overflowed, the final ACKs of about 600 readers' handshakes were dropped, and those readers sat on a TCP
 *   connection the gateway never saw until their 60 s connect timeout (bench/README.md, "The parking fault").
 *   The window admits as fast as handshakes complete, and no faster.
 * - **A busy refusal says so**: a connection that cannot be parked (queue full, its wait would exceed
 *   `parkMs`) gets a CONNACK with MQTT 3.1.1 return code 3, "Server unavailable", before the close,
 *   instead of a bare TCP close that looks like a gateway that is down. The device's uplink takes it as
 *   the gateway's hint that it is up and admitting: it retries within a short window and does not grow
 *   its back-off towards the cap (device/src/core/uplink.ts). aedes speaks MQTT 3.1.1 only, so there is no
 *   MQTT 5 CONNACK reason code or server reference to carry a retry-after value.
 */
export interface AdmissionSettings {
  /** Rate follows load (true) or stays at the configured `mqtt.maxConnectionsPerSecond` (false). */
  adaptive: boolean;
  /** Ceiling of the adaptive rate (new connections per second). */
  maxPerSecond: number;
  /** Floor of the adaptive rate under load. */
  minPerSecond: number;
  /** Longest a connection waits for its slot (0: closed at once when no token, the old behaviour). */
  parkMs: number;
  /** Most connections waiting at once. */
  maxParked: number;
  /** Event-loop delay (p99 over a tick, ms) over which the rate is cut. */
  busyLagMs: number;
  /** Ingest queue items (waiting for the group commit) over which the rate is cut. */
  busyBacklog: number;
  /** Refuse with CONNACK "Server unavailable" (true) or a bare close (false, the old behaviour). */
  busyConnack: boolean;
  /** Most admitted connections on their way to their CONNACK at once (0: no limit, the old behaviour). */
  maxHandshakes: number;
}

export const DEFAULT_ADMISSION: AdmissionSettings = {
  adaptive: true,
  maxPerSecond: 5_000,
  minPerSecond: 100,
  parkMs: 5_000,
  maxParked: 20_000,
  busyLagMs: 250,
  busyBacklog: 2_000,
  busyConnack: true,
  maxHandshakes: 256,
};

/** The settings that reproduce the admission before issue 15 (fixed bucket, bare close). */
export const FIXED_ADMISSION: AdmissionSettings = {
  ...DEFAULT_ADMISSION,
  adaptive: false,
  parkMs: 0,
  busyConnack: false,
  maxHandshakes: 0,
};

/** CONNACK, MQTT 3.1.1, return code 3 "Server unavailable". */
export const CONNACK_SERVER_UNAVAILABLE = Buffer.from([0x20, 0x02, 0x00, 0x03]);

/** What the adaptive rate listens to (defaults: the process's event-loop delay; no backlog). */
export interface AdmissionLoad {
  /** Event-loop delay over the last tick (ms); read once per tick. */
  loopDelayMs?: () => number;
  /** Items waiting for the ingest commit now. */
  backlog?: () => number;
  /** Admitted connections with bytes read, not yet answered with their CONNACK (./handshakes.ts). */
  handshakes?: () => number;
}

export type RefusalReason = 'rate' | 'busy' | 'park-timeout' | 'closing';

export interface AdmissionStats {
  admitted: number;
  parked: number;
  /** Connections waiting now. */
  waiting: number;
  refused: Record<RefusalReason, number>;
  /** The rate now (connections per second). */
  rate: number;
  raised: number;
  cut: number;
  /** Longest wait of an admitted parked connection (ms). */
  maxWaitMs: number;
  /** Connections parked because the handshake window was full (a token was free). */
  windowParked: number;
}

interface Parked {
  socket: Socket;
  admit: (socket: Socket) => void;
  atMs: number;
  gone: boolean;
}

const TICK_MS = 250;
/** Parked connections handed to the broker per pump turn (the rest on the next turn, after I/O). */
const SLICE = 100;

export class ConnectionAdmission {
  private readonly s: AdmissionSettings;
  private readonly base: number;
  private readonly burst: number;
  private rate: number;
  private tokens: number;
  private lastRefill: number;
  private queue: Parked[] = [];
  private head = 0;
  private tickTimer: TimerHandle | null = null;
  private pumpTimer: TimerHandle | null = null;
  private demand = false;
  private closed = false;
  private readonly histogram: IntervalHistogram | null = null;
  private readonly loopDelayMs: () => number;
  private readonly backlog: () => number;
  private readonly handshakes: () => number;
  private readonly st = {
    admitted: 0,
    parked: 0,
    windowParked: 0,
    raised: 0,
    cut: 0,
    maxWaitMs: 0,
    refused: { rate: 0, busy: 0, 'park-timeout': 0, closing: 0 } as Record<RefusalReason, number>,
  };

  constructor(
    private readonly o: {
      clock: Clock;
      /** The configured base rate and bucket (mqtt.maxConnectionsPerSecond, mqtt.connectionBurst). */
      perSecond: number;
      burst: number;
      settings?: Partial<AdmissionSettings>;
      load?: AdmissionLoad;
      /** Each refused connection, for the metrics. */
      onRefused?: (reason: RefusalReason) => void;
    },
  ) {
    this.s = { ...DEFAULT_ADMISSION, ...o.settings };
    this.base = o.perSecond;
    this.burst = o.burst;
    this.rate = o.perSecond;
    this.tokens = o.burst;
    this.lastRefill = o.clock.monotonic();
    if (this.s.adaptive && !o.load?.loopDelayMs) {
      this.histogram = monitorEventLoopDelay({ resolution: 10 });
      this.histogram.enable();
    }
    const h = this.histogram;
    this.loopDelayMs =
      o.load?.loopDelayMs ??
      (h
        ? () => {
            const v = h.count > 0 ? h.percentile(99) / 1e6 : 0;
            h.reset();
            return v;
          }
        : () => 0);
    this.backlog = o.load?.backlog ?? (() => 0);
    this.handshakes = o.load?.handshakes ?? (() => 0);
  }

  /**
   * A new connection: `admit` runs now (a token was free and nobody waits), later (parked: the socket is
   * paused until then), or never (refused: closed, with a busy CONNACK when configured).
   */
  offer(socket: Socket, admit: (socket: Socket) => void): 'admitted' | 'parked' | 'refused' {
    if (this.closed) return this.refuse(socket, 'closing');
    this.refill();
    const windowFull = this.windowFull();
    if (this.waiting() === 0 && this.tokens >= 1 && !windowFull) {
      this.tokens -= 1;
      this.st.admitted++;
      admit(socket);
      return 'admitted';
    }
    this.demand = true;
    this.armTick();
    const waiting = this.waiting();
    // Its expected wait: the connections ahead of it at the current rate.
    const waitMs = ((waiting + 1 - Math.max(0, this.tokens)) / Math.max(1, this.rate)) * 1000;
    const ceiling = this.s.adaptive
      ? Math.max(this.rate, Math.min(this.s.maxPerSecond, this.rate * 4))
      : this.rate;
    const bestWaitMs = ((waiting + 1) / Math.max(1, ceiling)) * 1000;
    if (this.s.parkMs <= 0 || waiting >= this.s.maxParked || Math.min(waitMs, bestWaitMs) > this.s.parkMs) {
      return this.refuse(socket, this.s.parkMs <= 0 ? 'rate' : 'busy');
    }
    socket.pause();
    const p: Parked = { socket, admit, atMs: this.o.clock.monotonic(), gone: false };
    socket.once('close', () => {
      p.gone = true;
    });
    this.queue.push(p);
    this.st.parked++;
    if (windowFull && this.tokens >= 1) this.st.windowParked++;
    this.armPump();
    return 'parked';
  }

  stats(): AdmissionStats {
    return { ...this.st, refused: { ...this.st.refused }, waiting: this.waiting(), rate: this.rate };
  }

  /** Stops the timers and refuses every waiting connection (broker stop). */
  close(): void {
    this.closed = true;
    for (const t of [this.tickTimer, this.pumpTimer]) if (t) this.o.clock.clearTimeout(t);
    this.tickTimer = this.pumpTimer = null;
    this.histogram?.disable();
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i] as Parked;
      if (!p.gone) this.refuse(p.socket, 'closing');
    }
    this.queue = [];
    this.head = 0;
  }

  /** The handshake window is full: admitting more now only adds unread connections. */
  private windowFull(): boolean {
    return this.s.maxHandshakes > 0 && this.handshakes() >= this.s.maxHandshakes;
  }

  private waiting(): number {
    return this.queue.length - this.head;
  }

  private refill(): void {
    const now = this.o.clock.monotonic();
    const cap = Math.max(this.burst, 1);
    this.tokens = Math.min(cap, this.tokens + ((now - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = now;
  }

  private refuse(socket: Socket, reason: RefusalReason): 'refused' {
    this.st.refused[reason]++;
    this.o.onRefused?.(reason);
    if (this.s.busyConnack && reason !== 'rate' && !socket.destroyed) {
      socket.end(CONNACK_SERVER_UNAVAILABLE);
      socket.resume(); // read (and drop) its CONNECT so the peer's close is seen at once
      // a peer that never reads must not hold the socket open
      socket.setTimeout(2_000, () => socket.destroy());
    } else {
      socket.destroy();
    }
    return 'refused';
  }

  /** Hands waiting connections to the broker as tokens free, a slice per turn, oldest first. */
  private pump(): void {
    this.pumpTimer = null;
    if (this.closed) return;
    this.refill();
    const now = this.o.clock.monotonic();
    let handed = 0;
    while (this.head < this.queue.length && handed < SLICE) {
      const p = this.queue[this.head] as Parked;
      if (p.gone || p.socket.destroyed) {
        this.head++;
        continue;
      }
      if (now - p.atMs > this.s.parkMs) {
        this.head++;
        this.refuse(p.socket, 'park-timeout');
        continue;
      }
      if (this.tokens < 1 || this.windowFull()) break;
      this.tokens -= 1;
      this.head++;
      handed++;
      this.st.admitted++;
      this.st.maxWaitMs = Math.max(this.st.maxWaitMs, now - p.atMs);
      p.admit(p.socket);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.armPump();
  }

  private armPump(): void {
    if (this.pumpTimer || this.closed || this.waiting() === 0) return;
    // next token (at least 5 ms apart, so a turn hands over a handful and socket I/O runs in between)
    const ms =
      this.tokens >= 1 ? 5 : Math.max(5, Math.ceil(((1 - this.tokens) / Math.max(1, this.rate)) * 1000));
    this.pumpTimer = this.o.clock.setTimeout(() => this.pump(), ms);
  }

  private armTick(): void {
    if (this.tickTimer || this.closed || !this.s.adaptive) return;
    this.loopDelayMs(); // start a fresh measurement window
    this.tickTimer = this.o.clock.setTimeout(() => this.tick(), TICK_MS);
  }

  /** The adaptive step: cut under load, raise while connections wait, back to base when nobody does. */
  private tick(): void {
    this.tickTimer = null;
    if (this.closed) return;
    this.refill();
    const lag = this.loopDelayMs();
    const backlog = this.backlog();
    const demand = this.demand || this.waiting() > 0;
    this.demand = false;
    if (lag > this.s.busyLagMs || backlog > this.s.busyBacklog) {
      const next = Math.max(this.s.minPerSecond, Math.floor(this.rate * 0.5));
      if (next < this.rate) this.st.cut++;
      this.rate = next;
    } else if (demand) {
      const next = Math.min(this.s.maxPerSecond, Math.ceil(this.rate * 1.5));
      if (next > this.rate) this.st.raised++;
      this.rate = next;
    } else {
      this.rate = this.base;
      return; // idle: no tick until the next connection finds no token
    }
    this.armTick();
  }
}
