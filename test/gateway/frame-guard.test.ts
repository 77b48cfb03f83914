import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameGuard } from '../../gateway/src/broker/frame-guard.js';

/** A TCP pair on 127.0.0.1: the server side wrapped in a FrameGuard, the client side raw. */
async function pair(max: number): Promise<{
  guard: FrameGuard;
  client: Socket;
  violations: string[];
  received: () => Buffer;
  server: Server;
}> {
  const violations: string[] = [];
  const chunks: Buffer[] = [];
  let resolveGuard: (g: FrameGuard) => void = () => undefined;
  const guardReady = new Promise<FrameGuard>((r) => (resolveGuard = r));
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    const g = new FrameGuard(sock, max, (v) => violations.push(v));
    g.on('error', () => undefined);
    g.on('data', (d: Buffer) => chunks.push(d));
    resolveGuard(g);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  await new Promise<void>((r) => client.once('connect', () => r()));
  return { guard: await guardReady, client, violations, received: () => Buffer.concat(chunks), server };
}

/** MQTT fixed header + body of `len` bytes. */
function frame(type: number, len: number): Buffer {
  const lenBytes: number[] = [];
  let n = len;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    lenBytes.push(b);
  } while (n);
  return Buffer.concat([Buffer.from([type, ...lenBytes]), Buffer.alloc(len, 0x61)]);
}

const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

describe('FrameGuard (MQTT packet size guard in front of aedes)', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));

  it('passes any split of legal frames through unchanged (fast-check over chunkings)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }),
        async (lengths, cuts) => {
          const p = await pair(4096);
          cleanups.push(() => {
            p.client.destroy();
            p.server.close();
          });
          const bytes = Buffer.concat(lengths.map((l) => frame(0x30, l)));
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = cuts[i % cuts.length] ?? 1;
            p.client.write(bytes.subarray(at, at + n));
            at += n;
          }
          expect(await waitFor(() => p.received().length === bytes.length)).toBe(true);
          expect(p.received().equals(bytes)).toBe(true);
          expect(p.violations).toEqual([]);
        },
      ),
      { numRuns: 25, seed: 3 },
    );
  });

  it('closes the connection on an oversized declared length, before the body arrives', async () => {
    const p = await pair(1024);
    cleanups.push(() => p.server.close());
    const closed = new Promise<void>((r) => p.client.once('close', () => r()));
    p.client.write(frame(0x30, 10).subarray(0, 2)); // a small legal header first
    p.client.write(Buffer.alloc(10, 0x61));
    p.client.write(Buffer.from([0x30, 0x80, 0x80, 0x01])); // declares 16384 bytes
    await closed;
    expect(p.violations).toEqual(['packet larger than 1024 bytes']);
    expect(p.received().length).toBeLessThanOrEqual(12); // the offending chunk is never passed on
  });

  it("writes a packet's corked pieces to the socket as one write, in order", async () => {
    // mqtt-packet's writeToStream (aedes' writer) corks the stream, writes a packet as several small
    // chunks (header, length, topic, id, payload) and uncorks on the next tick
    const p = await pair(4096);
    cleanups.push(() => {
      p.client.destroy();
      p.server.close();
    });
    const socket = (p.guard as unknown as { socket: Socket }).socket;
    const sizes: number[] = [];
    const write = socket.write.bind(socket) as (data: Buffer, cb?: (err?: Error | null) => void) => boolean;
    socket.write = ((data: Buffer, cb?: (err?: Error | null) => void) => {
      sizes.push(data.length);
      return write(data, cb);
    }) as typeof socket.write;
    const got: Buffer[] = [];
    p.client.on('data', (d: Buffer) => got.push(d));
    const pieces = (n: number) =>
      [0x30, 0x0c, 0x00, 0x03, 0x61, 0x2f, 0x62, n, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06].map((b) =>
        Buffer.from([b]),
      );
    const sent: Buffer[] = [];
    for (const packet of [pieces(1), pieces(2), pieces(3)]) {
      p.guard.cork();
      for (const piece of packet) p.guard.write(piece);
      sent.push(...packet);
      process.nextTick(() => p.guard.uncork());
    }
    const all = Buffer.concat(sent);
    expect(await waitFor(() => Buffer.concat(got).length === all.length)).toBe(true);
    expect(Buffer.concat(got).equals(all)).toBe(true);
    expect(sizes).toEqual([all.length]); // one write for the three packets of this tick, not 42
  });

  it('closes the connection on a malformed remaining length (fifth continuation byte)', async () => {
    const p = await pair(1 << 30);
    cleanups.push(() => p.server.close());
    const closed = new Promise<void>((r) => p.client.once('close', () => r()));
    p.client.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff]));
    await closed;
    expect(p.violations).toEqual(['malformed remaining length']);
  });
});
