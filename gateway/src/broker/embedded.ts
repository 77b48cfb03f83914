import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type pino from 'pino';
import { isSafeId, parseTopic, TOPIC_DEPTH, type Clock } from '../../../protocol/index.js';
import type { EmbeddedMqttSettings } from '../config.js';
import type { MetricsRegistry } from '../metrics.js';
import { canPublish, canSubscribe } from './acl.js';
import { ConnectionAdmission, type AdmissionSettings } from './admission.js';
import { FrameGuard } from './frame-guard.js';
import { HandshakeTracker } from './handshakes.js';
import { RejectLogLimiter } from '../ingest/limits.js';
import { DEFAULT_READER_RATE, ReaderRateLimiter, type ReaderRateSettings } from './limits.js';
import type { Authenticator, InboundHandler, Transport } from './transport.js';

export interface EmbeddedBrokerOptions {
  settings: EmbeddedMqttSettings;
  clock: Clock;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  authenticate: Authenticator;
  /** False for unknown or revoked readers: their publishes are refused even on a live session. */
  isActive: (readerId: string) => boolean;
  onMessage: InboundHandler;
  /** An ACL refusal, for the reader's status and the reject counters. */
  onDenied: (readerId: string | null, reason: string, detail: string) => void;
  /** Per-reader publish rate and volume limits (default DEFAULT_READER_RATE in ./limits.ts). */
  readerRate?: ReaderRateSettings;
  /** Connection admission (./admission.ts; defaults DEFAULT_ADMISSION, base rate mqtt.maxConnectionsPerSecond). */
  admission?: Partial<AdmissionSettings>;
  /** Items waiting for the ingest commit: the adaptive admission admits fewer while it grows. */
  commitBacklog?: () => number;
}

function authError(code: number, message: string): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  (err as { returnCode: number }).returnCode = code;
  return err;
}

/**
 * Embedded aedes broker (MQTT 3.1.1) with the visittag guards: per-reader credentials, client id =
 * username = reader id, the per-reader ACL, a frame guard (packet size, malformed lengths) on every
 * socket, an error handler on every stream, topic depth limits, and a connection-rate token bucket.
 */
export function createEmbeddedBroker(opts: EmbeddedBrokerOptions): Transport {
  const { settings, clock, metrics } = opts;
  const log = opts.logger.child({ module: 'broker' });
  const refused = metrics.counter(
    'visittag_mqtt_connections_refused_total',
    'MQTT connections refused, by reason (rate, auth, frame).',
  );
  const denied = metrics.counter(
    'visittag_mqtt_acl_denied_total',
    'Publishes/subscribes refused by the ACL.',
  );
  let aedes: Aedes | null = null;
  let server: Server | null = null;
  let port: number | null = null;
  const sockets = new Set<Socket>();
  // the peer address of each aedes connection stream (failed-login throttling per source)
  const sourceOf = new WeakMap<object, string>();
  const rate = new ReaderRateLimiter(clock, opts.readerRate ?? DEFAULT_READER_RATE);
  const rateLimited = metrics.counter(
    'visittag_reader_rate_limited_total',
    'Reader messages dropped before ingest for going over the per-reader rate or volume (by limit).',
  );
  // bounded log lines for floods (refused logins, rate-limited readers); counters stay exact
  const floodLog = new RejectLogLimiter({ perWindow: 10, windowMs: 60_000 });
  const logBounded = (key: string, fields: Record<string, unknown>, msg: string) => {
    const a = floodLog.admit(key, clock.monotonic());
    if (a.suppressedBefore > 0)
      log.warn({ key, suppressed: a.suppressedBefore }, `${msg}: lines not logged last minute`);
    if (a.log) log.warn(fields, msg);
  };
  let accepting = true;
  let admission: ConnectionAdmission | null = null;
  // the admission's own figures (an on-call engineer in a reconnect storm: how fast it admits, how many wait)
  metrics.gauge('visittag_mqtt_admission_rate', 'New connections per second the admission allows now.', () =>
    admission ? admission.stats().rate : 0,
  );
  metrics.gauge('visittag_mqtt_admission_waiting', 'Connections parked now, waiting for their slot.', () =>
    admission ? admission.stats().waiting : 0,
  );
  metrics.gauge(
    'visittag_mqtt_admission_parked',
    'Connections that had to wait parked since start (admitted or refused later).',
    () => (admission ? admission.stats().parked : 0),
  );
  metrics.gauge('visittag_mqtt_admission_admitted', 'Connections handed to the broker since start.', () =>
    admission ? admission.stats().admitted : 0,
  );
  metrics.gauge(
    'visittag_mqtt_admission_window_parked',
    'Connections that waited parked because the handshake window was full (limits.connectionAdmission.maxHandshakes), since start.',
    () => (admission ? admission.stats().windowParked : 0),
  );
  metrics.gauge(
    'visittag_mqtt_admission_max_wait_ms',
    'Longest a connection waited parked before it was admitted, since start.',
    () => (admission ? admission.stats().maxWaitMs : 0),
  );

  // where admitted connections are on their way to CONNACK (./handshakes.ts)
  const handshakes = new HandshakeTracker(metrics);

  const clients = () => (aedes as unknown as { clients: Record<string, Client | undefined> } | null)?.clients;

  const deny = (client: Client, action: string, topic: string, reason: string) => {
    denied.inc({ action });
    log.warn({ readerId: client.id, action, reason }, 'ACL refused');
    opts.onDenied(client.id, `acl-${action}`, `${reason} (${topic.slice(0, 80)})`);
  };

  // a connection the admission let in (now, or after it waited parked)
  const accept = (socket: Socket) => {
    if (!aedes || !accepting) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true); // small acks must not wait for Nagle + delayed ACK (~40 ms each)
    const guard = new FrameGuard(socket, settings.maxPacketBytes, (reason) => {
      refused.inc({ reason: 'frame' });
      log.warn({ reason, remote: socket.remoteAddress }, 'closing connection: bad MQTT frame');
    });
    guard.on('error', () => undefined);
    sourceOf.set(guard, socket.remoteAddress ?? 'unknown');
    handshakes.admitted(guard);
    // after the guard's own listener; the socket stays paused until aedes reads (no flow change here)
    socket.once('data', () => handshakes.bytes(guard));
    socket.once('close', () => handshakes.closed(guard));
    const client = aedes.handle(guard);
    client.on('error', () => undefined);
  };

  const onConnection = (socket: Socket) => {
    socket.on('error', () => undefined);
    if (!aedes || !accepting) {
      socket.destroy();
      return;
    }
    if (admission) admission.offer(socket, accept);
    else socket.destroy();
  };

  return {
    mode: 'embedded',
    get port() {
      return port;
    },
    async start() {
      admission = new ConnectionAdmission({
        clock,
        perSecond: settings.maxConnectionsPerSecond,
        burst: settings.connectionBurst,
        ...(opts.admission ? { settings: opts.admission } : {}),
        load: {
          handshakes: () => handshakes.workingCount(),
          ...(opts.commitBacklog ? { backlog: opts.commitBacklog } : {}),
        },
        onRefused: (reason) => refused.inc({ reason }),
      });
      aedes = await Aedes.createBroker({
        id: 'visittag-gateway',
        maxClientsIdLength: 64,
        maxTopicLevels: TOPIC_DEPTH,
        connectTimeout: settings.connectTimeoutMs,
        concurrency: 1000,
        preConnect: (client, packet, cb) => {
          handshakes.connect((client as unknown as { conn: object }).conn);
          // Cheap checks before any KDF work: a safe reader id and credentials present.
          const ok =
            typeof packet.clientId === 'string' &&
            isSafeId(packet.clientId) &&
            typeof packet.username === 'string' &&
            packet.password !== undefined;
          if (ok) return cb(null, true);
          refused.inc({ reason: 'preconnect' });
          // aedes needs an error here: (null, false) leaves the socket open until a timeout.
          cb(new Error('reader id and credentials required'), false);
        },
        authenticate: (client, username, password, done) => {
          if (typeof username !== 'string' || !Buffer.isBuffer(password)) {
            refused.inc({ reason: 'auth' });
            return done(authError(4, 'credentials required'), null);
          }
          if (username !== client.id) {
            refused.inc({ reason: 'client-id' });
            return done(authError(2, 'client id must equal the reader id'), null);
          }
          const source = sourceOf.get((client as unknown as { conn: object }).conn) ?? 'unknown';
          opts.authenticate(username, password.toString('utf8'), source).then(
            (r) => {
              if (r === 'ok') {
                handshakes.authenticated((client as unknown as { conn: object }).conn);
                return done(null, true);
              }
              refused.inc({ reason: r });
              logBounded(
                `auth:${r}:${source}`,
                { readerId: isSafeId(username) ? username : '(invalid)', reason: r, source },
                'auth refused',
              );
              done(authError(r === 'revoked' ? 5 : 4, r), null);
            },
            (err: unknown) => {
              log.error({ err }, 'authentication failed');
              done(authError(3, 'server unavailable'), null);
            },
          );
        },
        authorizePublish: (client, packet, cb) => {
          if (!client) return cb(null); // the gateway's own in-process publishes
          const d = canPublish(client.id, packet.topic);
          if (!d.ok) {
            deny(client, 'publish', packet.topic, d.reason);
            return cb(new Error(d.reason));
          }
          if (!opts.isActive(client.id)) {
            deny(client, 'publish', packet.topic, 'reader is revoked or unknown');
            return cb(new Error('reader revoked'));
          }
          cb(null);
        },
        authorizeSubscribe: (client, sub, cb) => {
          const d = canSubscribe(client.id, sub.topic);
          if (!d.ok) {
            deny(client, 'subscribe', sub.topic, d.reason);
            return cb(null, null); // SUBACK 0x80 for this filter
          }
          cb(null, sub);
        },
        authorizeForward: (client, packet) => {
          const p = parseTopic(packet.topic);
          return p.ok && p.readerId === client.id ? packet : null;
        },
        published: (packet, client, cb) => {
          // Deferred: with a backlog in aedes's emitter a synchronous callback releases the next queued
          // message on the same stack, and a few thousand of them overflowed it (RangeError: the gateway
          // exited in the soak at load 14). nextTick runs each release from the tick queue instead.
          process.nextTick(cb);
          if (!client) return;
          const d = canPublish(client.id, packet.topic);
          if (!d.ok) return;
          const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
          const over = rate.check(client.id, payload.length);
          if (over) {
            // dropped before ingest: not acknowledged, so an honest reader sends it again later
            rateLimited.inc({ limit: over });
            logBounded(
              `rate:${client.id}`,
              { readerId: client.id, limit: over },
              'reader over its publish limit',
            );
            opts.onDenied(client.id, `rate-${over}`, `message dropped: over the reader's ${over} limit`);
            return;
          }
          // authorizePublish found the reader active for this publish (isActive above)
          opts.onMessage({ readerId: client.id, leaf: d.leaf, payload, clientId: client.id, admitted: true });
        },
      });
      aedes.on('clientReady', (client) => handshakes.ready((client as unknown as { conn: object }).conn));
      aedes.on('clientError', (client, err) =>
        log.debug({ readerId: client.id, err: err.message }, 'client error'),
      );
      aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));
      const tls = settings.tls;
      server = tls
        ? createTlsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, onConnection)
        : createTcpServer(onConnection);
      server.on('tlsClientError', () => refused.inc({ reason: 'tls' }));
      const s = server;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        // a deep accept queue: a reconnect storm's SYNs that find it full are dropped, and each reader's
        // kernel retries after 1, 3, 7, 15, 31 and 63 s (bench/README.md, "The reconnect storm: the listen queue")
        s.listen({ port: settings.port, host: settings.host, backlog: settings.listenBacklog }, () => {
          s.off('error', reject);
          resolve();
        });
      });
      port = (s.address() as AddressInfo).port;
      log.info({ host: settings.host, port, tls: Boolean(tls) }, 'MQTT broker listening');
    },
    stopAccepting() {
      accepting = false;
    },
    async stop() {
      accepting = false;
      admission?.close();
      admission = null;
      const s = server;
      server = null;
      const closed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
      const a = aedes;
      aedes = null;
      if (a) await new Promise<void>((resolve) => a.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    publish(topic, payload, o) {
      const a = aedes;
      if (!a) return Promise.reject(new Error('broker is stopped'));
      return new Promise((resolve, reject) =>
        a.publish({ cmd: 'publish', topic, payload, qos: o.qos, retain: o.retain, dup: false }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    },
    disconnect(readerId) {
      const c = clients()?.[readerId];
      if (c) {
        log.info({ readerId }, 'dropping live connection');
        c.close();
      }
    },
    isOnline: (readerId) => Boolean(clients()?.[readerId]?.connected),
    connectedReaders: () => aedes?.connectedClients ?? 0,
    ready: () => aedes !== null && server !== null,
  };
}
