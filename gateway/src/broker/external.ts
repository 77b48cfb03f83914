import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import type pino from 'pino';
import { DEVICE_PUBLISH_LEAVES, parseTopic, topics } from '../../../protocol/index.js';
import type { ExternalMqttSettings } from '../config.js';
import type { InboundHandler, Transport } from './transport.js';

export interface ExternalBrokerOptions {
  settings: ExternalMqttSettings;
  logger: pino.Logger;
  onMessage: InboundHandler;
  /** A message on a topic no reader may publish to (the external broker's ACL let it through). */
  onDenied: (readerId: string | null, reason: string, detail: string) => void;
}

/**
 * External-broker mode: the gateway is an MQTT.js client of Mosquitto (or any 3.1.1/5 broker) and
 * subscribes to every reader's events, status and command-results. The broker authenticates readers
 * and enforces the per-reader ACL (gateway/README.md shows the Mosquitto pattern); the gateway still
 * checks that the payload's reader id matches the topic and that the reader is registered.
 */
export function createExternalBroker(opts: ExternalBrokerOptions): Transport {
  const s = opts.settings;
  const log = opts.logger.child({ module: 'mqtt-external' });
  let client: MqttClient | null = null;
  let subscribed = false;
  const online = new Map<string, boolean>();

  const filters = DEVICE_PUBLISH_LEAVES.map((leaf) =>
    s.sharedGroup ? `$share/${s.sharedGroup}/${topics.allReaders(leaf)}` : topics.allReaders(leaf),
  );

  return {
    mode: 'external',
    port: null,
    async start() {
      // Loaded lazily: MQTT.js costs ~0.7 s of start-up and embedded mode never needs it.
      const { default: mqtt } = await import('mqtt');
      const c = mqtt.connect(s.url, {
        clientId: s.clientId,
        username: s.username,
        password: s.password,
        protocolVersion: s.protocolVersion,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        ...(s.caFile ? { ca: readFileSync(s.caFile) } : {}),
      });
      client = c;
      c.on('error', (err) => log.warn({ err: err.message }, 'MQTT client error'));
      c.on('offline', () => {
        subscribed = false;
        log.warn('external broker offline; MQTT.js reconnects');
      });
      c.on('message', (topic, payload) => {
        const p = parseTopic(topic);
        if (!p.ok || !DEVICE_PUBLISH_LEAVES.includes(p.leaf)) {
          opts.onDenied(null, 'bad-topic', p.ok ? `leaf ${p.leaf}` : p.reason);
          return;
        }
        if (p.leaf === 'status') online.set(p.readerId, !payload.toString('utf8').includes('"offline"'));
        opts.onMessage({ readerId: p.readerId, leaf: p.leaf, payload, clientId: null });
      });
      c.on('connect', () => {
        c.subscribe(
          filters.map((f) => f),
          { qos: 1 },
          (err) => {
            if (err) log.error({ err: err.message }, 'subscribe failed');
            else {
              subscribed = true;
              log.info({ url: s.url.replace(/\/\/[^@]*@/, '//') }, 'subscribed on the external broker');
            }
          },
        );
      });
      await new Promise<void>((resolve) => {
        const done = () => {
          c.off('connect', done);
          resolve();
        };
        c.once('connect', done);
        // start() does not fail when the broker is down: readiness reports it, MQTT.js keeps retrying.
        setTimeout(done, 10_000).unref();
      });
    },
    stopAccepting() {
      // the external broker owns the listener: nothing to do
    },
    async stop() {
      const c = client;
      client = null;
      subscribed = false;
      if (c) await c.endAsync();
    },
    async publish(topic, payload, o) {
      const c = client;
      if (!c) throw new Error('external broker client is stopped');
      await c.publishAsync(topic, payload, { qos: o.qos, retain: o.retain });
    },
    disconnect(readerId) {
      log.warn(
        { readerId },
        'external mode: revoke the reader on the broker too (its credential lives there)',
      );
    },
    isOnline: (readerId) => online.get(readerId) ?? false,
    connectedReaders: () => [...online.values()].filter(Boolean).length,
    ready: () => Boolean(client?.connected && subscribed),
  };
}
