import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { childBundle } from '../../simulator/child-entry.js';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rounds } from '../support/rounds.js';
import { createGateway } from '../../gateway/index.js';
import { encode, topics, type TapEvent } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import {
  AckCollector,
  ADMIN_TOKEN,
  card,
  connectReader,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
} from './helpers.js';

const REPO = resolve(import.meta.dirname, '../..');
const R = 'r-crash';
// 30, a third of that on the other Node majors (test/support/rounds.ts); VT_KILLS sets it outright
const KILLS = Number(process.env.VT_KILLS ?? rounds(30, 10));
const SECRET = 'crash-test-webhook-secret';

/** Deterministic events: 5 cards, each alternating start/stop, so resends are byte-identical. */
function crashEvent(seq: number): TapEvent {
  const k = seq % 5;
  const n = Math.floor(seq / 5);
  return {
    readerId: R,
    seq,
    eventId: `e-${seq}`,
    card: card(k + 1),
    decision: n % 2 === 0 ? 'start' : 'stop',
    visitId: `v-${k}-${Math.floor(n / 2)}`,
    time: {
      wallMs: Date.UTC(2026, 10, 23, 8) + seq * 60_000,
      bootId: 'b1',
      monoMs: seq * 60_000,
      synced: true,
    },
  };
}

/** Small seeded PRNG (mulberry32) so a failing run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Child {
  proc: ChildProcess;
  mqttPort: number;
  adminPort: number;
  exited: Promise<number | null>;
}

/**
 * The real gateway/main.ts from its child bundle (simulator/child-entry.ts: one esbuild bundle per test
 * process, npm packages in it), so each of the 30+ restarts costs well under a second of CPU instead of
 * ~3 s of tsx loading on this 2-core machine. The bundle is removed when the test process exits.
 */
async function bundleGateway(): Promise<{ file: string; cleanup: () => void }> {
  return { file: await childBundle(join(REPO, 'gateway/main.ts')), cleanup: () => undefined };
}

async function spawnGateway(entry: string, cfgFile: string): Promise<Child> {
  const proc = spawn(process.execPath, [entry, 'run', '--config', cfgFile], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<{ mqttPort: number; adminPort: number }>((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`gateway child not ready in 30 s: ${stderr}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        if (line.includes('"event":"ready"')) {
          clearTimeout(timer);
          res(JSON.parse(line) as { mqttPort: number; adminPort: number });
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
    void exited.then((code) => rej(new Error(`gateway child exited (${code}) before ready: ${stderr}`)));
  });
  proc.stdout?.resume();
  return { proc, ...ready, exited };
}

/** Reads the store while no gateway runs (WAL recovery happens on open). */
function storeSnapshot(dbFile: string): { seqs: number[]; upto: number; json: Map<number, string> } {
  const db = new Database(dbFile);
  try {
    const rows = db
      .prepare('SELECT seq, event_json FROM events WHERE reader_id = ? ORDER BY seq')
      .all(R) as Array<{
      seq: number;
      event_json: string;
    }>;
    const upto =
      (db.prepare('SELECT contiguous_upto FROM reader_seq WHERE reader_id = ?').pluck().get(R) as
        number | undefined) ?? 0;
    return { seqs: rows.map((r) => r.seq), upto, json: new Map(rows.map((r) => [r.seq, r.event_json])) };
  } finally {
    db.close();
  }
}

/** A scripted device: keeps sending everything above its acked mark (resends included), plus new events. */
class ScriptedDevice {
  acked = 0;
  next = 1;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly client: MqttClient,
    private readonly acks: AckCollector,
    private readonly random: () => number,
  ) {}
  start(): void {
    this.timer = setInterval(() => this.tick(), 4);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
  private tick(): void {
    const last = this.acks.last?.upTo ?? 0;
    if (last > this.acked) this.acked = last;
    if (this.next - this.acked < 400) this.next += 1 + Math.floor(this.random() * 3);
    const from = Math.max(this.acked + 1, this.next - 100);
    const seqs: number[] = [];
    for (let s = from; s < this.next && seqs.length < 100; s++) seqs.push(s);
    if (this.random() < 0.2 && this.acked > 5) seqs.unshift(this.acked - 2, this.acked - 1); // stale resend
    if (!seqs.length) return;
    const payload = encode('events', {
      schemaVersion: 1,
      readerId: R,
      sentAt: { wallMs: Date.now(), bootId: 'b1', monoMs: 1, synced: true },
      events: [...new Set(seqs)].sort((a, b) => a - b).map(crashEvent),
    });
    this.client.publish(topics.events(R), payload, { qos: 1 }, () => undefined);
  }
}

// store.writerThread: the ingest's group commits and the visits engine in their worker thread (issue 15); the
// acks still wait for the thread's durable commit, so the same checks hold
describe.each([
  { mode: 'main thread', writerThread: false, kills: KILLS },
  { mode: 'writer thread', writerThread: true, kills: Math.max(5, Math.ceil(KILLS / 2)) },
])('crash: gateway child process SIGKILLed under steady ingest ($mode)', ({ writerThread, kills }) => {
  let tmp: ReturnType<typeof tempDir>;
  let backend: FakeBackend;
  let cfgFile: string;
  let dbFile: string;
  let bundle: { file: string; cleanup: () => void };

  beforeAll(async () => {
    bundle = await bundleGateway();
    tmp = tempDir('vt-crash-');
    backend = await startFakeBackend({ secret: SECRET });
    const cfg = testConfig(join(tmp.dir, 'data'), {
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 2000,
        batchMax: 100,
        backoff: { baseMs: 20, capMs: 200 },
      },
      ingest: { groupCommitMs: 5, groupCommitMax: 50 },
      logLevel: 'warn',
      ...(writerThread ? { store: { engine: 'sqlite', writerThread: true } } : {}),
    });
    const gw = createGateway({ config: cfg, logger: silent });
    await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-crash' });
    await gw.stop();
    cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(cfgFile, JSON.stringify(cfg));
    dbFile = join(cfg.dataDir, 'gateway.db');
  });
  afterAll(async () => {
    bundle.cleanup();
    await backend.close();
    tmp.cleanup();
  });

  it(
    `every acked event survives ${kills} SIGKILLs; no duplicates stored or forwarded`,
    { timeout: 180_000 },
    async () => {
      const random = rng(0x5eed);
      let ackedEver = 0;
      let totalAcks = 0;
      const tStart = Date.now();
      for (let round = 0; round < kills; round++) {
        const t0 = Date.now();
        const child = await spawnGateway(bundle.file, cfgFile);
        if (process.env.VT_TIMING) console.error('spawn', Date.now() - t0);
        const client = await connectReader(child.mqttPort, R);
        client.on('error', () => undefined);
        const acks = await AckCollector.attach(client, R);
        const device = new ScriptedDevice(client, acks, random);
        device.acked = ackedEver;
        device.next = ackedEver + 1;
        device.start();
        // at least one new ack per round (so every round tests "acked ⇒ kept"), then a random moment
        const before = ackedEver;
        await acks.waitFor((a) => a.upTo > before, 20_000);
        await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
        child.proc.kill('SIGKILL');
        await child.exited;
        device.stop();
        client.end(true);
        // what the device saw acknowledged, up to the kill
        const acked = Math.max(0, ...acks.acks.map((a) => a.upTo));
        totalAcks += acks.acks.length;
        ackedEver = Math.max(ackedEver, acked);
        const snap = storeSnapshot(dbFile);
        expect(snap.upto, `round ${round}`).toBeGreaterThanOrEqual(ackedEver);
        for (let s = 1; s <= ackedEver; s++)
          if (!snap.json.has(s)) throw new Error(`acked seq ${s} lost in round ${round}`);
      }
      expect(totalAcks).toBeGreaterThan(kills);
      expect(ackedEver).toBeGreaterThan(kills);

      if (process.env.VT_TIMING)
        console.error('kill rounds', Date.now() - tStart, 'acked', ackedEver, 'acks', totalAcks);
      // A last run: drain everything, forward, then a graceful SIGTERM.
      const child = await spawnGateway(bundle.file, cfgFile);
      const client = await connectReader(child.mqttPort, R);
      const acks = await AckCollector.attach(client, R);
      // events stored but not yet acked when the last kill hit may lie above ackedEver
      const finalSeq = Math.max(ackedEver, ...storeSnapshot(dbFile).seqs) + 20;
      await acks.publish(R, {
        schemaVersion: 1,
        readerId: R,
        sentAt: { wallMs: Date.now(), bootId: 'b1', monoMs: 1, synced: true },
        events: Array.from(
          { length: Math.min(200, finalSeq) },
          (_, i) => finalSeq - Math.min(200, finalSeq) + 1 + i,
        ).map(crashEvent),
      });
      // older unacked ones in chunks (a device's resend after reconnect)
      for (let from = 1; from <= finalSeq; from += 200) {
        const seqs = Array.from({ length: Math.min(200, finalSeq - from + 1) }, (_, i) => from + i);
        await acks.publish(R, {
          schemaVersion: 1,
          readerId: R,
          sentAt: { wallMs: Date.now(), bootId: 'b1', monoMs: 1, synced: true },
          events: seqs.map(crashEvent),
        });
      }
      await acks.waitFor((a) => a.upTo === finalSeq, 20_000);
      const metricsUrl = `http://127.0.0.1:${child.adminPort}/metrics`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const text = await (
          await fetch(metricsUrl, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        ).text();
        // the mode under test is the one that ran (a dead writer thread hands its work back: 0)
        expect(text).toMatch(new RegExp(`^visittag_writer_thread ${writerThread ? 1 : 0}$`, 'm'));
        if (/visittag_outbox_depth 0\b/.test(text) && backend.received().length > 0) break;
        if (Date.now() > deadline) throw new Error(`outbox did not drain:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await client.endAsync(true);
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);

      const snap = storeSnapshot(dbFile);
      expect(snap.seqs).toEqual(Array.from({ length: finalSeq }, (_, i) => i + 1));
      expect(snap.upto).toBe(finalSeq);
      for (const [seq, json] of snap.json) expect(JSON.parse(json)).toEqual(crashEvent(seq));

      // Forwarded: each visit start/stop exactly once by key, never two keys for one visit event.
      const received = backend.received();
      expect(backend.conflicts).toBe(0);
      const starts = received.filter((e) => e.type === 'visit.started');
      const startSeqs = starts.map((e) => (e.type === 'visit.started' ? e.startSeq : 0));
      expect(new Set(startSeqs).size).toBe(startSeqs.length);
      const expectedStarts = snap.seqs.filter((s) => crashEvent(s).decision === 'start');
      expect([...startSeqs].sort((a, b) => a - b)).toEqual(expectedStarts);
    },
  );
});
