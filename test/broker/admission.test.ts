/**
 * Connection admission (gateway/src/broker/admission.ts, issue 15) on real loopback sockets and a virtual
 * clock: connections over the rate wait parked (unread) and are admitted in order as tokens free, a
 * connection that cannot wait gets the busy CONNACK (MQTT 3.1.1 return code 3) where the old admission
 * closed it bare, and the adaptive rate rises while connections wait and falls when the commit queue grows.
 * No timings are asserted: only which connections got in, in what order, and what the refused ones read.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONNACK_SERVER_UNAVAILABLE,
  ConnectionAdmission,
  FIXED_ADMISSION,
  type AdmissionSettings,
} from '../../gateway/src/broker/admission.js';
import { drainIo, VirtualClock } from '../../simulator/clock.js';

interface Rig {
  clock: VirtualClock;
  admission: ConnectionAdmission;
  admitted: string[];
  server: Server;
  port: number;
}

const open: { rig: Rig; clients: Socket[] }[] = [];

afterEach(async () => {
  for (const { rig, clients } of open.splice(0)) {
    rig.admission.close();
    for (const c of clients) c.destroy();
    await new Promise<void>((r) => rig.server.close(() => r()));
  }
});

async function rig(
  settings: Partial<AdmissionSettings>,
  opts: { perSecond: number; burst: number; backlog?: () => number; handshakes?: () => number },
): Promise<Rig & { clients: Socket[] }> {
  const clock = new VirtualClock({ startMs: 1_000_000 });
  const admitted: string[] = [];
  const admission = new ConnectionAdmission({
    clock,
    perSecond: opts.perSecond,
    burst: opts.burst,
    settings,
    load: {
      loopDelayMs: () => 0,
      backlog: opts.backlog ?? (() => 0),
      ...(opts.handshakes ? { handshakes: opts.handshakes } : {}),
    },
  });
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    // the client's first bytes name it; an admitted socket is read from then on
    admission.offer(socket, (s) => {
      s.once('data', (d) => {
        admitted.push(d.toString());
        s.write('in');
      });
      s.resume();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const r = { clock, admission, admitted, server, port, clients: [] as Socket[] };
  open.push({ rig: r, clients: r.clients });
  return r;
}

/** Connects, sends its name, and collects what the server sent until the close. */
function client(r: Rig & { clients: Socket[] }, name: string) {
  const s = createConnection({ port: r.port, host: '127.0.0.1' });
  r.clients.push(s);
  const got: Buffer[] = [];
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  s.on('error', () => undefined);
  s.on('data', (d) => got.push(d));
  s.write(name);
  return { closed, read: () => Buffer.concat(got) };
}

async function settle(ms = 30): Promise<void> {
  for (let i = 0; i < 10; i++) await drainIo();
  await new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 10; i++) await drainIo();
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (pred()) return;
    await settle(10);
  }
  throw new Error(`not reached: ${what}`);
}

describe('connection admission', () => {
  it('parks connections over the rate unread and admits them in arrival order as tokens free', async () => {
    const r = await rig({ adaptive: false, parkMs: 10_000 }, { perSecond: 2, burst: 2 });
    const cs = [];
    for (let i = 0; i < 6; i++) {
      cs.push(client(r, `c${i}`));
      await until(
        () => r.admission.stats().admitted + r.admission.stats().waiting === i + 1,
        `c${i} offered`,
      );
    }
    await until(() => r.admitted.length === 2, 'the burst admitted');
    expect(r.admitted).toEqual(['c0', 'c1']);
    expect(r.admission.stats().waiting).toBe(4);
    // the parked ones were not read: their names are still in their socket buffers
    await r.clock.advanceTo(r.clock.now() + 1_000); // 2 tokens
    await until(() => r.admitted.length === 4, 'two more after a second');
    await r.clock.advanceTo(r.clock.now() + 1_000);
    await until(() => r.admitted.length === 6, 'all admitted');
    expect(r.admitted).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
    const st = r.admission.stats();
    expect(st.refused).toEqual({ rate: 0, busy: 0, 'park-timeout': 0, closing: 0 });
    expect(st.parked).toBe(4);
    for (const c of cs) expect(c.read().toString()).toBe('in');
  });

  it('a connection that cannot wait gets CONNACK "Server unavailable"; the old admission closed it bare', async () => {
    const parked = await rig({ adaptive: false, parkMs: 10_000, maxParked: 1 }, { perSecond: 1, burst: 1 });
    const a = client(parked, 'a');
    await until(() => parked.admitted.length === 1, 'a in');
    const b = client(parked, 'b'); // parked
    await until(() => parked.admission.stats().waiting === 1, 'b parked');
    const c = client(parked, 'c'); // the queue is full: busy
    await c.closed;
    expect(c.read()).toEqual(CONNACK_SERVER_UNAVAILABLE);
    expect(parked.admission.stats().refused.busy).toBe(1);
    expect(a.read().toString()).toBe('in');
    expect(b.read().length).toBe(0);

    const fixed = await rig(FIXED_ADMISSION, { perSecond: 1, burst: 1 });
    client(fixed, 'a');
    await until(() => fixed.admitted.length === 1, 'a in (fixed)');
    const d = client(fixed, 'd');
    await d.closed;
    expect(d.read().length).toBe(0); // a bare close: nothing tells the reader the gateway is up
    expect(fixed.admission.stats().refused.rate).toBe(1);
  });

  it('a parked connection that waited longer than parkMs is refused busy, not admitted late', async () => {
    // the commit queue is long from the start: the rate falls (4 -> 1/s) under the connections parked
    const r = await rig(
      { adaptive: true, parkMs: 1_500, minPerSecond: 1, maxPerSecond: 4 },
      { perSecond: 4, burst: 1, backlog: () => 10_000 },
    );
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const cs = [];
    for (const [i, n] of names.entries()) {
      cs.push(client(r, n));
      await until(() => r.admission.stats().admitted + r.admission.stats().waiting >= i + 1, `${n} offered`);
    }
    for (let i = 0; i < 20; i++) {
      await r.clock.advanceTo(r.clock.now() + 250);
      await settle(5);
    }
    await until(() => r.admission.stats().waiting === 0, 'nobody waits');
    const st = r.admission.stats();
    expect(st.refused['park-timeout']).toBeGreaterThan(0);
    expect(st.maxWaitMs).toBeLessThanOrEqual(1_500);
    const refused = [];
    for (const [i, c] of cs.entries()) {
      const got = c.read();
      if (got.toString() === 'in') continue;
      await c.closed;
      expect(c.read()).toEqual(CONNACK_SERVER_UNAVAILABLE);
      refused.push(names[i]);
    }
    expect(refused.length).toBe(st.refused['park-timeout']);
    // admitted in arrival order; whoever timed out came after them
    expect(r.admitted).toEqual(names.slice(0, r.admitted.length));
  });

  it('the adaptive rate rises while connections wait and the gateway keeps up, and falls when the commit queue grows', async () => {
    let backlog = 0;
    const r = await rig(
      { adaptive: true, parkMs: 60_000, minPerSecond: 1, maxPerSecond: 1_000 },
      { perSecond: 2, burst: 1, backlog: () => backlog },
    );
    for (let i = 0; i < 40; i++) client(r, `c${i}`);
    await until(() => r.admission.stats().waiting + r.admission.stats().admitted === 40, 'all offered');
    const start = r.admission.stats().rate;
    await r.clock.advanceTo(r.clock.now() + 1_000); // four ticks with connections waiting, no load
    const raised = r.admission.stats().rate;
    expect(start).toBe(2);
    expect(raised).toBeGreaterThan(start);
    backlog = 10_000; // the commit queue grows: admit fewer
    await r.clock.advanceTo(r.clock.now() + 500);
    expect(r.admission.stats().rate).toBeLessThan(raised);
    expect(r.admission.stats().cut).toBeGreaterThan(0);
    backlog = 0;
    for (let i = 0; i < 40 && r.admitted.length < 40; i++) {
      await r.clock.advanceTo(r.clock.now() + 250);
      await settle(5);
    }
    expect(r.admitted.length).toBe(40);
    expect(new Set(r.admitted).size).toBe(40);
  });

  it('admits no more than the handshake window: the rest wait parked, unread, until handshakes complete', async () => {
    // plenty of tokens; the window (2) is what holds connections back. Every admitted connection is an open
    // handshake until the test completes it.
    const hs = { completed: 0, admitted: () => 0 };
    const r = await rig(
      { adaptive: false, parkMs: 60_000, maxHandshakes: 2 },
      { perSecond: 1_000, burst: 1_000, handshakes: () => hs.admitted() - hs.completed },
    );
    hs.admitted = () => r.admission.stats().admitted;
    const cs = [];
    for (let i = 0; i < 5; i++) {
      cs.push(client(r, `c${i}`));
      await until(
        () => r.admission.stats().admitted + r.admission.stats().waiting === i + 1,
        `c${i} offered`,
      );
    }
    await until(() => r.admitted.length === 2, 'the window admitted two');
    const pump = async () => {
      for (let i = 0; i < 5; i++) {
        await r.clock.advanceTo(r.clock.now() + 10);
        await settle(5);
      }
    };
    await pump();
    expect(r.admitted).toEqual(['c0', 'c1']);
    expect(r.admission.stats().waiting).toBe(3);
    expect(r.admission.stats().windowParked).toBe(3);
    expect(cs[2]?.read().length).toBe(0); // parked, unread
    hs.completed = 1; // one handshake done: exactly one more gets in
    await pump();
    expect(r.admitted).toEqual(['c0', 'c1', 'c2']);
    hs.completed = 3;
    await pump();
    expect(r.admitted).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    expect(r.admission.stats().refused).toEqual({ rate: 0, busy: 0, 'park-timeout': 0, closing: 0 });
  });
});
