/**
 * Loads MQTT.js lazily (taps are taken while it loads). MQTT.js is CommonJS: run from source, Node
 * gives its named exports; from the firmware bundle (device/scripts/bundle.ts) the lazy chunk has only
 * a `default` export. Either way this returns the module, or throws naming what is missing.
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
