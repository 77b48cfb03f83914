/**
 * The uplink turns Nagle off on its MQTT socket (device/src/core/no-nagle.ts): the PUBACK for an ack and the next
 * batch are two small writes, and with Nagle the second waited for the gateway's delayed ACK (bench/README.md,
 * "Nagle in the load generator"). Here: on a real TCP socket to a real broker the option is set, and streams
 * without it (or that refuse it) are left alone.
 */
import { createServer, Socket } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import { noNagle } from '../../device/src/core/no-nagle.js';
import { BrokerAndPeer, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('noNagle', () => {
  it("the device's uplink sets it on its socket to the broker when it connects", async () => {
    const spy = vi.spyOn(Socket.prototype, 'setNoDelay');
    cleanups.push(() => spy.mockRestore());
    const { dir, cleanup } = tempDir('vt-device-nd-');
    cleanups.push(cleanup);
    const net = new BrokerAndPeer();
    await net.start();
    cleanups.push(() => net.close());
    await net.bringUp();
    const device = createDevice({
      config: settings(dir, { mqttUrl: net.url }),
      logger: silentLogger,
      cardReader: new SimulatedCardReader(),
      feedback: new SimulatedFeedback({ maxRecords: 10 }),
      clockSynced: () => true,
    });
    cleanups.push(() => device.stop());
    await device.start();
    await waitFor(() => device.status().connected, 10_000, 'connected');
    const toBroker = spy.mock.contexts.filter(
      (sock, i) => (sock as Socket).remotePort === net.port && spy.mock.calls[i]?.[0] === true,
    );
    expect(toBroker.length).toBeGreaterThanOrEqual(1);
  });

  it('sets TCP_NODELAY on a connected MQTT.js client socket', async () => {
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => broker.close(() => server.close(() => r()))));
    const port = (server.address() as { port: number }).port;
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'nd', protocolVersion: 4 });
    cleanups.push(() => c.endAsync(true));
    const spy = vi.spyOn(c.stream as Socket, 'setNoDelay');
    noNagle(c);
    expect(spy).toHaveBeenCalledWith(true);
  });

  it('leaves a stream without the option alone, and survives one that throws', () => {
    expect(() => noNagle({ stream: {} })).not.toThrow();
    expect(() => noNagle({})).not.toThrow();
    const refuses = {
      stream: {
        setNoDelay: () => {
          throw new Error('not a socket');
        },
      },
    };
    expect(() => noNagle(refuses)).not.toThrow();
  });
});
