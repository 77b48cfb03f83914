/**
 * A TCP proxy between one reader and the broker, with fault switches: partition (refuse and cut),
 * blackhole (half-open: bytes vanish, the sockets stay up until the path heals, then they are reset
 * like an expired NAT entry), latency, connection resets and duplicated MQTT PUBLISH packets
 * (device → broker, as a QoS 1 resend would). Listens on 127.0.0.1 port 0.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Rng } from '../prng.js';

export type ProxyMode = 'pass' | 'partition' | 'blackhole';

export interface ProxyStats {
  connections: number;
  resets: number;
  duplicatedPublishes: number;
  forgedAcks: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly mode: ProxyMode;
  setUpstreamPort(port: number): void;
  setMode(mode: ProxyMode): void;
  /** Real milliseconds added to every chunk (both directions). */
  setLatency(ms: number): void;
  /** Probability that a device→broker PUBLISH is sent twice. */
  setDuplicateRate(p: number): void;
  /**
   * Checker self-test: play a broken gateway that acknowledges a batch before committing it and then
   * loses it. Event batches are answered here (PUBACK + an application-level ack up to the batch's
   * last seq) and never reach the broker.
   */
  setForgeAcks(readerId: string | null): void;
  /** Cuts every open connection now. */
  resetAll(): void;
  readonly stats: ProxyStats;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Splits a byte stream into MQTT packets (fixed header + remaining length). */
class MqttFramer {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      let len = 0;
      let mul = 1;
      let i = 1;
      let complete = false;
      for (; i < 5 && i < this.buf.length; i++) {
        const b = this.buf[i] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) return out;
      const total = i + 1 + len;
      if (this.buf.length < total) return out;
      out.push(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
    }
  }
}

export async function startFaultProxy(opts: { upstreamPort: number; rng: Rng }): Promise<FaultProxy> {
  let upstreamPort = opts.upstreamPort;
  let mode: ProxyMode = 'pass';
  let latency = 0;
  let dupRate = 0;
  const pairs = new Set<Pair>();
  const held = new Set<Pair>();
  const stats: ProxyStats = { connections: 0, resets: 0, duplicatedPublishes: 0, forgedAcks: 0 };
  let forgeFor: string | null = null;

  const cut = (p: Pair): void => {
    p.client.destroy();
    p.upstream.destroy();
    pairs.delete(p);
    held.delete(p);
  };
  const forward = (p: Pair, to: Socket, data: Buffer): void => {
    if (held.has(p) || mode === 'blackhole') {
      held.add(p);
      return; // bytes vanish
    }
    if (latency > 0) setTimeout(() => to.destroyed || to.write(data), latency);
    else to.write(data);
  };

  const forgeAck = (p: Pair, pkt: Buffer, readerId: string): boolean => {
    const parsed = parsePublish(pkt);
    if (!parsed || !parsed.topic.endsWith('/events')) return false;
    let upTo = 0;
    try {
      const batch = JSON.parse(parsed.payload.toString('utf8')) as { events?: { seq?: number }[] };
      for (const e of batch.events ?? []) upTo = Math.max(upTo, e.seq ?? 0);
    } catch {
      return false;
    }
    if (parsed.packetId !== null)
      p.client.write(Buffer.from([0x40, 0x02, parsed.packetId >> 8, parsed.packetId & 0xff]));
    const ack = JSON.stringify({ schemaVersion: 1, readerId, upTo, rejected: [] });
    p.client.write(buildPublish(parsed.topic.replace(/\/events$/, '/acks'), Buffer.from(ack)));
    stats.forgedAcks++;
    return true;
  };

  const server: Server = createServer((client) => {
    if (mode === 'partition') {
      client.destroy();
      return;
    }
    stats.connections++;
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort });
    const p: Pair = { client, upstream };
    pairs.add(p);
    if (mode === 'blackhole') held.add(p);
    const framer = new MqttFramer();
    client.on('data', (chunk: Buffer) => {
      for (const pkt of framer.push(chunk)) {
        if (forgeFor !== null && forgeAck(p, pkt, forgeFor)) continue;
        forward(p, upstream, pkt);
        const type = (pkt[0] ?? 0) >> 4;
        const qos = ((pkt[0] ?? 0) >> 1) & 3;
        if (dupRate > 0 && type === 3 && qos === 1 && opts.rng.chance(dupRate)) {
          stats.duplicatedPublishes++;
          const dup = Buffer.from(pkt);
          dup[0] = (dup[0] ?? 0) | 0x08; // DUP flag, as a resend carries
          forward(p, upstream, dup);
        }
      }
    });
    upstream.on('data', (chunk: Buffer) => forward(p, client, chunk));
    const end = () => cut(p);
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    get mode() {
      return mode;
    },
    stats,
    setUpstreamPort: (p) => {
      upstreamPort = p;
    },
    setMode: (m) => {
      const prev = mode;
      mode = m;
      if (m === 'partition') for (const p of [...pairs]) cut(p);
      if (prev === 'blackhole' && m !== 'blackhole') {
        for (const p of [...held]) {
          stats.resets++;
          cut(p);
        }
      }
    },
    setLatency: (ms) => {
      latency = Math.max(0, ms);
    },
    setDuplicateRate: (p) => {
      dupRate = Math.max(0, Math.min(1, p));
    },
    setForgeAcks: (readerId) => {
      forgeFor = readerId;
    },
    resetAll: () => {
      for (const p of [...pairs]) {
        stats.resets++;
        cut(p);
      }
    },
    close: async () => {
      for (const p of [...pairs]) cut(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Topic, packet id and payload of an MQTT 3.1.1 PUBLISH packet, or null. */
function parsePublish(pkt: Buffer): { topic: string; packetId: number | null; payload: Buffer } | null {
  const b0 = pkt[0] ?? 0;
  if (b0 >> 4 !== 3) return null;
  let i = 1;
  while (i < 5 && ((pkt[i] ?? 0) & 0x80) !== 0) i++;
  i++;
  const tlen = pkt.readUInt16BE(i);
  const topic = pkt.subarray(i + 2, i + 2 + tlen).toString('utf8');
  i += 2 + tlen;
  let packetId: number | null = null;
  if (((b0 >> 1) & 3) > 0) {
    packetId = pkt.readUInt16BE(i);
    i += 2;
  }
  return { topic, packetId, payload: pkt.subarray(i) };
}

/** A QoS 0 PUBLISH packet. */
function buildPublish(topic: string, payload: Buffer): Buffer {
  const t = Buffer.from(topic, 'utf8');
  let rem = 2 + t.length + payload.length;
  const len: number[] = [];
  do {
    let d = rem % 128;
    rem = Math.floor(rem / 128);
    if (rem > 0) d |= 0x80;
    len.push(d);
  } while (rem > 0);
  const head = Buffer.from([0x30, ...len, t.length >> 8, t.length & 0xff]);
  return Buffer.concat([head, t, payload]);
}
