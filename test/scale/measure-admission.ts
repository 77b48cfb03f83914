/**
 * Ad-hoc measurement (not a test): N MQTT.js clients (readers whose credential is cached) CONNECT to a real
 * gateway at once, each once, no retry; per admission setting: how many got in, how many were refused with
 * the busy CONNACK (code 3), closed bare, or still waiting after the clients' connect timeout; and when.
 *   npx tsx test/scale/measure-admission.ts [clients] [perSecond] [burst]
 */
import mqtt from 'mqtt';
import { FIXED_ADMISSION } from '../../gateway/src/broker/admission.js';
import { PASSWORD } from '../gateway/helpers.js';
import { admissionGateway } from '../storm/helpers.js';

const [n = 2000, perSecond = 100, burst = 200] = process.argv.slice(2).map(Number);

function tryConnect(port: number, id: string, t0: number): Promise<{ code: number; ms: number }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: id,
      username: id,
      password: PASSWORD,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    let code = -1;
    let done = false;
    const end = (k: number) => {
      if (done) return;
      done = true;
      resolve({ code: k, ms: performance.now() - t0 });
      c.end(true);
    };
    c.on('error', (err) => {
      const k = (err as { code?: unknown }).code;
      code = typeof k === 'number' ? k : -1; // a socket error (ECONNRESET): a bare close
    });
    c.once('connect', () => end(0));
    c.once('close', () => end(code));
  });
}

const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;

for (const [name, admission] of [
  ['fixed', FIXED_ADMISSION],
  ['default', {}],
  ['park, not adaptive', { adaptive: false }],
] as const) {
  const cleanups: (() => Promise<void> | void)[] = [];
  const gw = await admissionGateway(cleanups, admission, perSecond, burst, 'vt-adm-');
  const ids = Array.from({ length: n }, (_, i) => `adm-${i}`);
  for (const id of ids) await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: null });
  // prove every credential once, slowly (the storm's readers have; the KDF is not what this measures)
  for (let i = 0; i < n; i += 4) {
    const rs = await Promise.all(ids.slice(i, i + 4).map((id) => tryConnect(gw.mqttPort ?? 0, id, 0)));
    if (rs.some((r) => r.code !== 0)) await new Promise((r) => setTimeout(r, (1000 / perSecond) * 8));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const t0 = performance.now();
  const rs = await Promise.all(ids.map((id) => tryConnect(gw.mqttPort ?? 0, id, t0)));
  const by = (k: number) =>
    rs
      .filter((r) => r.code === k)
      .map((r) => r.ms)
      .sort((a, b) => a - b);
  const ok = by(0);
  const busy = by(3);
  const bare = by(-1);
  console.log(
    `${name.padEnd(20)} in ${ok.length} (p50 ${pct(ok, 0.5).toFixed(0)} / max ${pct(ok, 1).toFixed(0)} ms), busy CONNACK ${busy.length} (p50 ${pct(busy, 0.5).toFixed(0)} ms), bare close ${bare.length} (p50 ${pct(bare, 0.5).toFixed(0)} ms), other ${rs.length - ok.length - busy.length - bare.length}`,
  );
  console.log(
    '  gateway:',
    gw.metrics
      .render()
      .split('\n')
      .filter((l) => l.startsWith('visittag_mqtt_connections_refused_total'))
      .join('; '),
  );
  for (const c of cleanups.reverse()) await c();
}
process.exit(0);
