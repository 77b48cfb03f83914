/**
 * Hosts one visittag gateway (createGateway from gateway/index.ts) in its own process, so its RSS is its
 * own and it does not share an event loop with the load generator. Driven over IPC by bench/run.ts.
 * The gateway module is loaded by path at run time: when it is not there yet, `start` fails with
 * `component missing` and the row prints n/a.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pino from 'pino';
import { serve } from '../lib/serve.js';

/** Just the slice of the gateway API (see gateway/index.ts) the bench uses. */
interface GatewayLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly mqttPort: number | null;
  metrics: { render(): string };
  registry: {
    addReader(r: { readerId: string; password: string; clientRef: string | null }): Promise<unknown>;
    addCard(c: { cardRef: string; staffRef: string }): void;
  };
}
interface GatewayModule {
  createGateway(opts: { config: unknown; logger?: pino.Logger; visitsThread?: boolean }): GatewayLike;
  parseGatewaySettings(input: unknown): { ok: true; config: unknown } | { ok: false; error: string };
}

const ROOT = resolve(import.meta.dirname, '../..');
/** From the TypeScript sources (tsx), or from a transpiled tree (bench/lib/build.ts: what production runs). */
export const GATEWAY_ENTRY = join(
  ROOT,
  import.meta.filename.endsWith('.js') ? 'gateway/index.js' : 'gateway/index.ts',
);

let gw: GatewayLike | null = null;
let dataDir = '';

/**
 * BENCH_STALLS=1: a 5 ms interval probe records when this process's event loop was held longer than 20 ms
 * ([wall-clock ms at the end of the stall, stall ms]), to set beside a row's slowest taps. Off by default: the
 * probe is work in the measured process.
 */
const stalls: [number, number][] = [];
if (process.env.BENCH_STALLS === '1') {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (now - last > 20 && stalls.length < 10_000) stalls.push([Date.now(), Math.round(now - last - 5)]);
    last = now;
  }, 5).unref();
}

serve({
  async start(args: { settings: Record<string, unknown> & { dataDir: string } }) {
    if (!existsSync(GATEWAY_ENTRY)) throw new Error(`component missing: ${GATEWAY_ENTRY}`);
    const mod = (await import(pathToFileURL(GATEWAY_ENTRY).href)) as GatewayModule;
    const parsed = mod.parseGatewaySettings(args.settings);
    if (!parsed.ok) throw new Error(parsed.error);
    dataDir = args.settings.dataDir;
    // Bench logs at warn (to this worker's log file): per-connection info lines would be measured too.
    const logger = pino({ level: 'warn', base: { app: 'bench-gateway' } }, pino.destination(2));
    // BENCH_VISITS_THREAD=1: the visits engine in its worker thread (GatewayOptions.visitsThread; off by default)
    const visitsThread = process.env.BENCH_VISITS_THREAD === '1';
    gw = mod.createGateway({ config: parsed.config, logger, visitsThread });
    await gw.start();
    return { mqttPort: gw.mqttPort };
  },

  async addReaders(args: {
    readers: { readerId: string; password: string; clientRef: string }[];
    concurrency: number;
  }) {
    const g = gw;
    if (!g) throw new Error('gateway not started');
    let i = 0;
    const lane = async () => {
      while (i < args.readers.length) {
        const r = args.readers[i++];
        if (r) await g.registry.addReader(r);
      }
    };
    await Promise.all(Array.from({ length: args.concurrency }, lane));
    return { added: args.readers.length };
  },

  addCards(args: { cards: { cardRef: string; staffRef: string }[] }) {
    if (!gw) throw new Error('gateway not started');
    for (const c of args.cards) gw.registry.addCard(c);
    return { added: args.cards.length };
  },

  /** CPU time this process has used so far (user + system, µs): work per tap that load does not inflate much. */
  cpu() {
    const u = process.cpuUsage();
    return { us: u.user + u.system };
  },

  memory() {
    global.gc?.();
    return process.memoryUsage();
  },

  /** Rows in the contract table `events` (read-only connection; WAL lets it read beside the writer). */
  countEvents() {
    const db = new Database(join(dataDir, 'gateway.db'), { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare('SELECT count(*) AS n FROM events').get() as { n: number };
      return { events: row.n };
    } finally {
      db.close();
    }
  },

  /**
   * Committed events the visits engine has not processed yet (contract tables reader_seq and
   * visit_cursor, read beside the writer like countEvents).
   */
  /** The gateway's metric lines whose names start with one of `prefixes` (Prometheus text, as /metrics). */
  metrics(args: { prefixes: string[] }) {
    const g = gw;
    if (!g) throw new Error('gateway not started');
    return g.metrics
      .render()
      .split('\n')
      .filter((l) => !l.startsWith('#') && args.prefixes.some((p) => l.startsWith(p)));
  },

  /** The event-loop stalls recorded so far (BENCH_STALLS=1; else none), then forgotten. */
  stalls() {
    return { stalls: stalls.splice(0) };
  },

  visitLag() {
    const db = new Database(join(dataDir, 'gateway.db'), { readonly: true, fileMustExist: true });
    try {
      const row = db
        .prepare(
          `SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) AS n FROM reader_seq s
             LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id`,
        )
        .get() as { n: number };
      return { events: row.n };
    } finally {
      db.close();
    }
  },

  async stop() {
    await gw?.stop();
    gw = null;
    return true;
  },
});
