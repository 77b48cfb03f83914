/**
 * Abuse limits (issue 16), through a real gateway and raw MQTT on loopback:
 * - a wrong-password flood from one source runs the slow KDF a bounded number of times, while the real
 *   reader with the right password still connects (from the same address: its verified credential is
 *   cached; a never-connected reader from its own address: its first try per minute always runs);
 * - a reader publishing over its rate is limited (messages dropped before ingest, not acknowledged),
 *   counted in a metric and logged in a bounded number of lines; its later resends are all stored;
 * - 10,000 rejected messages from one reader: bounded log lines, exact counters.
 * (The 2^53 seq jump: test/gateway/ingest-limits.test.ts; the 2 MiB admin body → 413: test/web/http.test.ts.)
 */
import { connect as netConnect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { AuthThrottle } from '../../gateway/src/broker/limits.js';
import { encode, topics } from '../../protocol/index.js';
import {
  AckCollector,
  batchOf,
  connectReader,
  PASSWORD,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

interface Line {
  msg: string;
  reason?: string;
  limit?: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gatewayWithLog(): Promise<{ gw: Gateway; lines: Line[] }> {
  const tmp = tempDir('vt-limits-');
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const gw = createGateway({ config: testConfig(tmp.dir), logger });
  trackDataDir(gw, tmp.dir);
  await gw.start();
  cleanups.push(() => tmp.cleanup());
  cleanups.push(() => gw.stop());
  return { gw, lines };
}

function connectPacket(id: string, password: string): Buffer {
  const s = (v: string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([s('MQTT'), Buffer.from([4, 0xc2, 0, 60]), s(id), s(id), s(password)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** One raw MQTT 3.1.1 CONNECT from `localAddress`; the CONNACK return code (0 accepted), or -1 when closed. */
function rawConnect(port: number, id: string, password: string, localAddress = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => {
    const sock = netConnect({ port, host: '127.0.0.1', localAddress });
    sock.on('error', () => undefined);
    let done = false;
    sock.once('connect', () => sock.write(connectPacket(id, password)));
    sock.once('data', (d: Buffer) => {
      done = true;
      sock.destroy();
      resolve(d[0] === 0x20 ? (d[3] ?? -1) : -1);
    });
    sock.once('close', () => {
      if (!done) resolve(-1);
    });
  });
}

const metric = (gw: Gateway, name: string, label: string): number => {
  const m = new RegExp(`^${name}\\{[^}]*${label}[^}]*\\} (\\d+)`, 'm').exec(gw.metrics.render());
  return m ? Number(m[1]) : 0;
};
const kdfRuns = (gw: Gateway): number =>
  Number(/^visittag_auth_kdf_runs (\d+)/m.exec(gw.metrics.render())?.[1] ?? NaN);

describe('failed-login throttling', () => {
  it('600 wrong passwords from one source: the KDF runs a bounded number of times; the real readers still connect', async () => {
    const { gw, lines } = await gatewayWithLog();
    const port = gw.mqttPort ?? 0;
    await gw.registry.addReader({ readerId: 'rdr-real', clientRef: 'home-1', password: PASSWORD });
    await gw.registry.addReader({ readerId: 'rdr-new', clientRef: 'home-2', password: PASSWORD });
    expect(await rawConnect(port, 'rdr-real', PASSWORD)).toBe(0); // connected once: its credential is cached
    const before = kdfRuns(gw);

    const WRONG = 'wrong-password-0123456789-abcdefgh';
    const codes: number[] = [];
    for (let round = 0; round < 30; round++) {
      const ids = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'rdr-real' : 'rdr-new'));
      codes.push(...(await Promise.all(ids.map((id) => rawConnect(port, id, WRONG)))));
      // the real reader, from the attacked address, during the flood
      if (round === 15) expect(await rawConnect(port, 'rdr-real', PASSWORD)).toBe(0);
    }
    expect(codes.length).toBe(600);
    expect(codes.every((c) => c !== 0)).toBe(true);
    const runs = kdfRuns(gw) - before;
    // the source's burst (30) plus refill over the test's seconds; 600 without the throttle
    expect(runs).toBeGreaterThan(0);
    expect(runs).toBeLessThanOrEqual(40);
    expect(metric(gw, 'visittag_mqtt_connections_refused_total', 'reason="throttled"')).toBe(600 - runs);

    // a reader never connected before, whose id was attacked, from its own address: not locked out
    expect(await rawConnect(port, 'rdr-new', PASSWORD, '127.0.0.2')).toBe(0);
    // and the right password from the attacked address is still refused while that address is throttled
    expect(await rawConnect(port, 'rdr-new', 'another-wrong-password-0123456789')).not.toBe(0);

    // the log is bounded: at most 10 lines per (result, source) a minute
    const authLines = lines.filter((l) => l.msg === 'auth refused');
    expect(authLines.length).toBeLessThanOrEqual(20);
  }, 120_000);

  it('the throttle itself: failures use tokens, successes refund them, a fresh source gets its first try', () => {
    let now = 0;
    const t = new AuthThrottle(
      { monotonic: () => now },
      { perSource: { burst: 3, perMinute: 3 }, perReader: { burst: 2, perMinute: 1 } },
    );
    // a success does not use up the source
    for (let i = 0; i < 10; i++) {
      expect(t.allow('10.0.0.1', 'r1')).toBe(true);
      t.result('10.0.0.1', 'r1', true);
    }
    // failures do: 3 then refused
    const fails = Array.from({ length: 5 }, () => t.allow('10.0.0.9', 'r2'));
    expect(fails).toEqual([true, true, true, false, false]);
    // r2's own bucket (2) is empty now; another source still gets one try per minute at r2
    expect(t.allow('10.0.0.2', 'r2')).toBe(true);
    expect(t.allow('10.0.0.2', 'r2')).toBe(false);
    now += 60_000; // refilled
    expect(t.allow('10.0.0.9', 'r2')).toBe(true);
    expect(t.throttled).toBe(3);
  });
});

describe('per-reader publish rate', () => {
  it('a reader over its rate is limited, counted and logged in bounded lines; what it sends again later is stored', async () => {
    const { gw, lines } = await gatewayWithLog();
    await gw.registry.addReader({ readerId: 'rdr-fast', clientRef: 'home-3', password: PASSWORD });
    const c = await connectReader(gw.mqttPort ?? 0, 'rdr-fast');
    cleanups.push(() => void c.end(true));
    const N = 2_000;
    for (let seq = 1; seq <= N; seq++) {
      c.publish(topics.events('rdr-fast'), encode('events', batchOf('rdr-fast', [seq])), { qos: 0 });
    }
    await waitUntil(() => metric(gw, 'visittag_reader_rate_limited_total', 'limit="rate"') > 0, 20_000);
    const acks = await AckCollector.attach(c, 'rdr-fast');
    await new Promise((r) => setTimeout(r, 1_000));
    gw.flush();
    const limited = metric(gw, 'visittag_reader_rate_limited_total', 'limit="rate"');
    const stored = storedSeqs(gw, 'rdr-fast').length;
    expect(limited).toBeGreaterThan(N / 2); // the burst is 500 messages, 50 a second after it
    expect(stored + limited).toBe(N); // every message either stored or counted as limited
    expect(lines.filter((l) => l.msg === 'reader over its publish limit').length).toBeLessThanOrEqual(10);
    const view = await fetch(`${gw.adminUrl}/api/readers/rdr-fast`, {
      headers: { authorization: 'Bearer test-admin-token-0123456789' },
    });
    expect(JSON.stringify(await view.json())).toContain('rate-rate');

    // the honest reader's answer: it sends what was not acknowledged again, in batches, at its pace
    const missing = Array.from({ length: N }, (_, i) => i + 1).filter(
      (s) => !storedSeqs(gw, 'rdr-fast').includes(s),
    );
    for (let i = 0; i < missing.length; i += 200) {
      await acks.publish('rdr-fast', batchOf('rdr-fast', missing.slice(i, i + 200)));
    }
    await acks.waitFor((a) => a.upTo === N, 20_000);
    expect(storedSeqs(gw, 'rdr-fast').length).toBe(N);
  }, 120_000);

  it('10,000 rejected messages from one reader: bounded log lines, exact counters', async () => {
    const { gw, lines } = await gatewayWithLog();
    await gw.registry.addReader({ readerId: 'rdr-junk', clientRef: 'home-4', password: PASSWORD });
    const c = await connectReader(gw.mqttPort ?? 0, 'rdr-junk');
    cleanups.push(() => void c.end(true));
    const N = 10_000;
    for (let i = 0; i < N; i++) c.publish(topics.events('rdr-junk'), Buffer.from('{not json'), { qos: 0 });
    const counted = () =>
      metric(gw, 'visittag_ingest_rejects_total', 'reason="') +
      metric(gw, 'visittag_reader_rate_limited_total', 'limit="rate"');
    await waitUntil(() => counted() === N, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(counted()).toBe(N); // exact: every message counted once, none twice
    const warnLines = lines.filter(
      (l) =>
        l.msg.includes('reject') || l.msg.includes('rejected') || l.msg === 'reader over its publish limit',
    );
    expect(warnLines.length).toBeLessThanOrEqual(25);
  }, 120_000);
});
