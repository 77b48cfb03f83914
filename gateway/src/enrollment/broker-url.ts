import type { GatewaySettings } from '../config.js';

/** Host part of a Host header (`gw.local:8080` → `gw.local`, `[::1]:80` → `[::1]`). */
export function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d+)?$/.exec(header.trim());
  return m?.[1] ?? null;
}

/**
 * The MQTT URL to hand a device: the external broker's URL as configured, else the embedded
 * broker at the host name the device used to reach the admin server (it is the same machine).
 */
export function brokerUrlFor(
  mqtt: GatewaySettings['mqtt'],
  boundPort: () => number | null,
): (hostHeader: string | undefined) => string {
  return (hostHeader) => {
    if (mqtt.mode === 'external') return mqtt.url;
    const bindHost = mqtt.host === '0.0.0.0' || mqtt.host === '::' ? '127.0.0.1' : mqtt.host;
    const host = hostOf(hostHeader) ?? bindHost;
    return `${mqtt.tls ? 'mqtts' : 'mqtt'}://${host}:${boundPort() ?? mqtt.port}`;
  };
}
