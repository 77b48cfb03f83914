/**
 * Loads MQTT.js. MQTT.js is CommonJS: run from source, Node gives its named exports; from the firmware
 * bundle (device/scripts/bundle.ts) the lazy chunk has only a `default` export. Either way this returns
 * the module, or throws naming what is missing.
 *
 * Evaluating CommonJS is synchronous, so loading MQTT.js (and, at the first connect(), its TCP, TLS and
 * WebSocket transports) holds the event loop: 0.3-2 s on a busy 2-core machine, more on a Pi. Taps that
 * arrive meanwhile wait for it. `preloadMqtt()` does all of that before the reader starts (the device's
 * composition root calls it), so READY means taps get their feedback promptly; on Node 22 and later the
 * lazy load otherwise lands right after READY (Node 20 ran it a few ticks later).
 */
import type * as MqttModule from 'mqtt';

type Mqtt = typeof MqttModule;

export async function loadMqtt(): Promise<Pick<Mqtt, 'connect' | 'connectAsync'>> {
  const m = (await import('mqtt')) as Partial<Mqtt> & { default?: Partial<Mqtt> };
  const connect = m.connect ?? m.default?.connect;
  const connectAsync = m.connectAsync ?? m.default?.connectAsync;
  if (typeof connect !== 'function' || typeof connectAsync !== 'function') {
    throw new Error(
      'the mqtt module has no connect(): reinstall (npm ci) or rebuild the bundle (npm run build:device)',
    );
  }
  return { connect, connectAsync };
}

/** Loads MQTT.js and the transport modules its first connect() loads, without opening a connection. */
export async function preloadMqtt(): Promise<void> {
  const { connect } = await loadMqtt();
  // manualConnect: the client is built (which loads the transports) but never opens a socket.
  connect('mqtt://127.0.0.1', { manualConnect: true, reconnectPeriod: 0 });
}
