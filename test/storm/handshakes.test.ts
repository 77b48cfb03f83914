/**
 * `visittag_mqtt_handshakes{stage}` and `…_abandoned_total{stage}` (gateway/src/broker/handshakes.ts) through a
 * real gateway on loopback: a connection that sends nothing, one that sends half a CONNECT, one refused for
 * its password and one that connects are each counted at the step they reached, and leave the gauge when they
 * connect or close. Parked connections (the admission's queue) are counted once admitted, and all of them
 * connect.
 */
import { connect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { PASSWORD, waitUntil } from '../gateway/helpers.js';
import type { AdmissionSettings } from '../../gateway/src/broker/admission.js';
import { admissionGateway } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const gateway = (
  perSecond: number,
  burst: number,
  admission: Partial<AdmissionSettings> = {},
): Promise<Gateway> => admissionGateway(cleanups, admission, perSecond, burst, 'vt-hs-');

const gauge = (gw: Gateway, name: string, stage: string): number => {
  const m = new RegExp(`^${name}\\{stage="${stage}"\\} (\\d+)`, 'm').exec(gw.metrics.render());
  if (!m) throw new Error(`${name}{stage="${stage}"} missing from /metrics`);
  return Number(m[1]);
};
const open = (gw: Gateway, stage: string) => gauge(gw, 'visittag_mqtt_handshakes', stage);
const abandoned = (gw: Gateway, stage: string) =>
  gauge(gw, 'visittag_mqtt_handshakes_abandoned_total', stage);

async function rawSocket(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  cleanups.push(() => void s.destroy());
  return s;
}

function mqttConnect(
  port: number,
  readerId: string,
  password: string,
): Promise<{ ok: boolean; end: () => void }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: readerId,
      username: readerId,
      password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    c.on('error', () => undefined);
    cleanups.push(() => void c.end(true));
    c.once('connect', () => resolve({ ok: true, end: () => c.end(true) }));
    c.once('close', () => resolve({ ok: false, end: () => c.end(true) }));
  });
}

describe('handshake stages of admitted connections', () => {
  it('counts each connection at the step it reached, and as abandoned when it closes there', async () => {
    const gw = await gateway(1_000, 1_000);
    const port = gw.mqttPort ?? 0;
    await gw.registry.addReader({ readerId: 'hs-ok', password: PASSWORD, clientRef: null });

    const silent = await rawSocket(port);
    await waitUntil(() => open(gw, 'no-bytes') === 1, 10_000);
    const half = await rawSocket(port);
    half.write(Buffer.from([0x10, 0x20, 0x00])); // CONNECT header, remaining length 32: the body never comes
    await waitUntil(() => open(gw, 'bytes') === 1, 10_000);
    expect(open(gw, 'no-bytes')).toBe(1);

    const good = await mqttConnect(port, 'hs-ok', PASSWORD);
    expect(good.ok).toBe(true);
    const bad = await mqttConnect(port, 'hs-ok', `${PASSWORD}-wrong`);
    expect(bad.ok).toBe(false);
    await waitUntil(() => abandoned(gw, 'connect') === 1, 10_000);
    // the connected reader is in no stage; the two raw sockets still are
    expect([open(gw, 'no-bytes'), open(gw, 'bytes'), open(gw, 'connect'), open(gw, 'authenticated')]).toEqual(
      [1, 1, 0, 0],
    );

    silent.destroy();
    half.destroy();
    await waitUntil(() => abandoned(gw, 'no-bytes') === 1 && abandoned(gw, 'bytes') === 1, 10_000);
    expect([open(gw, 'no-bytes'), open(gw, 'bytes')]).toEqual([0, 0]);
    expect(abandoned(gw, 'authenticated')).toBe(0);
    good.end();
  });

  it('parked connections are tracked once admitted and all of them connect', async () => {
    // 20 connections a second, a burst of 2: most of 40 readers wait parked
    const gw = await gateway(20, 2, { adaptive: false, parkMs: 10_000, maxParked: 1_000 });
    const port = gw.mqttPort ?? 0;
    const N = 40;
    for (let i = 0; i < N; i++)
      await gw.registry.addReader({ readerId: `hs-p${i}`, password: PASSWORD, clientRef: null });
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => mqttConnect(port, `hs-p${i}`, PASSWORD)),
    );
    expect(results.filter((r) => r.ok).length).toBe(N);
    expect(Number(/^visittag_mqtt_admission_parked (\d+)/m.exec(gw.metrics.render())?.[1])).toBeGreaterThan(
      0,
    );
    for (const stage of ['no-bytes', 'bytes', 'connect', 'authenticated']) {
      expect(open(gw, stage)).toBe(0);
      expect(abandoned(gw, stage)).toBe(0);
    }
  });

  it('the handshake window counts connections whose bytes were read, not silent ones', async () => {
    // a window of one, plenty of tokens, a short park
    const gw = await gateway(1_000, 1_000, { adaptive: false, parkMs: 1_000, maxHandshakes: 1 });
    const port = gw.mqttPort ?? 0;
    for (const id of ['hs-w1', 'hs-w2'])
      await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: null });
    // a silent connection holds no place: a reader gets in beside it
    const silent = await rawSocket(port);
    await waitUntil(() => open(gw, 'no-bytes') === 1, 10_000);
    const first = await mqttConnect(port, 'hs-w1', PASSWORD);
    expect(first.ok).toBe(true);
    // half a CONNECT is work in hand: it fills the window, and the next reader waits parked, then is refused busy
    const half = await rawSocket(port);
    half.write(Buffer.from([0x10, 0x20, 0x00]));
    await waitUntil(() => open(gw, 'bytes') === 1, 10_000);
    const second = await mqttConnect(port, 'hs-w2', PASSWORD);
    expect(second.ok).toBe(false);
    const m = gw.metrics.render();
    expect(Number(/^visittag_mqtt_admission_window_parked (\d+)/m.exec(m)?.[1])).toBe(1);
    expect(
      Number(/^visittag_mqtt_connections_refused_total\{reason="park-timeout"\} (\d+)/m.exec(m)?.[1]),
    ).toBe(1);
    // the half connection goes: the window is free again
    half.destroy();
    await waitUntil(() => abandoned(gw, 'bytes') === 1, 10_000);
    const third = await mqttConnect(port, 'hs-w2', PASSWORD);
    expect(third.ok).toBe(true);
    silent.destroy();
  });
});
