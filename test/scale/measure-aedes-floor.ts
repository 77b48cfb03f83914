/**
 * Ad-hoc measurement (not a test): what a bare aedes broker costs per message on this machine, the floor under
 * the gateway's one-tap-per-message figure (bench/README.md "The writer thread"). A child process runs aedes
 * alone (no auth, no storage); this process runs N MQTT.js clients, one QoS 1 message in flight each, like the
 * bench's load generator. Two shapes: `puback` (the client waits for PUBACK: the relay's shape, nobody
 * subscribed) and `ack` (the broker's side also publishes a QoS 1 app-level ack to the client's own topic for each
 * message and the client waits for it: the gateway's exchange without the gateway's work). Prints messages/s and
 * the broker process's CPU per message. `--ack-qos0` publishes the acks at QoS 0 (no PUBACK from the client, no
 * in-flight record in the broker).
 *   npx tsx test/scale/measure-aedes-floor.ts [clients] [seconds] [--client-nodelay] [--ack-qos0]
 */
import { fork } from 'node:child_process';
import mqtt, { type MqttClient } from 'mqtt';

const [clients = 200, seconds = 4] = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'))
  .map(Number);
/** The clients' sockets without Nagle too (MQTT.js leaves Node's default: Nagle on). */
const clientNoDelay = process.argv.includes('--client-nodelay');

if (process.argv.includes('--server')) {
  const { Aedes } = await import('aedes');
  const { createServer } = await import('node:net');
  const ackMode = process.argv.includes('--ack');
  const ackQos = process.argv.includes('--ack-qos0') ? 0 : 1;
  const broker = await Aedes.createBroker();
  let n = 0;
  broker.on('publish', (packet, client) => {
    if (!client) return;
    n++;
    if (ackMode)
      broker.publish(
        {
          cmd: 'publish',
          topic: `acks/${client.id}`,
          payload: Buffer.from('{"upTo":1}'),
          qos: ackQos,
          retain: false,
          dup: false,
        },
        () => undefined,
      );
  });
  // as the gateway's broker does (gateway/src/broker/embedded.ts): small acks must not wait for Nagle
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    broker.handle(socket);
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    process.send?.({ port: typeof a === 'object' && a ? a.port : 0 });
  });
  let c0 = process.cpuUsage();
  let n0 = 0;
  process.on('message', (m: string) => {
    if (m === 'mark') {
      c0 = process.cpuUsage();
      n0 = n;
    } else if (m === 'report') {
      const c = process.cpuUsage(c0);
      process.send?.({ messages: n - n0, cpuUs: c.user + c.system });
    } else process.exit(0);
  });
} else {
  for (const mode of ['puback', 'ack'] as const) {
    const child = fork(
      import.meta.filename,
      [
        '--server',
        ...(mode === 'ack' ? ['--ack'] : []),
        ...(process.argv.includes('--ack-qos0') ? ['--ack-qos0'] : []),
      ],
      {
        execArgv: ['--import', 'tsx'],
      },
    );
    const next = <T>() => new Promise<T>((r) => child.once('message', (m) => r(m as T)));
    const { port } = await next<{ port: number }>();
    const cs: MqttClient[] = await Promise.all(
      Array.from({ length: clients }, (_, i) =>
        mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `r${i}`, protocolVersion: 4 }),
      ),
    );
    if (clientNoDelay)
      for (const c of cs) (c.stream as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true);
    if (mode === 'ack') await Promise.all(cs.map((c, i) => c.subscribeAsync(`acks/r${i}`, { qos: 1 })));
    let running = true;
    let sent = 0;
    const payload = Buffer.from(JSON.stringify({ seq: 1, card: 'x'.repeat(40), t: Date.now() }));
    const loops = cs.map(async (c, i) => {
      while (running) {
        if (mode === 'ack') {
          const got = new Promise<void>((r) => c.once('message', () => r()));
          c.publish(`events/r${i}`, payload, { qos: 1 });
          await got;
        } else await c.publishAsync(`events/r${i}`, payload, { qos: 1 });
        sent++;
      }
    });
    await new Promise((r) => setTimeout(r, 500)); // warm-up
    child.send('mark');
    const s0 = sent;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    child.send('report');
    const rep = await next<{ messages: number; cpuUs: number }>();
    const ms = performance.now() - t0;
    running = false;
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 2000))]);
    console.log(
      `${mode}${clientNoDelay ? ' (clients without Nagle)' : ''}: ${clients} clients, ${Math.round(((sent - s0) / ms) * 1000)} msg/s; broker CPU ${(rep.cpuUs / rep.messages).toFixed(1)} µs per message`,
    );
    await Promise.all(cs.map((c) => c.endAsync(true)));
    child.send('exit');
  }
}
